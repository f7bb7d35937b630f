/* pg_preflight.c - server and outbox table checks with actionable error messages. */
#include "pg_preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"

/* A query that failed: permanent when the server refused it for a reason a retry cannot
 * change (permissions, class 42), transient otherwise (connection lost, server starting). */
static repl_status_t query_failed(PGresult *res, const char *what, err_t *e) {
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char msg[768];
    pgconn_error(msg, sizeof(msg), "", PQresultErrorMessage(res));
    bool permanent = code && !strncmp(code, "42", 2);
    err_set(e, permanent ? ERR_PERMANENT : ERR_TRANSIENT, code ? code : "",
            permanent ? "grant the role outboxd runs as what sql/roles.sql grants" : NULL, "cannot check %s: %s", what,
            msg);
    PQclear(res);
    return permanent ? REPL_FATAL : REPL_RETRY;
}

void pg_preflight_required_columns(const router_columns_t *c, const char *required[PG_PREFLIGHT_COL_COUNT + 1]) {
    required[PG_PREFLIGHT_COL_ID] = c->id;
    required[PG_PREFLIGHT_COL_AGGREGATE_TYPE] = c->aggregate_type;
    required[PG_PREFLIGHT_COL_AGGREGATE_ID] = c->aggregate_id;
    required[PG_PREFLIGHT_COL_EVENT_TYPE] = c->event_type;
    required[PG_PREFLIGHT_COL_PAYLOAD] = c->payload;
    required[PG_PREFLIGHT_COL_COUNT] = NULL;
}

repl_status_t pg_preflight_server(PGconn *conn, err_t *e) {
    PGresult *res = PQexec(conn, "SHOW wal_level");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return query_failed(res, "wal_level", e);
    repl_status_t st = REPL_OK;
    if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        err_set(e, ERR_PERMANENT, "", "run ALTER SYSTEM SET wal_level = logical; as a superuser and restart PostgreSQL",
                "PostgreSQL wal_level is '%s' but outboxd needs 'logical'", PQgetvalue(res, 0, 0));
        st = REPL_FATAL;
    }
    PQclear(res);
    if (st != REPL_OK)
        return st;
    /* wal2json prints bytea through the session's bytea_output and drops the first two
     * characters, assuming "\x" (checked with wal2json 2.5: escape format '\000\377A' arrives
     * as "00\377A"). A database or role default of escape must not reach the decoder. */
    res = PQexec(conn, "SET bytea_output = hex");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return query_failed(res, "bytea_output (SET bytea_output = hex)", e);
    PQclear(res);
    return REPL_OK;
}

