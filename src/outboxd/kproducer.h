/* kproducer.h - the Kafka side of the relay: an idempotent acks=all librdkafka producer
 * whose delivery reports arrive on a pollable fd. */
#ifndef OUTBOXD_KPRODUCER_H
#define OUTBOXD_KPRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "lsn.h"
#include "router.h"

typedef struct kproducer kproducer_t;

/* Delivery outcome of one produced record. err == 0: acknowledged by the broker. Otherwise
 * errstr says why and event_id names the event (from its id header; may be NULL; NULL for
 * every acknowledged record: looking it up would cost each delivery a header search). Every
 * pointer is borrowed for the duration of the callback only. */
typedef struct kproducer_delivery {
    uint64_t seq;   /* as given to kproducer_produce (or kproducer_redirect) */
    lsn_t lsn;      /* as given to kproducer_produce: the LSN of the event's WAL record */
    int err;        /* 0 or an rd_kafka_resp_err_t */
    bool too_large; /* err says the record exceeds a size limit */
    const char *errstr;
    const char *event_id;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *msg;  /* the librdkafka message, for kproducer_redirect */
    size_t bytes;     /* key + value bytes */
    size_t value_len; /* value bytes */
} kproducer_delivery_t;

typedef void (*kproducer_dr_cb_t)(void *opaque, const kproducer_delivery_t *d);

/* props: NULL-terminated name, value pairs given by the user (kafka.* without the prefix),
 * borrowed. Properties the guarantees depend on are enforced: enable.idempotence=true and
 * acks=all (a conflicting user value is an error); defaults that the user may override:
 * partitioner=murmur2_random (Java-compatible), message.timeout.ms=0 (retry without end),
 * queue.buffering.max.kbytes=16384, linger.ms=5. id_header: the header that carries the
 * event id (borrowed). Returns NULL with errstr on a bad property. */
kproducer_t *kproducer_new(const char *const *props, const char *id_header, kproducer_dr_cb_t cb, void *opaque,
                           err_t *e);
void kproducer_destroy(kproducer_t *p); /* accepts NULL; does not wait for in-flight records */

/* Readable when delivery reports or errors are waiting: then call kproducer_poll. */
int kproducer_fd(const kproducer_t *p);

/* Waits up to timeout_ms for a broker to answer a metadata request. Returns 0 or -1 with
 * errstr (naming bootstrap.servers). */
int kproducer_check_connect(kproducer_t *p, int timeout_ms, err_t *e);

typedef enum {
    KPRODUCER_OK = 0,
    KPRODUCER_QUEUE_FULL = 1, /* back-pressure (or memory short): poll and retry the same record later */
    KPRODUCER_INVALID = 2,    /* this record can never be produced (bad topic, ...) */
    KPRODUCER_TOO_LARGE = 3   /* the record exceeds message.max.bytes */
} kproducer_result_t;

/* Enqueues one record (ev and what it points to are copied); seq and lsn come back in its
 * delivery report. */
kproducer_result_t kproducer_produce(kproducer_t *p, const outbox_event_t *ev, uint64_t seq, lsn_t lsn, char *errstr,
                                     size_t errstr_size);

/* From inside the delivery callback: produces a copy of d's record (key, value, headers) to
 * topic with the nextra headers of extra (borrowed) added after the original ones; drop_value
 * sends an empty value instead of the original. The copy's delivery report carries seq and
 * d->lsn. Which headers a dead-letter record gets is dead_letter.c's business. Returns as
 * kproducer_produce. */
kproducer_result_t kproducer_redirect(kproducer_t *p, const kproducer_delivery_t *d, const char *topic,
                                      const router_header_t *extra, size_t nextra, bool drop_value, uint64_t seq,
                                      char *errstr, size_t errstr_size);

/* Serves waiting delivery reports and errors (calls the callback). Returns 0, or -1 when the
 * producer hit a fatal error (errstr filled): stop without confirming anything unacked. */
int kproducer_poll(kproducer_t *p, char *errstr, size_t errstr_size);

/* The librdkafka handle (borrowed), for tests (mock cluster) and statistics. */
void *kproducer_handle(kproducer_t *p);

/* Last error reported by librdkafka that is not fatal (e.g. all brokers down); "" if none
 * since the last successful delivery. */
const char *kproducer_last_error(const kproducer_t *p);

#endif
