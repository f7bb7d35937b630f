/* pgconn.h - libpq connections opened the same way everywhere (outboxd's stream, backfill,
 * cleanup, check, status; inboxd's writer): one set of defaults the user's conninfo can
 * override, and libpq's messages turned into one-line errors. */
#ifndef OUTBOXD_PGCONN_H
#define OUTBOXD_PGCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/* Connects with connect_timeout=10 and TCP keepalives (idle 30 s, interval 10 s, count 3),
 * then the user's conninfo (key=value or URI, borrowed; its values win), then
 * replication=database when replication is set, and appname as fallback_application_name.
 * Returns a new connection - check PQstatus, PQfinish it - or NULL when out of memory. */
PGconn *pgconn_open(const char *conninfo, const char *appname, bool replication);

/* pgconn_open for an ordinary connection that must be up: returns it (caller PQfinish-es it),
 * or NULL with errstr "cannot connect to PostgreSQL: ..." (or "out of memory ..."). Used by
 * the operator commands (outboxd check and status, inboxd status and requeue). */
PGconn *pgconn_connect(const char *conninfo, const char *appname, char *errstr, size_t errstr_size);

/* The same defaults for an ordinary connection, but only started (PQconnectStartParams): the
 * caller drives it with PQconnectPoll and its own deadline (libpq applies connect_timeout
 * only to blocking connects). Returns a new connection - PQfinish it - or NULL when out of
 * memory; PQstatus CONNECTION_BAD when it failed at once. */
PGconn *pgconn_start(const char *conninfo, const char *appname);

/* A connection failure the user must fix (authentication, unknown database or role, no
 * REPLICATION, a malformed conninfo); anything else is worth retrying. */
bool pgconn_error_is_permanent(const char *msg);

/* Copies s into buf (size bytes) on one line: newlines, carriage returns and tabs (libpq's
 * messages have them) become single spaces, trailing ones go. Returns buf. */
const char *pgconn_one_line(const char *s, char *buf, size_t size);

/* errstr = prefix + msg (a libpq message; NULL = "") without its trailing newlines. */
void pgconn_error(char *errstr, size_t errstr_size, const char *prefix, const char *msg);

#endif
