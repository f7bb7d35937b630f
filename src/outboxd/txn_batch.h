/* txn_batch.h - delivery.guarantee = exactly-once: the Kafka transaction that is being filled,
 * as plain state. It decides when to commit (whole PostgreSQL transactions only, bounded by
 * count, bytes and time, or at once when the stream is caught up), what the checkpoint says
 * (the end LSN of the last PostgreSQL commit the Kafka transaction holds) and how far the slot
 * may be confirmed meanwhile. Pure: no I/O, no clock (times are passed in).
 *
 * States: IDLE (no Kafka transaction open: every record produced so far is committed), OPEN
 * (records produced into an open Kafka transaction), COMMITTING (the commit was handed to
 * Kafka), FAILED (the transaction is aborted or lost: everything since it opened is replayed).
 *
 * Confirming: while a Kafka transaction is OPEN, COMMITTING or FAILED, none of its records is
 * visible yet, so the confirmable LSN is held at the floor: what was confirmable when it
 * opened. In IDLE the ack tracker alone decides (commits without events and keepalives still
 * move the slot). */
#ifndef OUTBOXD_TXN_BATCH_H
#define OUTBOXD_TXN_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct {
    size_t max_txns;   /* delivery.batch.max.transactions: PostgreSQL transactions with events */
    size_t max_bytes;  /* delivery.batch.max.bytes: key + value bytes of the records */
    int64_t max_ms;    /* delivery.batch.max.ms: how long a Kafka transaction stays open at most */
    int64_t linger_ms; /* delivery.batch.linger.ms: how long it stays open at least when the stream
                          is caught up (a busy stream fills it instead of paying a commit per turn) */
} txn_batch_limits_t;

typedef enum { TXN_BATCH_IDLE, TXN_BATCH_OPEN, TXN_BATCH_COMMITTING, TXN_BATCH_FAILED } txn_batch_state_t;

typedef struct {
    txn_batch_limits_t limits;
    txn_batch_state_t state;
    int64_t opened_ms;   /* when the Kafka transaction opened */
    lsn_t floor;         /* the confirmable LSN when it opened */
    lsn_t last_end;      /* end LSN of the last PostgreSQL commit read (any state) */
    lsn_t committed;     /* the checkpoint of the last committed Kafka transaction (0: none yet) */
    lsn_t committing;    /* the checkpoint being committed */
    size_t txns, bytes;  /* of the open Kafka transaction */
    size_t records;      /* records produced into it */
    bool txn_has_events; /* the PostgreSQL transaction being read produced a record */
    uint64_t commits;    /* Kafka transactions committed */
    uint64_t failures;   /* Kafka transactions that failed (aborted or lost) */
} txn_batch_t;

/* Starts IDLE with nothing committed. */
void txn_batch_init(txn_batch_t *b, const txn_batch_limits_t *limits);

/* A new session (after a reconnect): IDLE, the open transaction forgotten (it was aborted or is
 * being fenced); committed and last_end become the checkpoint read from Kafka that fits this
 * stream (0: none). Positions of an earlier session are dropped: it may have streamed another
 * timeline, whose LSNs must not end up in a checkpoint of this one. */
void txn_batch_reset(txn_batch_t *b, lsn_t committed);

/* A record is about to be produced. Returns true when it opens a Kafka transaction (the caller
 * begins it first); floor is the confirmable LSN at this moment. */
bool txn_batch_record(txn_batch_t *b, int64_t now_ms, lsn_t floor, size_t bytes);

/* A PostgreSQL transaction committed at end_lsn (its commit record's end). */
void txn_batch_pg_commit(txn_batch_t *b, lsn_t end_lsn);

/* Should the open Kafka transaction be committed now? in_pg_txn: a PostgreSQL transaction is
 * half read (never commit then); caught_up: the stream has nothing more to read right now (it
 * commits once it is linger_ms old); stopping: the relay is shutting down. */
bool txn_batch_due(const txn_batch_t *b, int64_t now_ms, bool in_pg_txn, bool caught_up, bool stopping);

/* Milliseconds until a time bound may make the open transaction due: the linger while it is
 * younger, then max_ms (0 if it is due by time; -1 when no transaction is open). */
int64_t txn_batch_due_in(const txn_batch_t *b, int64_t now_ms);

/* The commit is handed to Kafka: returns the checkpoint it carries (last_end). */
lsn_t txn_batch_committing(txn_batch_t *b);
/* Kafka committed it: IDLE. */
void txn_batch_committed(txn_batch_t *b);
/* The open or committing transaction failed: FAILED until txn_batch_reset. Returns true when
 * there was a transaction to fail. */
bool txn_batch_failed(txn_batch_t *b);

/* What may be confirmed to PostgreSQL given what the ack tracker says. */
lsn_t txn_batch_cap(const txn_batch_t *b, lsn_t confirmable);

#endif
