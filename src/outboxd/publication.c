/* publication.c - reads, creates and extends pgoutput's publication for the outbox tables
 * (see publication.h). Simple queries only: a replication=database connection refuses the
 * extended protocol. */
#include "publication.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "strbuf.h"

#define SQLSTATE_INSUFFICIENT_PRIVILEGE "42501"
#define SQLSTATE_DUPLICATE_OBJECT "42710"

/* Appends s quoted as an identifier (quote) or a literal. */
static int add_quoted(strbuf_t *b, PGconn *conn, const char *s, bool ident) {
    char *q = ident ? PQescapeIdentifier(conn, s, strlen(s)) : PQescapeLiteral(conn, s, strlen(s));
    if (!q)
        return -1;
    int rc = strbuf_add(b, q, strlen(q));
    PQfreemem(q);
    return rc;
}

static int add_str(strbuf_t *b, const char *s) { return strbuf_add(b, s, strlen(s)); }

/* "s"."t" of table i. */
static int add_table(strbuf_t *b, PGconn *conn, const router_t *router, size_t i) {
    const char *schema, *table;
    router_table_get(router, i, &schema, &table);
    return add_quoted(b, conn, schema, true) || add_str(b, ".") || add_quoted(b, conn, table, true) ? -1 : 0;
}

int publication_create_sql(PGconn *conn, const char *name, const router_t *router, char *out, size_t out_size) {
    strbuf_t b = {0};
    int rc = add_str(&b, "CREATE PUBLICATION ") || add_quoted(&b, conn, name, true) || add_str(&b, " FOR TABLE ");
    for (size_t i = 0; !rc && i < router_table_count(router); i++)
        rc = (i > 0 && add_str(&b, ", ")) || add_table(&b, conn, router, i);
    rc = rc || add_str(&b, " WITH (publish = 'insert', publish_via_partition_root = true)");
    if (!rc && b.len < out_size)
        memcpy(out, b.p, b.len + 1);
    else
        rc = -1;
    strbuf_free(&b);
    return rc ? -1 : 0;
}

/* A failed catalog query: permanent for class 42 (permissions), transient otherwise. */
static repl_status_t failed(PGresult *res, const char *what, err_t *e) {
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char msg[768];
    pgconn_error(msg, sizeof(msg), "", PQresultErrorMessage(res));
    bool permanent = code && !strncmp(code, "42", 2);
    err_set(e, permanent ? ERR_PERMANENT : ERR_TRANSIENT, code ? code : "", NULL, "cannot %s: %s", what, msg);
    PQclear(res);
    return permanent ? REPL_FATAL : REPL_RETRY;
}

repl_status_t publication_check(PGconn *conn, const char *name, const router_t *router, publication_state_t *st,
                                err_t *e) {
    memset(st, 0, sizeof(*st));
    strbuf_t q = {0};
    int rc = add_str(&q, "SELECT p.pubinsert, p.pubviaroot, m.names, m.idx FROM pg_publication p, LATERAL (SELECT "
                         "string_agg(t.s || '.' || t.t, ', ' ORDER BY t.n) names, string_agg(t.n::text, ',') idx "
                         "FROM (VALUES ");
    for (size_t i = 0; !rc && i < router_table_count(router); i++) {
        const char *schema, *table;
        char n[32];
        router_table_get(router, i, &schema, &table);
        snprintf(n, sizeof(n), ", %zu)", i);
        rc = (i > 0 && add_str(&q, ", ")) || add_str(&q, "(") || add_quoted(&q, conn, schema, false) ||
             add_str(&q, "::name, ") || add_quoted(&q, conn, table, false) || add_str(&q, "::name") || add_str(&q, n);
    }
    rc = rc ||
         add_str(&q, ") t(s, t, n) WHERE NOT EXISTS (SELECT 1 FROM pg_publication_tables pt WHERE "
                     "pt.pubname = p.pubname AND pt.schemaname = t.s AND pt.tablename = t.t)) m "
                     "WHERE p.pubname = ") ||
         add_quoted(&q, conn, name, false);
    if (rc) {
        strbuf_free(&q);
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return REPL_FATAL;
    }
    PGresult *res = PQexec(conn, q.p);
    strbuf_free(&q);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return failed(res, "read the publication", e);
    if (PQntuples(res) == 1) {
        st->exists = true;
        st->inserts = !strcmp(PQgetvalue(res, 0, 0), "t");
        st->via_root = !strcmp(PQgetvalue(res, 0, 1), "t");
        snprintf(st->missing, sizeof(st->missing), "%s", PQgetvalue(res, 0, 2));
        for (const char *p = PQgetvalue(res, 0, 3); *p; p += strcspn(p, ","), p += *p == ',') {
            unsigned long i = strtoul(p, NULL, 10);
            if (i < 64)
                st->missing_mask |= 1ULL << i;
        }
    }
    PQclear(res);
    return REPL_OK;
}

