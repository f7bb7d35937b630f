/* relay_eos.h - delivery.guarantee = exactly-once in the relay loop: Kafka transactions around
 * whole PostgreSQL transactions, each carrying a checkpoint record (checkpoint.h); on every
 * streaming session a fresh transactional producer that fences older ones, then the last
 * committed checkpoint read back so that what Kafka already holds is skipped; the slot confirmed
 * only up to committed Kafka transactions.
 *
 * How it fits the relay's single poll loop (docs/architecture.md, "Exactly-once"): librdkafka's
 * transactional calls block (init_transactions, commit_transaction: it flushes, then waits for
 * the coordinator), and with delivery reports as events they need another thread to serve the
 * reports meanwhile. So they run on one background job thread (bgjob.h), one at a time, and the
 * loop keeps serving delivery reports, status updates, signals and metrics; while a session
 * starts or a commit runs, the loop reads no WAL (back-pressure, as with a full queue). begin is
 * local and runs on the loop. The producer (r->kp) belongs to the job while a session starts,
 * and is NULL then.
 *
 * Everything here runs on the relay's thread except the job functions (relay_eos.c). */
#ifndef OUTBOXD_RELAY_EOS_H
#define OUTBOXD_RELAY_EOS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "kproducer.h"
#include "lsn.h"

typedef struct relay relay_t;
typedef struct relay_eos relay_eos_t;

/* Creates the checkpoint reader and the job thread, and checks the producer settings by creating
 * (and destroying) a transactional producer. cb: the relay's delivery callback (with r as its
 * opaque) for the producers it creates. Returns NULL with *e. */
relay_eos_t *relay_eos_new(relay_t *r, kproducer_dr_cb_t cb, err_t *e);
/* Stops the job thread (cancelling a running job) and destroys the producer the job holds and the
 * reader. r->kp stays the caller's. Accepts NULL. */
void relay_eos_destroy(relay_eos_t *x);

/* A librdkafka handle for the Kafka probe (the reader's; borrowed) and the startup check. */
void *relay_eos_kafka_handle(relay_eos_t *x);
int relay_eos_check_connect(relay_eos_t *x, int timeout_ms, err_t *e);

/* The stream just started (ST_STREAM): a new session begins in the background: the previous
 * producer is dropped, a new one fences every older one and the checkpoint is read. Reading
 * waits for it (relay_eos_blocked). */
void relay_eos_session_start(relay_t *r);
/* The same, synchronously, before a backfill or a recovery publishes rows. Returns 0, or -1
 * after relay_fail or when it must be retried (errstr). */
int relay_eos_session_sync(relay_t *r, char *errstr, size_t errstr_size);

/* The loop must not read the stream (a session starting, a commit running, a failed transaction). */
bool relay_eos_blocked(const relay_eos_t *x);
/* The job's fd (readable when it ended), or -1 when none runs. */
int relay_eos_fd(const relay_eos_t *x);
/* The fd was readable: collect the job's end and act on it. */
void relay_eos_on_fd(relay_t *r);
/* Once per loop turn while streaming: retries a session start, commits when due. */
void relay_eos_step(relay_t *r, int64_t now_ms);
/* Milliseconds until relay_eos_step has something to do by the clock (-1: nothing). */
int64_t relay_eos_due_in(const relay_eos_t *x, int64_t now_ms);
/* True when a session start or a commit has waited for Kafka longer than stall_ms. */
bool relay_eos_stalled(const relay_eos_t *x, int64_t now_ms, int stall_ms);

/* Stream side: a PostgreSQL transaction begins (commit_start: its commit record's start LSN) or
 * ends (end: its commit record's end); relay_eos_skipping says whether a record (at data_lsn,
 * inside a transaction or not) belongs to what Kafka already has. */
void relay_eos_pg_begin(relay_eos_t *x, lsn_t commit_start);
void relay_eos_pg_commit(relay_eos_t *x, lsn_t end);
bool relay_eos_skipping(const relay_eos_t *x, lsn_t data_lsn, bool in_txn);

/* Before r->ev is produced: turns it into its dead-letter record when Kafka refused it in an
 * earlier, aborted transaction, and begins a Kafka transaction when none is open. Returns 0, or
 * -1 when it must not be produced (the relay is failing). */
int relay_eos_before_produce(relay_t *r);

/* A delivery report: true when handled here (the checkpoint's own, or a failure inside a
 * transaction that replays it); false: the relay's usual handling (an ack, or a record Kafka
 * refused for good that is not dead-lettered). */
bool relay_eos_delivery(relay_t *r, const kproducer_delivery_t *d);

/* The stream broke or the transaction failed: what the open Kafka transaction held is replayed
 * after the reconnect (it is aborted, or left to the next session's fencing). */
void relay_eos_rewind(relay_t *r);
/* Nothing of the old session runs any more: the relay may reconnect. */
bool relay_eos_drained(const relay_eos_t *x);

/* The cap on what may be confirmed (txn_batch_cap). */
lsn_t relay_eos_cap(const relay_eos_t *x, lsn_t confirmable);

/* Shutdown, once acknowledgements settled: commits the open Kafka transaction when it ends at a
 * PostgreSQL commit (bounded by shutdown.timeout.ms; a second signal gives up). Returns true
 * when done. */
bool relay_eos_finish(relay_t *r, int64_t now_ms);

/* A fatal producer error surfaced in the loop (errstr says it). Fenced: replaces errstr with the
 * line to log and returns false (the relay stops). Anything else: logs it, replays with a new
 * producer, returns true (the relay goes on). */
bool relay_eos_on_fatal(relay_t *r, char *errstr, size_t errstr_size);

/* Backfill and recovery: a row was handed to the producer: commits when a bound is reached.
 * relay_eos_commit_sync commits what is open and waits. Both return 0, or -1 with errstr. */
int relay_eos_backfill_row(relay_t *r, char *errstr, size_t errstr_size);
int relay_eos_commit_sync(relay_t *r, char *errstr, size_t errstr_size);

#endif
