/* backfill.c - reads a table's existing rows for the backfill (backfill_publish.c publishes
 * them): a cursor over SELECT * ... WHERE pred ORDER BY order in a REPEATABLE READ
 * transaction on a replication slot's exported snapshot, each row handed over as a
 * wal2json-shaped insert record. */
#include "backfill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgconn.h"

static int exec_ok(PGconn *c, const char *sql, ExecStatusType want, const char *what, char *errstr,
                   size_t errstr_size) {
    PGresult *res = PQexec(c, sql);
    int ok = PQresultStatus(res) == want;
    if (!ok) {
        char prefix[700];
        snprintf(prefix, sizeof(prefix), "backfill: %s failed: ", what);
        pgconn_error(errstr, errstr_size, prefix, PQresultErrorMessage(res));
    }
    PQclear(res);
    return ok ? 0 : -1;
}

/* Hands every row of one FETCH result to cb as an insert record. */
static int hand_over(PGresult *res, const char *schema, const char *table, w2j_column_t *cols, backfill_row_cb_t cb,
                     void *opaque, uint64_t *rows) {
    int nf = PQnfields(res);
    for (int r = 0; r < PQntuples(res); r++) {
        for (int f = 0; f < nf; f++) {
            cols[f].name = PQfname(res, f);
            cols[f].value = PQgetisnull(res, r, f) ? NULL : PQgetvalue(res, r, f);
            cols[f].value_len = cols[f].value ? (size_t)PQgetlength(res, r, f) : 0;
        }
        w2j_record_t rec = {
            .action = W2J_INSERT, .schema = schema, .table = table, .ncolumns = (size_t)nf, .columns = cols};
        int rc = cb(opaque, &rec);
        if (rc != 0)
            return rc;
        (*rows)++;
    }
    return 0;
}

int backfill_read(const backfill_options_t *o, const char *const *schemas, const char *const *tables, size_t ntables,
                  backfill_row_cb_t cb, void *opaque, uint64_t *rows, char *errstr, size_t errstr_size) {
    PGconn *c = pgconn_open(o->conninfo, "outboxd-backfill", false);
    char *sql = NULL, *snap = NULL, *qs = NULL, *qt = NULL;
    w2j_column_t *cols = NULL;
    PGresult *res = NULL;
    int rc = -1;
    *rows = 0;
    errstr[0] = '\0';
    if (!c || PQstatus(c) != CONNECTION_OK) {
        pgconn_error(errstr, errstr_size,
                     "backfill: cannot connect to PostgreSQL: ", c ? PQerrorMessage(c) : "out of memory");
        goto out;
    }
    snap = PQescapeLiteral(c, o->snapshot, strlen(o->snapshot));
    size_t cap = 1024 + strlen(o->where) + strlen(o->order) + (snap ? strlen(snap) : 0);
    sql = malloc(cap);
    if (!snap || !sql) {
        snprintf(errstr, errstr_size, "backfill: out of memory");
        goto out;
    }
    /* bytea as hex, like the stream (pg_preflight_server): the router decodes hex */
    if (exec_ok(c, "SET bytea_output = hex", PGRES_COMMAND_OK, "SET bytea_output", errstr, errstr_size))
        goto out;
    if (exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK, "BEGIN", errstr, errstr_size))
        goto out;
    snprintf(sql, cap, "SET TRANSACTION SNAPSHOT %s", snap);
    if (exec_ok(c, sql, PGRES_COMMAND_OK, "importing the slot's snapshot", errstr, errstr_size))
        goto out;
    for (size_t i = 0; i < ntables; i++) {
        qs = PQescapeIdentifier(c, schemas[i], strlen(schemas[i]));
        qt = PQescapeIdentifier(c, tables[i], strlen(tables[i]));
        if (!qs || !qt) {
            snprintf(errstr, errstr_size, "backfill: out of memory");
            goto out;
        }
        size_t need = strlen(qs) + strlen(qt) + strlen(o->where) + strlen(o->order) + 128;
        if (need > cap) {
            char *n = realloc(sql, need);
            if (!n) {
                snprintf(errstr, errstr_size, "backfill: out of memory");
                goto out;
            }
            sql = n;
            cap = need;
        }
        snprintf(sql, cap, "DECLARE outboxd_backfill NO SCROLL CURSOR FOR SELECT * FROM %s.%s WHERE (%s) ORDER BY %s",
                 qs, qt, o->where, o->order);
        char what[600];
        snprintf(what, sizeof(what),
                 "reading %s.%s WHERE %s ORDER BY %s (check outbox.backfill.where and "
                 "outbox.backfill.order)",
                 schemas[i], tables[i], o->where, o->order);
        if (exec_ok(c, sql, PGRES_COMMAND_OK, what, errstr, errstr_size))
            goto out;
        snprintf(sql, cap, "FETCH FORWARD %d FROM outboxd_backfill", o->batch > 0 ? o->batch : 500);
        for (;;) {
            res = PQexec(c, sql);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                char prefix[700];
                snprintf(prefix, sizeof(prefix), "backfill: %s: ", what);
                pgconn_error(errstr, errstr_size, prefix, PQresultErrorMessage(res));
                goto out;
            }
            if (PQntuples(res) == 0)
                break;
            w2j_column_t *nc = realloc(cols, (size_t)PQnfields(res) * sizeof(*cols));
            if (!nc) {
                snprintf(errstr, errstr_size, "backfill: out of memory");
                goto out;
            }
            cols = nc;
            int crc = hand_over(res, schemas[i], tables[i], cols, cb, opaque, rows);
            if (crc != 0) {
                rc = crc;
                goto out;
            }
            PQclear(res);
            res = NULL;
        }
        PQclear(res);
        res = NULL;
        if (exec_ok(c, "CLOSE outboxd_backfill", PGRES_COMMAND_OK, "CLOSE", errstr, errstr_size))
            goto out;
        PQfreemem(qs);
        PQfreemem(qt);
        qs = qt = NULL;
    }
    rc = exec_ok(c, "COMMIT", PGRES_COMMAND_OK, "COMMIT", errstr, errstr_size);
out:
    PQclear(res);
    PQfreemem(qs);
    PQfreemem(qt);
    PQfreemem(snap);
    free(sql);
    free(cols);
    PQfinish(c);
    return rc;
}
