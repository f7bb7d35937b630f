/* progress.c - the durable progress record (progress.table): load, store, sample, the
 * recovery predicate, and the background writer that keeps the record up to date. */
#include "progress.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgconn.h"
#include "pgpoll.h"

#define SAMPLES 64 /* ring of samples kept by the writer: about a minute at the default interval */

/* "schema.name" -> quoted identifiers in buf. Returns 0, or -1 with *e (not of that form). */
static int quote_table(PGconn *conn, const char *table, char *buf, size_t size, err_t *e) {
    const char *dot = strchr(table, '.');
    char schema[128];
    const char *name = table;
    if (dot) {
        snprintf(schema, sizeof(schema), "%.*s", (int)(dot - table), table);
        name = dot + 1;
    } else {
        snprintf(schema, sizeof(schema), "public");
    }
    char *qs = PQescapeIdentifier(conn, schema, strlen(schema)), *qn = PQescapeIdentifier(conn, name, strlen(name));
    int rc = qs && qn && *name ? 0 : -1;
    if (rc == 0)
        snprintf(buf, size, "%s.%s", qs, qn);
    else
        err_set(e, ERR_PERMANENT, "", "set progress.table to schema.name", "progress.table \"%s\" is not schema.name",
                table);
    PQfreemem(qs);
    PQfreemem(qn);
    return rc;
}

/* *e from a failed result: the server's SQLSTATE and message. */
static void result_error(const PGresult *res, const char *what, const char *table, err_t *e) {
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *fix = NULL;
    char fixbuf[512], msg[600];
    if (st && !strcmp(st, "42501")) {
        snprintf(fixbuf, sizeof(fixbuf),
                 "as the table's owner or a superuser run sql/outbox.sql (it creates %s) and GRANT SELECT, INSERT, "
                 "UPDATE ON %s TO the relay's role (sql/roles.sql does)",
                 table, table);
        fix = fixbuf;
    } else if (st && (!strcmp(st, "42P01") || !strcmp(st, "3F000"))) {
        snprintf(fixbuf, sizeof(fixbuf), "run sql/outbox.sql, or set progress.table to a table that exists");
        fix = fixbuf;
    }
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (primary)
        snprintf(msg, sizeof(msg), "%s", primary); /* the server's sentence, without "ERROR:  " */
    else
        pgconn_error(msg, sizeof(msg), "", PQresultErrorMessage(res));
    err_set(e, st && !strncmp(st, "42", 2) ? ERR_PERMANENT : ERR_TRANSIENT, st ? st : "", fix,
            "progress table %s: %s: %s", table, what, msg);
}

/* Runs sql (simple protocol: replication connections accept nothing else). */
static PGresult *run(PGconn *conn, const char *sql, ExecStatusType want, const char *what, const char *table,
                     err_t *e) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == want)
        return res;
    result_error(res, what, table, e);
    PQclear(res);
    return NULL;
}

int progress_ensure_table(PGconn *conn, const char *table, err_t *e) {
    char qt[300], sql[1024];
    if (quote_table(conn, table, qt, sizeof(qt), e) != 0)
        return -1;
    char *lit = PQescapeLiteral(conn, qt, strlen(qt));
    if (!lit) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return -1;
    }
    /* Only when missing: CREATE ... IF NOT EXISTS needs CREATE on the schema even then. */
    snprintf(sql, sizeof(sql), "SELECT to_regclass(%s) IS NOT NULL", lit);
    PQfreemem(lit);
    PGresult *res = run(conn, sql, PGRES_TUPLES_OK, "cannot look it up", table, e);
    if (!res)
        return -1;
    bool exists = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (exists)
        return 0;
    /* The same DDL as sql/outbox.sql. */
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (slot_name text PRIMARY KEY, system_identifier text NOT NULL, "
             "timeline integer NOT NULL, confirmed_lsn pg_lsn NOT NULL, horizon_xid bigint NOT NULL, "
             "horizon_time timestamptz, updated_at timestamptz NOT NULL DEFAULT now())",
             qt);
    res = run(conn, sql, PGRES_COMMAND_OK, "cannot create it", table, e);
    PQclear(res);
    return res ? 0 : -1;
}

