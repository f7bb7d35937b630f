/* inbox_grants.c - the privileges inboxd's commands need, which ones the role lacks, and the
 * GRANT statements that fix it. */
#include "inbox_grants.h"

#include <stdio.h>
#include <string.h>

#include "pgconn.h"

/* Adds (object, privilege, columns) unless it is there already; a whole-table grant replaces
 * a column-level one of the same privilege (it covers it). */
static void add(inbox_grant_t *out, size_t *n, const char *object, bool function, const char *privilege,
                const char *columns) {
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(out[i].object, object) != 0 || strcmp(out[i].privilege, privilege) != 0)
            continue;
        if (!columns)
            out[i].columns = NULL;
        return;
    }
    if (*n >= INBOX_GRANTS_MAX)
        return;
    inbox_grant_t *g = &out[(*n)++];
    *g = (inbox_grant_t){.privilege = privilege, .columns = columns, .function = function};
    snprintf(g->object, sizeof(g->object), "%s", object);
}

static void add_function(inbox_grant_t *out, size_t *n, const char *schema, const char *signature) {
    char object[INBOX_GRANT_OBJECT_SIZE];
    snprintf(object, sizeof(object), "%s.%s", schema, signature);
    add(out, n, object, true, "EXECUTE", NULL);
}

size_t inbox_grants_needed(unsigned needs, const char *table, const char *offsets, const char *schema,
                           inbox_grant_t *out) {
    size_t n = 0;
    if (needs & (INBOX_NEEDS_INGEST | INBOX_NEEDS_PUSH | INBOX_NEEDS_STATUS | INBOX_NEEDS_REQUEUE))
        add(out, &n, table, false, "SELECT", NULL);
    if (needs & INBOX_NEEDS_INGEST) {
        add(out, &n, table, false, "INSERT", NULL);
        add(out, &n, table, false, "DELETE", NULL);
        if (offsets) {
            add(out, &n, offsets, false, "SELECT", NULL);
            add(out, &n, offsets, false, "INSERT", NULL);
            add(out, &n, offsets, false, "UPDATE", NULL);
        }
    }
    if (needs & INBOX_NEEDS_PUSH) {
        add(out, &n, table, false, "UPDATE", NULL);
        add_function(out, &n, schema, "inbox_claim(integer, interval)");
        add_function(out, &n, schema, "inbox_complete(text)");
        add_function(out, &n, schema, "inbox_fail(text, text, integer, interval, interval)");
    }
    if (needs & INBOX_NEEDS_REQUEUE) {
        add(out, &n, table, false, "UPDATE", INBOX_REQUEUE_COLUMNS);
        add_function(out, &n, schema, "inbox_requeue_dead(text)");
    }
    return n;
}

/* Appends to buf at *o (bounded). */
static void put(char *buf, size_t size, size_t *o, const char *fmt, const char *a, const char *b) {
    if (*o >= size)
        return;
    int w = snprintf(buf + *o, size - *o, fmt, a, b);
    if (w > 0)
        *o += (size_t)w < size - *o ? (size_t)w : size - *o - 1;
}

