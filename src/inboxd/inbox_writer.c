/* inbox_writer.c - PostgreSQL writes of inboxd: one transaction per batch with the partition
 * positions, position lookups for assigned partitions, retention deletes. */
#include "inbox_writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "inbox_catalog.h"
#include "inbox_pgconn.h"
#include "log.h"
#include "pgconn.h"
#include "positions.h"

struct inbox_writer {
    char *conninfo, *table_cfg, *offsets_cfg, *group;
    PGconn *conn;
    char *table, *offsets; /* resolved and quoted by the server */
};

/* Statement names; prepared on every connect. */
#define ST_LOCK "inboxd_lock"
#define ST_INSERT "inboxd_insert"
#define ST_ADVANCE "inboxd_advance"
#define ST_LOAD "inboxd_load"
#define ST_RETENTION "inboxd_retention"
#define ST_SET_POSITION "inboxd_set_position"

/* The statements: each %s is the name of the table they work on, the offsets table
 * (inbox.offsets.table) when on_offsets, else the inbox table. */
static const struct {
    const char *name;
    bool on_offsets;
    const char *sql;
} statements[] = {
    {ST_LOCK, true,
     "INSERT INTO %s AS o (consumer_group, topic, partition, next_offset) "
     "SELECT $1::text, u.t, u.p, 0 FROM unnest($2::text[], $3::int4[]) AS u(t, p) "
     "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = o.next_offset "
     "RETURNING o.topic, o.partition, o.next_offset"},
    {ST_INSERT, false,
     "INSERT INTO %s (message_id, topic, partition, \"offset\", key, headers, payload) "
     "SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int8[], $5::bytea[], $6::jsonb[], "
     "$7::bytea[]) ON CONFLICT (message_id) DO NOTHING"},
    {ST_ADVANCE, true,
     "UPDATE %s AS o SET next_offset = greatest(o.next_offset, u.n), updated_at = now() "
     "FROM unnest($2::text[], $3::int4[], $4::int8[]) AS u(t, p, n) "
     "WHERE o.consumer_group = $1::text AND o.topic = u.t AND o.partition = u.p"},
    {ST_LOAD, true,
     "SELECT u.i, o.next_offset FROM unnest($2::text[], $3::int4[]) WITH ORDINALITY AS u(t, p, i) "
     "JOIN %s AS o ON o.consumer_group = $1::text AND o.topic = u.t AND o.partition = u.p"},
    {ST_RETENTION, false,
     "DELETE FROM %s WHERE id IN (SELECT id FROM %s WHERE status = 'done' AND processed_at < now() - "
     "make_interval(secs => $1::float8) ORDER BY processed_at LIMIT $2::int)"},
    {ST_SET_POSITION, true,
     "INSERT INTO %s AS o (consumer_group, topic, partition, next_offset) VALUES ($1::text, $2::text, "
     "$3::int4, $4::int8) ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = "
     "EXCLUDED.next_offset, updated_at = now()"},
};

/* Longest message id quoted in an error message. */
#define ID_QUOTE_MAX 200

inbox_writer_t *inbox_writer_new(const inbox_writer_options_t *o) {
    inbox_writer_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->conninfo = strdup(o->conninfo ? o->conninfo : "");
    w->table_cfg = strdup(o->table);
    w->offsets_cfg = strdup(o->offsets_table);
    w->group = strdup(o->group);
    if (!w->conninfo || !w->table_cfg || !w->offsets_cfg || !w->group) {
        inbox_writer_destroy(w);
        return NULL;
    }
    return w;
}

static void disconnect(inbox_writer_t *w) {
    if (w->conn)
        PQfinish(w->conn);
    w->conn = NULL;
}

void inbox_writer_destroy(inbox_writer_t *w) {
    if (!w)
        return;
    disconnect(w);
    free(w->conninfo);
    free(w->table_cfg);
    free(w->offsets_cfg);
    free(w->group);
    free(w->table);
    free(w->offsets);
    free(w);
}

