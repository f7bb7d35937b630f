/* inbox_grants.h - the privileges each inboxd command needs on the inbox tables and the
 * functions of sql/inbox.sql, which of them the connected role lacks, and the GRANT
 * statements that fix it. One list for every caller: `inboxd check`, and the operator
 * commands when PostgreSQL refuses them (SQLSTATE 42501). The list is pure; the lookup asks
 * the server (has_table_privilege, has_column_privilege, has_function_privilege). */
#ifndef INBOXD_INBOX_GRANTS_H
#define INBOXD_INBOX_GRANTS_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "error.h"

/* What the role does; or-ed together. */
enum {
    INBOX_NEEDS_INGEST = 1,  /* the daemon: record messages, move positions, retention */
    INBOX_NEEDS_PUSH = 2,    /* deliver.url: claim and settle messages itself */
    INBOX_NEEDS_STATUS = 4,  /* inboxd status */
    INBOX_NEEDS_REQUEUE = 8, /* inboxd requeue */
};

/* The columns inbox_requeue_dead() updates: the grant sql/inbox_roles.sql gives the inboxd role
 * for `inboxd requeue` (a column-level UPDATE, not the whole table). */
#define INBOX_REQUEUE_COLUMNS "status, attempts, next_attempt_at, processed_at"

#define INBOX_GRANT_OBJECT_SIZE 600
#define INBOX_GRANTS_MAX 16

/* One privilege on one object. */
typedef struct inbox_grant {
    const char *privilege;                /* "SELECT", "INSERT", "UPDATE", "DELETE", "EXECUTE" (static) */
    const char *columns;                  /* column-level grant ("a, b"), or NULL for the whole table (static) */
    bool function;                        /* object is a function signature */
    char object[INBOX_GRANT_OBJECT_SIZE]; /* schema.table or schema.function(argtypes), quoted */
} inbox_grant_t;

/* The grants needs (INBOX_NEEDS_*) call for, written to out (room for INBOX_GRANTS_MAX):
 * table, offsets: schema.table as the catalog gives them (quoted where needed; offsets may be
 * NULL when not needed); schema: the inbox table's schema (quoted), where the functions are.
 * Each (object, privilege) appears once. Returns how many. Pure. */
size_t inbox_grants_needed(unsigned needs, const char *table, const char *offsets, const char *schema,
                           inbox_grant_t *out);

/* GRANT statements for grants[0..n) to role (quoted here), one per object and column list,
 * privileges merged: 'GRANT SELECT, INSERT ON public.inbox TO "r"; GRANT EXECUTE ON FUNCTION
 * ...'. Written to buf; returns buf. Pure. */
const char *inbox_grants_statements(const inbox_grant_t *grants, size_t n, const char *role, char *buf, size_t size);

/* "SELECT, INSERT on public.inbox; EXECUTE on public.inbox_claim(integer, interval)": the grants
 * as a list for messages. Pure. */
const char *inbox_grants_list(const inbox_grant_t *grants, size_t n, char *buf, size_t size);

/* Which of the grants needs calls for the current role of conn lacks: written to missing
 * (room for INBOX_GRANTS_MAX), their count to *nmissing. A function that does not exist is not
 * a missing grant (the function checks say that). Returns 0, or -1 with *e when a lookup
 * failed. */
int inbox_grants_missing(PGconn *conn, unsigned needs, const char *table, const char *offsets, const char *schema,
                         inbox_grant_t *missing, size_t *nmissing, err_t *e);

/* For a statement PostgreSQL refused with SQLSTATE 42501 (borrowed result r; e.g. a handoff
 * function whose body touches a table the role may not update): *e becomes one line, "what:
 * <the server's primary message> (SQLSTATE 42501): role "r" lacks <the missing grants>", with
 * the GRANT statements as the fix. When the lookup finds nothing missing (or fails), the fix
 * names what the command needs. conn must not be in a failed transaction (roll it back first). */
void inbox_grants_explain(PGconn *conn, const PGresult *r, const char *what, unsigned needs, const char *table,
                          const char *offsets, const char *schema, err_t *e);

#endif
