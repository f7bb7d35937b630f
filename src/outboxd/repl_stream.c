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
    err_t last_err;    /* why the last slot or stream command failed */
    char slot[128];    /* the slot of the last START_REPLICATION, to ask about when the stream ends */
    lsn_t identified;  /* IDENTIFY_SYSTEM's xlogpos (the server's flush position then), 0 = unknown */
    char plugin[32];   /* its output plugin, for the fixes of its failures */
};

/* Seconds between 1970-01-01 and 2000-01-01, the replication protocol's epoch. */
#define PG_EPOCH_OFFSET_S 946684800LL

/* SQLSTATEs (PostgreSQL's errcodes.txt) that decide something here. */
#define SQLSTATE_DUPLICATE_OBJECT "42710"       /* CREATE_REPLICATION_SLOT: the slot exists */
#define SQLSTATE_UNDEFINED_OBJECT "42704"       /* START_REPLICATION: no such slot */
#define SQLSTATE_INSUFFICIENT_PRIVILEGE "42501" /* the library is not in output_plugin_libraries */
#define SQLSTATE_UNDEFINED_FILE "58P01"         /* the plugin's library file does not exist */
#define SQLSTATE_CONFIG_LIMIT "53400"           /* configuration_limit_exceeded: all slots in use */
#define SQLSTATE_OBJECT_IN_USE "55006"          /* START_REPLICATION: another process streams the slot */
#define SQLSTATE_NOT_IN_PREREQ_STATE "55000"    /* object_not_in_prerequisite_state: see explain_failure */

/* Microseconds since 2000-01-01 (the protocol's clock) for now. */
static int64_t now_us(void) {
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

const err_t *repl_stream_last_error(const repl_stream_t *rs) { return &rs->last_err; }

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

repl_status_t repl_stream_slot_info(repl_stream_t *rs, const char *slot, repl_slot_info_t *info, char *errstr,
                                    size_t errstr_size) {
    memset(info, 0, sizeof(*info));
    char *lit = PQescapeLiteral(rs->conn, slot, strlen(slot));
    if (!lit) {
        pgconn_error(errstr, errstr_size, "", PQerrorMessage(rs->conn));
        return REPL_RETRY;
    }
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(plugin, ''), coalesce(database, ''), active, coalesce(active_pid, 0), "
             "coalesce(confirmed_flush_lsn::text, ''), coalesce(wal_status = 'lost', false), %s "
             "FROM pg_replication_slots WHERE slot_name = %s",
             PQserverVersion(rs->conn) >= 170000 ? "failover" : "false", lit);
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
        info->lost = PQgetvalue(res, 0, 5)[0] == 't';
        info->failover = PQgetvalue(res, 0, 6)[0] == 't';
    }
    PQclear(res);
    return REPL_OK;
}

/* Splits a list setting as SHOW prints it ("pgoutput, test_decoding") in place into at most
 * max entries; quotes go (a list mistakenly set as one quoted string keeps them). Returns how
 * many. */
static size_t list_split(char *list, char **items, size_t max) {
    for (char *p = list; *p; p++)
        if (*p == '"' || *p == '\'')
            *p = ' ';
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(list, ", ", &save); tok && n < max; tok = strtok_r(NULL, ", ", &save))
        items[n++] = tok;
    return n;
}

static bool list_has(char *const *items, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(items[i], name))
            return true;
    return false;
}

/* The server's output_plugin_libraries into cur (entries in items, *n of them); false when
 * the server does not have the setting (before 15.20, 16.15, 17.11, 18.6) or would not say. */
