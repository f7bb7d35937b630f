/* cmd_status.c - `outboxd status`: the replication slot's position, lag, WAL retention and the
 * process streaming it, in readable lines or JSON, over an ordinary connection. */
#include "cmd_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmdout.h"
#include "other_slots.h"
#include "log.h"
#include "pg_failover.h"
#include "pgconn.h"
#include "progress.h"

void status_format_bytes(long long n, char *buf, size_t buf_size) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    long long a = n < 0 ? -n : n;
    if (a < 1024) {
        snprintf(buf, buf_size, "%lld B", n);
        return;
    }
    double v = (double)a;
    int u = -1;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, buf_size, "%s%.1f %s", n < 0 ? "-" : "", v, units[u]);
}

static const char *val(const PGresult *res, int col) {
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

static json_t *jint(const char *s) { return s ? json_integer(strtoll(s, NULL, 10)) : json_null(); }

/* "56 bytes", "16992 bytes (16.6 KiB)", or "-" for NULL. */
static void bytes_text(const char *s, char *buf, size_t size) {
    if (!s) {
        snprintf(buf, size, "-");
        return;
    }
    long long n = strtoll(s, NULL, 10);
    char h[32];
    status_format_bytes(n, h, sizeof(h));
    if (n < 1024 && n > -1024)
        snprintf(buf, size, "%lld bytes", n);
    else
        snprintf(buf, size, "%lld bytes (%s)", n, h);
}

/* The walsender's state, connection time and last status update, the parts that are known
 * joined by ", ". pg_stat_replication shows state and reply_time only to superusers and
 * members of pg_read_all_stats (the documented outboxd role is neither): the line then says
 * so instead of leaving gaps. */
static void print_stream_line(FILE *out, const char *state, const char *since, const char *age, const char *role) {
    char line[512] = "";
    size_t o = 0;
    if (state)
        o += (size_t)snprintf(line + o, sizeof(line) - o, "state %s", state);
    if (since && o < sizeof(line))
        o += (size_t)snprintf(line + o, sizeof(line) - o, "%sconnected since %s", o ? ", " : "", since);
    if (age && o < sizeof(line))
        o += (size_t)snprintf(line + o, sizeof(line) - o, "%slast status update %s s ago", o ? ", " : "", age);
    if (!state && !age && o < sizeof(line))
        snprintf(line + o, sizeof(line) - o,
                 "%sstate and last status update not shown: role \"%s\" may not read them (as a superuser: GRANT "
                 "pg_read_all_stats TO \"%s\";)",
                 o ? "; " : "", role, role);
    cmdout_line(out, "", "%s", line);
}

static void print_text(FILE *out, const char *slot, const PGresult *res, const char *role) {
    const char *type = val(res, STATUS_C_TYPE), *plugin = val(res, STATUS_C_PLUGIN), *db = val(res, STATUS_C_DATABASE);
    char b1[96], b2[96];
    cmdout_line(out, "slot", "%s (%s%s%s%s%s%s)", slot, type ? type : "?", plugin ? ", plugin " : "",
                plugin ? plugin : "", db ? ", database " : "", db ? db : "",
                !strcmp(val(res, STATUS_C_TEMPORARY), "t") ? ", temporary" : "");
    if (!strcmp(val(res, STATUS_C_ACTIVE), "t")) {
        const char *app = val(res, STATUS_C_APP), *addr = val(res, STATUS_C_CLIENT_ADDR),
                   *port = val(res, STATUS_C_CLIENT_PORT);
        const char *since = val(res, STATUS_C_BACKEND_START), *age = val(res, STATUS_C_REPLY_AGE),
                   *state = val(res, STATUS_C_STATE);
        bool visible = !strcmp(val(res, STATUS_C_SENDER_VISIBLE), "t");
        char client[160];
        if (addr)
            snprintf(client, sizeof(client), "%s%s%s", addr, port ? ":" : "", port ? port : "");
        else
            snprintf(client, sizeof(client), "%s", visible ? "local socket" : "? (needs pg_read_all_stats)");
        cmdout_line(out, "active", "yes: walsender PID %s, application_name %s, client %s",
                    val(res, STATUS_C_ACTIVE_PID), app ? app : (visible ? "\"\"" : "?"), client);
        print_stream_line(out, state, since, age, role);
    } else {
        cmdout_line(out, "active", "no: nothing streams this slot; WAL accumulates until outboxd runs");
    }
    const char *cur = val(res, STATUS_C_CURRENT);
    cmdout_line(out, "confirmed_flush_lsn", "%s (outboxd's confirmed position)",
                val(res, STATUS_C_CONFIRMED) ? val(res, STATUS_C_CONFIRMED) : "-");
    cmdout_line(out, "restart_lsn", "%s (oldest WAL kept for the slot)",
                val(res, STATUS_C_RESTART) ? val(res, STATUS_C_RESTART) : "-");
    cmdout_line(out, "current WAL", "%s (%s)", cur ? cur : "-",
                !strcmp(val(res, STATUS_C_RECOVERY), "t") ? "pg_last_wal_replay_lsn(): a standby"
                                                          : "pg_current_wal_lsn()");
    bytes_text(val(res, STATUS_C_LAG), b1, sizeof(b1));
    cmdout_line(out, "lag", "%s: current WAL - confirmed_flush_lsn, not yet confirmed", b1);
    bytes_text(val(res, STATUS_C_RETAINED), b2, sizeof(b2));
    cmdout_line(out, "retained WAL", "%s: current WAL - restart_lsn, kept on disk for the slot", b2);
    const char *ws = val(res, STATUS_C_WAL_STATUS);
    cmdout_line(out, "wal_status", "%s%s", ws ? ws : "-",
                !ws                         ? " (PostgreSQL 13 or later)"
                : !strcmp(ws, "lost")       ? ": the slot is invalidated, see docs/operations.md \"Slot lost\""
                : !strcmp(ws, "unreserved") ? ": WAL beyond max_slot_wal_keep_size; the slot is about to be invalidated"
                : !strcmp(ws, "extended")   ? ": WAL beyond max_wal_size, within max_slot_wal_keep_size"
                                            : "");
    const char *safe = val(res, STATUS_C_SAFE_WAL_SIZE), *keep = val(res, STATUS_C_KEEP_SIZE);
    if (safe) {
        bytes_text(safe, b1, sizeof(b1));
        cmdout_line(out, "safe_wal_size",
                    "%s: WAL that may still be written before the slot is invalidated "
                    "(max_slot_wal_keep_size = %s)",
                    b1, keep ? keep : "?");
    } else {
        cmdout_line(out, "safe_wal_size", "unlimited (max_slot_wal_keep_size = %s)", keep ? keep : "-1");
    }
}

static json_t *status_json(const char *slot, const PGresult *res) {
    json_t *o = json_object();
    json_object_set_new(o, "slot", cmdout_jstr(slot));
    json_object_set_new(o, "exists", json_true());
    json_object_set_new(o, "slot_type", cmdout_jstr(val(res, STATUS_C_TYPE)));
    json_object_set_new(o, "plugin", cmdout_jstr(val(res, STATUS_C_PLUGIN)));
    json_object_set_new(o, "database", cmdout_jstr(val(res, STATUS_C_DATABASE)));
    json_object_set_new(o, "temporary", json_boolean(!strcmp(val(res, STATUS_C_TEMPORARY), "t")));
    json_object_set_new(o, "active", json_boolean(!strcmp(val(res, STATUS_C_ACTIVE), "t")));
    json_object_set_new(o, "active_pid", jint(val(res, STATUS_C_ACTIVE_PID)));
    json_object_set_new(o, "application_name", cmdout_jstr(val(res, STATUS_C_APP)));
    json_object_set_new(o, "client_addr", cmdout_jstr(val(res, STATUS_C_CLIENT_ADDR)));
    json_object_set_new(o, "client_port", jint(val(res, STATUS_C_CLIENT_PORT)));
    json_object_set_new(o, "backend_start", cmdout_jstr(val(res, STATUS_C_BACKEND_START)));
    json_object_set_new(o, "state", cmdout_jstr(val(res, STATUS_C_STATE)));
    json_object_set_new(o, "reply_age_s",
                        val(res, STATUS_C_REPLY_AGE) ? json_real(strtod(val(res, STATUS_C_REPLY_AGE), NULL))
                                                     : json_null());
    json_object_set_new(o, "confirmed_flush_lsn", cmdout_jstr(val(res, STATUS_C_CONFIRMED)));
    json_object_set_new(o, "restart_lsn", cmdout_jstr(val(res, STATUS_C_RESTART)));
    json_object_set_new(o, "current_wal_lsn", cmdout_jstr(val(res, STATUS_C_CURRENT)));
    json_object_set_new(o, "lag_bytes", jint(val(res, STATUS_C_LAG)));
    json_object_set_new(o, "retained_bytes", jint(val(res, STATUS_C_RETAINED)));
    json_object_set_new(o, "wal_status", cmdout_jstr(val(res, STATUS_C_WAL_STATUS)));
    json_object_set_new(o, "safe_wal_size", jint(val(res, STATUS_C_SAFE_WAL_SIZE)));
    json_object_set_new(o, "max_slot_wal_keep_size", cmdout_jstr(val(res, STATUS_C_KEEP_SIZE)));
    return o;
}

PGresult *status_query(PGconn *conn, const char *slot) {
    int v = PQserverVersion(conn);
    /* wal_status, safe_wal_size and max_slot_wal_keep_size: PostgreSQL 13; reply_time: 12. On a
     * standby, pg_current_wal_lsn() fails: use the replay position there. Simple protocol (an
     * escaped literal, no $1): check may run it on a replication=database connection. */
    char *lit = PQescapeLiteral(conn, slot, strlen(slot));
    if (!lit)
        return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
    char sql[2400];
    snprintf(sql, sizeof(sql),
             "SELECT s.slot_type, s.plugin, s.database, s.temporary, s.active, s.active_pid, "
             "s.confirmed_flush_lsn::text, s.restart_lsn::text, w.lsn::text, "
             "pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn)::bigint, pg_wal_lsn_diff(w.lsn, s.restart_lsn)::bigint, "
             "%s, r.application_name, host(r.client_addr), r.client_port, "
             "to_char(r.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
             "%s, r.state, %s, w.recovery, r.pid IS NOT NULL AND r.state IS NOT NULL "
             "FROM pg_replication_slots s "
             "CROSS JOIN (SELECT pg_is_in_recovery() AS recovery, CASE WHEN pg_is_in_recovery() "
             "THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn) w "
             "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = %s",
             v >= 130000 ? "s.wal_status, s.safe_wal_size" : "NULL::text, NULL::bigint",
             v >= 120000 ? "round(extract(epoch FROM clock_timestamp() - r.reply_time)::numeric, 1)::text"
                         : "NULL::text",
             v >= 130000 ? "current_setting('max_slot_wal_keep_size')" : "NULL::text", lit);
    PQfreemem(lit);
    return PQexec(conn, sql);
}

/* What status adds to the slot: the progress record, and synchronized_standby_slots holding
 * decoding back (PostgreSQL 17). Into o (JSON) or as text lines. */
static void print_failover(FILE *out, json_t *o, PGconn *conn, const relay_options_t *opts) {
    err_t e;
    char names[512], fix[1024], lb[LSN_FMT_SIZE];
    progress_record_t rec;
    int found = opts->progress_table && *opts->progress_table
                    ? progress_load(conn, opts->progress_table, opts->slot, &rec, &e)
                    : -2;
    if (o) {
        json_t *p = json_null();
        if (found == 1)
            p = json_pack("{s:s, s:i, s:s, s:I, s:s, s:s}", "system_identifier", rec.system_id, "timeline",
                          (int)rec.timeline, "confirmed_lsn", lsn_format(rec.confirmed, lb), "horizon_xid",
                          (json_int_t)rec.horizon, "horizon_time", rec.horizon_time, "updated_at", rec.updated_at);
        json_object_set_new(o, "progress", p ? p : json_null());
    } else if (found == 1) {
        cmdout_line(out, "progress record", "published up to %s (timeline %u), written %s",
                    lsn_format(rec.confirmed, lb), (unsigned)rec.timeline, rec.updated_at);
    } else if (found == 0) {
        cmdout_line(out, "progress record", "none yet for this slot (%s)", opts->progress_table);
    } else if (found == -1) {
        cmdout_line(out, "progress record", "cannot read it: %s", e.msg);
    }
    int blocking = pg_failover_blocking_standby_slots(conn, names, sizeof(names), &e);
    if (blocking > 0)
        pg_failover_blocking_fix(names, fix, sizeof(fix));
    if (o) {
        json_object_set_new(o, "standby_slots_blocking", blocking > 0 ? json_string(names) : json_null());
        if (blocking > 0)
            json_object_set_new(o, "standby_slots_fix", json_string(fix));
    } else if (blocking > 0) {
        cmdout_line(out, "held back by", "synchronized_standby_slots (%s): logical decoding waits -- fix: %s", names,
                    fix);
    }
}

/* The wal2json slots nothing streams besides this one (other_slots.h): a line, or
 * "other_inactive_slots" in o (JSON); nothing when there are none. */
static void print_other_slots(FILE *out, json_t *o, PGconn *conn, const char *slot) {
    other_slot_t s[OTHER_SLOTS_MAX];
    size_t total = 0;
    err_t e;
    int n = other_slots_read(conn, slot, s, OTHER_SLOTS_MAX, &total, &e);
    char list[2048], drop[128];
    if (o) {
        json_t *a = n < 0 ? json_null() : json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(
                a, json_pack("{s:s, s:s, s:o, s:o, s:s}", "slot", s[i].name, "database", s[i].database,
                             "retained_bytes", s[i].has_retained ? json_integer(s[i].retained) : json_null(),
                             "wal_status", s[i].wal_status[0] ? json_string(s[i].wal_status) : json_null(), "drop",
                             other_slots_drop_statement(&s[i], drop, sizeof(drop))));
        json_object_set_new(o, "other_inactive_slots", a);
        return;
    }
    if (n < 0) {
        cmdout_line(out, "other slots", "cannot tell: %s", e.msg);
    } else if (n > 0) {
        cmdout_line(out, "other slots", "%zu inactive wal2json slot%s besides \"%s\" keep%s WAL: %s", total,
                    total == 1 ? "" : "s", slot, total == 1 ? "s" : "",
                    other_slots_list(s, (size_t)n, total, list, sizeof(list)));
        cmdout_line(out, "", "drop each that no outboxd uses any more: %s",
                    other_slots_drop_statement(&s[0], drop, sizeof(drop)));
    }
}

int status_run(const relay_options_t *opts, bool json, FILE *out) {
    char err[1024];
    err_t e;
    PGconn *conn = pgconn_connect(opts->conninfo, "outboxd status", &e);
    if (!conn) {
        log_error("%s", err_line(&e, err, sizeof(err)));
        return STATUS_EXIT_ERROR;
    }
    PGresult *res = status_query(conn, opts->slot);
    int rc = STATUS_EXIT_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != STATUS_C_COUNT) {
        pgconn_error(err, sizeof(err), "cannot read pg_replication_slots: ", PQresultErrorMessage(res));
        log_error("%s", err);
        rc = STATUS_EXIT_ERROR;
    } else if (PQntuples(res) == 0) {
        char detail[2600], fix[1024], list[2048] = "";
        other_slot_t s[OTHER_SLOTS_MAX];
        size_t total = 0;
        int n = other_slots_read(conn, opts->slot, s, OTHER_SLOTS_MAX, &total, &e);
        if (n > 0) /* a slot made under another name or in another database? */
            other_slots_list(s, (size_t)n, total, list, sizeof(list));
        snprintf(detail, sizeof(detail), "replication slot \"%s\" does not exist on this server%s%s", opts->slot,
                 list[0] ? "; inactive wal2json slots on it: " : "", list);
        snprintf(fix, sizeof(fix),
                 "%screate it with SELECT pg_create_logical_replication_slot('%s', '%s'); in the outbox's "
                 "database. If it existed before, it was lost: see docs/operations.md \"Slot lost\"",
                 opts->create_slot ? "outboxd creates it when it starts (postgres.slot.create = true), or " : "",
                 opts->slot, plugin_name(opts->plugin));
        cmdout_missing(out, json, "slot", opts->slot, detail, fix);
        rc = STATUS_EXIT_NO_SLOT;
    } else if (json) {
        json_t *o = status_json(opts->slot, res);
        print_failover(out, o, conn, opts);
        print_other_slots(out, o, conn, opts->slot);
        cmdout_print_json(out, o);
    } else {
        print_text(out, opts->slot, res, PQuser(conn));
        print_failover(out, NULL, conn, opts);
        print_other_slots(out, NULL, conn, opts->slot);
    }
    fflush(out);
    PQclear(res);
    PQfinish(conn);
    return rc;
}