/* role as a double-quoted identifier (embedded quotes doubled). */
static void quote_role(const char *role, char *buf, size_t size) {
    size_t o = 0;
    if (size < 3)
        return;
    buf[o++] = '"';
    for (const char *p = role ? role : ""; *p && o + 3 < size; p++) {
        if (*p == '"')
            buf[o++] = '"';
        buf[o++] = *p;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* Same object and the same column list (both whole-table, or the same columns). */
static bool same_target(const inbox_grant_t *a, const inbox_grant_t *b) {
    if (strcmp(a->object, b->object) != 0 || a->function != b->function)
        return false;
    if (!a->columns || !b->columns)
        return !a->columns && !b->columns;
    return !strcmp(a->columns, b->columns);
}

/* Writes "PRIV, PRIV[ (cols)] on object" groups, each group once; sep between groups. statement:
 * "GRANT ... ON [FUNCTION] object TO role;" form. */
static const char *render(const inbox_grant_t *g, size_t n, const char *role, bool statement, char *buf, size_t size) {
    size_t o = 0;
    bool done[INBOX_GRANTS_MAX] = {false};
    char qrole[256];
    quote_role(role, qrole, sizeof(qrole));
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < INBOX_GRANTS_MAX; i++) {
        if (done[i])
            continue;
        if (o > 0)
            put(buf, size, &o, "%s%s", statement ? " " : "; ", "");
        put(buf, size, &o, "%s%s", statement ? "GRANT " : "", g[i].privilege);
        for (size_t j = i + 1; j < n && j < INBOX_GRANTS_MAX; j++)
            if (!done[j] && same_target(&g[i], &g[j])) {
                put(buf, size, &o, ", %s%s", g[j].privilege, "");
                done[j] = true;
            }
        if (g[i].columns)
            put(buf, size, &o, " (%s)%s", g[i].columns, "");
        put(buf, size, &o, statement ? " ON %s%s" : " on %s%s", g[i].function && statement ? "FUNCTION " : "",
            g[i].object);
        if (statement)
            put(buf, size, &o, " TO %s;%s", qrole, "");
    }
    return buf;
}

const char *inbox_grants_statements(const inbox_grant_t *grants, size_t n, const char *role, char *buf, size_t size) {
    return size ? render(grants, n, role, true, buf, size) : buf;
}

const char *inbox_grants_list(const inbox_grant_t *grants, size_t n, char *buf, size_t size) {
    return size ? render(grants, n, NULL, false, buf, size) : buf;
}

/* Does the current role hold g? 1 yes (or the object does not exist), 0 no, -1 on error. */
static int holds(PGconn *conn, const inbox_grant_t *g, err_t *e) {
    static const char table_sql[] = "SELECT coalesce(has_table_privilege(to_regclass($1), $2), true)";
    static const char column_sql[] =
        "SELECT coalesce(bool_and(has_column_privilege(to_regclass($1), trim(c), $2)), true) "
        "FROM unnest(string_to_array($3, ',')) AS c WHERE to_regclass($1) IS NOT NULL";
    static const char function_sql[] = "SELECT coalesce(has_function_privilege(to_regprocedure($1), $2), true)";
    const char *vals[3] = {g->object, g->privilege, g->columns};
    const char *sql = g->function ? function_sql : g->columns ? column_sql : table_sql;
    PGresult *r = PQexecParams(conn, sql, g->columns ? 3 : 2, NULL, vals, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        rc = PQgetvalue(r, 0, 0)[0] == 't';
    else
        pgconn_result_failure(r, conn, "cannot read the role's privileges", NULL, e);
    PQclear(r);
    return rc;
}

int inbox_grants_missing(PGconn *conn, unsigned needs, const char *table, const char *offsets, const char *schema,
                         inbox_grant_t *missing, size_t *nmissing, err_t *e) {
    inbox_grant_t need[INBOX_GRANTS_MAX];
    size_t n = inbox_grants_needed(needs, table, offsets, schema, need);
    *nmissing = 0;
    for (size_t i = 0; i < n; i++) {
        int h = holds(conn, &need[i], e);
        if (h < 0)
            return -1;
        if (!h)
            missing[(*nmissing)++] = need[i];
    }
    return 0;
}

void inbox_grants_explain(PGconn *conn, const PGresult *r, const char *what, unsigned needs, const char *table,
                          const char *offsets, const char *schema, err_t *e) {
    inbox_grant_t missing[INBOX_GRANTS_MAX];
    size_t n = 0;
    err_t lookup;
    char list[1024], fix[1400], stmts[1200];
    const char *role = PQuser(conn);
    bool found = inbox_grants_missing(conn, needs, table, offsets, schema, missing, &n, &lookup) == 0 && n > 0;
    if (!found) /* say what the command needs as a whole */
        n = inbox_grants_needed(needs, table, offsets, schema, missing);
    inbox_grants_statements(missing, n, role, stmts, sizeof(stmts));
    snprintf(fix, sizeof(fix), "%s (sql/inbox_roles.sql grants what inboxd's commands need)", stmts);
    pgconn_result_failure(r, conn, what, fix, e);
    inbox_grants_list(missing, n, list, sizeof(list));
    size_t len = strlen(e->msg);
    snprintf(e->msg + len, sizeof(e->msg) - len, ": role \"%s\" %s %s", role ? role : "?",
             found ? "lacks" : "needs (it may lack one of them)", list);
}
