/* delivery_failure.h - the relay's line for a record Kafka refused (at produce time or in its
 * delivery report) and whether a restart can help. A topic that does not exist and is not
 * created, or an ACL that refuses the producer, needs an operator: the line names the topic and
 * the fix, and the exit code is RELAY_EXIT_CONFIG (2), which a supervisor does not restart into
 * the same failure. Other refusals stay runtime failures (RELAY_EXIT_RUNTIME, 1). Classified by
 * librdkafka's error codes (kproducer_refusal_of), never by their text. Pure. */
#ifndef OUTBOXD_DELIVERY_FAILURE_H
#define OUTBOXD_DELIVERY_FAILURE_H

#include <stdbool.h>
#include <stddef.h>

#include "kproducer.h"
#include "lsn.h"

/* A delivery report with an error (d borrowed); commit_end: the end LSN of the event's
 * transaction, 0 while it is still open; dead_letter: the record was the event's dead-letter
 * record (its topic is outbox.dead_letter.topic). Writes the line to buf; returns the exit
 * code. */
int delivery_failure_report(const kproducer_delivery_t *d, lsn_t commit_end, bool dead_letter, char *buf, size_t size);

/* kproducer_produce refused the record of event event_id for topic at once (res:
 * KPRODUCER_INVALID, _TOO_LARGE or _UNKNOWN_TOPIC; err: its errstr) for the WAL record at lsn.
 * Writes the line to buf; returns the exit code. */
int delivery_failure_produce(const char *event_id, const char *topic, lsn_t lsn, kproducer_result_t res,
                             const char *err, char *buf, size_t size);

/* kproducer_missing_topic found that topic, which events in flight (n) are for, does not exist
 * and is not created: the line. Without dead_letter the relay stops with it before librdkafka
 * gives up on the records; with dead_letter it is a warning saying they will be dead-lettered.
 * Returns RELAY_EXIT_CONFIG. */
int delivery_failure_missing_topic(const char *topic, size_t n, bool dead_letter, char *buf, size_t size);

/* The fix for a refusal for topic into buf ("" for KPRODUCER_REFUSED and _TOO_LARGE); with
 * dead_letter (topic is the dead-letter topic) without the advice to dead-letter. Returns buf. */
const char *delivery_failure_fix(kproducer_refusal_t refusal, const char *topic, bool dead_letter, char *buf,
                                 size_t size);

#endif
