/* ack_tracker.c - LSN watermark over in-flight transactions: a ring of transactions in
 * commit order, each with its end LSN and count of unacked events. Pure, no I/O. */
#include "ack_tracker.h"

#include <stdlib.h>

typedef struct txn {
    lsn_t end_lsn;      /* commit end; raised by later empty transactions; 0 while open */
    size_t outstanding; /* events produced and not settled */
    bool committed;
    bool failed;
} txn_t;

struct ack_tracker {
    txn_t *ring;
    size_t cap, head, count; /* ring[head] is the oldest held transaction */
    uint64_t head_seq;       /* sequence number of ring[head] */
    size_t max_txns, max_events;
    size_t outstanding;
    lsn_t confirmed, received;
    lsn_t seen;     /* everything before it was received whole: commit ends and idle keepalives */
    bool open;      /* between begin and commit */
    bool open_held; /* the open transaction has an entry (it produced an event) */
    bool failed_any;
};

ack_tracker_t *ack_tracker_new(lsn_t start, size_t max_txns, size_t max_events) {
    ack_tracker_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = 64;
    t->ring = calloc(t->cap, sizeof(*t->ring));
    if (!t->ring) {
        free(t);
        return NULL;
    }
    t->max_txns = max_txns ? max_txns : 1;
    t->max_events = max_events ? max_events : 1;
    t->head_seq = 1;
    t->confirmed = t->received = t->seen = start;
    return t;
}

void ack_tracker_destroy(ack_tracker_t *t) {
    if (!t)
        return;
    free(t->ring);
    free(t);
}

void ack_tracker_reset(ack_tracker_t *t, lsn_t start) {
    t->head_seq += t->count; /* late reports for old transactions stay unknown */
    t->head = t->count = 0;
    t->outstanding = 0;
    t->open = t->open_held = t->failed_any = false;
    t->confirmed = t->received = t->seen = start;
}

static txn_t *at(const ack_tracker_t *t, size_t i) { return &t->ring[(t->head + i) % t->cap]; }

static txn_t *lookup(const ack_tracker_t *t, uint64_t seq) {
    if (seq < t->head_seq || seq - t->head_seq >= t->count)
        return NULL;
    return at(t, (size_t)(seq - t->head_seq));
}

/* Pops fully acknowledged committed transactions off the head, raising the watermark. */
static void advance(ack_tracker_t *t) {
    while (t->count > 0) {
        txn_t *x = at(t, 0);
        if (!x->committed || x->outstanding > 0 || x->failed)
            break;
        if (x->end_lsn > t->confirmed)
            t->confirmed = x->end_lsn;
        t->head = (t->head + 1) % t->cap;
        t->head_seq++;
        t->count--;
    }
    /* Nothing held and no transaction open: every transaction before `seen` was
     * delivered, so the slot may move there (a keepalive that arrived while the last
     * events were in flight is not lost). */
    if (t->count == 0 && !t->open && t->seen > t->confirmed)
        t->confirmed = t->seen;
}

static int grow(ack_tracker_t *t) {
    size_t ncap = t->cap * 2;
    txn_t *n = calloc(ncap, sizeof(*n));
    if (!n)
        return -1;
    for (size_t i = 0; i < t->count; i++)
        n[i] = *at(t, i);
    free(t->ring);
    t->ring = n;
    t->cap = ncap;
    t->head = 0;
    return 0;
}

int ack_tracker_begin(ack_tracker_t *t) {
    if (t->open)
        return -1;
    t->open = true;
    t->open_held = false;
    return 0;
}

uint64_t ack_tracker_add_event(ack_tracker_t *t) {
    if (!t->open)
        return 0;
    if (!t->open_held) {
        if (t->count == t->cap && grow(t) != 0)
            return 0;
        txn_t *x = at(t, t->count);
        *x = (txn_t){0};
        t->count++;
        t->open_held = true;
    }
    at(t, t->count - 1)->outstanding++;
    t->outstanding++;
    return t->head_seq + t->count - 1;
}

int ack_tracker_commit(ack_tracker_t *t, lsn_t end_lsn) {
    if (!t->open)
        return -1;
    t->open = false;
    if (end_lsn > t->received)
        t->received = end_lsn;
    if (end_lsn > t->seen)
        t->seen = end_lsn;
    if (t->open_held) {
        txn_t *x = at(t, t->count - 1);
        x->end_lsn = end_lsn;
        x->committed = true;
        t->open_held = false;
    } else if (t->count > 0) {
        /* An empty transaction behind held ones: confirmable once they are. */
        txn_t *x = at(t, t->count - 1);
        if (end_lsn > x->end_lsn)
            x->end_lsn = end_lsn;
    } else if (end_lsn > t->confirmed) {
        t->confirmed = end_lsn;
    }
    advance(t);
    return 0;
}

void ack_tracker_keepalive(ack_tracker_t *t, lsn_t wal_end) {
    if (wal_end > t->received)
        t->received = wal_end;
    if (t->open)
        return; /* mid-transaction: the transaction's own commit says how far it goes */
    if (wal_end > t->seen)
        t->seen = wal_end;
    advance(t);
}

static int settle(ack_tracker_t *t, uint64_t seq, bool ok) {
    txn_t *x = lookup(t, seq);
    if (!x || x->outstanding == 0)
        return -1;
    x->outstanding--;
    t->outstanding--;
    if (!ok) {
        x->failed = true;
        t->failed_any = true;
    }
    advance(t);
    return 0;
}

int ack_tracker_ack(ack_tracker_t *t, uint64_t seq) { return settle(t, seq, true); }
int ack_tracker_fail(ack_tracker_t *t, uint64_t seq) { return settle(t, seq, false); }

lsn_t ack_tracker_confirmable(const ack_tracker_t *t) { return t->confirmed; }
lsn_t ack_tracker_received(const ack_tracker_t *t) { return t->received; }
size_t ack_tracker_outstanding(const ack_tracker_t *t) { return t->outstanding; }
bool ack_tracker_failed(const ack_tracker_t *t) { return t->failed_any; }
bool ack_tracker_in_txn(const ack_tracker_t *t) { return t->open; }
size_t ack_tracker_txns(const ack_tracker_t *t) { return t->count; }
uint64_t ack_tracker_settled_seq(const ack_tracker_t *t) { return t->head_seq - 1; }

bool ack_tracker_full(const ack_tracker_t *t) {
    /* The open transaction never counts: its commit must be read to release anything. */
    size_t committed = t->count - (t->open_held ? 1 : 0);
    return committed >= t->max_txns || t->outstanding >= t->max_events;
}

lsn_t ack_tracker_seq_lsn(const ack_tracker_t *t, uint64_t seq) {
    const txn_t *x = lookup(t, seq);
    return x && x->committed ? x->end_lsn : 0;
}
