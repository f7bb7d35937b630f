/* relay_partitions.c - the relay's side of a wal2json stream over partitioned outbox tables:
 * starts the catalog poll, feeds the confirm fence with the stream's commits and keepalives,
 * caps what is confirmed, and asks for a restart when partitions appear or go
 * (partition_fence.h, partition_watch.h). With pgoutput, or without partitioned tables, every
 * call is a no-op. */
#include "relay_partitions.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define POLL_INTERVAL_MS 250
#define MAX_PENDING 65536 /* commits waiting for a poll (16 bytes each) */

void relay_partitions_streaming(relay_t *r, lsn_t start) {
    const size_t *idx;
    const char *const *leaves;
    size_t nleaves, n = stream_connect_partitioned(r->sc, &idx, &leaves, &nleaves);
    partition_watch_stop(r->pwatch);
    r->pwatch = NULL;
    if (n == 0) {
        partition_fence_destroy(r->pf);
        r->pf = NULL;
        return;
    }
    const char *schemas[64], *tables[64];
    for (size_t k = 0; k < n; k++)
        router_table_get(r->router, idx[k], &schemas[k], &tables[k]);
    if (!r->pf)
        r->pf = partition_fence_new(MAX_PENDING);
    if (r->pf)
        r->pwatch = partition_watch_start(r->o->conninfo, n, schemas, tables, nleaves, leaves, POLL_INTERVAL_MS);
    if (!r->pf || !r->pwatch) {
        relay_fail(r, RELAY_EXIT_RUNTIME, "out of memory starting the partition watch");
        return;
    }
    partition_fence_reset(r->pf, start);
    r->part_err[0] = '\0';
}

void relay_partitions_commit(relay_t *r, uint32_t xid, lsn_t end) {
    if (r->pf) /* full: not reached (full() stops reading); the next poll restarts the stream */
        partition_fence_commit(r->pf, xid, end);
}

void relay_partitions_keepalive(relay_t *r, lsn_t wal_end) {
    if (r->pf)
        partition_fence_keepalive(r->pf, wal_end);
}

lsn_t relay_partitions_cap(const relay_t *r, lsn_t flush) {
    if (!r->pf)
        return flush;
    lsn_t fence = partition_fence_position(r->pf);
    return fence < flush ? fence : flush;
}

bool relay_partitions_full(const relay_t *r) { return r->pf && partition_fence_full(r->pf); }

bool relay_partitions_changed(relay_t *r) {
    partition_snapshot_t *s = &r->part_snap;
    char err[512] = "";
    if (!r->pwatch || !r->pf)
        return false;
    bool fresh = partition_watch_latest(r->pwatch, s, err, sizeof(err));
    if (err[0] && strcmp(err, r->part_err) != 0) /* once per distinct failure */
        log_warn("%s (the slot is not confirmed past new transactions until the partitions can be read)", err);
    snprintf(r->part_err, sizeof(r->part_err), "%s", err);
    if (!fresh)
        return false;
    log_debug("partitions poll: %u partitions (%u not streamed), xmax %llu, %zu in progress", s->npartitions,
              s->unknown, (unsigned long long)s->xmax, s->nxip);
    return partition_fence_apply(r->pf, s) == PARTITION_FENCE_CHANGED;
}

void relay_partitions_stop(relay_t *r) {
    partition_watch_stop(r->pwatch);
    partition_fence_destroy(r->pf);
    r->pwatch = NULL;
    r->pf = NULL;
}
