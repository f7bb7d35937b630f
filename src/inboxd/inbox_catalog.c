/* inbox_catalog.c - the inbox table, its schema, functions and privileges as the catalog says. */
#include "inbox_catalog.h"

#include <stdlib.h>
#include <string.h>

/* The functions of sql/inbox.sql, by their signatures in the table's schema (n.nspname). */
#define FN(sig) "to_regprocedure(format('%I." sig "', n.nspname))"
#define CLAIM FN("inbox_claim(integer,interval)")
#define COMPLETE FN("inbox_complete(text)")
#define FAIL FN("inbox_fail(text,text,integer,interval,interval)")
#define REQUEUE FN("inbox_requeue_dead(text)")
/* inbox_claim returns rows of this very table (not of another inbox in the same schema). */
#define CLAIM_FITS "coalesce((SELECT p.prorettype = c.reltype FROM pg_proc p WHERE p.oid = " CLAIM "), false)"

/* Columns: table, schema, push_functions, requeue_function, may_claim, may_execute_push. */
static const char lookup_sql[] =
    "SELECT format('%I.%I', n.nspname, c.relname), quote_ident(n.nspname), " CLAIM_FITS " AND " COMPLETE
    " IS NOT NULL AND " FAIL " IS NOT NULL, " REQUEUE " IS NOT NULL AND " CLAIM_FITS ", "
    "has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'UPDATE'), "
    "coalesce(has_function_privilege(" CLAIM "::oid, 'EXECUTE') AND has_function_privilege(" COMPLETE
    "::oid, 'EXECUTE') AND has_function_privilege(" FAIL "::oid, 'EXECUTE'), false) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)";

static bool flag(const PGresult *r, int col) { return !strcmp(PQgetvalue(r, 0, col), "t"); }

inbox_catalog_status_t inbox_catalog_lookup(PGconn *conn, const char *name, inbox_catalog_t *out, PGresult **failed) {
    const char *vals[1] = {name};
    *out = (inbox_catalog_t){0};
    *failed = NULL;
    PGresult *r = PQexecParams(conn, lookup_sql, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *failed = r;
        return INBOX_CATALOG_FAILED;
    }
    inbox_catalog_status_t st = INBOX_CATALOG_MISSING;
    if (PQntuples(r) == 1) {
        out->table = strdup(PQgetvalue(r, 0, 0));
        out->schema = strdup(PQgetvalue(r, 0, 1));
        out->push_functions = flag(r, 2);
        out->requeue_function = flag(r, 3);
        out->may_claim = flag(r, 4);
        out->may_execute_push = flag(r, 5);
        st = out->table && out->schema ? INBOX_CATALOG_FOUND : INBOX_CATALOG_OOM;
        if (st != INBOX_CATALOG_FOUND)
            inbox_catalog_free(out);
    }
    PQclear(r);
    return st;
}

void inbox_catalog_free(inbox_catalog_t *c) {
    free(c->table);
    free(c->schema);
    *c = (inbox_catalog_t){0};
}