/* Runs one DDL statement; a refusal for lack of privilege gets `fix`. */
static repl_status_t run_ddl(PGconn *conn, const char *sql, const char *what, const char *fix, err_t *e) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return REPL_OK;
    }
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (code && !strcmp(code, SQLSTATE_INSUFFICIENT_PRIVILEGE)) {
        char msg[768];
        pgconn_error(msg, sizeof(msg), "", PQresultErrorMessage(res));
        err_set(e, ERR_PERMANENT, code, fix, "cannot %s (%s)", what, msg);
        PQclear(res);
        return REPL_FATAL;
    }
    if (code && !strcmp(code, SQLSTATE_DUPLICATE_OBJECT)) { /* another instance was first */
        PQclear(res);
        return REPL_OK;
    }
    return failed(res, what, e);
}

/* ALTER PUBLICATION "name" ADD TABLE "s"."t" for each table it lacks. */
static repl_status_t add_missing(PGconn *conn, const char *name, const router_t *router, uint64_t missing, err_t *e) {
    for (size_t i = 0; i < router_table_count(router) && i < 64; i++) {
        const char *schema, *table;
        char item[300];
        if (!(missing & (1ULL << i)))
            continue;
        router_table_get(router, i, &schema, &table);
        snprintf(item, sizeof(item), "%s.%s", schema, table);
        strbuf_t b = {0};
        int rc = add_str(&b, "ALTER PUBLICATION ") || add_quoted(&b, conn, name, true) || add_str(&b, " ADD TABLE ") ||
                 add_table(&b, conn, router, i);
        char fix[1200];
        snprintf(fix, sizeof(fix), "as the owner of %s (or a superuser) run: %s", item, rc ? "" : b.p);
        repl_status_t st = rc ? REPL_FATAL : run_ddl(conn, b.p, "add the outbox table to the publication", fix, e);
        strbuf_free(&b);
        if (st != REPL_OK)
            return st;
    }
    return REPL_OK;
}

repl_status_t publication_ensure(PGconn *conn, const char *name, const router_t *router, bool partitioned, bool *added,
                                 err_t *e) {
    publication_state_t st;
    char create[4096], fix[4400];
    *added = false;
    repl_status_t rs = publication_check(conn, name, router, &st, e);
    if (rs != REPL_OK)
        return rs;
    if (publication_create_sql(conn, name, router, create, sizeof(create)) != 0) {
        err_set(e, ERR_PERMANENT, "", "shorten outbox.table", "the publication's definition is too long");
        return REPL_FATAL;
    }
    if (!st.exists) {
        snprintf(fix, sizeof(fix), "as the owner of the outbox tables (or a superuser) run: %s", create);
        rs = run_ddl(conn, create, "create the publication pgoutput streams through", fix, e);
        return rs == REPL_OK ? publication_check(conn, name, router, &st, e) : rs;
    }
    if (!st.inserts || (partitioned && !st.via_root)) {
        char *q = PQescapeIdentifier(conn, name, strlen(name));
        snprintf(fix, sizeof(fix),
                 "ALTER PUBLICATION %s SET (publish = 'insert', publish_via_partition_root = true); (or point "
                 "postgres.publication at another name: outboxd creates it)",
                 q ? q : name);
        PQfreemem(q);
        err_set(e, ERR_PERMANENT, "", fix, "publication \"%s\" does not publish %s", name,
                !st.inserts ? "inserts" : "partitioned tables through their root (publish_via_partition_root)");
        return REPL_FATAL;
    }
    if (!st.missing[0])
        return REPL_OK;
    rs = add_missing(conn, name, router, st.missing_mask, e);
    *added = rs == REPL_OK;
    return rs;
}
