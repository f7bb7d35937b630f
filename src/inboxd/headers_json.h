/* headers_json.h - the Kafka headers of a consumed message as the JSON object stored in
 * inbox.headers. Pure. */
#ifndef OUTBOXD_HEADERS_JSON_H
#define OUTBOXD_HEADERS_JSON_H

#include <stddef.h>

#include "kmsg.h"

/* The headers h[0..n) as a compact JSON object (new string, caller frees; NULL when out of
 * memory), "{}" when there are none. A value that is text (pgtext_is_text) becomes a JSON
 * string, a null header JSON null, any other value the string "\x<hex>"; a name that is not
 * text is written as "\x<hex>" as well. When a name repeats, the last header wins (Kafka's
 * lastHeader). */
char *headers_json_encode(const kmsg_header_t *h, size_t n);

#endif
