/* dead_letter.h - outbox.on_invalid = dead-letter: the record the relay sends to
 * outbox.dead_letter.topic instead of an event it cannot publish, on every path:
 *   - an event the router could not build (the value is the wal2json record, or the
 *     backfilled row as JSON): dead_letter_unroutable;
 *   - a record the producer refused at once (bad topic, too large): dead_letter_event;
 *   - a record the broker refused in its delivery report: dead_letter_redirect.
 * Every dead-letter record carries the headers docs/guarantees.md promises, added in one place:
 * outboxd.error (the reason), outboxd.lsn (the LSN of the event's WAL record) and, when the
 * value was dropped because of its size, outboxd.value.size (the original size). */
#ifndef OUTBOXD_DEAD_LETTER_H
#define OUTBOXD_DEAD_LETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kproducer.h"
#include "lsn.h"
#include "router.h"

typedef struct dead_letter dead_letter_t;

/* topic: outbox.dead_letter.topic; id_header: the header that carries the event id (NULL =
 * "id"). Both are copied. Returns NULL when out of memory. */
dead_letter_t *dead_letter_new(const char *topic, const char *id_header);
void dead_letter_destroy(dead_letter_t *dl); /* accepts NULL */

/* The producer refused *ev, the event of the WAL record at lsn, for reason (copied): *ev
 * becomes its dead-letter record in place - same key, its headers then ours, topic the
 * dead-letter topic; with drop_value an empty value (its size in outboxd.value.size). The
 * headers and topic then point into dl: valid until the next dead_letter_event or
 * dead_letter_unroutable call (a record refused with KPRODUCER_QUEUE_FULL may be produced
 * again until then). Logs a warning naming the event. Returns 0, or -1 when out of memory. */
int dead_letter_event(dead_letter_t *dl, outbox_event_t *ev, lsn_t lsn, const char *reason, bool drop_value);

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