static bool plugin_libraries(PGconn *conn, char *cur, size_t cur_size, char **items, size_t max, size_t *n) {
    PGresult *res = PQexec(conn, "SHOW output_plugin_libraries");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    snprintf(cur, cur_size, "%s", ok ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    *n = list_split(cur, items, max);
    return ok;
}

/* Builds the ALTER SYSTEM line that adds plugin to output_plugin_libraries: the server's
 * current entries (when it lets us read them; quotes stripped, so a list mistakenly quoted
 * as one string is repaired) plus the defaults and plugin, as an unquoted list. */
static void plugin_libraries_fix(PGconn *conn, const char *plugin, char *out, size_t out_size) {
    const char *defaults[] = {"pgoutput", "test_decoding", plugin, NULL};
    char cur[512], list[512] = "", *items[64], *have[64 + 3];
    size_t n, nhave = 0;
    plugin_libraries(conn, cur, sizeof(cur), items, 64, &n);
    /* current entries first, then any default that is missing */
    for (size_t i = 0; i < n; i++)
        if (strlen(items[i]) < 100 && !list_has(have, nhave, items[i]))
            have[nhave++] = items[i];
    for (int i = 0; defaults[i]; i++)
        if (!list_has(have, nhave, defaults[i]))
            have[nhave++] = (char *)defaults[i];
    for (size_t i = 0; i < nhave; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", have[i]);
    snprintf(out, out_size, "ALTER SYSTEM SET output_plugin_libraries = %s; SELECT pg_reload_conf();", list);
}

/* Whether the server's output_plugin_libraries lets plugin load; true when it has no such
 * setting (then no 42501 can come from it). */
static bool plugin_allowed(PGconn *conn, const char *plugin) {
    char cur[512], *items[64];
    size_t n;
    return !plugin_libraries(conn, cur, sizeof(cur), items, 64, &n) || list_has(items, n, plugin);
}

static bool wal_level_logical(PGconn *conn) {
    PGresult *res = PQexec(conn, "SHOW wal_level");
    bool logical = PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
                   !strcmp(PQgetvalue(res, 0, 0), "logical"); /* unknown: not the cause we can name */
    PQclear(res);
    return logical;
}

static bool slot_lost(repl_stream_t *rs, const char *slot) {
    repl_slot_info_t info;
    char err[256];
    return *slot && repl_stream_slot_info(rs, slot, &info, err, sizeof(err)) == REPL_OK && info.lost;
}

/* The command whose failure is explained: one SQLSTATE means different things after each. */
typedef enum {
    CMD_CREATE_SLOT, /* CREATE_REPLICATION_SLOT: loads the output plugin */
    CMD_START,       /* START_REPLICATION: loads the output plugin */
    CMD_STREAM       /* the server ended a running stream with an error */
} command_t;

static bool retryable_class(const char *code) {
    /* connection exception, operator intervention (shutdown, restart), insufficient resources */
    return !strncmp(code, "08", 2) || !strncmp(code, "57", 2) || !strncmp(code, "53", 2);
}

/* Classifies the failed result res of cmd by its SQLSTATE and writes the message (and the fix,
 * where there is one) to errstr. Where a SQLSTATE covers several situations, the server is asked
 * about its state instead of reading the message (whose words follow lc_messages):
 *   42501  on a replication connection (the REPLICATION attribute was checked when it opened)
 *          this is output_plugin_libraries refusing the library (PostgreSQL 15.20, 16.15, 17.11,
 *          18.6: StartupDecodingContext), or the library file being unreadable (EACCES): told
 *          apart by whether the setting lists the plugin.
 *   55000  object_not_in_prerequisite_state is an invalidated slot at START_REPLICATION ("cannot
 *          read from logical replication slot": wal_status = 'lost'), a wal_level below logical
 *          (CheckLogicalDecodingRequirements, CheckSlotRequirements), max_replication_slots = 0,
 *          a slot of another database or a physical slot (the slot policy checks both before),
 *          a server in recovery: told apart by wal_status and SHOW wal_level; the others keep
 *          the server's own message.
 * Not identifiable by SQLSTATE: a plugin library that exists but does not load ("could not load
 * library": errcode_for_file_access after dlopen, so XX000 internal_error or whatever errno
 * was): it gets the server's own message, not the "install it" fix. */
static repl_status_t explain(repl_stream_t *rs, command_t cmd, const char *code, const char *msg, const char *plugin,
                             err_t *e) {
    bool loads_plugin = cmd != CMD_STREAM;
    if (loads_plugin && !strcmp(code, SQLSTATE_INSUFFICIENT_PRIVILEGE) && !plugin_allowed(rs->conn, plugin)) {
        char fix[512];
        plugin_libraries_fix(rs->conn, plugin, fix, sizeof(fix));
        char run[600];
        snprintf(run, sizeof(run), "as a superuser run: %s", fix);
        err_set(e, ERR_PERMANENT, code, run,
                "PostgreSQL does not allow %s as an output plugin (output_plugin_libraries)", plugin);
        return REPL_FATAL;
    }
    if (loads_plugin && (!strcmp(code, SQLSTATE_UNDEFINED_FILE) || !strcmp(code, SQLSTATE_INSUFFICIENT_PRIVILEGE))) {
        int major = PQserverVersion(rs->conn) / 10000;
        char fix[256];
        snprintf(fix, sizeof(fix),
                 "install it there (Debian/Ubuntu: apt-get install postgresql-%d-%s), then restart outboxd", major,
                 plugin);
        err_set(e, ERR_PERMANENT, code, fix, "the %s output plugin is not installed on the PostgreSQL server", plugin);
        return REPL_FATAL;
    }
    if (cmd == CMD_CREATE_SLOT && !strcmp(code, SQLSTATE_CONFIG_LIMIT)) {
        err_set(e, ERR_PERMANENT, code,
                "drop an unused slot (SELECT pg_drop_replication_slot(name)) or raise max_replication_slots and "
                "restart PostgreSQL",
                "all replication slots are in use");
        return REPL_NO_FREE_SLOT;
    }
    if (!strcmp(code, SQLSTATE_NOT_IN_PREREQ_STATE)) {
        if (cmd != CMD_CREATE_SLOT && slot_lost(rs, rs->slot)) {
            err_set(e, ERR_PERMANENT, code,
                    "drop and recreate the slot, then republish from the table (docs/operations.md, \"Slot "
                    "lost\")",
                    "the replication slot was invalidated (the server removed WAL it still needed; events written "
                    "since the slot's last confirmed position may not have been published). Server said: %s",
                    msg);
            return REPL_SLOT_INVALIDATED;
        }
        if (loads_plugin && !wal_level_logical(rs->conn)) {
            err_set(e, ERR_PERMANENT, code,
                    "run ALTER SYSTEM SET wal_level = logical; as a superuser and restart PostgreSQL",
                    "PostgreSQL wal_level is not 'logical'");
            return REPL_FATAL;
        }
    }
    switch (cmd) {
    case CMD_CREATE_SLOT:
        err_set(e, retryable_class(code) ? ERR_TRANSIENT : ERR_PERMANENT, code, NULL,
                "cannot create replication slot: %s", msg);
        return retryable_class(code) ? REPL_RETRY : REPL_FATAL;
    case CMD_START:
        if (!strcmp(code, SQLSTATE_OBJECT_IN_USE)) {
            err_set(e, ERR_TRANSIENT, code, NULL, "replication slot busy (another consumer is streaming it): %s", msg);
            return REPL_SLOT_BUSY;
        }
        err_set(e, retryable_class(code) ? ERR_TRANSIENT : ERR_PERMANENT, code, NULL, "START_REPLICATION failed: %s",
                msg);
        if (!strcmp(code, SQLSTATE_UNDEFINED_OBJECT))
            return REPL_SLOT_MISSING;
        return retryable_class(code) ? REPL_RETRY : REPL_FATAL;
    case CMD_STREAM:
        break;
    }
    err_set(e, ERR_TRANSIENT, code, NULL, "replication stream ended: %s", msg);
    return REPL_RETRY;
}

static repl_status_t explain_failure(repl_stream_t *rs, command_t cmd, const PGresult *res, const char *plugin,
                                     char *errstr, size_t errstr_size) {
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    char msg[768];
    pgconn_error(msg, sizeof(msg), "", PQresultErrorMessage(res));
    if (!code)
        code = "";
    err_t *e = &rs->last_err;
    repl_status_t st = explain(rs, cmd, code, msg, plugin, e);
    err_line(e, errstr, errstr_size);
    return st;
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
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (code && !strcmp(code, SQLSTATE_DUPLICATE_OBJECT))
            st = REPL_OK; /* another instance created it first */
        else
            st = explain_failure(rs, CMD_CREATE_SLOT, res, plugin, errstr, errstr_size);
    }
    if (st == REPL_OK && PQresultStatus(res) == PGRES_TUPLES_OK)
        *out = res;
    else
        PQclear(res);
    return st;
}

repl_status_t repl_stream_identify(repl_stream_t *rs, char *system_id, size_t system_id_size, uint32_t *timeline,
                                   char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(rs->conn, "IDENTIFY_SYSTEM");
    repl_status_t st = REPL_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 2) {
        pgconn_error(errstr, errstr_size, "IDENTIFY_SYSTEM failed: ", PQresultErrorMessage(res));
        st = REPL_RETRY;
    } else {
        snprintf(system_id, system_id_size, "%s", PQgetvalue(res, 0, 0));
        *timeline = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
        if (PQnfields(res) < 3 || lsn_parse(PQgetvalue(res, 0, 2), &rs->identified) != 0)
            rs->identified = 0;
    }
    PQclear(res);
    return st;
}