bool inbox_writer_connected(const inbox_writer_t *w) { return w->conn != NULL; }
const char *inbox_writer_table(const inbox_writer_t *w) { return w->table ? w->table : w->table_cfg; }
const char *inbox_writer_offsets_table(const inbox_writer_t *w) { return w->offsets ? w->offsets : w->offsets_cfg; }

/* False with errstr when there is no connection (the statements below retry later). */
static bool connected(const inbox_writer_t *w, char *errstr, size_t errstr_size) {
    if (!w->conn)
        snprintf(errstr, errstr_size, "not connected to PostgreSQL");
    return w->conn != NULL;
}

/* After a failed statement: the database is away or busy (retry) or something needs a fix. */
static inbox_writer_status_t classify(inbox_writer_t *w, const PGresult *res) {
    if (!w->conn || PQstatus(w->conn) == CONNECTION_BAD)
        return INBOX_WRITER_RETRY;
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!st)
        return INBOX_WRITER_RETRY;               /* no server error: the connection broke */
    static const char *const retry[] = {"08",    /* connection exception */
                                        "57P",   /* admin/crash shutdown, cannot connect now */
                                        "53",    /* insufficient resources (disk full, too many connections) */
                                        "58",    /* system error (I/O) */
                                        "40001", /* serialization failure */
                                        "40P01", /* deadlock */
                                        "55P03", /* lock not available */
                                        "57014", /* statement timeout / canceled */
                                        "25006", /* read-only transaction: a standby during a failover */
                                        NULL};
    for (int i = 0; retry[i]; i++)
        if (!strncmp(st, retry[i], strlen(retry[i])))
            return INBOX_WRITER_RETRY;
    return INBOX_WRITER_FATAL;
}

/* Ends a failed statement: rolls back, drops a broken connection, fills errstr. */
static inbox_writer_status_t fail_stmt(inbox_writer_t *w, PGresult *res, const char *what, char *errstr,
                                       size_t errstr_size) {
    char prefix[256];
    snprintf(prefix, sizeof(prefix), "%s: ", what);
    pgconn_error(errstr, errstr_size, prefix,
                 res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(w->conn));
    inbox_writer_status_t st = classify(w, res);
    PQclear(res);
    if (st == INBOX_WRITER_RETRY || PQstatus(w->conn) == CONNECTION_BAD) {
        /* A retry starts on a new connection: this one may be broken, be a read-only standby
         * after a failover (25006: the next connection may reach the new primary), or miss
         * statements that were to be prepared. */
        disconnect(w);
    } else if (PQtransactionStatus(w->conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(w->conn, "ROLLBACK");
        PQclear(r);
        if (PQstatus(w->conn) == CONNECTION_BAD)
            disconnect(w);
    }
    return st;
}

static PGresult *exec_prepared(inbox_writer_t *w, const char *name, int n, const char *const *values,
                               const int *lengths, const int *formats) {
    return PQexecPrepared(w->conn, name, n, values, lengths, formats, 0);
}

static inbox_writer_status_t prepare(inbox_writer_t *w, const char *name, const char *sql, char *errstr,
                                     size_t errstr_size) {
    PGresult *res = PQprepare(w->conn, name, sql, 0, NULL);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return INBOX_WRITER_OK;
    }
    char what[512];
    if (classify(w, res) == INBOX_WRITER_RETRY) /* e.g. a lock timeout: nothing to fix */
        snprintf(what, sizeof(what), "cannot prepare the statements on %s and %s", w->table, w->offsets);
    else
        snprintf(what, sizeof(what),
                 "the inbox tables %s and %s do not fit inboxd (create them with psql -f sql/inbox.sql)", w->table,
                 w->offsets);
    return fail_stmt(w, res, what, errstr, errstr_size);
}

/* Resolves a table name as the server does (inbox_catalog_lookup) into schema.table quoted;
 * *out NULL when there is no such table. */
