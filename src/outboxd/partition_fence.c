/* partition_fence.c - the confirm fence of a wal2json stream over a partitioned outbox: commits
 * held until a catalog poll shows them finished with the stream's partitions (see
 * partition_fence.h). */
#include "partition_fence.h"

#include <stdlib.h>
#include <string.h>

typedef struct pending {
    uint32_t xid;
    lsn_t end;
} pending_t;

struct partition_fence {
    pending_t *ring;
    size_t cap, head, count;
    lsn_t fence;               /* confirmable */
    lsn_t received;            /* newest keepalive position */
    partition_snapshot_t last; /* the newest poll that saw only the stream's partitions */
    bool has_last;
    bool overflowed; /* a commit did not fit: the fence stays until a reset */
};

partition_fence_t *partition_fence_new(size_t max_pending) {
    partition_fence_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cap = max_pending ? max_pending : 1;
    f->ring = calloc(f->cap, sizeof(*f->ring));
    if (!f->ring) {
        free(f);
        return NULL;
    }
    return f;
}

void partition_fence_destroy(partition_fence_t *f) {
    if (!f)
        return;
    free(f->ring);
    free(f);
}

void partition_fence_reset(partition_fence_t *f, lsn_t start) {
    f->head = f->count = 0;
    f->overflowed = false;
    f->fence = f->received = start;
    f->has_last = false; /* a poll of the last stream's partitions says nothing about this one's */
}

/* The full (epoch-extended) xid of a 32-bit xid near xmax. */
static uint64_t full_xid(uint64_t xmax, uint32_t xid) {
    uint32_t behind = (uint32_t)xmax - xid;
    if (behind <= 0x7fffffffu)
        return behind <= xmax ? xmax - behind : 0;
    return xmax + (uint32_t)(xid - (uint32_t)xmax);
}

/* Whether the transaction xid had finished when s was taken. */
static bool covered(const partition_snapshot_t *s, uint32_t xid) {
    uint64_t full = full_xid(s->xmax, xid);
    if (full >= s->xmax)
        return false;
    for (size_t i = 0; i < s->nxip; i++)
        if (s->xip[i] == full)
            return false;
    return true;
}

static void advance(partition_fence_t *f, lsn_t to) {
    if (to > f->fence && !f->overflowed)
        f->fence = to;
}

int partition_fence_commit(partition_fence_t *f, uint32_t xid, lsn_t end) {
    if (f->count == 0 && f->has_last && covered(&f->last, xid)) { /* a backlog: the last poll covers it */
        advance(f, end);
        return 0;
    }
    if (f->count == f->cap) {
        f->overflowed = true;
        return -1;
    }
    f->ring[(f->head + f->count++) % f->cap] = (pending_t){xid, end};
    return 0;
}

bool partition_fence_full(const partition_fence_t *f) { return f->count == f->cap; }

void partition_fence_keepalive(partition_fence_t *f, lsn_t wal_end) {
    if (wal_end > f->received)
        f->received = wal_end;
    if (f->count == 0 && f->has_last) /* every commit before it is covered */
        advance(f, f->received);
}

partition_fence_result_t partition_fence_apply(partition_fence_t *f, const partition_snapshot_t *s) {
    if (s->overflow)
        return PARTITION_FENCE_SAME;
    if (s->unknown > 0 || f->overflowed)
        return PARTITION_FENCE_CHANGED;
    f->last = *s;
    f->has_last = true;
    while (f->count > 0 && covered(s, f->ring[f->head].xid)) {
        advance(f, f->ring[f->head].end);
        f->head = (f->head + 1) % f->cap;
        f->count--;
    }
    if (f->count == 0)
        advance(f, f->received);
    return PARTITION_FENCE_SAME;
}

lsn_t partition_fence_position(const partition_fence_t *f) { return f->fence; }

size_t partition_fence_pending(const partition_fence_t *f) { return f->count; }

int partition_fence_parse_snapshot(const char *text, partition_snapshot_t *s) {
    char *end;
    s->nxip = 0;
    s->overflow = false;
    strtoull(text, &end, 10); /* xmin: not needed */
    if (end == text || *end != ':')
        return -1;
    const char *p = end + 1;
    s->xmax = strtoull(p, &end, 10);
    if (end == p || *end != ':')
        return -1;
    p = end + 1;
    while (*p) {
        uint64_t x = strtoull(p, &end, 10);
        if (end == p || (*end && *end != ','))
            return -1;
        if (s->nxip < PARTITION_FENCE_MAX_XIP)
            s->xip[s->nxip++] = x;
        else
            s->overflow = true;
        p = *end ? end + 1 : end;
    }
    return 0;
}
