/* pgconn.h - libpq connections opened the same way everywhere (outboxd's stream, backfill,
 * cleanup, check, status; inboxd's writer): one set of defaults the user's conninfo can
 * override, and libpq's messages turned into one-line errors. */
#ifndef OUTBOXD_PGCONN_H
#define OUTBOXD_PGCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "error.h"

/* postgres.password: the password of every connection whose conninfo holds none. Process-wide
 * (copied): call once at startup, before any connection and any thread. It fails when conninfo
 * (borrowed) holds a password too (say where the password is, once). NULL or "" = none: libpq's
 * own sources then (PGPASSWORD, ~/.pgpass). Returns 0, or -1 with errstr. */
int pgconn_set_password(const char *conninfo, const char *password, char *errstr, size_t errstr_size);

/* The password set by pgconn_set_password (borrowed), or NULL. For callers that open libpq
 * connections themselves (pg_failover's per-host probes). */
const char *pgconn_password(void);

/* Connects with connect_timeout=10, TCP keepalives (idle 30 s, interval 10 s, count 3) and
 * tcp_user_timeout=60000 (sent data unacknowledged for 60 s ends the connection),
 * postgres.password (pgconn_set_password), then the user's conninfo (key=value or URI, borrowed;
 * its values win), then
 * replication=database when replication is set, and appname as fallback_application_name.
 * Returns a new connection - check PQstatus, PQfinish it - or NULL when out of memory. */
PGconn *pgconn_open(const char *conninfo, const char *appname, bool replication);

/* pgconn_open for an ordinary connection that must be up: returns it (caller PQfinish-es it),
 * or NULL with *e filled by pgconn_failure ("cannot connect to PostgreSQL: ..." and its fix).
 * Used by the operator commands (outboxd check and status, inboxd status and requeue). */
PGconn *pgconn_connect(const char *conninfo, const char *appname, err_t *e);

/* The same defaults for an ordinary connection, but only started (PQconnectStartParams): the
 * caller drives it with PQconnectPoll and its own deadline (libpq applies connect_timeout
 * only to blocking connects). Returns a new connection - PQfinish it - or NULL when out of
 * memory; PQstatus CONNECTION_BAD when it failed at once. */
PGconn *pgconn_start(const char *conninfo, const char *appname);

/* pgconn_start driven to the end within timeout_ms (whatever connect_timeout says): an
 * ordinary connection that is up (caller PQfinish-es it), or NULL with *e. For callers that
 * must not wait long, e.g. a daemon that is stopping. */
PGconn *pgconn_connect_within(const char *conninfo, const char *appname, int timeout_ms, err_t *e);

/* Runs sql (one statement, text results) on conn without waiting past deadline_ms
 * (CLOCK_MONOTONIC milliseconds, clock.h): its result (PQclear it), or NULL when the time ran
 * out or the query could not be sent (the connection is then in an unknown state: finish it).
 * The result may be an error; check PQresultStatus. */
PGresult *pgconn_query_until(PGconn *conn, const char *sql, int64_t deadline_ms);

/* Classifies the failed connection conn (borrowed; PQstatus CONNECTION_BAD) into *e, by the
 * server's SQLSTATE (pgconn_open/pgconn_start ask libpq for it) and libpq's own state, never
 * by the words of the message (the server may speak another language):
 *   ERR_PERMANENT  authentication (class 28), unknown database (3D000), a missing privilege
 *                  (42501: no REPLICATION or CONNECT), a malformed conninfo, no password
 *   ERR_TRANSIENT  anything else: nothing listening, the network, a server starting or shutting
 *                  down (57P03), too many connections (class 53), no read-write host yet
 * e->msg = prefix + libpq's message on one line (without the SQLSTATE and source location
 * lines that verbose errors add); e->fix = what to change in the conninfo, pg_hba.conf or
 * the role, the same text `outboxd check` prints. */
void pgconn_failure(const PGconn *conn, const char *prefix, err_t *e);

/* Copies libpq's verbose message msg (borrowed) into out (size bytes) without the "XXXXX: "
 * SQLSTATE tokens and the "LOCATION:  function, file.c:123" lines that PQERRORS_VERBOSE adds.
 * code (6 bytes) gets the first SQLSTATE pgconn_sqlstate_is_permanent calls permanent, else the
 * last one seen (a multi-host attempt lists one failure per host), else "". */
void pgconn_strip_verbose(const char *msg, char *out, size_t size, char code[6]);

/* Connection-time SQLSTATEs that retrying cannot cure: class 28, 3D000, 42501, 42704. */
bool pgconn_sqlstate_is_permanent(const char *sqlstate);

/* The fix for a connection refused with sqlstate (NULL or "" = no answer from a server):
 * user and replication select the wording. Static text or buf. */
const char *pgconn_fix_for(const char *sqlstate, const char *user, bool replication, char *buf, size_t size);

/* The failure as one line "msg: fix" in errstr, and whether it is ERR_PERMANENT. For callers
 * that keep plain strings. */
bool pgconn_failure_line(const PGconn *conn, const char *prefix, char *errstr, size_t errstr_size);

/* Copies s into buf (size bytes) on one line: newlines, carriage returns and tabs (libpq's
 * messages have them) become single spaces, trailing ones go. Returns buf. */
const char *pgconn_one_line(const char *s, char *buf, size_t size);

/* errstr = prefix + msg (a libpq message; NULL = "") on one line (pgconn_one_line). */
void pgconn_error(char *errstr, size_t errstr_size, const char *prefix, const char *msg);

/* A failed statement as one clean line in *e: e->msg = what + ": " + the server's primary
 * message (PG_DIAG_MESSAGE_PRIMARY: without the DETAIL, HINT and CONTEXT lines, so a failing
 * SQL function does not dump its body) + " (SQLSTATE xxxxx)"; e->code = the SQLSTATE ("" when
 * the server sent none: the connection broke, then the connection's message is used). e->kind
 * is ERR_TRANSIENT for connection, shutdown, resource, lock and serialization classes (08,
 * 57P, 53, 55P03, 40) and for no SQLSTATE, else ERR_PERMANENT; e->fix = fix (may be NULL). r and
 * conn are borrowed; r may be NULL. */
void pgconn_result_failure(const PGresult *r, const PGconn *conn, const char *what, const char *fix, err_t *e);

#endif
