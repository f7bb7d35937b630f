/* cmd_status.h - `outboxd status`: the replication slot's position, lag, WAL retention and the
 * process streaming it, read over an ordinary (non-replication) connection so that it works
 * while outboxd streams. */
#ifndef OUTBOXD_CMD_STATUS_H
#define OUTBOXD_CMD_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "relay.h"

/* Exit codes of status_run. */
enum {
    STATUS_EXIT_OK = 0,      /* the slot exists */
    STATUS_EXIT_NO_SLOT = 1, /* the slot does not exist */
    STATUS_EXIT_ERROR = 2    /* cannot tell: PostgreSQL unreachable or the query failed */
};

/* Prints the status of opts->slot (read from the server opts->conninfo names) to out: one
 * "label  value" line each, or one JSON object when json. Errors go to the log (stderr).
 * opts: borrowed; only conninfo, slot and create_slot are used. Returns a STATUS_EXIT_* code. */
int status_run(const relay_options_t *opts, bool json, FILE *out);

/* Columns of status_query's row, in order. */
enum {
    STATUS_C_TYPE,
    STATUS_C_PLUGIN,
    STATUS_C_DATABASE,
    STATUS_C_TEMPORARY,
    STATUS_C_ACTIVE,
    STATUS_C_ACTIVE_PID,
    STATUS_C_CONFIRMED,
    STATUS_C_RESTART,
    STATUS_C_CURRENT,
    STATUS_C_LAG,
    STATUS_C_RETAINED,
    STATUS_C_WAL_STATUS,
    STATUS_C_SAFE_WAL_SIZE,
    STATUS_C_APP,
    STATUS_C_CLIENT_ADDR,
    STATUS_C_CLIENT_PORT,
    STATUS_C_BACKEND_START,
    STATUS_C_REPLY_AGE,
    STATUS_C_STATE,
    STATUS_C_KEEP_SIZE,
    STATUS_C_RECOVERY,
    STATUS_C_SENDER_VISIBLE,
    STATUS_C_COUNT
};

/* The slot's row: pg_replication_slots joined with the server's current (or, on a standby,
 * replayed) WAL position, lag and retained bytes, wal_status, safe_wal_size and the streaming
 * walsender from pg_stat_replication; STATUS_C_COUNT columns, zero rows when the slot does not
 * exist. Used by status and by outboxd's slot metrics (one query for both). Returns a new
 * result (PQclear it); check PQresultStatus. */
PGresult *status_query(PGconn *conn, const char *slot);

/* Writes n bytes in a human-readable form ("0 B", "812 B", "1.5 KiB", "16.0 MiB") to buf. */
void status_format_bytes(long long n, char *buf, size_t buf_size);

#endif
