/* ktxn.h - the transactions of the relay's producer (delivery.guarantee = exactly-once): init
 * (which fences every older producer with the same transactional.id and completes or aborts its
 * last transaction), begin, commit, abort; and what their errors mean for the relay, decided by
 * librdkafka's error flags and codes (rd_kafka_error_is_fatal, rd_kafka_error_txn_requires_abort,
 * rd_kafka_error_is_retriable, RD_KAFKA_RESP_ERR_PRODUCER_FENCED ...), never by the text.
 *
 * init, commit and abort block (commit flushes, then waits for the coordinator): call them on a
 * thread that is not the one serving the producer's delivery reports (relay_eos.c uses bgjob).
 * begin is local and quick. */
#ifndef OUTBOXD_KTXN_H
#define OUTBOXD_KTXN_H

#include <stdbool.h>

#include "error.h"
#include "kproducer.h"

typedef enum {
    KTXN_OK = 0,
    KTXN_RETRY,  /* retriable (a timeout, no coordinator yet): call again; a timed-out call resumes */
    KTXN_ABORT,  /* the transaction failed: abort it and replay what it held */
    KTXN_FENCED, /* a newer producer with this transactional.id fenced this one: it must stop */
    KTXN_FATAL   /* the producer cannot go on (authorization, broker settings, an unknown error) */
} ktxn_result_t;

/* Each fills *e (kind, message naming the call, fix) for anything but KTXN_OK. timeout_ms as
 * librdkafka takes it (-1: the remaining transaction time). */
ktxn_result_t ktxn_init(kproducer_t *p, int timeout_ms, err_t *e);
ktxn_result_t ktxn_begin(kproducer_t *p, err_t *e);
ktxn_result_t ktxn_commit(kproducer_t *p, int timeout_ms, err_t *e);
ktxn_result_t ktxn_abort(kproducer_t *p, int timeout_ms, err_t *e);

/* The producer's fatal error (rd_kafka_fatal_error) as KTXN_FENCED or KTXN_FATAL with *e;
 * KTXN_OK when it has none. */
ktxn_result_t ktxn_fatal(kproducer_t *p, err_t *e);

/* Pure. What an error of a transactional call means: code is the error's code (for a fatal
 * error, rd_kafka_fatal_error's), the flags are librdkafka's. Errors without any flag are
 * fatal, as librdkafka recommends. */
ktxn_result_t ktxn_classify(int code, bool fatal, bool requires_abort, bool retriable);

/* Pure. True for the codes that mean "a newer producer with this transactional.id exists". */
bool ktxn_code_is_fencing(int code);

/* Pure. A failed delivery report inside a transaction: true when the broker refused this record
 * for good (too large, no such topic, not authorized for it, a policy; not INVALID_RECORD, see
 * ktxn.c): the record's fault, to be dead-lettered or to stop on. False when the transaction or the connection failed
 * (message timeout, purged by an abort, fenced, broker gone): the whole transaction is replayed. */
bool ktxn_record_refused(int err);

#endif
