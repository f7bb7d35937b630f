/* relay_partitions.h - the relay steps for a wal2json stream over partitioned outbox tables
 * (relay_partitions.c): private to the relay's files, like relay_internal.h. */
#ifndef OUTBOXD_RELAY_PARTITIONS_H
#define OUTBOXD_RELAY_PARTITIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "relay_internal.h"

/* A stream started at start: (re)starts the catalog poll and the fence for the partitioned
 * tables stream_connect found (none: both stop). */
void relay_partitions_streaming(relay_t *r, lsn_t start);
/* The stream's commits (top-level xid, commit end) and keepalives, in order. */
void relay_partitions_commit(relay_t *r, uint32_t xid, lsn_t end);
void relay_partitions_keepalive(relay_t *r, lsn_t wal_end);
/* flush, or the fence when it is lower: what may be confirmed (and streamed from again). */
lsn_t relay_partitions_cap(const relay_t *r, lsn_t flush);
/* Too many commits wait for a poll: stop reading (back-pressure). */
bool relay_partitions_full(const relay_t *r);
/* Takes the latest poll; true when it shows other partitions than the stream reads: restart
 * the stream (it resumes from the confirmed position with the new partitions). */
bool relay_partitions_changed(relay_t *r);
void relay_partitions_stop(relay_t *r);

#endif
