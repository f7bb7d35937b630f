/* txn_batch.c - the Kafka transaction being filled under exactly-once: when to commit, what the
 * checkpoint says, how far the slot may be confirmed (see txn_batch.h). Pure. */
#include "txn_batch.h"

#include <string.h>

void txn_batch_init(txn_batch_t *b, const txn_batch_limits_t *limits) {
    memset(b, 0, sizeof(*b));
    b->limits = *limits;
}

void txn_batch_reset(txn_batch_t *b, lsn_t committed) {
    b->state = TXN_BATCH_IDLE;
    b->txns = b->bytes = b->records = 0;
    b->txn_has_events = false;
    b->committed = committed;
    b->last_end = committed; /* a new session may be on another timeline: forget the old positions */
    b->committing = 0;
    b->floor = 0;
}

bool txn_batch_record(txn_batch_t *b, int64_t now_ms, lsn_t floor, size_t bytes) {
    bool opens = b->state == TXN_BATCH_IDLE;
    if (opens) {
        b->state = TXN_BATCH_OPEN;
        b->opened_ms = now_ms;
        b->floor = floor;
        b->txns = b->bytes = b->records = 0;
    }
    b->records++;
    b->bytes += bytes;
    if (!b->txn_has_events) {
        b->txn_has_events = true;
        b->txns++;
    }
    return opens;
}

void txn_batch_pg_commit(txn_batch_t *b, lsn_t end_lsn) {
    if (end_lsn > b->last_end)
        b->last_end = end_lsn;
    b->txn_has_events = false;
}

bool txn_batch_due(const txn_batch_t *b, int64_t now_ms, bool in_pg_txn, bool caught_up, bool stopping) {
    if (b->state != TXN_BATCH_OPEN || in_pg_txn)
        return false;
    int64_t age = now_ms - b->opened_ms;
    return (caught_up && age >= b->limits.linger_ms) || stopping || b->txns >= b->limits.max_txns ||
           b->bytes >= b->limits.max_bytes || age >= b->limits.max_ms;
}

int64_t txn_batch_due_in(const txn_batch_t *b, int64_t now_ms) {
    if (b->state != TXN_BATCH_OPEN)
        return -1;
    int64_t linger = b->opened_ms + b->limits.linger_ms - now_ms;
    if (linger > 0 && b->limits.linger_ms < b->limits.max_ms)
        return linger;
    int64_t left = b->opened_ms + b->limits.max_ms - now_ms;
    return left > 0 ? left : 0;
}

lsn_t txn_batch_committing(txn_batch_t *b) {
    b->state = TXN_BATCH_COMMITTING;
    b->committing = b->last_end;
    return b->committing;
}

void txn_batch_committed(txn_batch_t *b) {
    b->state = TXN_BATCH_IDLE;
    if (b->committing > b->committed)
        b->committed = b->committing;
    b->committing = 0;
    b->commits++;
}

bool txn_batch_failed(txn_batch_t *b) {
    if (b->state != TXN_BATCH_OPEN && b->state != TXN_BATCH_COMMITTING)
        return false;
    b->state = TXN_BATCH_FAILED;
    b->failures++;
    return true;
}

lsn_t txn_batch_cap(const txn_batch_t *b, lsn_t confirmable) {
    if (b->state == TXN_BATCH_IDLE || confirmable < b->floor)
        return confirmable;
    return b->floor;
}
