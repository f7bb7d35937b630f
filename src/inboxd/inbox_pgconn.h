/* inbox_pgconn.h - the ordinary PostgreSQL connections inboxd keeps (the writer's, the HTTP
 * push thread's): pgconn's defaults, the server's notices in the log, a failed connect as one
 * line with its fix and whether retrying can help. */
#ifndef OUTBOXD_INBOX_PGCONN_H
#define OUTBOXD_INBOX_PGCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "log.h"

/* Connects (pgconn_open; conninfo and appname borrowed) and sends the server's notices (e.g.
 * "terminating connection due to administrator command" when it shuts down) to the log at
 * notice_level instead of libpq's raw stderr lines. Returns the connection (caller PQfinish-es
 * it), or NULL with errstr - prefix and the failure with its fix (pgconn_failure_line), or
 * "out of memory connecting to PostgreSQL" - and *permanent: true when retrying cannot help
 * until someone changes something (and when out of memory). */
PGconn *inbox_pgconn_open(const char *conninfo, const char *appname, log_level_t notice_level, const char *prefix,
                          char *errstr, size_t errstr_size, bool *permanent);

#endif
