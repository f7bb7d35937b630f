/* dead_letter.h - outbox.on_invalid = dead-letter: the record the relay sends to
 * outbox.dead_letter.topic instead of an event it cannot publish, on every path:
 *   - an event the router could not build (the value is the wal2json record, or the
 *     backfilled row as JSON): dead_letter_unroutable;
 *   - a record the producer refused at once (bad topic, too large): dead_letter_event;
 *   - a record the broker refused in its delivery report: dead_letter_redirect.
 * Every dead-letter record carries the headers docs/guarantees.md promises, added in one place:
 * outboxd.error (the reason), outboxd.reason (its class: dead_letter_reason_name), outboxd.lsn
 * (the LSN of the event's WAL record), outboxd.topic (the topic it was meant for, when a record
 * was built) and, when the value was dropped because of its size, outboxd.value.size (the
 * original size). `outboxd replay` reads them to send the records back (replay.c). */
#ifndef OUTBOXD_DEAD_LETTER_H
#define OUTBOXD_DEAD_LETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kproducer.h"
#include "lsn.h"
#include "router.h"

typedef struct dead_letter dead_letter_t;

/* The class of a dead-letter record (header outboxd.reason). */
typedef enum {
    DEAD_LETTER_UNROUTABLE = 0, /* no record could be built: the value is the wal2json record (or row) */
    DEAD_LETTER_REFUSED,        /* Kafka refused the record for another reason */
    DEAD_LETTER_UNKNOWN_TOPIC,  /* its topic does not exist and is not created */
    DEAD_LETTER_NOT_AUTHORIZED, /* an ACL refused it */
    DEAD_LETTER_TOO_LARGE,      /* too large: the value is dropped (outboxd.value.size) */
    DEAD_LETTER_REASON_COUNT
} dead_letter_reason_t;

/* "unroutable", "refused", "unknown-topic", "not-authorized", "too-large". */
const char *dead_letter_reason_name(dead_letter_reason_t r);
/* The reason called name; -1 when there is none. */
int dead_letter_reason_parse(const char *name, dead_letter_reason_t *out);
/* The reason of a record the producer refused at once (res: KPRODUCER_INVALID, _TOO_LARGE,
 * _UNKNOWN_TOPIC) or in a delivery report (refusal). */
dead_letter_reason_t dead_letter_reason_of_result(kproducer_result_t res);
dead_letter_reason_t dead_letter_reason_of_refusal(kproducer_refusal_t refusal);

/* topic: outbox.dead_letter.topic; id_header: the header that carries the event id (NULL =
 * "id"). Both are copied. Returns NULL when out of memory. */
dead_letter_t *dead_letter_new(const char *topic, const char *id_header);
void dead_letter_destroy(dead_letter_t *dl); /* accepts NULL */

/* The producer refused *ev, the event of the WAL record at lsn, for reason (copied), of class
 * why: *ev becomes its dead-letter record in place - same key, its headers then ours (with its
 * topic in outboxd.topic), topic the dead-letter topic; for DEAD_LETTER_TOO_LARGE an empty
 * value (its size in outboxd.value.size). The
 * headers and topic then point into dl: valid until the next dead_letter_event or
 * dead_letter_unroutable call (a record refused with KPRODUCER_QUEUE_FULL may be produced
 * again until then). Logs a warning naming the event. Returns 0, or -1 when out of memory. */
int dead_letter_event(dead_letter_t *dl, outbox_event_t *ev, lsn_t lsn, const char *reason, dead_letter_reason_t why);

/* The router could not build a record for the WAL record at lsn (reason says why, ev->id is
 * the event id when it could be read): *ev becomes a dead-letter record with value (borrowed:
 * it must outlive the produce call) as its value, no key, and the id header when the id is
 * known. Pointer lifetimes and the return value as dead_letter_event. */
int dead_letter_unroutable(dead_letter_t *dl, outbox_event_t *ev, lsn_t lsn, const char *value, size_t len,
                           const char *reason);

/* From inside the delivery callback, for a record the broker refused (d->err set): produces
 * the same record to the dead-letter topic with the reason "Kafka refused it for topic ...",
 * outboxd.lsn = d->lsn and, when the size was the problem, an empty value; its delivery
 * report comes back under seq. Logs a warning naming the event on success. Returns as
 * kproducer_produce, with errstr on failure. */
kproducer_result_t dead_letter_redirect(dead_letter_t *dl, kproducer_t *kp, const kproducer_delivery_t *d, uint64_t seq,
                                        char *errstr, size_t errstr_size);

#endif
