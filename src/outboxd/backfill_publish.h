/* backfill_publish.h - publish existing outbox rows through the relay's pipeline, then create
 * the slot exactly where they end: the first start with outbox.backfill.where, and the
 * recovery of a lost slot (the rows the progress record cannot rule out). */
#ifndef OUTBOXD_BACKFILL_PUBLISH_H
#define OUTBOXD_BACKFILL_PUBLISH_H

#include <stddef.h>

#include "relay_internal.h"
#include "repl_stream.h"

/* On r->rs, connected and checked by stream_connect_open (STREAM_CONNECT_BACKFILL or
 * RECOVER): creates a temporary slot that exports the snapshot its stream starts from,
 * publishes the rows matching where (SQL, borrowed) in that snapshot (ORDER BY
 * outbox.backfill.order) as one-event transactions, waits until Kafka acknowledged every one,
 * copies the temporary slot to postgres.slot and writes the progress record for it. what
 * ("backfill", "recovery") names the run in log lines; *rows counts the rows published. A
 * crash or a failure before the copy leaves no slot behind, so the next start does it again
 * (duplicates, never a gap). Returns REPL_OK (the slot exists now: connect again and stream
 * it), REPL_RETRY, or another status with errstr when the relay must stop. */
repl_status_t backfill_publish_run(relay_t *r, const char *where, const char *what, uint64_t *rows, char *errstr,
                                   size_t errstr_size);

#endif
