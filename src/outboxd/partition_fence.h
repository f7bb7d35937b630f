/* partition_fence.h - how far the slot may be confirmed while wal2json streams a partitioned
 * outbox table. wal2json reads the partitions named in add-tables; a partition created after
 * the stream started is not among them, so its rows are filtered out. Before confirming past
 * a transaction, outboxd must know that the partitions it streams were all there is as far as
 * that transaction could see: a poll of the catalog (partition_watch) whose snapshot shows the
 * transaction finished, and which saw no partition the stream does not read. A poll that
 * shows such a partition means: restart the stream from the confirmed position with it
 * (nothing past it was confirmed, so PostgreSQL sends the new partition's rows again). A
 * dropped or detached partition needs nothing.
 *
 * Pure: no I/O. The stream side reports commits (xid, end LSN) and keepalive positions in
 * order; the poll side hands in snapshots; the fence is the newest position such that every
 * transaction before it finished before a poll that saw the stream's partitions. */
#ifndef OUTBOXD_PARTITION_FENCE_H
#define OUTBOXD_PARTITION_FENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

#define PARTITION_FENCE_MAX_XIP 1024

/* A poll: pg_current_snapshot() of the statement that read the partitions, and how many of
 * the partitions it saw the stream does not read. Plain data. */
typedef struct partition_snapshot {
    uint64_t xmax;                         /* first xid not yet started (full, 64-bit) */
    uint64_t xip[PARTITION_FENCE_MAX_XIP]; /* xids in progress (full) */
    size_t nxip;
    bool overflow;        /* more in progress than xip holds: cannot be used */
    uint32_t npartitions; /* seen */
    uint32_t unknown;     /* of them, not read by the stream */
} partition_snapshot_t;

typedef enum {
    PARTITION_FENCE_SAME = 0,   /* no partition the stream does not read: the fence may have moved */
    PARTITION_FENCE_CHANGED = 1 /* other partitions (or a commit did not fit): restart the stream from the
                                   confirmed position */
} partition_fence_result_t;

typedef struct partition_fence partition_fence_t;

/* max_pending: commits held before the poll covers them; beyond it partition_fence_full. */
partition_fence_t *partition_fence_new(size_t max_pending);
void partition_fence_destroy(partition_fence_t *f); /* accepts NULL */

/* A stream starts at start (nothing before it needs covering). */
void partition_fence_reset(partition_fence_t *f, lsn_t start);

/* A transaction with top-level xid (32 bits, as the stream gives it) committed; end: its
 * commit record's end. Returns -1 when it did not fit (the caller should have stopped
 * reading at partition_fence_full): the fence then stays where it is and the next poll says
 * CHANGED, so that the stream restarts. */
int partition_fence_commit(partition_fence_t *f, uint32_t xid, lsn_t end);
bool partition_fence_full(const partition_fence_t *f);

/* A keepalive: everything before wal_end was sent (every commit before it was reported). */
void partition_fence_keepalive(partition_fence_t *f, lsn_t wal_end);

/* A poll result. */
partition_fence_result_t partition_fence_apply(partition_fence_t *f, const partition_snapshot_t *s);

/* The position that may be confirmed: never decreases until a reset. */
lsn_t partition_fence_position(const partition_fence_t *f);
/* Commits waiting for a poll to cover them. */
size_t partition_fence_pending(const partition_fence_t *f);

/* Parses pg_current_snapshot()'s text form "xmin:xmax:xip1,xip2,..." into s's xmax and xip
 * (overflow set when there are more than PARTITION_FENCE_MAX_XIP). Returns 0 or -1. */
int partition_fence_parse_snapshot(const char *text, partition_snapshot_t *s);

#endif
