/* pg_failover.c - reads what PostgreSQL 17+ failover slots need from the primary and from
 * the standbys listed in a multi-host conninfo. */
#include "pg_failover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"

int pg_failover_blocking_standby_slots(PGconn *conn, char *names, size_t size, err_t *e) {
    if (size)
        names[0] = '\0';
    if (PQserverVersion(conn) < PG_FAILOVER_MIN_VERSION)
        return 0;
    /* Each name of the setting, and whether a live walsender streams that physical slot. */
    PGresult *res = PQexec(conn, "SELECT n FROM unnest(string_to_array(replace(current_setting("
                                 "'synchronized_standby_slots'), ' ', ''), ',')) AS n "
                                 "LEFT JOIN pg_replication_slots s ON s.slot_name = n AND s.slot_type = 'physical' "
                                 "WHERE n <> '' AND (s.slot_name IS NULL OR NOT s.active "
                                 "OR s.invalidation_reason IS NOT NULL) ORDER BY n");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        err_set(e, ERR_TRANSIENT, PQresultErrorField(res, PG_DIAG_SQLSTATE), NULL,
                "cannot read synchronized_standby_slots: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    size_t used = 0;
    for (int i = 0; i < n && used < size; i++) {
        int w = snprintf(names + used, size - used, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
        used += w > 0 ? (size_t)w : 0;
    }
    PQclear(res);
    return n;
}

const char *pg_failover_blocking_fix(const char *names, char *buf, size_t size) {
    snprintf(buf, size,
             "logical decoding waits until the standby slot(s) %s confirm: start the standby that streams them, or, "
             "if no standby uses them (e.g. this server was promoted and inherited the old primary's setting), "
             "run ALTER SYSTEM SET synchronized_standby_slots = ''; SELECT pg_reload_conf(); as a superuser",
             names);
    return buf;
}

/* Splits a comma-separated libpq list value into at most max items. */
static int split_list(const char *v, char items[][128], int max) {
    int n = 0;
    const char *p = v ? v : "";
    do {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n < max)
            snprintf(items[n++], 128, "%.*s", (int)len, p);
        p = comma ? comma + 1 : NULL;
    } while (p);
    return n;
}

static bool show_on(PGconn *conn, const char *setting) {
    const char *params[1] = {setting};
    PGresult *res = PQexecParams(conn, "SELECT current_setting($1, true)", 1, NULL, params, NULL, NULL, 0);
    bool on = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "on");
    PQclear(res);
    return on;
}

/* Fills h from a connection to one standby. */
static void inspect_standby(PGconn *conn, const char *slot, pg_failover_host_t *h) {
    h->server_version = PQserverVersion(conn);
    h->sync_replication_slots = show_on(conn, "sync_replication_slots");
    h->hot_standby_feedback = show_on(conn, "hot_standby_feedback");
    if (h->server_version >= PG_FAILOVER_MIN_VERSION) {
        const char *params[1] = {slot};
        PGresult *res = PQexecParams(conn,
                                     "SELECT synced, invalidation_reason IS NOT NULL FROM pg_replication_slots "
                                     "WHERE slot_name = $1",
                                     1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            h->slot_present = true;
            h->slot_synced = !strcmp(PQgetvalue(res, 0, 0), "t");
            h->slot_invalidated = !strcmp(PQgetvalue(res, 0, 1), "t");
        }
        PQclear(res);
    }
    if (h->server_version < PG_FAILOVER_MIN_VERSION) {
        snprintf(h->problem, sizeof(h->problem), "PostgreSQL %d cannot sync slots (17 or later can)",
                 h->server_version / 10000);
        snprintf(h->fix, sizeof(h->fix),
                 "outboxd recovers the slot from its progress record after a promotion "
                 "(progress.table); upgrade to PostgreSQL 17 for failover slots");
    } else if (!h->sync_replication_slots || !h->hot_standby_feedback) {
        snprintf(h->problem, sizeof(h->problem), "%s%s%s is off",
                 !h->sync_replication_slots ? "sync_replication_slots" : "",
                 !h->sync_replication_slots && !h->hot_standby_feedback ? " and " : "",
                 !h->hot_standby_feedback ? "hot_standby_feedback" : "");
        snprintf(h->fix, sizeof(h->fix),
                 "on the standby: ALTER SYSTEM SET sync_replication_slots = on; ALTER SYSTEM SET hot_standby_feedback "
                 "= on; SELECT pg_reload_conf(); (it also needs primary_slot_name and dbname in primary_conninfo)");
    } else if (!h->slot_present || !h->slot_synced) {
        snprintf(h->problem, sizeof(h->problem), "replication slot \"%s\" is %s on this standby", slot,
                 h->slot_present ? "present but not synced" : "not (yet) synced");
        snprintf(h->fix, sizeof(h->fix),
                 "create the slot with failover (postgres.slot.failover = true), list the standby's physical slot in "
                 "the primary's synchronized_standby_slots, and check the standby's log for slot sync errors");
    } else if (h->slot_invalidated) {
        snprintf(h->problem, sizeof(h->problem), "the synced slot \"%s\" is invalidated on this standby", slot);
        snprintf(h->fix, sizeof(h->fix),
                 "check max_slot_wal_keep_size and the standby's log; outboxd recovers "
                 "from its progress record if it must use this standby");
    }
}

int pg_failover_standbys(const char *conninfo, const char *slot, pg_failover_host_t *hosts, int max, err_t *e) {
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &perr);
    if (!opts) {
        err_set(e, ERR_PERMANENT, "", "fix postgres.conninfo", "cannot parse postgres.conninfo: %s",
                perr ? perr : "out of memory");
        PQfreemem(perr);
        return -1;
    }
    const char *hostv = NULL, *portv = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!strcmp(o->keyword, "host") && o->val)
            hostv = o->val;
        else if (!strcmp(o->keyword, "port") && o->val)
            portv = o->val;
    }
    char hs[PG_FAILOVER_MAX_HOSTS][128], ps[PG_FAILOVER_MAX_HOSTS][128];
    int nh = hostv ? split_list(hostv, hs, PG_FAILOVER_MAX_HOSTS) : 0;
    int np = portv ? split_list(portv, ps, PG_FAILOVER_MAX_HOSTS) : 0;
    int found = 0;
    for (int i = 0; i < nh && found < max; i++) {
        /* The user's conninfo first, then this one host: later keys win. */
        const char *port = np == 1 ? ps[0] : i < np ? ps[i] : "";
        const char *keys[7] = {"password", "dbname", "host", "target_session_attrs", "connect_timeout", NULL, NULL};
        const char *vals[7] = {pgconn_password(), conninfo, hs[i], "any", "5", NULL, NULL};
        if (*port) /* else libpq's default port */
            keys[5] = "port", vals[5] = port;
        PGconn *conn = PQconnectdbParams(keys, vals, 1);
        pg_failover_host_t h = {0};
        snprintf(h.host, sizeof(h.host), "%s", hs[i]);
        snprintf(h.port, sizeof(h.port), "%s", port);
        if (conn && PQstatus(conn) == CONNECTION_OK) {
            h.reachable = true;
            PGresult *res = PQexec(conn, "SELECT pg_is_in_recovery()");
            h.standby = PQresultStatus(res) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(res, 0, 0), "t");
            PQclear(res);
            if (h.standby)
                inspect_standby(conn, slot, &h);
        } else {
            snprintf(h.problem, sizeof(h.problem), "not reachable");
        }
        PQfinish(conn);
        if (h.standby || !h.reachable)
            hosts[found++] = h;
    }
    PQconninfoFree(opts);
    return found;
}