int progress_load(PGconn *conn, const char *table, const char *slot, progress_record_t *out, err_t *e) {
    char qt[300], sql[1024];
    memset(out, 0, sizeof(*out));
    if (quote_table(conn, table, qt, sizeof(qt), e) != 0)
        return -1;
    char *lit = PQescapeLiteral(conn, slot, strlen(slot));
    if (!lit) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return -1;
    }
    snprintf(sql, sizeof(sql),
             "SELECT system_identifier, timeline, confirmed_lsn::text, horizon_xid, "
             "coalesce(to_char(horizon_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), "
             "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
             "FROM %s WHERE slot_name = %s",
             qt, lit);
    PQfreemem(lit);
    PGresult *res = run(conn, sql, PGRES_TUPLES_OK, "cannot read it", table, e);
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        snprintf(out->system_id, sizeof(out->system_id), "%s", PQgetvalue(res, 0, 0));
        out->timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
        if (lsn_parse(PQgetvalue(res, 0, 2), &out->confirmed) != 0)
            out->confirmed = LSN_INVALID;
        out->horizon = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
        snprintf(out->horizon_time, sizeof(out->horizon_time), "%s", PQgetvalue(res, 0, 4));
        snprintf(out->updated_at, sizeof(out->updated_at), "%s", PQgetvalue(res, 0, 5));
    }
    PQclear(res);
    return found;
}

int progress_store(PGconn *conn, const char *table, const char *slot, const progress_record_t *rec, err_t *e) {
    char qt[300], sql[2048], lsn[LSN_FMT_SIZE];
    if (quote_table(conn, table, qt, sizeof(qt), e) != 0)
        return -1;
    char *ls = PQescapeLiteral(conn, slot, strlen(slot));
    char *lid = PQescapeLiteral(conn, rec->system_id, strlen(rec->system_id));
    char *lt = PQescapeLiteral(conn, rec->horizon_time, strlen(rec->horizon_time));
    int rc = -1;
    if (!ls || !lid || !lt) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        goto out;
    }
    /* Never moves back on the same server and timeline (a late writer after a newer one). */
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s AS p (slot_name, system_identifier, timeline, confirmed_lsn, horizon_xid, horizon_time, "
             "updated_at) VALUES (%s, %s, %" PRIu32 ", '%s'::pg_lsn, %" PRIu64 ", nullif(%s, '')::timestamptz, now()) "
             "ON CONFLICT (slot_name) DO UPDATE SET system_identifier = EXCLUDED.system_identifier, "
             "timeline = EXCLUDED.timeline, confirmed_lsn = EXCLUDED.confirmed_lsn, "
             "horizon_xid = EXCLUDED.horizon_xid, horizon_time = EXCLUDED.horizon_time, updated_at = now() "
             "WHERE p.system_identifier <> EXCLUDED.system_identifier OR p.timeline <> EXCLUDED.timeline "
             "OR (p.confirmed_lsn <= EXCLUDED.confirmed_lsn AND p.horizon_xid <= EXCLUDED.horizon_xid)",
             qt, ls, lid, rec->timeline, lsn_format(rec->confirmed, lsn), rec->horizon, lt);
    PGresult *res = run(conn, sql, PGRES_COMMAND_OK, "cannot write it", table, e);
    rc = res ? 0 : -1;
    PQclear(res);
out:
    PQfreemem(ls);
    PQfreemem(lid);
    PQfreemem(lt);
    return rc;
}

