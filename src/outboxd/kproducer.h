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
/* Why Kafka refused a record, from librdkafka's error code (never its text). */
typedef enum {
    KPRODUCER_REFUSED = 0,            /* anything else */
    KPRODUCER_REFUSED_UNKNOWN_TOPIC,  /* the topic does not exist and is not created (broker or local) */
    KPRODUCER_REFUSED_NOT_AUTHORIZED, /* a topic or cluster ACL refuses the producer */
    KPRODUCER_REFUSED_TOO_LARGE,      /* the record exceeds a size limit */
} kproducer_refusal_t;

/* The refusal for librdkafka error code err (an rd_kafka_resp_err_t). Pure. */
kproducer_refusal_t kproducer_refusal_of(int err);

typedef struct kproducer_delivery {
    uint64_t seq;                /* as given to kproducer_produce (or kproducer_redirect) */
    lsn_t lsn;                   /* as given to kproducer_produce: the LSN of the event's WAL record */
    int err;                     /* 0 or an rd_kafka_resp_err_t */
    bool too_large;              /* err says the record exceeds a size limit */
    kproducer_refusal_t refusal; /* err's class (when err != 0) */
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
/* The same with transactional_id set (delivery.guarantee = exactly-once): a transactional
 * producer with that transactional.id; message.timeout.ms keeps librdkafka's default (it must
 * not exceed transaction.timeout.ms). Its transactions are ktxn.c's business. kafka.transactional.id
 * itself is refused in both modes. */
kproducer_t *kproducer_new_txn(const char *const *props, const char *id_header, const char *transactional_id,
                               kproducer_dr_cb_t cb, void *opaque, err_t *e);
void kproducer_destroy(kproducer_t *p); /* accepts NULL; does not wait for in-flight records */

/* Builds (and drops) the producer's configuration from props as kproducer_new does, without
 * creating a client: the enforced settings, bootstrap.servers. Returns 0, or -1 with *e,
 * exactly when kproducer_new would fail before it creates the client. */
int kproducer_check_props(const char *const *props, err_t *e);

/* Readable when delivery reports or errors are waiting: then call kproducer_poll. */
int kproducer_fd(const kproducer_t *p);

/* Waits up to timeout_ms for a broker to answer a metadata request. Returns 0, or -1 with *e:
 * ERR_PERMANENT when the brokers refused the SASL credentials or failed certificate
 * verification (kconf_sec_classify: retrying cannot help), else ERR_TRANSIENT naming
 * bootstrap.servers. */
int kproducer_check_connect(kproducer_t *p, int timeout_ms, err_t *e);

typedef enum {
    KPRODUCER_OK = 0,
    KPRODUCER_QUEUE_FULL = 1,   /* back-pressure (or memory short): poll and retry the same record later */
    KPRODUCER_INVALID = 2,      /* this record can never be produced (bad topic, ...) */
    KPRODUCER_TOO_LARGE = 3,    /* the record exceeds message.max.bytes */
    KPRODUCER_UNKNOWN_TOPIC = 4 /* librdkafka already knows the topic does not exist */
} kproducer_result_t;

/* Enqueues one record (ev and what it points to are copied); seq and lsn come back in its
 * delivery report. */
kproducer_result_t kproducer_produce(kproducer_t *p, const outbox_event_t *ev, uint64_t seq, lsn_t lsn, char *errstr,
                                     size_t errstr_size);

/* Enqueues a record of the relay's own (the exactly-once checkpoint) to an explicit partition;
 * key and value are copied. seq comes back in its delivery report (lsn 0). Returns as
 * kproducer_produce (KPRODUCER_INVALID with errstr for any refusal but a full queue). */
kproducer_result_t kproducer_produce_to(kproducer_t *p, const char *topic, int32_t partition, const void *key,
                                        size_t key_len, const void *value, size_t value_len, uint64_t seq, char *errstr,
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

/* While records are in flight and no delivery report came for 2 s (and librdkafka reports no
 * broker trouble), asks the brokers, at most every 5 s and for at most 500 ms, whether a topic
 * of those records exists: returns 1 with its name in topic when the broker says it does not
 * (UNKNOWN_TOPIC_OR_PART: it is not created automatically), else 0; each topic once while its
 * records are in flight. librdkafka itself fails
 * such records only after topic.metadata.propagation.max.ms (30 s). For the relay's loop. */
int kproducer_missing_topic(kproducer_t *p, int64_t now_ms, char *topic, size_t size);

/* Last error reported by librdkafka that is not fatal (e.g. all brokers down); "" if none
 * since the last successful delivery. */
const char *kproducer_last_error(const kproducer_t *p);

#endif