static inbox_writer_status_t resolve(inbox_writer_t *w, const char *name, char **out, char *errstr,
                                     size_t errstr_size) {
    inbox_catalog_t cat;
    PGresult *failed;
    inbox_catalog_status_t st = inbox_catalog_lookup(w->conn, name, &cat, &failed);
    if (st == INBOX_CATALOG_FAILED)
        return fail_stmt(w, failed, "cannot look up the inbox tables", errstr, errstr_size);
    if (st == INBOX_CATALOG_OOM) {
        snprintf(errstr, errstr_size, "out of memory");
        return INBOX_WRITER_FATAL;
    }
    *out = cat.table; /* NULL when missing */
    cat.table = NULL;
    inbox_catalog_free(&cat);
    return INBOX_WRITER_OK;
}

/* The privileges inboxd needs on a table; "" when it has them all, else the missing ones. */
static inbox_writer_status_t check_privileges(inbox_writer_t *w, const char *table, const char *privs, char *missing,
                                              size_t missing_size, char *errstr, size_t errstr_size) {
    const char *vals[2] = {table, privs};
    PGresult *res = PQexecParams(w->conn,
                                 "SELECT string_agg(p, ', ') FROM unnest(string_to_array($2, ',')) AS p "
                                 "WHERE NOT has_table_privilege($1::regclass, p)",
                                 2, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail_stmt(w, res, "cannot check privileges on the inbox tables", errstr, errstr_size);
    snprintf(missing, missing_size, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return INBOX_WRITER_OK;
}

static inbox_writer_status_t connect_and_prepare(inbox_writer_t *w, char *errstr, size_t errstr_size) {
    bool permanent;
    w->conn = inbox_pgconn_open(w->conninfo, "inboxd", LOG_INFO, "cannot connect to PostgreSQL: ", errstr, errstr_size,
                                &permanent);
    if (!w->conn)
        return permanent ? INBOX_WRITER_FATAL : INBOX_WRITER_RETRY;

    inbox_writer_status_t st;
    free(w->table);
    free(w->offsets);
    w->table = w->offsets = NULL;
    if ((st = resolve(w, w->table_cfg, &w->table, errstr, errstr_size)) != INBOX_WRITER_OK ||
        (st = resolve(w, w->offsets_cfg, &w->offsets, errstr, errstr_size)) != INBOX_WRITER_OK)
        return st;
    if (!w->table || !w->offsets) {
        snprintf(errstr, errstr_size,
                 "%s table %s does not exist in database \"%s\": create the inbox tables (psql -d %s -f "
                 "sql/inbox.sql), or point %s (and postgres.conninfo's dbname) at yours",
                 w->table ? "offsets" : "inbox", w->table ? w->offsets_cfg : w->table_cfg, PQdb(w->conn), PQdb(w->conn),
                 w->table ? "inbox.offsets.table" : "inbox.table");
        disconnect(w);
        return INBOX_WRITER_FATAL;
    }
    char missing[256];
    const char *which = w->table;
    if ((st = check_privileges(w, w->table, "SELECT,INSERT,DELETE", missing, sizeof(missing), errstr, errstr_size)) !=
        INBOX_WRITER_OK)
        return st;
    if (!*missing) {
        which = w->offsets;
        if ((st = check_privileges(w, w->offsets, "SELECT,INSERT,UPDATE", missing, sizeof(missing), errstr,
                                   errstr_size)) != INBOX_WRITER_OK)
            return st;
    }
    if (*missing) {
        snprintf(errstr, errstr_size,
                 "role \"%s\" lacks privileges on the inbox tables (%s on %s): inboxd needs SELECT, INSERT, "
                 "DELETE on %s and SELECT, INSERT, UPDATE on %s",
                 PQuser(w->conn), missing, which, w->table, w->offsets);
        disconnect(w);
        return INBOX_WRITER_FATAL;
    }

    char sql[2048];
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
        const char *t = statements[i].on_offsets ? w->offsets : w->table;
        snprintf(sql, sizeof(sql), statements[i].sql, t, t);
        if ((st = prepare(w, statements[i].name, sql, errstr, errstr_size)) != INBOX_WRITER_OK)
            return st;
    }
    return INBOX_WRITER_OK;
}

inbox_writer_status_t inbox_writer_connect(inbox_writer_t *w, char *errstr, size_t errstr_size) {
    disconnect(w);
    inbox_writer_status_t st = connect_and_prepare(w, errstr, errstr_size);
    /* Connected only when every check passed and every statement is prepared: a connection
     * kept after a failure here would later run statements that do not exist (26000). */
    if (st != INBOX_WRITER_OK)
        disconnect(w);
    return st;
}

/* Parameters for the statements taking (group, topics[], partitions[] [, offsets[]]). */
typedef struct tp_params {
    pgarray_t topics, parts, offs;
    const char *values[4];
    int lengths[4], formats[4];
} tp_params_t;

static void tp_params_init(tp_params_t *p) {
    pgarray_init(&p->topics, PGARRAY_OID_TEXT);
    pgarray_init(&p->parts, PGARRAY_OID_INT4);
    pgarray_init(&p->offs, PGARRAY_OID_INT8);
}

/* Adds a partition, with its next offset unless next < 0 (the statements without offsets). */
static void tp_params_add(tp_params_t *p, const char *topic, int32_t partition, int64_t next) {
    pgarray_add(&p->topics, topic, strlen(topic));
    pgarray_add_int4(&p->parts, partition);
    if (next >= 0)
        pgarray_add_int8(&p->offs, next);
}

static void tp_params_free(tp_params_t *p) {
    pgarray_free(&p->topics);
    pgarray_free(&p->parts);
    pgarray_free(&p->offs);
}

static int tp_params_finish(tp_params_t *p, const char *group) {
    if (pgarray_finish(&p->topics) || pgarray_finish(&p->parts) || pgarray_finish(&p->offs))
        return -1;
    p->values[0] = group;
    p->lengths[0] = 0;
    p->formats[0] = 0;
    pgarray_t *a[3] = {&p->topics, &p->parts, &p->offs};
    for (int i = 0; i < 3; i++) {
        p->values[i + 1] = a[i]->data;
        p->lengths[i + 1] = (int)a[i]->len;
        p->formats[i + 1] = 1;
    }
    return 0;
}

/* Runs ST_INSERT with the batch's columns (binary arrays: inbox_batch_encode). Returns its result. */
static PGresult *exec_insert(inbox_writer_t *w, const pgarray_t cols[INBOX_NCOLS]) {
    const char *values[INBOX_NCOLS];
    int lengths[INBOX_NCOLS], formats[INBOX_NCOLS];
    for (int c = 0; c < INBOX_NCOLS; c++) {
        values[c] = cols[c].data;
        lengths[c] = (int)cols[c].len;
        formats[c] = 1;
    }
    return exec_prepared(w, ST_INSERT, INBOX_NCOLS, values, lengths, formats);
}

/* Locks the positions of tp's partitions (ST_LOCK: rows created at 0 when new) and fences the
 * batch's messages before them; *fenced += how many. Returns NULL when it worked, else the
 * failed result (the caller PQclear-s it). */
static PGresult *lock_positions(inbox_writer_t *w, inbox_batch_t *b, const tp_params_t *tp, size_t *fenced) {
    PGresult *r = exec_prepared(w, ST_LOCK, 3, tp->values, tp->lengths, tp->formats);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return r;
    for (int i = 0; i < PQntuples(r); i++)
        *fenced += inbox_batch_fence(b, PQgetvalue(r, i, 0), (int32_t)strtol(PQgetvalue(r, i, 1), NULL, 10),
                                     strtoll(PQgetvalue(r, i, 2), NULL, 10));
    PQclear(r);
    return NULL;
}

/* ---- a message PostgreSQL refuses -------------------------------------------------------- */

/* True when the failed INSERT's SQLSTATE can come from the values of one row rather than
 * from the statement or the tables: data exceptions (22: bad encoding, value too long, ...),
 * integrity constraints (23: a CHECK, NOT NULL or foreign key the user added), program
 * limits (54: index row too large), errors raised by a trigger (P0) and WITH CHECK OPTION
 * (44). */
static bool row_error(const PGresult *res) {
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    static const char *const classes[] = {"22", "23", "54", "P0", "44", NULL};
    for (int i = 0; st && classes[i]; i++)
        if (!strncmp(st, classes[i], 2))
            return true;
    return false;
}

static bool exec_ok(inbox_writer_t *w, const char *sql) {
    PGresult *r = PQexec(w->conn, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* Inserts the unfenced messages from .. to-1 inside a savepoint, keeping them on success
 * and rolling the savepoint back on failure. Returns 1 (kept), 0 (refused; its error in
 * reason, when given) or -1 (another failure: stop looking). */
static int try_rows(inbox_writer_t *w, const inbox_batch_t *b, size_t from, size_t to, size_t *inserted, char *reason,
                    size_t reason_size) {
    pgarray_t cols[INBOX_NCOLS];
    int rc = -1;
    long n = inbox_batch_encode_range(b, from, to, cols);
    if (n > 0 && exec_ok(w, "SAVEPOINT inboxd_row")) {
        PGresult *r = exec_insert(w, cols);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            *inserted += (size_t)strtoull(PQcmdTuples(r), NULL, 10);
            rc = exec_ok(w, "RELEASE SAVEPOINT inboxd_row") ? 1 : -1;
        } else if (row_error(r)) {
            /* The primary message only: the DETAIL of a constraint error quotes the whole row. */
            const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (reason)
                snprintf(reason, reason_size, "%s (SQLSTATE %s)", primary ? primary : "error", state ? state : "?");
            rc = exec_ok(w, "ROLLBACK TO SAVEPOINT inboxd_row") ? 0 : -1;
        }
        PQclear(r);
    }
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);
    return rc;
}

/* The batch INSERT failed with a per-row error (row_error) and was rolled back. Finds the
 * first message PostgreSQL refuses by bisection, with savepoints, in a new transaction that
 * records every message before it (and moves their partitions' positions past them); then
 * errstr names that message and says how to skip it. On any other failure along the way
 * errstr keeps the original error and nothing is written. */
static void name_bad_message(inbox_writer_t *w, inbox_batch_t *b, const tp_params_t *tp, size_t nrows,
                             inbox_write_result_t *res, char *errstr, size_t errstr_size) {
    char reason[1024];
    snprintf(reason, sizeof(reason), "%s", errstr);
    size_t lo = 0, hi = nrows, inserted = 0; /* [0, lo) inserted; [0, hi) refused */
    if (!exec_ok(w, "BEGIN"))
        goto fail;
    /* The same positions as the failed transaction: lock (and fence) again. */
    inbox_batch_unfence(b);
    size_t fenced = 0;
    PGresult *r = lock_positions(w, b, tp, &fenced);
    if (r) {
        PQclear(r);
        goto fail;
    }
    if (inbox_batch_unfenced(b) != nrows)
        goto fail; /* another writer moved the positions meanwhile: the next attempt sees it */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        int rc = try_rows(w, b, lo, mid, &inserted, NULL, 0);
        if (rc < 0)
            goto fail;
        if (rc == 1)
            lo = mid;
        else
            hi = mid;
    }
    /* Message lo is refused on its own (after the ones before it): take its own error. */
    if (try_rows(w, b, lo, lo + 1, &inserted, reason, sizeof(reason)) != 0)
        goto fail;

    /* Record the messages before it: their positions, per partition. */
    inbox_row_ref_t bad;
    if (!inbox_batch_unfenced_row(b, lo, &bad))
        goto fail;
    if (lo > 0) {
        tp_params_t pp;
        tp_params_init(&pp);
        size_t nspans;
        const inbox_span_t *spans = inbox_batch_spans(b, &nspans);
        int64_t *last = spans ? malloc(nspans * sizeof(*last)) : NULL;
        for (size_t i = 0; last && i < nspans; i++)
            last[i] = -1;
        inbox_row_ref_t x;
        for (size_t k = 0; last && k < lo && inbox_batch_unfenced_row(b, k, &x); k++)
            for (size_t i = 0; i < nspans; i++)
                if (x.partition == spans[i].partition && !strcmp(x.topic, spans[i].topic) && x.offset > last[i])
                    last[i] = x.offset;
        for (size_t i = 0; last && i < nspans; i++)
            if (last[i] >= 0)
                tp_params_add(&pp, spans[i].topic, spans[i].partition, last[i] + 1);
        bool ok = last && tp_params_finish(&pp, w->group) == 0;
        free(last);
        if (ok) {
            r = exec_prepared(w, ST_ADVANCE, 4, pp.values, pp.lengths, pp.formats);
            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
        }
        tp_params_free(&pp);
        if (!ok)
            goto fail;
    }
    r = PQexec(w->conn, "COMMIT");
    bool committed = PQresultStatus(r) == PGRES_COMMAND_OK && !strcmp(PQcmdStatus(r), "COMMIT");
    PQclear(r);
    if (!committed)
        goto fail;
    res->inserted = inserted;

    char fix[1024];
    positions_set_sql(fix, sizeof(fix), w->offsets, w->group, bad.topic, bad.partition, bad.offset + 1);
    size_t idlen = strlen(bad.msgid);
    snprintf(errstr, errstr_size,
             "PostgreSQL refuses the message at %s [%" PRId32 "] offset %" PRId64 " (message id '%.*s%s', %zu bytes): "
             "%s; the %zu messages before it in the batch are recorded. A retry cannot fix this: fix the cause "
             "(a constraint or trigger on %s, the database encoding, ...), or skip the message: stop inboxd and run "
             "%s",
             bad.topic, bad.partition, bad.offset, idlen > ID_QUOTE_MAX ? ID_QUOTE_MAX : (int)idlen, bad.msgid,
             idlen > ID_QUOTE_MAX ? "..." : "", idlen, reason, lo, w->table, fix);
    return;

fail:
    if (w->conn && PQtransactionStatus(w->conn) != PQTRANS_IDLE)
        exec_ok(w, "ROLLBACK");
    if (w->conn && PQstatus(w->conn) == CONNECTION_BAD)
        disconnect(w);
    inbox_batch_unfence(b);
    res->inserted = 0;
    snprintf(errstr, errstr_size, "%s", reason);
}

