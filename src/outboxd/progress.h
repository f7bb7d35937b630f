/* progress.h - the durable record of what outboxd published, kept outside the replication
 * slot so that a lost slot (dropped, invalidated, or not on the server after a failover) can
 * be recovered without a gap.
 *
 * The record lives in a small table in the outbox database (progress.table, default
 * public.outboxd_progress), one row per slot, so it travels with the outbox rows to a promoted
 * standby. It says: everything that committed before `confirmed` was acknowledged by Kafka,
 * and every transaction that commits at or after `confirmed` has a transaction id of at least
 * `horizon` (a 64-bit xid). A lost slot is recovered by republishing the outbox rows whose
 * xmin >= horizon (progress_recovery_where), as of the snapshot of a new slot, then
 * streaming from it: duplicates within the horizon, never a gap.
 *
 * Why the horizon holds: the writer samples (oldest running xid, WAL insert position) in one
 * statement, oldest xid first. A sample whose position is <= confirmed was taken before any
 * transaction committing after confirmed had committed; every such transaction was then
 * running with an xid >= the oldest running one, or got its xid later (larger still). An
 * older horizon stays valid for a later position, so the record only ever moves forward.
 *
 * Threads: progress_load/progress_store/progress_sample run on any thread with their own
 * connection. The writer (progress_writer_*) owns one background poller thread and
 * connection; submit/get are for the relay's thread. */
#ifndef OUTBOXD_PROGRESS_H
#define OUTBOXD_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "error.h"
#include "lsn.h"

#define PROGRESS_DEFAULT_TABLE "public.outboxd_progress"
#define PROGRESS_TIME_SIZE 40

typedef struct {
    char system_id[24];                    /* IDENTIFY_SYSTEM's systemid of the server the position is on */
    uint32_t timeline;                     /* its timeline then */
    lsn_t confirmed;                       /* everything that committed before it is in Kafka */
    uint64_t horizon;                      /* every transaction committing at or after confirmed has xid >= it */
    char horizon_time[PROGRESS_TIME_SIZE]; /* when the horizon was sampled (<= confirmed's commit) */
    char updated_at[PROGRESS_TIME_SIZE];   /* when the row was written (server time) */
} progress_record_t;

/* One sample of the server: the oldest running xid (64-bit), the WAL insert position taken
 * right after it, the next xid, the server's clock, and which server and timeline it is
 * (a sample says nothing about another server's history). */
typedef struct {
    uint64_t oldest_xid;
    lsn_t wal_lsn;
    uint64_t next_xid;
    char time[PROGRESS_TIME_SIZE];
    char system_id[24];
    uint32_t timeline; /* the WAL insert timeline: changes at once on promotion */
} progress_sample_t;

/* Creates the table when it does not exist (CREATE TABLE IF NOT EXISTS; sql/outbox.sql has
 * the same DDL). table: "schema.name", quoted as needed by the caller's config check. Returns
 * 0, or -1 with *e (42501: the role may not create it: the fix says what to run). */
int progress_ensure_table(PGconn *conn, const char *table, err_t *e);

/* Reads slot's row. Returns 1 with *out, 0 when there is none, -1 with *e. */
int progress_load(PGconn *conn, const char *table, const char *slot, progress_record_t *out, err_t *e);

/* Upserts slot's row with rec (system_id, timeline, confirmed, horizon, horizon_time); the
 * stored row never moves back on the same server and timeline. Returns 0 or -1 with *e. */
int progress_store(PGconn *conn, const char *table, const char *slot, const progress_record_t *rec, err_t *e);

/* Samples the server (an ordinary connection to the primary). Returns 0 or -1 with *e. */
int progress_sample(PGconn *conn, progress_sample_t *out, err_t *e);

/* The predicate that selects the rows that may have committed at or after rec->confirmed:
 * "age(xmin) BETWEEN 0 AND age('<horizon>'::xid)::bigint + margin_xids" (xmin at or after the
 * horizon less the margin, in 32-bit xid order, both ages taken at the same moment), or
 * "true" (every row) when the distance from the horizon to next_xid is beyond what 32-bit
 * xids can tell apart (2^31 - 1), the horizon is beyond next_xid (a record from another
 * server's history) or unknown. next_xid: a sample of the server that will run the
 * predicate. Writes into buf; returns buf. Pure. */
const char *progress_recovery_where(const progress_record_t *rec, uint64_t next_xid, uint64_t margin_xids, char *buf,
                                    size_t size);

/* The newest horizon valid for position `confirmed`: the newest of samples[0..n) whose
 * wal_lsn <= confirmed, and fallback (a horizon already valid for an earlier position; 0 =
 * none). Returns 0 when none is known. Pure. */
uint64_t progress_horizon_for(lsn_t confirmed, const progress_sample_t *samples, size_t n, uint64_t fallback,
                              const char **time_out);

/* A time as the record holds it ("2026-12-04T09:30:12.345Z", UTC) as Unix seconds; 0 when
 * it is not of that form. Pure. */
double progress_time_unix(const char *iso);

/* ------------------------------------------------------------------------ the writer */

typedef struct progress_writer progress_writer_t;

/* Starts the background writer: every interval_ms it samples the server and, when the relay
 * submitted a newer confirmed position, stores the record. It stores only on the server and
 * timeline the relay submitted (its own connection may reach another server after a
 * failover), with samples of that server and timeline only. conninfo, table, slot: copied.
 * initial: the record loaded at start (its horizon backs positions older than any sample), or
 * NULL. Returns NULL when out of memory. */
progress_writer_t *progress_writer_start(const char *conninfo, const char *table, const char *slot, int interval_ms,
                                         const progress_record_t *initial);

/* Relay thread: the position now confirmed to PostgreSQL (everything before it acked), and
 * the server identity it is on. */
void progress_writer_submit(progress_writer_t *w, lsn_t confirmed, const char *system_id, uint32_t timeline);

/* Relay thread: the last record stored (false: none yet), and the last error ("" if none). */
bool progress_writer_get(progress_writer_t *w, progress_record_t *out, char *err, size_t err_size);

/* Stores what was submitted last (one attempt, on the caller's thread) and stops. Accepts NULL. */
void progress_writer_stop(progress_writer_t *w);

#endif
