/* inbox_batch.h - the batch of consumed messages that inboxd writes in one transaction: each
 * message copied with its message id and headers JSON, the partitions' spans (the writer's
 * lock order), the fence marks of messages recorded before, and the batch as the columns of
 * the INSERT (PostgreSQL binary arrays). Pure: no I/O. */
#ifndef OUTBOXD_INBOX_BATCH_H
#define OUTBOXD_INBOX_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsg.h"
#include "pgarray.h"

typedef struct inbox_batch inbox_batch_t;

/* A partition's span in the batch: offsets of its first and last message. */
typedef struct inbox_span {
    const char *topic; /* borrowed from the batch */
    int32_t partition;
    int64_t first, last;
    size_t count;
} inbox_span_t;

inbox_batch_t *inbox_batch_new(void);       /* NULL when out of memory */
void inbox_batch_destroy(inbox_batch_t *b); /* accepts NULL */

/* Copies m into the batch with its message id (message_id_of with id_header) and headers
 * JSON (headers_json_encode). Messages of one partition must come in offset order. Returns 0
 * or -1 (out of memory). */
int inbox_batch_add(inbox_batch_t *b, const kmsg_t *m, const char *id_header);

size_t inbox_batch_count(const inbox_batch_t *b);
/* Bytes of keys, payloads, ids and headers held. */
size_t inbox_batch_bytes(const inbox_batch_t *b);
void inbox_batch_clear(inbox_batch_t *b);

/* The partitions in the batch, sorted by topic then partition (the lock order of the
 * writer). Borrowed, valid until the batch changes; *n receives the count. NULL with
 * *n = 0 when the batch is empty or out of memory (then also inbox_batch_count > 0). */
const inbox_span_t *inbox_batch_spans(inbox_batch_t *b, size_t *n);

/* Marks every message of topic/partition with an offset below next_offset as already
 * recorded (it will not be inserted). Returns how many were newly marked. */
size_t inbox_batch_fence(inbox_batch_t *b, const char *topic, int32_t partition, int64_t next_offset);
/* Messages not marked by inbox_batch_fence. */
size_t inbox_batch_unfenced(const inbox_batch_t *b);
/* Clears every fence mark (a failed transaction is retried from scratch). */
void inbox_batch_unfence(inbox_batch_t *b);

/* Removes the messages of topic/partition (revoked while they could not be written).
 * Returns how many. */
size_t inbox_batch_drop_partition(inbox_batch_t *b, const char *topic, int32_t partition);

/* The columns of the insert: message_id text[], topic text[], partition int4[],
 * offset int8[], key bytea[], headers jsonb[], payload bytea[], in batch order, unfenced
 * messages only. */
enum {
    INBOX_COL_MSGID,
    INBOX_COL_TOPIC,
    INBOX_COL_PARTITION,
    INBOX_COL_OFFSET,
    INBOX_COL_KEY,
    INBOX_COL_HEADERS,
    INBOX_COL_PAYLOAD,
    INBOX_NCOLS
};

/* Fills cols (INBOX_NCOLS arrays, initialised here; free each with pgarray_free).
 * Returns the number of rows, or -1 when out of memory. */
long inbox_batch_encode(const inbox_batch_t *b, pgarray_t cols[INBOX_NCOLS]);
/* The same for the unfenced messages number from .. to-1 (counted among unfenced messages, in
 * batch order; to is capped at inbox_batch_unfenced). */
long inbox_batch_encode_range(const inbox_batch_t *b, size_t from, size_t to, pgarray_t cols[INBOX_NCOLS]);

/* Where unfenced message number k (as in inbox_batch_encode_range) came from; pointers
 * borrowed from the batch. Returns false when there is no such message. */
typedef struct inbox_row_ref {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *msgid;
} inbox_row_ref_t;
bool inbox_batch_unfenced_row(const inbox_batch_t *b, size_t k, inbox_row_ref_t *out);

/* Calls fn(arg, topic, commit_us) for every unfenced message, in batch order, that carries
 * outboxd's commit time header (RECORD_HEADER_COMMIT_TIME: 1 to 18 decimal digits of
 * microseconds since the epoch; the last such header counts, as for every header; other values
 * are ignored). topic is borrowed for the call. */
void inbox_batch_commit_times(const inbox_batch_t *b, void (*fn)(void *arg, const char *topic, int64_t commit_us),
                              void *arg);

/* The commit time that header value v[0..len) holds, in microseconds, or 0 when it is not 1 to
 * 18 decimal digits (exported for its unit test). */
int64_t inbox_batch_parse_commit_time(const void *v, size_t len);

#endif
