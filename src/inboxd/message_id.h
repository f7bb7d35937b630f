/* message_id.h - the message id of a consumed message: the key of the inbox's deduplication,
 * taken from a header or made of topic/partition/offset; SHA-256 for ids too long to index. Pure. */
#ifndef OUTBOXD_MESSAGE_ID_H
#define OUTBOXD_MESSAGE_ID_H

#include "kmsg.h"

/* Longest message id stored as it is, in bytes. Longer ids would break the unique btree
 * index of inbox.message_id (an index row holds at most about 2.7 kB: SQLSTATE 54000). */
#define MESSAGE_ID_MAX 1024

/* The message id of m (new string, caller frees; NULL when out of memory): the value of the
 * last header called id_header if it has one that is not empty; as is when it is text
 * (pgtext_is_text), else "\x" followed by its bytes in lower-case hex. Without such a header:
 * "topic/partition/offset", e.g. "orders/2/1234". id_header NULL or "": always the latter.
 * An id from the header that would be longer than MESSAGE_ID_MAX bytes is "sha256:" followed
 * by the lower-case hex SHA-256 (libcrypto) of the header value's bytes instead
 * (deterministic: copies of one message still deduplicate). */
char *message_id_of(const kmsg_t *m, const char *id_header);

#endif
