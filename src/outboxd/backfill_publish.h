/* backfill_publish.h - the first start with outbox.backfill.where: publish the existing rows
 * that match it through the relay's pipeline, then create the slot exactly where they end. */
#ifndef OUTBOXD_BACKFILL_PUBLISH_H
#define OUTBOXD_BACKFILL_PUBLISH_H

#include <stddef.h>

#include "relay_internal.h"
#include "repl_stream.h"

/* On r->rs, connected and checked by stream_connect_open (STREAM_CONNECT_BACKFILL): creates a
 * temporary slot that exports the snapshot its stream starts from, publishes the rows matching
 * outbox.backfill.where in that snapshot (ORDER BY outbox.backfill.order) as one-event
 * transactions, waits until Kafka acknowledged every one, then copies the temporary slot to
 * postgres.slot. A crash or a failure before the copy leaves no slot behind, so the next start
 * backfills again (duplicates, never a gap). Returns REPL_OK (the slot exists now: connect
 * again and stream it), REPL_RETRY, or another status with errstr when the relay must stop. */
repl_status_t backfill_publish_run(relay_t *r, char *errstr, size_t errstr_size);

#endif