repl_status_t pg_preflight_table(PGconn *conn, const char *schema, const char *table, const char *const *required,
                                 char (*required_types)[PG_PREFLIGHT_TYPE_SIZE], const char *optional,
                                 bool *optional_present, err_t *e) {
    char *qs = PQescapeIdentifier(conn, schema, strlen(schema));
    char *qt = PQescapeIdentifier(conn, table, strlen(table));
    char *lit = NULL;
    repl_status_t st = REPL_OK;
    PGresult *res = NULL, *kind = NULL;
    if (!qs || !qt) {
        err_set(e, ERR_PERMANENT, "", "check outbox.table", "cannot quote table name %s.%s", schema, table);
        st = REPL_FATAL;
        goto out;
    }
    size_t qlen = strlen(qs) + strlen(qt) + 2;
    char *qualified = malloc(qlen);
    if (!qualified) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        st = REPL_FATAL;
        goto out;
    }
    snprintf(qualified, qlen, "%s.%s", qs, qt);
    lit = PQescapeLiteral(conn, qualified, strlen(qualified));
    free(qualified);
    if (!lit) {
        err_set(e, ERR_PERMANENT, "", "check outbox.table", "cannot quote table name %s.%s", schema, table);
        st = REPL_FATAL;
        goto out;
    }
    /* Columns with their types, domains resolved to the base type (wal2json prints a domain
     * through its base type's output function), or one NULL row when there is no table. */
    char sql[4096];
    int n = snprintf(sql, sizeof(sql),
                     "WITH RECURSIVE c(attname, typid) AS ("
                     "SELECT a.attname, a.atttypid FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
                     "AND a.attnum > 0 AND NOT a.attisdropped "
                     "UNION ALL SELECT c.attname, t.typbasetype FROM c JOIN pg_type t ON t.oid = c.typid "
                     "WHERE t.typtype = 'd') "
                     "SELECT c.attname, format_type(c.typid, NULL) FROM c JOIN pg_type t ON t.oid = c.typid "
                     "WHERE t.typtype <> 'd' UNION ALL "
                     "SELECT NULL, NULL WHERE to_regclass(%s) IS NULL",
                     lit, lit);
    if (n < 0 || (size_t)n >= sizeof(sql)) {
        err_set(e, ERR_PERMANENT, "", "check outbox.table", "table name %s.%s is too long", schema, table);
        st = REPL_FATAL;
        goto out;
    }
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = query_failed(res, "the outbox table", e);
        res = NULL;
        goto out;
    }
    if (PQntuples(res) == 1 && PQgetisnull(res, 0, 0)) {
        err_set(e, ERR_PERMANENT, "42P01",
                "create it (psql -f sql/outbox.sql) or point outbox.table (and postgres.conninfo's dbname) at yours",
                "outbox table %s.%s does not exist in this database", schema, table);
        st = REPL_FATAL;
        goto out;
    }
    /* wal2json names a row of a partitioned table after its partition, and add-tables with
     * the parent matches none of them: reading the parent would publish nothing. */
    snprintf(sql, sizeof(sql),
             "SELECT c.relkind = 'p', (SELECT string_agg(t.relid::regclass::text, ', ' ORDER BY "
             "t.relid::regclass::text) FROM pg_partition_tree(c.oid) t WHERE t.isleaf) "
             "FROM pg_class c WHERE c.oid = to_regclass(%s)",
             lit);
    kind = PQexec(conn, sql);
    if (PQresultStatus(kind) != PGRES_TUPLES_OK || PQntuples(kind) != 1) {
        st = query_failed(kind, "the outbox table", e);
        kind = NULL;
        goto out;
    }
    if (!strcmp(PQgetvalue(kind, 0, 0), "t")) {
        char fix[600];
        snprintf(fix, sizeof(fix),
                 "list the partitions in outbox.table instead (now: %s), and add each new partition there, "
                 "restarting outboxd, before rows go into it",
                 PQgetisnull(kind, 0, 1) ? "none" : PQgetvalue(kind, 0, 1));
        err_set(e, ERR_PERMANENT, "", fix,
                "outbox table %s.%s is partitioned: wal2json reports each row under its partition, so "
                "outboxd would publish nothing",
                schema, table);
        st = REPL_FATAL;
        goto out;
    }
    for (int i = 0; required && required[i]; i++) {
        if (required_types)
            required_types[i][0] = '\0';
        if (!*required[i])
            continue;
        int found = -1;
        for (int r = 0; r < PQntuples(res) && found < 0; r++)
            if (!strcmp(PQgetvalue(res, r, 0), required[i]))
                found = r;
        if (found < 0) {
            err_set(e, ERR_PERMANENT, "42703", "add it, or map yours with the matching outbox.column.* key",
                    "outbox table %s.%s has no column \"%s\"", schema, table, required[i]);
            st = REPL_FATAL;
            goto out;
        }
        if (required_types)
            snprintf(required_types[i], PG_PREFLIGHT_TYPE_SIZE, "%s", PQgetvalue(res, found, 1));
    }
    if (optional_present) {
        *optional_present = false;
        for (int r = 0; optional && *optional && r < PQntuples(res); r++)
            if (!strcmp(PQgetvalue(res, r, 0), optional))
                *optional_present = true;
    }
out:
    PQclear(res);
    PQclear(kind);
    PQfreemem(lit);
    PQfreemem(qs);
    PQfreemem(qt);
    return st;
}
