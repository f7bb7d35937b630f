/* pg_preflight.h - checks of the PostgreSQL server and the outbox tables that turn a
 * newcomer's misconfiguration into a one-line error with the fix. */
#ifndef OUTBOXD_PG_PREFLIGHT_H
#define OUTBOXD_PG_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "repl_stream.h"

/* wal_level is logical. conn: borrowed (a replication=database or ordinary connection). */
repl_status_t pg_preflight_server(PGconn *conn, char *errstr, size_t errstr_size);

/* The table exists and has every column of required (NULL-terminated, borrowed; NULL or ""
 * entries are skipped). optional: a column that may be absent; *optional_present tells. */
repl_status_t pg_preflight_table(PGconn *conn, const char *schema, const char *table, const char *const *required,
                                 const char *optional, bool *optional_present, char *errstr, size_t errstr_size);

#endif