int progress_sample(PGconn *conn, progress_sample_t *out, err_t *e) {
    /* The snapshot (FROM) is taken before pg_current_wal_insert_lsn() runs: see progress.h.
     * The insert position, not the write position: a transaction that left the snapshot has
     * inserted its commit record, which may not be written out yet. txid_* rather than
     * pg_snapshot_* (PostgreSQL 13+) so that 12 works too. */
    PGresult *res =
        PQexec(conn, "SELECT txid_snapshot_xmin(s), pg_current_wal_insert_lsn()::text, txid_snapshot_xmax(s), "
                     "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
                     "(SELECT system_identifier::text FROM pg_control_system()), "
                     "('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::bigint "
                     "FROM txid_current_snapshot() AS s");
    int rc = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        out->oldest_xid = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        out->next_xid = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
        snprintf(out->time, sizeof(out->time), "%s", PQgetvalue(res, 0, 3));
        snprintf(out->system_id, sizeof(out->system_id), "%s", PQgetvalue(res, 0, 4));
        out->timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 5), NULL, 10);
        rc = lsn_parse(PQgetvalue(res, 0, 1), &out->wal_lsn);
        if (rc != 0)
            err_set(e, ERR_TRANSIENT, "", NULL, "progress sample: bad LSN %s", PQgetvalue(res, 0, 1));
    } else {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        err_set(e, ERR_TRANSIENT, st, NULL, "progress sample: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    return rc;
}

const char *progress_recovery_where(const progress_record_t *rec, uint64_t next_xid, uint64_t margin_xids, char *buf,
                                    size_t size) {
    /* A horizon beyond the server's next xid cannot be from this server's history (a restore
     * from elsewhere): nothing can be told apart, so every row. */
    uint64_t dist = next_xid >= rec->horizon ? next_xid - rec->horizon : UINT64_MAX / 2;
    if (dist + margin_xids >= (uint64_t)INT32_MAX || rec->horizon == 0)
        snprintf(buf, size, "true");
    else /* age(): how many xids before the statement's next xid; both ages use the same "now",
          * so this is xmin >= horizon - margin in 32-bit xid order. A row more than 2^31 xids
          * old has a negative age (wrapped): not one that may be missing. */
        snprintf(buf, size, "age(xmin) BETWEEN 0 AND age('%" PRIu32 "'::xid)::bigint + %" PRIu64,
                 (uint32_t)(rec->horizon & 0xffffffffu), margin_xids);
    return buf;
}

uint64_t progress_horizon_for(lsn_t confirmed, const progress_sample_t *samples, size_t n, uint64_t fallback,
                              const char **time_out) {
    uint64_t best = fallback;
    for (size_t i = 0; i < n; i++)
        if (samples[i].wal_lsn != LSN_INVALID && samples[i].wal_lsn <= confirmed && samples[i].oldest_xid > best) {
            best = samples[i].oldest_xid;
            if (time_out)
                *time_out = samples[i].time;
        }
    return best;
}

double progress_time_unix(const char *iso) {
    struct tm tm = {0};
    double sec = 0;
    if (!iso || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%lfZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                       &sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + sec;
}

/* ------------------------------------------------------------------------ the writer */

struct progress_writer {
    char *conninfo, *table, *slot;
    pgpoll_t *poll;
    bool table_ok; /* poller thread: ensured once */
    /* poller thread only */
    progress_sample_t samples[SAMPLES];
    size_t nsamples, next_sample;
    progress_record_t stored; /* last stored (or loaded) */
    bool have_stored;
    /* shared with the relay thread */
    pthread_mutex_t mu;
    lsn_t submitted;
    char system_id[24];
    uint32_t timeline;
};

/* Builds the record for w's submitted position; false when no valid horizon is known yet or
 * when now (a sample just taken on the writer's connection) is of another server or timeline
 * than the submitted position. */
static bool build_record(progress_writer_t *w, const progress_sample_t *now, progress_record_t *rec) {
    pthread_mutex_lock(&w->mu);
    lsn_t pos = w->submitted;
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->system_id, sizeof(rec->system_id), "%s", w->system_id);
    rec->timeline = w->timeline;
    pthread_mutex_unlock(&w->mu);
    if (pos == LSN_INVALID || !rec->system_id[0] || strcmp(now->system_id, rec->system_id) != 0 ||
        now->timeline != rec->timeline)
        return false;
    bool same_server =
        w->have_stored && !strcmp(w->stored.system_id, rec->system_id) && w->stored.timeline == rec->timeline;
    if (same_server && pos <= w->stored.confirmed)
        return false; /* nothing new */
    const char *when = NULL;
    uint64_t fallback = same_server && pos >= w->stored.confirmed ? w->stored.horizon : 0;
    rec->horizon = progress_horizon_for(pos, w->samples, w->nsamples, fallback, &when);
    if (rec->horizon == 0)
        return false;
    rec->confirmed = pos;
    snprintf(rec->horizon_time, sizeof(rec->horizon_time), "%s",
             when ? when : (w->have_stored ? w->stored.horizon_time : ""));
    return true;
}

static int writer_poll(PGconn *conn, void *snapshot, void *arg, char *errstr, size_t errstr_size) {
    progress_writer_t *w = arg;
    err_t e;
    if (!w->table_ok) {
        if (progress_ensure_table(conn, w->table, &e) != 0) {
            err_line(&e, errstr, errstr_size);
            return -1;
        }
        w->table_ok = true;
    }
    progress_sample_t s;
    if (progress_sample(conn, &s, &e) != 0) {
        err_line(&e, errstr, errstr_size);
        return -1;
    }
    const progress_sample_t *last = w->nsamples ? &w->samples[(w->next_sample + SAMPLES - 1) % SAMPLES] : NULL;
    if (last && (strcmp(last->system_id, s.system_id) != 0 || last->timeline != s.timeline))
        w->nsamples = w->next_sample = 0; /* another server or timeline: the old samples say nothing here */
    w->samples[w->next_sample] = s;
    w->next_sample = (w->next_sample + 1) % SAMPLES;
    if (w->nsamples < SAMPLES)
        w->nsamples++;
    progress_record_t rec;
    if (build_record(w, &s, &rec)) {
        if (progress_store(conn, w->table, w->slot, &rec, &e) != 0) {
            err_line(&e, errstr, errstr_size);
            return -1;
        }
        w->stored = rec;
        w->have_stored = true;
    }
    if (w->have_stored)
        memcpy(snapshot, &w->stored, sizeof(w->stored));
    return 0;
}

progress_writer_t *progress_writer_start(const char *conninfo, const char *table, const char *slot, int interval_ms,
                                         const progress_record_t *initial) {
    progress_writer_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    w->conninfo = strdup(conninfo ? conninfo : "");
    w->table = strdup(table);
    w->slot = strdup(slot);
    if (initial) {
        w->stored = *initial;
        w->have_stored = true;
    }
    if (w->conninfo && w->table && w->slot)
        w->poll = pgpoll_start(w->conninfo, "outboxd progress", interval_ms, sizeof(progress_record_t), writer_poll, w);
    if (!w->poll) {
        progress_writer_stop(w);
        return NULL;
    }
    return w;
}

void progress_writer_submit(progress_writer_t *w, lsn_t confirmed, const char *system_id, uint32_t timeline) {
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    if (strcmp(w->system_id, system_id ? system_id : "") != 0 || w->timeline != timeline || confirmed > w->submitted) {
        w->submitted = confirmed;
        snprintf(w->system_id, sizeof(w->system_id), "%s", system_id ? system_id : "");
        w->timeline = timeline;
    }
    pthread_mutex_unlock(&w->mu);
}

bool progress_writer_get(progress_writer_t *w, progress_record_t *out, char *err, size_t err_size) {
    if (err && err_size)
        err[0] = '\0';
    if (!w)
        return false;
    return pgpoll_get(w->poll, out, err, err_size) > 0 && out->system_id[0];
}

void progress_writer_stop(progress_writer_t *w) {
    if (!w)
        return;
    pgpoll_stop(w->poll); /* joined: the poller's fields are ours now */
    if (w->poll && w->table_ok) {
        progress_record_t rec;
        progress_sample_t s;
        err_t e;
        PGconn *conn = pgconn_connect(w->conninfo, "outboxd progress", &e);
        if (conn && progress_sample(conn, &s, &e) == 0 && build_record(w, &s, &rec))
            progress_store(conn, w->table, w->slot, &rec, &e);
        PQfinish(conn);
    }
    pthread_mutex_destroy(&w->mu);
    free(w->conninfo);
    free(w->table);
    free(w->slot);
    free(w);
}
