/* repl_stream.c - PostgreSQL logical replication over libpq: connect, slot lookup and
 * creation, START_REPLICATION, CopyBoth message parsing and standby status updates. */
#include "repl_stream.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "pgconn.h"

struct repl_stream {
    PGconn *conn;
    char *buf;         /* last PQgetCopyData buffer, freed on the next read */
    err_t connect_err; /* why the last repl_stream_connect failed */
};

/* Seconds between 1970-01-01 and 2000-01-01, the replication protocol's epoch. */
#define PG_EPOCH_OFFSET_S 946684800LL

int64_t repl_stream_now_us(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return ((int64_t)tv.tv_sec - PG_EPOCH_OFFSET_S) * 1000000LL + tv.tv_usec;
}

static uint64_t get_u64(const char *p) {
    uint32_t hi, lo;
    memcpy(&hi, p, 4);
    memcpy(&lo, p + 4, 4);
    return ((uint64_t)ntohl(hi) << 32) | ntohl(lo);
}

static void put_u64(char *p, uint64_t v) {
    uint32_t hi = htonl((uint32_t)(v >> 32)), lo = htonl((uint32_t)v);
    memcpy(p, &hi, 4);
    memcpy(p + 4, &lo, 4);
}

repl_stream_t *repl_stream_new(void) { return calloc(1, sizeof(repl_stream_t)); }

void repl_stream_close(repl_stream_t *rs) {
    if (!rs)
        return;
    if (rs->buf) {
        PQfreemem(rs->buf);
        rs->buf = NULL;
    }
    if (rs->conn) {
        PQfinish(rs->conn);
        rs->conn = NULL;
    }
}

void repl_stream_destroy(repl_stream_t *rs) {
    if (!rs)
        return;
    repl_stream_close(rs);
    free(rs);
}

const err_t *repl_stream_connect_error(const repl_stream_t *rs) { return &rs->connect_err; }

bool repl_stream_connected(const repl_stream_t *rs) { return rs->conn != NULL; }
PGconn *repl_stream_conn(repl_stream_t *rs) { return rs->conn; }
int repl_stream_fd(const repl_stream_t *rs) { return rs->conn ? PQsocket(rs->conn) : -1; }

repl_status_t repl_stream_connect(repl_stream_t *rs, const char *conninfo, char *errstr, size_t errstr_size) {
    repl_stream_close(rs);
    PGconn *conn = pgconn_open(conninfo, "outboxd", true);
    if (!conn) {
        snprintf(errstr, errstr_size, "out of memory connecting to PostgreSQL");
        return REPL_FATAL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        err_t *e = &rs->connect_err;
        pgconn_failure(conn, "cannot connect to PostgreSQL: ", e);
        if (!strcmp(e->code, "42501")) { /* insufficient_privilege: no REPLICATION attribute */
            const char *user = PQuser(conn);
            snprintf(e->msg, sizeof(e->msg), "role \"%s\" may not start replication", user ? user : "?");
        }
        err_line(e, errstr, errstr_size);
        PQfinish(conn);
        return e->kind == ERR_PERMANENT ? REPL_FATAL : REPL_RETRY;
    }
    /* wal2json writes commit timestamps (the commit-to-ack latency metric reads them) in the
     * session's TimeZone; pin it, and DateStyle for good measure, so that their form does not
     * depend on the server's, the role's or the database's defaults, or on options in conninfo.
     * A replication=database connection accepts SQL; set_config is one statement for both. */
    PGresult *res = PQexec(conn, "SELECT pg_catalog.set_config('datestyle', 'ISO', false), "
                                 "pg_catalog.set_config('timezone', 'UTC', false)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgconn_error(errstr, errstr_size, "cannot set datestyle and timezone: ", PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(conn);
        return REPL_RETRY;
    }
    PQclear(res);
    rs->conn = conn;
    return REPL_OK;
}