inbox_writer_status_t inbox_writer_write(inbox_writer_t *w, inbox_batch_t *b, inbox_write_result_t *res, char *errstr,
                                         size_t errstr_size) {
    memset(res, 0, sizeof(*res));
    inbox_batch_unfence(b);
    res->messages = inbox_batch_count(b);
    if (res->messages == 0)
        return INBOX_WRITER_OK;
    if (!connected(w, errstr, errstr_size))
        return INBOX_WRITER_RETRY;
    size_t nspans;
    const inbox_span_t *spans = inbox_batch_spans(b, &nspans);
    if (!spans) {
        snprintf(errstr, errstr_size, "out of memory");
        return INBOX_WRITER_FATAL;
    }
    inbox_writer_status_t st = INBOX_WRITER_OK;
    pgarray_t cols[INBOX_NCOLS];
    memset(cols, 0, sizeof(cols));
    tp_params_t tp;
    tp_params_init(&tp);
    for (size_t i = 0; i < nspans; i++)
        tp_params_add(&tp, spans[i].topic, spans[i].partition, spans[i].last + 1);
    if (tp_params_finish(&tp, w->group) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        st = INBOX_WRITER_FATAL;
        goto out;
    }

    PGresult *r = PQexec(w->conn, "BEGIN");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        st = fail_stmt(w, r, "cannot begin the batch transaction", errstr, errstr_size);
        goto out;
    }
    PQclear(r);

    /* 1. Lock the partitions' positions (rows created at 0 when new), in topic/partition order
     * (spans are sorted), and skip what is already recorded. */
    if ((r = lock_positions(w, b, &tp, &res->fenced))) {
        st = fail_stmt(w, r, "cannot lock the partition positions", errstr, errstr_size);
        goto out;
    }

    /* 2. Insert the rest; a message id already present is a duplicate. */
    long nrows = inbox_batch_encode(b, cols);
    if (nrows < 0) {
        snprintf(errstr, errstr_size, "out of memory");
        st = INBOX_WRITER_FATAL;
        PGresult *rb = PQexec(w->conn, "ROLLBACK");
        PQclear(rb);
        goto out;
    }
    if (nrows > 0) {
        r = exec_insert(w, cols);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            bool per_row = row_error(r);
            st = fail_stmt(w, r, "cannot insert into the inbox", errstr, errstr_size);
            if (st == INBOX_WRITER_FATAL && per_row && w->conn)
                name_bad_message(w, b, &tp, (size_t)nrows, res, errstr, errstr_size);
            goto out;
        }
        res->inserted = (size_t)strtoull(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    res->conflicts = (size_t)nrows - res->inserted;

    /* 3. Move the positions past the batch (never backwards). */
    r = exec_prepared(w, ST_ADVANCE, 4, tp.values, tp.lengths, tp.formats);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        st = fail_stmt(w, r, "cannot store the partition positions", errstr, errstr_size);
        goto out;
    }
    PQclear(r);

    r = PQexec(w->conn, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            snprintf(errstr, errstr_size, "the batch transaction was rolled back");
            disconnect(w);
            st = INBOX_WRITER_RETRY;
            goto out;
        }
        st = fail_stmt(w, r, "cannot commit the batch", errstr, errstr_size);
        goto out;
    }
    PQclear(r);