lsn_t repl_stream_identified_lsn(const repl_stream_t *rs) { return rs->identified; }

repl_status_t repl_stream_set_failover(repl_stream_t *rs, const char *slot, char *errstr, size_t errstr_size) {
    char qslot[256], sql[300];
    if (quote_ident(rs->conn, slot, qslot, sizeof(qslot))) {
        snprintf(errstr, errstr_size, "invalid slot name");
        return REPL_FATAL;
    }
    snprintf(sql, sizeof(sql), "ALTER_REPLICATION_SLOT %s (FAILOVER true)", qslot);
    PGresult *res = PQexec(rs->conn, sql);
    repl_status_t st = REPL_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        pgconn_error(errstr, errstr_size,
                     "cannot make the slot a failover slot (postgres.slot.failover): ", PQresultErrorMessage(res));
        st = code && !strncmp(code, "42", 2) ? REPL_FATAL : REPL_RETRY;
    }
    PQclear(res);
    return st;
}

repl_status_t repl_stream_drop_slot(repl_stream_t *rs, const char *slot, char *errstr, size_t errstr_size) {
    char qslot[256], sql[300];
    if (quote_ident(rs->conn, slot, qslot, sizeof(qslot))) {
        snprintf(errstr, errstr_size, "invalid slot name");
        return REPL_FATAL;
    }
    snprintf(sql, sizeof(sql), "DROP_REPLICATION_SLOT %s", qslot);
    PGresult *res = PQexec(rs->conn, sql);
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    repl_status_t st = REPL_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
        !(code && !strcmp(code, SQLSTATE_UNDEFINED_OBJECT))) {
        pgconn_error(errstr, errstr_size, "cannot drop the lost replication slot: ", PQresultErrorMessage(res));
        st = code && !strcmp(code, SQLSTATE_OBJECT_IN_USE) ? REPL_SLOT_BUSY : REPL_RETRY;
    }
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
                                           size_t snapshot_size, lsn_t *consistent, char *errstr, size_t errstr_size) {
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
            pgconn_error(errstr, errstr_size,
                         "cannot copy the backfill slot to its permanent name: ", PQresultErrorMessage(res));
            st = REPL_RETRY;
        }
        PQclear(res);
    }
    PQfreemem(ls);
    PQfreemem(ld);
    return st;
}

