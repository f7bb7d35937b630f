/* ack_tracker.h - the LSN watermark: which commit LSN may be confirmed to PostgreSQL given
 * the Kafka acknowledgements received so far. Pure: no I/O, no clock.
 *
 * The stream side reports transactions in commit order: ack_tracker_begin, one
 * ack_tracker_add_event per produced event, ack_tracker_commit with the commit's end LSN
 * (wal2json's "nextlsn"). The delivery side reports each event's outcome by the sequence
 * number add_event returned. The confirmable LSN is the end LSN of the newest committed
 * transaction such that it and every earlier transaction have all their events acked.
 * Transactions with no events and keepalives advance it only when nothing older is
 * outstanding. A failed event stops the watermark before its transaction for good. */
#ifndef OUTBOXD_ACK_TRACKER_H
#define OUTBOXD_ACK_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct ack_tracker ack_tracker_t;

/* start: the LSN already confirmed (the stream's start point). max_txns: most transactions
 * with events that may be held at once; max_events: most unacked events (see
 * ack_tracker_full). Returns NULL on allocation failure. */
ack_tracker_t *ack_tracker_new(lsn_t start, size_t max_txns, size_t max_events);
void ack_tracker_destroy(ack_tracker_t *t); /* accepts NULL */

/* Forgets everything in flight and restarts at start (after a reconnect that drained). */
void ack_tracker_reset(ack_tracker_t *t, lsn_t start);

/* A transaction begins. Returns -1 if one is already open (protocol error). */
int ack_tracker_begin(ack_tracker_t *t);
/* One event of the open transaction is about to be handed to the producer. Returns the
 * transaction's sequence number, shared by all its events (the delivery report's opaque),
 * or 0 when no transaction is open. Sequence numbers start at 1. */
uint64_t ack_tracker_add_event(ack_tracker_t *t);
/* The open transaction committed; end_lsn is its commit record's end. Returns -1 if no
 * transaction is open or end_lsn goes backwards. */
int ack_tracker_commit(ack_tracker_t *t, lsn_t end_lsn);
/* A keepalive reported wal_end: everything before it was sent to us. Outside a transaction
 * it is remembered, and the watermark moves to it once nothing older is outstanding (at
 * once when nothing is); inside one it is ignored. */
void ack_tracker_keepalive(ack_tracker_t *t, lsn_t wal_end);

/* Delivery outcomes, one per added event, in any order. Returns -1 when seq holds no
 * outstanding event. */
int ack_tracker_ack(ack_tracker_t *t, uint64_t seq);
int ack_tracker_fail(ack_tracker_t *t, uint64_t seq);

/* The LSN that may be sent as flush position. Never decreases, never passes a failure. */
lsn_t ack_tracker_confirmable(const ack_tracker_t *t);
/* Highest commit end or keepalive LSN seen by the stream side (for the write position). */
lsn_t ack_tracker_received(const ack_tracker_t *t);
/* Events produced and not yet acked (or failed). */
size_t ack_tracker_outstanding(const ack_tracker_t *t);
/* True when max_txns committed transactions or max_events events are held: stop reading the
 * stream. The open transaction does not count against max_txns (its commit must be read). */
bool ack_tracker_full(const ack_tracker_t *t);
/* True once any event failed. */
bool ack_tracker_failed(const ack_tracker_t *t);
/* True between begin and commit. */
bool ack_tracker_in_txn(const ack_tracker_t *t);
/* Commit end LSN of the transaction that event seq belongs to, 0 if not committed yet or
 * no longer held. */
lsn_t ack_tracker_seq_lsn(const ack_tracker_t *t, uint64_t seq);
/* Every sequence number up to this one belongs to a transaction the watermark has passed. */
uint64_t ack_tracker_settled_seq(const ack_tracker_t *t);
/* Transactions currently held (committed or open) that have events. Only the unit test calls
 * it: it checks that settled transactions are released, which outstanding == 0 cannot show. */
size_t ack_tracker_txns(const ack_tracker_t *t);

#endif
