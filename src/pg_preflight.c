/* pg_preflight.c - server and outbox table checks with actionable error messages. */
#include "pg_preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static repl_status_t query_failed(PGresult *res, const char *what, char *errstr, size_t errstr_size) {
    snprintf(errstr, errstr_size, "cannot check %s: %s", what, PQresultErrorMessage(res));
    size_t n = strlen(errstr);
    while (n > 0 && errstr[n - 1] == '\n')
        errstr[--n] = '\0';
    PQclear(res);
    return REPL_RETRY;
}

repl_status_t pg_preflight_server(PGconn *conn, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(conn, "SHOW wal_level");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return query_failed(res, "wal_level", errstr, errstr_size);
    repl_status_t st = REPL_OK;
    if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        snprintf(errstr, errstr_size,
                 "PostgreSQL wal_level is '%s' but outboxd needs 'logical': run ALTER SYSTEM SET "
                 "wal_level = logical; as a superuser and restart PostgreSQL",
                 PQgetvalue(res, 0, 0));
        st = REPL_FATAL;
    }
    PQclear(res);
    return st;
}

repl_status_t pg_preflight_table(PGconn *conn, const char *schema, const char *table, const char *const *required,
                                 const char *optional, bool *optional_present, char *errstr, size_t errstr_size) {
    char *qs = PQescapeIdentifier(conn, schema, strlen(schema));
    char *qt = PQescapeIdentifier(conn, table, strlen(table));
    char *lit = NULL;
    repl_status_t st = REPL_OK;
    PGresult *res = NULL;
    if (!qs || !qt) {
        snprintf(errstr, errstr_size, "cannot quote table name %s.%s", schema, table);
        st = REPL_FATAL;
        goto out;
    }
    size_t qlen = strlen(qs) + strlen(qt) + 2;
    char *qualified = malloc(qlen);
    if (!qualified) {
        snprintf(errstr, errstr_size, "out of memory");
        st = REPL_FATAL;
        goto out;
    }
    snprintf(qualified, qlen, "%s.%s", qs, qt);
    lit = PQescapeLiteral(conn, qualified, strlen(qualified));
    free(qualified);
    if (!lit) {
        snprintf(errstr, errstr_size, "cannot quote table name %s.%s", schema, table);
        st = REPL_FATAL;
        goto out;
    }
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
             "AND a.attnum > 0 AND NOT a.attisdropped UNION ALL "
             "SELECT NULL WHERE to_regclass(%s) IS NULL",
             lit, lit);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = query_failed(res, "the outbox table", errstr, errstr_size);
        res = NULL;
        goto out;
    }
    if (PQntuples(res) == 1 && PQgetisnull(res, 0, 0)) {
        snprintf(errstr, errstr_size,
                 "outbox table %s.%s does not exist in this database: create it (psql -f sql/outbox.sql) "
                 "or point outbox.table (and postgres.conninfo's dbname) at yours",
                 schema, table);
        st = REPL_FATAL;
        goto out;
    }
    for (int i = 0; required && required[i]; i++) {
        if (!*required[i])
            continue;
        bool found = false;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = !strcmp(PQgetvalue(res, r, 0), required[i]);
        if (!found) {
            snprintf(errstr, errstr_size,
                     "outbox table %s.%s has no column \"%s\": add it, or map yours with the matching "
                     "outbox.column.* key",
                     schema, table, required[i]);
            st = REPL_FATAL;
            goto out;
        }
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