repl_status_t repl_stream_start(repl_stream_t *rs, const char *slot, const char *plugin, lsn_t start,
                                const char *const *options, char *errstr, size_t errstr_size) {
    char qslot[256], lsnbuf[LSN_FMT_SIZE];
    if (quote_ident(rs->conn, slot, qslot, sizeof(qslot))) {
        snprintf(errstr, errstr_size, "invalid slot name");
        return REPL_FATAL;
    }
    snprintf(rs->slot, sizeof(rs->slot), "%s", slot);
    snprintf(rs->plugin, sizeof(rs->plugin), "%s", plugin);
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
    if (PQresultStatus(res) != PGRES_COPY_BOTH)
        st = explain_failure(rs, CMD_START, res, rs->plugin, errstr, errstr_size);
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
 * sendTime is microseconds since 2000-01-01. Each XLogData payload is exactly one output
 * plugin message: a wal2json format-version 2 record, or one pgoutput message. */
int repl_stream_read(repl_stream_t *rs, repl_msg_t *msg, repl_status_t *why, char *errstr, size_t errstr_size) {
    *why = REPL_RETRY;
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
            *why = explain_failure(rs, CMD_STREAM, res, rs->plugin, errstr, errstr_size);
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
repl_status_t repl_stream_send_status(repl_stream_t *rs, lsn_t write, lsn_t flush, char *errstr, size_t errstr_size) {
    char m[34];
    m[0] = 'r';
    put_u64(m + 1, write);
    put_u64(m + 9, flush);
    put_u64(m + 17, flush);
    put_u64(m + 25, (uint64_t)now_us());
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