out:
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);
    tp_params_free(&tp);
    return st;
}

inbox_writer_status_t inbox_writer_load_offsets(inbox_writer_t *w, const char *const *topics, const int32_t *partitions,
                                                size_t n, int64_t *next, char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < n; i++)
        next[i] = -1;
    if (n == 0)
        return INBOX_WRITER_OK;
    if (!connected(w, errstr, errstr_size))
        return INBOX_WRITER_RETRY;
    tp_params_t tp;
    tp_params_init(&tp);
    for (size_t i = 0; i < n; i++)
        tp_params_add(&tp, topics[i], partitions[i], -1);
    inbox_writer_status_t st = INBOX_WRITER_OK;
    if (tp_params_finish(&tp, w->group) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        st = INBOX_WRITER_FATAL;
        goto out;
    }
    PGresult *r = exec_prepared(w, ST_LOAD, 3, tp.values, tp.lengths, tp.formats);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        st = fail_stmt(w, r, "cannot read the partition positions", errstr, errstr_size);
        goto out;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        long long idx = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        if (idx >= 1 && (size_t)idx <= n)
            next[idx - 1] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    }
    PQclear(r);
out:
    tp_params_free(&tp);
    return st;
}

inbox_writer_status_t inbox_writer_retention(inbox_writer_t *w, long long older_than_s, int limit, long long *deleted,
                                             char *errstr, size_t errstr_size) {
    *deleted = 0;
    if (!connected(w, errstr, errstr_size))
        return INBOX_WRITER_RETRY;
    char secs[32], lim[32];
    snprintf(secs, sizeof(secs), "%lld", older_than_s);
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *values[2] = {secs, lim};
    PGresult *r = exec_prepared(w, ST_RETENTION, 2, values, NULL, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return fail_stmt(w, r, "cannot delete expired inbox rows", errstr, errstr_size);
    *deleted = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return INBOX_WRITER_OK;
}

inbox_writer_status_t inbox_writer_set_position(inbox_writer_t *w, const char *topic, int32_t partition,
                                                int64_t next_offset, char *errstr, size_t errstr_size) {
    if (!connected(w, errstr, errstr_size))
        return INBOX_WRITER_RETRY;
    char part[16], off[32];
    snprintf(part, sizeof(part), "%" PRId32, partition);
    snprintf(off, sizeof(off), "%" PRId64, next_offset);
    const char *values[4] = {w->group, topic, part, off};
    PGresult *r = exec_prepared(w, ST_SET_POSITION, 4, values, NULL, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return fail_stmt(w, r, "cannot store the partition position", errstr, errstr_size);
    PQclear(r);
    return INBOX_WRITER_OK;
}
