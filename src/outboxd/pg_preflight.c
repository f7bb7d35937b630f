/* pg_preflight.c - server and outbox table checks with actionable error messages. */
#include "pg_preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "strlist.h"

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
    PGresult *res = NULL;
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
    PQfreemem(lit);
    PQfreemem(qs);
    PQfreemem(qt);
    return st;
}

repl_status_t pg_preflight_partitions(PGconn *conn, const char *schema, const char *table, bool *partitioned,
                                      char ***leaves, size_t *nleaves, err_t *e) {
    *partitioned = false;
    *leaves = NULL;
    *nleaves = 0;
    char *qs = PQescapeIdentifier(conn, schema, strlen(schema)), *qt = PQescapeIdentifier(conn, table, strlen(table));
    char qualified[600], *lit = NULL;
    if (qs && qt && (size_t)snprintf(qualified, sizeof(qualified), "%s.%s", qs, qt) < sizeof(qualified))
        lit = PQescapeLiteral(conn, qualified, strlen(qualified));
    PQfreemem(qs);
    PQfreemem(qt);
    if (!lit) {
        err_set(e, ERR_PERMANENT, "", "check outbox.table", "cannot quote table name %s.%s", schema, table);
        return REPL_FATAL;
    }
    /* (partitioned, NULL, NULL) for a table without partitions, else one row per leaf. */
    char sql[1600];
    snprintf(sql, sizeof(sql),
             "SELECT p.relkind = 'p', n.nspname, c.relname FROM pg_class p LEFT JOIN LATERAL (SELECT t.relid FROM "
             "pg_partition_tree(p.oid) t WHERE t.isleaf AND p.relkind = 'p') t ON true LEFT JOIN pg_class c ON "
             "c.oid = t.relid LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.oid = to_regclass(%s) "
             "ORDER BY 2, 3",
             lit);
    PQfreemem(lit);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(res, "the partitions of the outbox table", e);
    int n = PQntuples(res);
    *partitioned = n > 0 && !strcmp(PQgetvalue(res, 0, 0), "t");
    if (!*partitioned || PQgetisnull(res, 0, 1)) {
        PQclear(res);
        return REPL_OK;
    }
    char **l = calloc((size_t)n * 2 + 1, sizeof(char *));
    for (int i = 0; l && i < n; i++)
        if (!(l[2 * i] = strdup(PQgetvalue(res, i, 1))) || !(l[2 * i + 1] = strdup(PQgetvalue(res, i, 2)))) {
            strlist_free(l);
            l = NULL;
        }
    PQclear(res);
    if (!l) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return REPL_FATAL;
    }
    *leaves = l;
    *nleaves = (size_t)n;
    return REPL_OK;
}