/* Quotes an identifier for replication commands (slot names are [a-z0-9_] anyway). */
static int quote_ident(PGconn *conn, const char *ident, char *out, size_t out_size) {
    char *q = PQescapeIdentifier(conn, ident, strlen(ident));
    if (!q)
        return -1;
    int ok = snprintf(out, out_size, "%s", q) < (int)out_size;
    PQfreemem(q);
    return ok ? 0 : -1;
}

repl_status_t repl_stream_slot_info(repl_stream_t *rs, const char *slot, repl_slot_info_t *info,
                                    char *errstr, size_t errstr_size) {
    memset(info, 0, sizeof(*info));
    char *lit = PQescapeLiteral(rs->conn, slot, strlen(slot));
    if (!lit) {
        pgconn_error(errstr, errstr_size, "", PQerrorMessage(rs->conn));
        return REPL_RETRY;
    }
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(plugin, ''), coalesce(database, ''), active, coalesce(active_pid, 0), "
             "coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = %s",
             lit);
    PQfreemem(lit);
    PGresult *res = PQexec(rs->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgconn_error(errstr, errstr_size, "cannot read pg_replication_slots: ", PQresultErrorMessage(res));
        PQclear(res);
        return REPL_RETRY;
    }
    if (PQntuples(res) == 1) {
        info->exists = true;
        snprintf(info->plugin, sizeof(info->plugin), "%s", PQgetvalue(res, 0, 0));
        snprintf(info->database, sizeof(info->database), "%s", PQgetvalue(res, 0, 1));
        info->active = PQgetvalue(res, 0, 2)[0] == 't';
        info->active_pid = atoi(PQgetvalue(res, 0, 3));
        lsn_parse(PQgetvalue(res, 0, 4), &info->confirmed_flush);
    }
    PQclear(res);
    return REPL_OK;
}

/* Builds the ALTER SYSTEM line that adds plugin to output_plugin_libraries: the server's
 * current entries (when it lets us read them; quotes stripped, so a list mistakenly quoted
 * as one string is repaired) plus the defaults and plugin, as an unquoted list. */
