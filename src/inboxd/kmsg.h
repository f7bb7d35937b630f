/* kmsg.h - a consumed Kafka message as a borrowed view: what kconsumer hands out and
 * inbox_batch records. */
#ifndef OUTBOXD_KMSG_H
#define OUTBOXD_KMSG_H

#include <stddef.h>
#include <stdint.h>

/* One Kafka header, borrowed; value NULL: a null header (len ignored). */
typedef struct kmsg_header {
    const char *name;
    const void *value;
    size_t len;
} kmsg_header_t;

/* One consumed message; every pointer borrowed (see the producer of the view for how long).
 * key NULL: no key; value NULL: a tombstone (NULL payload). */
typedef struct kmsg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const kmsg_header_t *headers;
    size_t nheaders;
} kmsg_t;

#endif
