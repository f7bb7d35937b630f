/* inbox_catalog.h - the inbox table as the server resolves inbox.table (search_path, quoting,
 * case folding) and what the catalog says around it: its schema, whether the functions of
 * sql/inbox.sql sit next to it, and the current role's privileges for HTTP push. One query for
 * every caller: the writer, the HTTP push thread, the metrics poll and the operator commands. */
#ifndef OUTBOXD_INBOX_CATALOG_H
#define OUTBOXD_INBOX_CATALOG_H

#include <stdbool.h>

#include <libpq-fe.h>

/* What inbox_schema_version() of sql/inbox.sql returns for the tables and functions this inboxd
 * is built for (`inboxd check` compares). */
#define INBOX_SCHEMA_VERSION 1

typedef struct inbox_catalog {
    char *table;  /* schema.table, each part quoted where needed (format('%I.%I')); owned */
    char *schema; /* its schema, quoted where needed (quote_ident); owned */
    /* The flags below concern an inbox table; for another table (the offsets table) only
     * table and schema mean something. */
    bool push_functions;   /* inbox_claim(integer, interval) returning rows of this table,
                            * inbox_complete(text) and inbox_fail(text, text, integer, interval,
                            * interval) are in its schema */
    bool requeue_function; /* inbox_requeue_dead(text) is in its schema, next to an inbox_claim
                            * returning rows of this table */
    bool may_claim;        /* the role has SELECT and UPDATE on the table */
    bool may_execute_push; /* the role may execute the three push functions */
} inbox_catalog_t;

typedef enum {
    INBOX_CATALOG_FOUND = 0, /* *out filled: free it with inbox_catalog_free */
    INBOX_CATALOG_MISSING,   /* there is no such table */
    INBOX_CATALOG_FAILED,    /* the query failed: *failed holds its result */
    INBOX_CATALOG_OOM        /* out of memory */
} inbox_catalog_status_t;

/* Looks up the table called name (as written in the config; borrowed) over conn (borrowed).
 * *out is zeroed unless FOUND. On FAILED, *failed is the failed result (new: the caller reads
 * its SQLSTATE and message, then PQclear-s it); else *failed is NULL. */
inbox_catalog_status_t inbox_catalog_lookup(PGconn *conn, const char *name, inbox_catalog_t *out, PGresult **failed);

/* Frees the strings of c and zeroes it; accepts a zeroed struct. */
void inbox_catalog_free(inbox_catalog_t *c);

#endif