static void plugin_libraries_fix(PGconn *conn, const char *plugin, char *out, size_t out_size) {
    char list[512] = "";
    const char *defaults[] = {"pgoutput", "test_decoding", plugin, NULL};
    PGresult *res = PQexec(conn, "SHOW output_plugin_libraries");
    char cur[512] = "";
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        snprintf(cur, sizeof(cur), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    for (char *p = cur; *p; p++)
        if (*p == '"' || *p == '\'')
            *p = ' ';
    /* current entries first, then any default that is missing */
    char *save = NULL;
    for (char *tok = strtok_r(cur, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char needle[128];
        snprintf(needle, sizeof(needle), ", %s,", tok);
        char probe[520];
        snprintf(probe, sizeof(probe), ", %s,", list);
        if (strlen(tok) < 100 && !strstr(probe, needle))
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", *list ? ", " : "", tok);
    }
    for (int i = 0; defaults[i]; i++) {
        char needle[128], probe[520];
        snprintf(needle, sizeof(needle), ", %s,", defaults[i]);
        snprintf(probe, sizeof(probe), ", %s,", list);
        if (!strstr(probe, needle))
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", *list ? ", " : "", defaults[i]);
    }
    snprintf(out, out_size, "ALTER SYSTEM SET output_plugin_libraries = %s; SELECT pg_reload_conf();", list);
}

/* Maps the server's errors about the output plugin and slots to a fix; returns false when
 * msg is none of them. */
static bool explain_plugin_error(PGconn *conn, const char *plugin, const char *msg, char *errstr,
                                 size_t errstr_size) {
    if (strstr(msg, "may not be used as an output plugin")) {
        char fix[512];
        plugin_libraries_fix(conn, plugin, fix, sizeof(fix));
        snprintf(errstr, errstr_size,
                 "PostgreSQL does not allow %s as an output plugin (output_plugin_libraries): as a "
                 "superuser run: %s",
                 plugin, fix);
        return true;
    }
    if (strstr(msg, "could not access file") || strstr(msg, "could not load library")) {
        int major = PQserverVersion(conn) / 10000;
        snprintf(errstr, errstr_size,
                 "the %s output plugin is not installed on the PostgreSQL server: install it there "
                 "(Debian/Ubuntu: apt-get install postgresql-%d-%s), then restart outboxd",
                 plugin, major, plugin);
        return true;
    }
    if (strstr(msg, "wal_level")) {
        snprintf(errstr, errstr_size,
                 "PostgreSQL wal_level is not 'logical': run ALTER SYSTEM SET wal_level = logical; as a "
                 "superuser and restart PostgreSQL");
        return true;
    }
    if (strstr(msg, "all replication slots are in use")) {
        snprintf(errstr, errstr_size,
                 "all replication slots are in use: drop an unused slot (SELECT "
                 "pg_drop_replication_slot(name)) or raise max_replication_slots and restart PostgreSQL");
        return true;
    }
    if (strstr(msg, "can no longer get changes") || strstr(msg, "has been invalidated")) {
        pgconn_error(errstr, errstr_size,
                "the replication slot was invalidated (the server removed WAL it still needed; events "
                "written since the slot's last confirmed position may not have been published): drop "
                "and recreate the slot, then republish from the table (docs/operations.md, \"Slot "
                "invalidated\"). Server said: ",
                msg);
        return true;
    }
    return false;
}

/* CREATE_REPLICATION_SLOT with the given modifiers; on success *out holds the result row
 * (slot_name, consistent_point, snapshot_name, output_plugin) for the caller to PQclear. */
static repl_status_t create_slot(repl_stream_t *rs, const char *slot, const char *plugin, const char *temporary,
                                 const char *snapshot_mode, PGresult **out, char *errstr, size_t errstr_size) {
    char qslot[256], qplugin[256], sql[640];
    *out = NULL;
    if (quote_ident(rs->conn, slot, qslot, sizeof(qslot)) || quote_ident(rs->conn, plugin, qplugin, sizeof(qplugin))) {
        snprintf(errstr, errstr_size, "invalid slot or plugin name");
        return REPL_FATAL;
    }
    snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s %s LOGICAL %s %s", qslot, temporary, qplugin, snapshot_mode);
    PGresult *res = PQexec(rs->conn, sql);
    repl_status_t st = REPL_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(res);
        if (strstr(msg, "already exists")) {
            st = REPL_OK; /* another instance created it first */
        } else if (explain_plugin_error(rs->conn, plugin, msg, errstr, errstr_size)) {
            st = REPL_FATAL;
        } else {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            pgconn_error(errstr, errstr_size, "cannot create replication slot: ", msg);
            st = state && (!strncmp(state, "08", 2) || !strncmp(state, "57", 2) || !strncmp(state, "53", 2))
                     ? REPL_RETRY
                     : REPL_FATAL;
        }
    }
    if (st == REPL_OK && PQresultStatus(res) == PGRES_TUPLES_OK)
        *out = res;
    else
        PQclear(res);
    return st;
}

repl_status_t repl_stream_create_slot(repl_stream_t *rs, const char *slot, const char *plugin, char *errstr,
                                      size_t errstr_size) {
    PGresult *res;
    repl_status_t st = create_slot(rs, slot, plugin, "", "NOEXPORT_SNAPSHOT", &res, errstr, errstr_size);
    PQclear(res);
    return st;
}

repl_status_t repl_stream_create_temp_slot(repl_stream_t *rs, const char *slot, const char *plugin, char *snapshot,
                                           size_t snapshot_size, lsn_t *consistent, char *errstr,
                                           size_t errstr_size) {
    PGresult *res;
    repl_status_t st = create_slot(rs, slot, plugin, "TEMPORARY", "EXPORT_SNAPSHOT", &res, errstr, errstr_size);
    if (st != REPL_OK)
        return st;
    if (!res || PQntuples(res) != 1 || PQnfields(res) < 3 || lsn_parse(PQgetvalue(res, 0, 1), consistent) != 0) {
        snprintf(errstr, errstr_size, "unexpected answer to CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT");
        PQclear(res);
        return REPL_RETRY;
    }
    snprintf(snapshot, snapshot_size, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    return REPL_OK;
}

repl_status_t repl_stream_copy_slot(repl_stream_t *rs, const char *src, const char *dst, char *errstr,
                                    size_t errstr_size) {
    char *ls = PQescapeLiteral(rs->conn, src, strlen(src));
    char *ld = PQescapeLiteral(rs->conn, dst, strlen(dst));
    char sql[600];
    repl_status_t st = REPL_OK;
    if (!ls || !ld) {
        snprintf(errstr, errstr_size, "out of memory");
        st = REPL_FATAL;
    } else {
        snprintf(sql, sizeof(sql), "SELECT pg_copy_logical_replication_slot(%s, %s, false)", ls, ld);
        PGresult *res = PQexec(rs->conn, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            pgconn_error(errstr, errstr_size, "cannot copy the backfill slot to its permanent name: ",
                    PQresultErrorMessage(res));
            st = REPL_RETRY;
        }
        PQclear(res);
    }
    PQfreemem(ls);
    PQfreemem(ld);
    return st;
}

repl_status_t repl_stream_start(repl_stream_t *rs, const char *slot, lsn_t start, const char *const *options,
                                char *errstr, size_t errstr_size) {
    char qslot[256], lsnbuf[LSN_FMT_SIZE];
    if (quote_ident(rs->conn, slot, qslot, sizeof(qslot))) {
        snprintf(errstr, errstr_size, "invalid slot name");
        return REPL_FATAL;
    }
    /* START_REPLICATION SLOT "s" LOGICAL X/Y ("name" 'value', ...) */
    size_t cap = sizeof(qslot) + 64, len = 0;
    for (int i = 0; options && options[i]; i += 2)
        cap += strlen(options[i]) * 2 + strlen(options[i + 1]) * 2 + 16;
    char *sql = malloc(cap);
    if (!sql) {
        snprintf(errstr, errstr_size, "out of memory");
        return REPL_FATAL;
    }
    len += (size_t)snprintf(sql + len, cap - len, "START_REPLICATION SLOT %s LOGICAL %s", qslot,
                            lsn_format(start, lsnbuf));
    for (int i = 0; options && options[i]; i += 2) {
        len += (size_t)snprintf(sql + len, cap - len, "%s\"%s\" '", i == 0 ? " (" : ", ", options[i]);
        for (const char *p = options[i + 1]; *p; p++) { /* double single quotes */
            if (*p == '\'')
                sql[len++] = '\'';
            sql[len++] = *p;
        }
        sql[len++] = '\'';
        sql[len] = '\0';
    }
    if (options && options[0])
        len += (size_t)snprintf(sql + len, cap - len, ")");
    PGresult *res = PQexec(rs->conn, sql);
    free(sql);
    repl_status_t st = REPL_OK;
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        const char *msg = PQresultErrorMessage(res);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (explain_plugin_error(rs->conn, "wal2json", msg, errstr, errstr_size)) {
            st = REPL_FATAL;
        } else if (state && !strcmp(state, "55006")) {
            pgconn_error(errstr, errstr_size, "replication slot busy (another consumer is streaming it): ", msg);
            st = REPL_RETRY;
        } else {
            pgconn_error(errstr, errstr_size, "START_REPLICATION failed: ", msg);
            st = state && (!strncmp(state, "08", 2) || !strncmp(state, "57", 2) ||
                           !strncmp(state, "53", 2) || !strcmp(state, "42704"))
                     ? REPL_RETRY
                     : REPL_FATAL;
        }
    }
    PQclear(res);
    if (st == REPL_OK && PQsetnonblocking(rs->conn, 1) != 0) {
        pgconn_error(errstr, errstr_size, "cannot make the connection non-blocking: ", PQerrorMessage(rs->conn));
        st = REPL_RETRY;
    }
    return st;
}

repl_status_t repl_stream_consume(repl_stream_t *rs, char *errstr, size_t errstr_size) {
    if (!PQconsumeInput(rs->conn)) {
        pgconn_error(errstr, errstr_size, "lost the replication connection: ", PQerrorMessage(rs->conn));
        return REPL_RETRY;
    }
    return REPL_OK;
}

/* CopyBoth messages from the walsender (all integers big-endian):
 *   XLogData   'w' | int64 dataStart | int64 walEnd | int64 sendTime | payload...
 *   Keepalive  'k' | int64 walEnd | int64 sendTime | byte replyRequested
 * sendTime is microseconds since 2000-01-01. With wal2json format-version 2 each XLogData
 * payload is exactly one JSON record. */
int repl_stream_read(repl_stream_t *rs, repl_msg_t *msg, char *errstr, size_t errstr_size) {
    if (rs->buf) {
        PQfreemem(rs->buf);
        rs->buf = NULL;
    }
    char *buf = NULL;
    int n = PQgetCopyData(rs->conn, &buf, 1);
    if (n == 0)
        return 0;
    if (n == -2) {
        pgconn_error(errstr, errstr_size, "lost the replication connection: ", PQerrorMessage(rs->conn));
        return -1;
    }
    if (n == -1) { /* the server ended the COPY: fetch why */
        PGresult *res = PQgetResult(rs->conn);
        if (res && PQresultStatus(res) == PGRES_FATAL_ERROR) {
            if (!explain_plugin_error(rs->conn, "wal2json", PQresultErrorMessage(res), errstr, errstr_size))
                pgconn_error(errstr, errstr_size, "replication stream ended: ", PQresultErrorMessage(res));
        } else {
            snprintf(errstr, errstr_size, "replication stream ended by the server");
        }
        PQclear(res);
        return -1;
    }
    rs->buf = buf;
    memset(msg, 0, sizeof(*msg));
    if (buf[0] == 'w' && n >= 25) {
        msg->kind = REPL_MSG_DATA;
        msg->data_start = get_u64(buf + 1);
        msg->wal_end = get_u64(buf + 9);
        msg->send_time_us = (int64_t)get_u64(buf + 17);
        msg->data = buf + 25;
        msg->len = (size_t)n - 25;
        return 1;
    }
    if (buf[0] == 'k' && n >= 18) {
        msg->kind = REPL_MSG_KEEPALIVE;
        msg->wal_end = get_u64(buf + 1);
        msg->send_time_us = (int64_t)get_u64(buf + 9);
        msg->reply_requested = buf[17] != 0;
        return 1;
    }
    snprintf(errstr, errstr_size, "unexpected replication message type 0x%02x of %d bytes", (unsigned char)buf[0], n);
    return -1;
}

/* Standby status update, sent by us:
 *   'r' | int64 write | int64 flush | int64 apply | int64 sendTime | byte replyRequested
 * The walsender stores flush as the slot's confirmed_flush_lsn. */
repl_status_t repl_stream_send_status(repl_stream_t *rs, lsn_t write, lsn_t flush, char *errstr,
                                      size_t errstr_size) {
    char m[34];
    m[0] = 'r';
    put_u64(m + 1, write);
    put_u64(m + 9, flush);
    put_u64(m + 17, flush);
    put_u64(m + 25, (uint64_t)repl_stream_now_us());
    m[33] = 0;
    if (PQputCopyData(rs->conn, m, sizeof(m)) != 1) {
        pgconn_error(errstr, errstr_size, "cannot send status update: ", PQerrorMessage(rs->conn));
        return REPL_RETRY;
    }
    if (repl_stream_flush(rs) < 0) {
        pgconn_error(errstr, errstr_size, "cannot send status update: ", PQerrorMessage(rs->conn));
        return REPL_RETRY;
    }
    return REPL_OK;
}

int repl_stream_flush(repl_stream_t *rs) { return rs->conn ? PQflush(rs->conn) : -1; }
