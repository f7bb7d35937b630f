/* cmd_check.c - `outboxd check`: a preflight run over PostgreSQL, the outbox tables, the
 * replication slot and Kafka; one line per check with the fix for each failure. */
#include "cmd_check.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "kproducer.h"
#include "log.h"
#include "pg_failover.h"
#include "pg_preflight.h"
#include "progress.h"
#include "checkout.h"
#include "publication.h"
#include "strbuf.h"
#include "strlist.h"
#include "cmdout.h"
#include "pgconn.h"
#include "repl_stream.h"
#include "router.h"
#include "other_slots.h"
#include "topic_needs.h"
#include "cmd_status.h"

#define MSG_SIZE 1536
#define KAFKA_TIMEOUT_MAX_MS 5000 /* and at most startup.timeout.ms */
#define SLOT_TEST_TIMEOUT_MAX_MS 10000
#define MIN_SERVER_VERSION 120000 /* pg_partition_tree() in the table check */

/* The check statuses (checkout.h). */
#define CK_OK CHECKOUT_OK
#define CK_WARN CHECKOUT_WARN
#define CK_FAIL CHECKOUT_FAIL
#define CK_SKIP CHECKOUT_SKIP
typedef checkout_status_t ck_status_t;

/* What the slot query found about postgres.slot. */
typedef struct ck_slot {
    bool known; /* the query ran */
    bool exists, active, physical, lost;
    int active_pid;
    char plugin[64], database[128], app[128], client[160], confirmed[LSN_FMT_SIZE], retained[32];
} ck_slot_t;

typedef struct ck {
    const relay_options_t *o;
    checkout_t co;
    repl_stream_t *rs; /* the replication connection (replication=database) */
    bool repl_ok;
    PGconn *own;      /* an ordinary connection, for SQL */
    PGconn *sql;      /* what the SQL checks use: own, else the replication one; NULL = none */
    char db[128];     /* current database */
    char user[128];   /* current role */
    bool wal_logical; /* wal_level = logical */
    bool partitioned; /* an outbox table is partitioned */
    router_t *router;
    ck_slot_t slot;
} ck_t;

/* ------------------------------------------------------------------------------ reporting */

static void report(ck_t *c, ck_status_t st, const char *name, const char *detail, const char *fix) {
    checkout_report(&c->co, st, name, detail, fix);
}

/* --------------------------------------------------------------------------- SQL helpers */

/* Runs a query returning one row; NULL (with errstr) on failure. */
static PGresult *query_row(PGconn *conn, const char *sql, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        return res;
    pgconn_error(errstr, errstr_size, "",
                 PQresultStatus(res) == PGRES_TUPLES_OK ? "no row" : PQresultErrorMessage(res));
    PQclear(res);
    return NULL;
}

/* ------------------------------------------------------------------------------ checks */

static void check_config(ck_t *c) {
    char err[MSG_SIZE];
    c->router = router_new(&c->o->router, err, sizeof(err));
    if (!c->router) {
        report(c, CK_FAIL, "config", err, "fix outbox.table, outbox.topic or the outbox.column.* keys");
        return;
    }
    checkout_reportf(&c->co, CK_OK, "config", NULL, "tables %s, topic template %s, slot %s", c->o->router.tables,
                     c->o->router.topic_template, c->o->slot);
}

static void check_connect(ck_t *c) {
    char err[MSG_SIZE] = "";
    err_t e = {0}, oerr;
    c->rs = repl_stream_new();
    repl_status_t st = REPL_FATAL;
    if (c->rs)
        st = repl_stream_connect(c->rs, c->o->conninfo, err, sizeof(err));
    else
        err_set(&e, ERR_PERMANENT, "", NULL, "out of memory");
    c->repl_ok = st == REPL_OK;
    if (c->rs && !c->repl_ok)
        e = *repl_stream_connect_error(c->rs);
    if (!c->repl_ok && !e.msg[0]) /* connected, but the session setup failed */
        err_set(&e, st == REPL_RETRY ? ERR_TRANSIENT : ERR_PERMANENT, "", NULL, "%s", err);
    /* An ordinary connection for the SQL checks; after a failed replication connection only
     * when that failure was about replication itself (no REPLICATION attribute: 42501, or no
     * free WAL sender: 53300), else it would fail the same way. */
    if (c->repl_ok || !strcmp(e.code, "42501") || !strcmp(e.code, "53300"))
        c->own = pgconn_connect(c->o->conninfo, "outboxd check", &oerr);
    c->sql = c->own ? c->own : c->repl_ok ? repl_stream_conn(c->rs) : NULL;
    if (c->sql) {
        snprintf(c->db, sizeof(c->db), "%s", PQdb(c->sql));
        snprintf(c->user, sizeof(c->user), "%s", PQuser(c->sql));
    }
    char where[512] = "";
    if (c->sql) {
        const char *host = PQhost(c->sql), *port = PQport(c->sql);
        bool sock = host && *host == '/', with_port = !sock && port && *port;
        snprintf(where, sizeof(where), "%s%s%s%s, database %s, user %s", sock ? "socket " : "", host ? host : "?",
                 with_port ? ":" : "", with_port ? port : "", c->db, c->user);
    }
    if (c->repl_ok)
        checkout_reportf(&c->co, CK_OK, "postgres", NULL, "reachable at %s (replication connection)", where);
    else
        report(c, CK_FAIL, "postgres", e.msg, e.fix[0] ? e.fix : NULL);
}

/* Skips the rest of the PostgreSQL checks when there is no connection at all. */
static bool pg_skipped(ck_t *c, const char *name) {
    if (c->sql)
        return false;
    report(c, CK_SKIP, name, "not checked: PostgreSQL is not reachable", NULL);
    return true;
}

static void check_version(ck_t *c) {
    if (pg_skipped(c, "server_version"))
        return;
    int v = PQserverVersion(c->sql);
    char ver[32], err[MSG_SIZE], libs[300] = "";
    snprintf(ver, sizeof(ver), "%d.%d", v / 10000, v % 10000);
    PGresult *res = query_row(c->sql, "SHOW output_plugin_libraries", err, sizeof(err));
    if (res) {
        snprintf(libs, sizeof(libs), "; output_plugin_libraries = %.250s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    if (v < MIN_SERVER_VERSION)
        checkout_reportf(&c->co, CK_FAIL, "server_version", "upgrade PostgreSQL",
                         "PostgreSQL %s is too old: outboxd needs 12 or later", ver);
    else
        checkout_reportf(&c->co, CK_OK, "server_version", NULL, "PostgreSQL %s%s", ver, libs);
}

static void check_wal_level(ck_t *c) {
    if (pg_skipped(c, "wal_level"))
        return;
    err_t e;
    c->wal_logical = pg_preflight_server(c->sql, &e) == REPL_OK;
    if (c->wal_logical)
        report(c, CK_OK, "wal_level", "wal_level = logical", NULL);
    else
        report(c, CK_FAIL, "wal_level", e.msg, *e.fix ? e.fix : NULL);
}

/* The plugin test may wait: creating a logical slot waits until every transaction running
 * at that moment has ended. SIGALRM cancels it (PQcancel is safe in a signal handler). */
static PGcancel *volatile alarm_cancel;
static volatile sig_atomic_t alarm_fired;

static void on_alarm(int sig) {
    (void)sig;
    alarm_fired = 1;
    if (alarm_cancel) {
        char e[256];
        PQcancel(alarm_cancel, e, sizeof(e));
    }
}

/* Describes the oldest transaction holding an xid (what slot creation waits for). */
static void oldest_xact(ck_t *c, char *buf, size_t size) {
    char err[MSG_SIZE];
    snprintf(buf, size, "see pg_stat_activity and pg_prepared_xacts");
    if (!c->own)
        return;
    PGresult *res = query_row(c->own,
                              "SELECT pid, coalesce(usename, ''), coalesce(datname, ''), coalesce(state, ''), "
                              "extract(epoch FROM now() - xact_start)::bigint FROM pg_stat_activity "
                              "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
                              "ORDER BY xact_start LIMIT 1",
                              err, sizeof(err));
    if (!res)
        return;
    snprintf(buf, size, "the oldest is PID %s (user %s, database %s, %s) open for %s s", PQgetvalue(res, 0, 0),
             PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
    PQclear(res);
}

static void check_plugin(ck_t *c) {
    const char *plugin = plugin_name(c->o->plugin);
    if (pg_skipped(c, plugin))
        return;
    if (!c->repl_ok) {
        report(c, CK_SKIP, plugin, "not checked: needs a replication connection (see the postgres line)", NULL);
        return;
    }
    if (!c->wal_logical) {
        report(c, CK_SKIP, plugin, "not checked: a logical slot cannot be created while wal_level is not logical",
               NULL);
        return;
    }
    char name[64], snapshot[128], err[MSG_SIZE];
    lsn_t consistent;
    snprintf(name, sizeof(name), "outboxd_check_%ld", (long)getpid());
    int timeout_ms =
        c->o->startup_timeout_ms < SLOT_TEST_TIMEOUT_MAX_MS ? c->o->startup_timeout_ms : SLOT_TEST_TIMEOUT_MAX_MS;
    PGconn *conn = repl_stream_conn(c->rs);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    alarm_fired = 0;
    alarm_cancel = PQgetCancel(conn);
    struct itimerval it = {{0, 0}, {timeout_ms / 1000, (timeout_ms % 1000) * 1000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    /* CREATE_REPLICATION_SLOT ... TEMPORARY LOGICAL <plugin>: loads the plugin the way
     * outboxd's own slot will, and maps the known failures to the relay's fix texts. */
    repl_status_t st =
        repl_stream_create_temp_slot(c->rs, name, plugin, snapshot, sizeof(snapshot), &consistent, err, sizeof(err));
    setitimer(ITIMER_REAL, &off, NULL);
    PGcancel *cancel = alarm_cancel;
    alarm_cancel = NULL;
    sigaction(SIGALRM, &old, NULL);
    PQfreeCancel(cancel);
    if (st == REPL_OK) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP_REPLICATION_SLOT %s", name);
        PGresult *res = PQexec(conn, sql);
        bool dropped = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
        if (!dropped) /* a temporary slot goes with its connection */
            repl_stream_close(c->rs);
        checkout_reportf(&c->co, CK_OK, plugin, NULL,
                         "%s and allowed by output_plugin_libraries (a temporary %s slot was created and dropped)",
                         c->o->plugin == PLUGIN_PGOUTPUT ? "built in" : "installed", plugin);
    } else if (alarm_fired) {
        char who[512];
        oldest_xact(c, who, sizeof(who));
        checkout_reportf(&c->co, CK_WARN, plugin,
                         "end or commit long transactions; outboxd's own slot creation waits for them in the same way",
                         "not verified: creating a test slot waited %d ms for running transactions to end (%s)",
                         timeout_ms, who);
    } else if (st == REPL_NO_FREE_SLOT) {
        /* Only a warning: nothing says the plugin is broken. When the slot does not exist yet, the
         * max_replication_slots line FAILs for this same cause (one failure, one fix); when it
         * exists, outboxd streams it without needing a free slot, so failing here would fail
         * a working setup. */
        report(c, CK_WARN, plugin, "not verified: all replication slots are in use",
               "free a slot or raise max_replication_slots (see the max_replication_slots line), then check again");
    } else if (st == REPL_FATAL) {
        const err_t *e = repl_stream_last_error(c->rs);
        report(c, CK_FAIL, plugin, *e->msg ? e->msg : err, *e->msg && *e->fix ? e->fix : NULL);
    } else {
        report(c, CK_FAIL, plugin, err, NULL);
    }
}

/* Reads what the slot checks need about postgres.slot (status_query: one query for status,
 * check and the relay's slot metrics). */
static void load_slot(ck_t *c) {
    if (!c->sql || c->slot.known)
        return;
    PGresult *res = status_query(c->sql, c->o->slot);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != STATUS_C_COUNT) {
        PQclear(res);
        return;
    }
    ck_slot_t *s = &c->slot;
    s->known = true;
    if (PQntuples(res) == 1) {
#define V(col) PQgetvalue(res, 0, STATUS_C_##col)
        s->exists = true;
        snprintf(s->plugin, sizeof(s->plugin), "%s", V(PLUGIN));
        snprintf(s->database, sizeof(s->database), "%s", V(DATABASE));
        s->active = V(ACTIVE)[0] == 't';
        s->active_pid = atoi(V(ACTIVE_PID));
        s->physical = !strcmp(V(TYPE), "physical");
        s->lost = !strcmp(V(WAL_STATUS), "lost");
        snprintf(s->app, sizeof(s->app), "%s", V(APP));
        if (!PQgetisnull(res, 0, STATUS_C_CLIENT_ADDR))
            snprintf(s->client, sizeof(s->client), "%s:%s", V(CLIENT_ADDR), V(CLIENT_PORT));
        else
            snprintf(s->client, sizeof(s->client), "%s",
                     V(SENDER_VISIBLE)[0] == 't' ? "local socket" : "? (needs pg_read_all_stats)");
        snprintf(s->confirmed, sizeof(s->confirmed), "%s", V(CONFIRMED));
        if (V(RECOVERY)[0] != 't' && !PQgetisnull(res, 0, STATUS_C_RETAINED))
            status_format_bytes(atoll(V(RETAINED)), s->retained, sizeof(s->retained));
#undef V
    }
    PQclear(res);
}

static void check_headroom(ck_t *c) {
    if (!c->sql) {
        pg_skipped(c, "max_replication_slots");
        pg_skipped(c, "max_wal_senders");
        return;
    }
    char err[MSG_SIZE], sql[512];
    load_slot(c);
    /* Our own walsender (the check's replication connection) does not count. */
    int self = c->repl_ok && repl_stream_conn(c->rs) ? PQbackendPID(repl_stream_conn(c->rs)) : 0;
    snprintf(sql, sizeof(sql),
             "SELECT current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int, "
             "current_setting('max_wal_senders')::int, "
             "(SELECT count(*) FROM pg_stat_replication WHERE pid <> %d)::int",
             self);
    PGresult *res = query_row(c->sql, sql, err, sizeof(err));
    if (!res) {
        checkout_reportf(&c->co, CK_FAIL, "max_replication_slots", NULL, "cannot read the settings: %s", err);
        checkout_reportf(&c->co, CK_FAIL, "max_wal_senders", NULL, "cannot read the settings: %s", err);
        return;
    }
    int max_slots = atoi(PQgetvalue(res, 0, 0)), slots = atoi(PQgetvalue(res, 0, 1));
    int max_senders = atoi(PQgetvalue(res, 0, 2)), senders = atoi(PQgetvalue(res, 0, 3));
    PQclear(res);
    bool backfill = c->o->backfill_where && *c->o->backfill_where;
    int need = c->slot.exists ? 0 : backfill ? 2 : 1; /* a backfill briefly holds a temporary slot too */
    if (c->slot.exists)
        checkout_reportf(&c->co, CK_OK, "max_replication_slots", NULL, "%d of %d in use, including slot %s", slots,
                         max_slots, c->o->slot);
    else if (max_slots - slots >= need)
        checkout_reportf(&c->co, CK_OK, "max_replication_slots", NULL, "%d of %d in use; slot %s will need %d more",
                         slots, max_slots, c->o->slot, need);
    else /* outboxd would stop at its first start (all replication slots are in use): a failure */
        checkout_reportf(
            &c->co, CK_FAIL, "max_replication_slots",
            "drop an unused slot (SELECT pg_drop_replication_slot(name)) or raise max_replication_slots and "
            "restart PostgreSQL",
            "%d of %d in use and slot %s does not exist yet: outboxd cannot create it%s", slots, max_slots, c->o->slot,
            backfill ? " (with its backfill it needs 2)" : "");
    if (c->slot.active)
        checkout_reportf(&c->co, CK_OK, "max_wal_senders", NULL, "%d of %d in use, one of them streaming slot %s",
                         senders, max_senders, c->o->slot);
    else if (senders < max_senders)
        checkout_reportf(&c->co, CK_OK, "max_wal_senders", NULL, "%d of %d in use; outboxd needs 1", senders,
                         max_senders);
    else
        checkout_reportf(
            &c->co, CK_WARN, "max_wal_senders",
            "raise max_wal_senders and restart PostgreSQL, or stop an unused replication client (SELECT pid, "
            "application_name, client_addr FROM pg_stat_replication)",
            "all %d in use: outboxd cannot open its replication connection", max_senders);
}

static void check_privilege(ck_t *c) {
    if (pg_skipped(c, "replication_privilege"))
        return;
    char err[MSG_SIZE], fix[400];
    PGresult *res = query_row(c->sql, "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user", err,
                              sizeof(err));
    if (!res) {
        checkout_reportf(&c->co, CK_FAIL, "replication_privilege", NULL, "cannot read pg_roles: %s", err);
        return;
    }
    bool repl = PQgetvalue(res, 0, 0)[0] == 't', super = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    snprintf(fix, sizeof(fix), "run ALTER ROLE \"%s\" REPLICATION; as a superuser (see sql/roles.sql)", c->user);
    if (super)
        checkout_reportf(&c->co, CK_OK, "replication_privilege", NULL, "role \"%s\" is a superuser", c->user);
    else if (repl)
        checkout_reportf(&c->co, CK_OK, "replication_privilege", NULL, "role \"%s\" has REPLICATION", c->user);
    else
        checkout_reportf(&c->co, CK_FAIL, "replication_privilege", fix,
                         "role \"%s\" may not start replication (no REPLICATION)", c->user);
}

/* outbox.cleanup = delete: the role needs DELETE on the table (else published rows stay and
 * outboxd keeps retrying, with a warning). */
static void cleanup_privilege(ck_t *c, const char *schema, const char *table, char *note, size_t note_size) {
    char *qs = PQescapeIdentifier(c->sql, schema, strlen(schema)),
         *qt = PQescapeIdentifier(c->sql, table, strlen(table));
    note[0] = '\0';
    if (qs && qt) {
        char q[600], err[MSG_SIZE];
        snprintf(q, sizeof(q), "%s.%s", qs, qt);
        char *lit = PQescapeLiteral(c->sql, q, strlen(q));
        if (lit) {
            char sql[800];
            snprintf(sql, sizeof(sql), "SELECT has_table_privilege(%s, 'DELETE')", lit);
            PGresult *res = query_row(c->sql, sql, err, sizeof(err));
            if (res && PQgetvalue(res, 0, 0)[0] != 't')
                snprintf(
                    note, note_size,
                    "GRANT DELETE ON %s TO \"%s\"; (sql/roles.sql does this for role outboxd with -v relay_cleanup=on)",
                    q, c->user);
            PQclear(res);
            PQfreemem(lit);
        }
    }
    PQfreemem(qs);
    PQfreemem(qt);
}

/* A partitioned table: how many partitions, and how the plugin reads them (appended to detail). */
static void partition_note(ck_t *c, const char *schema, const char *table, char *detail, size_t size) {
    bool partitioned;
    char **leaves;
    size_t n, len = strlen(detail);
    err_t e;
    if (pg_preflight_partitions(c->sql, schema, table, &partitioned, &leaves, &n, &e) != REPL_OK || !partitioned)
        return;
    strlist_free(leaves);
    c->partitioned = true;
    snprintf(detail + len, size - len, "; partitioned, %zu partition%s now (%s)", n, n == 1 ? "" : "s",
             c->o->plugin == PLUGIN_PGOUTPUT ? "published through the partitioned table: "
                                               "publish_via_partition_root"
                                             : "wal2json reads each partition: outboxd follows new ones");
}

static void check_tables(ck_t *c) {
    if (!c->router) {
        report(c, CK_SKIP, "table", "not checked: the configuration is invalid (see the config line)", NULL);
        return;
    }
    const router_columns_t *col = &c->o->router.columns;
    const char *required[PG_PREFLIGHT_COL_COUNT + 1];
    pg_preflight_required_columns(col, required);
    for (size_t i = 0; i < router_table_count(c->router); i++) {
        const char *schema, *table;
        char name[300], types[PG_PREFLIGHT_COL_COUNT][PG_PREFLIGHT_TYPE_SIZE];
        bool has_headers = false;
        err_t e;
        router_table_get(c->router, i, &schema, &table);
        snprintf(name, sizeof(name), "table %s.%s", schema, table);
        if (pg_skipped(c, name))
            continue;
        if (pg_preflight_table(c->sql, schema, table, required, types, col->headers, &has_headers, &e) != REPL_OK) {
            report(c, CK_FAIL, name, e.msg, *e.fix ? e.fix : NULL);
            continue;
        }
        char detail[MSG_SIZE], headers[300] = "";
        if (col->headers && *col->headers)
            snprintf(headers, sizeof(headers),
                     has_headers ? ", %s (headers column)"
                                 : "; no \"%s\" column: records get only "
                                   "the id and type headers",
                     col->headers);
        const char(*t)[PG_PREFLIGHT_TYPE_SIZE] = types;
        enum { ID = PG_PREFLIGHT_COL_ID, AT = PG_PREFLIGHT_COL_AGGREGATE_TYPE, AI = PG_PREFLIGHT_COL_AGGREGATE_ID };
        enum { ET = PG_PREFLIGHT_COL_EVENT_TYPE, PL = PG_PREFLIGHT_COL_PAYLOAD };
        snprintf(detail, sizeof(detail), "columns %s (%s), %s (%s), %s (%s), %s (%s), %s (%s%s)%s", required[ID], t[ID],
                 required[AT], t[AT], required[AI], t[AI], required[ET], t[ET], required[PL], t[PL],
                 router_payload_type_for(t[PL]) == ROUTER_PAYLOAD_BYTEA ? ", sent as raw bytes" : "", headers);
        partition_note(c, schema, table, detail, sizeof(detail));
        char fix[700];
        if (c->o->cleanup)
            cleanup_privilege(c, schema, table, fix, sizeof(fix));
        if (c->o->cleanup && *fix)
            checkout_reportf(&c->co, CK_WARN, name, fix,
                             "%s; but outbox.cleanup = delete and role \"%s\" may not DELETE from it", detail, c->user);
        else
            report(c, CK_OK, name, detail, NULL);
    }
}

/* Whether the role may create or alter a publication of every outbox table (superuser, or
 * owner of all of them). */
static bool may_publish(ck_t *c) {
    char err[MSG_SIZE];
    static const char head[] = "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR "
                               "coalesce(bool_and(pg_has_role(c.relowner, 'USAGE')), true) FROM pg_class c WHERE "
                               "c.oid IN (NULL";
    strbuf_t q = {0};
    int rc = strbuf_add(&q, head, sizeof(head) - 1);
    for (size_t i = 0; !rc && i < router_table_count(c->router); i++) {
        const char *schema, *table;
        router_table_get(c->router, i, &schema, &table);
        char *qs = PQescapeIdentifier(c->sql, schema, strlen(schema)),
             *qt = PQescapeIdentifier(c->sql, table, strlen(table)), name[600], *lit = NULL;
        if (qs && qt && (size_t)snprintf(name, sizeof(name), "%s.%s", qs, qt) < sizeof(name))
            lit = PQescapeLiteral(c->sql, name, strlen(name));
        rc = !lit || strbuf_add(&q, ", to_regclass(", 14) || strbuf_add(&q, lit, strlen(lit)) || strbuf_addc(&q, ')');
        PQfreemem(qs);
        PQfreemem(qt);
        PQfreemem(lit);
    }
    bool ok = false;
    if (!rc && !strbuf_addc(&q, ')')) {
        PGresult *res = query_row(c->sql, q.p, err, sizeof(err));
        ok = res && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
    }
    strbuf_free(&q);
    return ok;
}

/* pgoutput: the publication, and logical messages on this server version. */
static void check_publication(ck_t *c) {
    if (c->o->plugin != PLUGIN_PGOUTPUT || pg_skipped(c, "publication"))
        return;
    if (!c->router) {
        report(c, CK_SKIP, "publication", "not checked: the configuration is invalid (see the config line)", NULL);
        return;
    }
    const char *pub = c->o->publication;
    publication_state_t st;
    err_t e;
    char create[4096], fix[4400];
    if (publication_check(c->sql, pub, c->router, &st, &e) != REPL_OK) {
        report(c, CK_FAIL, "publication", e.msg, *e.fix ? e.fix : NULL);
        return;
    }
    bool can = may_publish(c);
    publication_create_sql(c->sql, pub, c->router, create, sizeof(create));
    if (!st.exists) {
        snprintf(fix, sizeof(fix), "as the owner of the outbox tables (or a superuser) run: %s", create);
        if (can)
            checkout_reportf(
                &c->co, CK_OK, "publication", NULL,
                "publication \"%s\" does not exist yet: outboxd creates it when it starts (before its slot)", pub);
        else
            checkout_reportf(
                &c->co, CK_FAIL, "publication", fix,
                "publication \"%s\" does not exist, and role \"%s\" may not create it (it does not own the outbox "
                "tables)",
                pub, c->user);
    } else if (!st.inserts || (c->partitioned && !st.via_root)) {
        snprintf(fix, sizeof(fix),
                 "ALTER PUBLICATION \"%s\" SET (publish = 'insert', publish_via_partition_root = "
                 "true); (or set postgres.publication to a new name: outboxd creates it)",
                 pub);
        checkout_reportf(&c->co, CK_FAIL, "publication", fix, "publication \"%s\" does not publish %s", pub,
                         !st.inserts ? "inserts"
                                     : "partitioned tables through their root (publish_via_partition_root)");
    } else if (st.missing[0]) {
        snprintf(fix, sizeof(fix), "as the owner of the tables run: ALTER PUBLICATION \"%s\" ADD TABLE %s", pub,
                 st.missing);
        checkout_reportf(
            &c->co, can ? CK_WARN : CK_FAIL, "publication", fix,
            "publication \"%s\" does not publish %s%s: rows written there before it does are never published", pub,
            st.missing, can ? " (outboxd adds them when it starts)" : "");
    } else {
        checkout_reportf(&c->co, CK_OK, "publication", NULL,
                         "publication \"%s\" publishes the inserts of every outbox table%s", pub,
                         st.via_root ? " (through partition roots)" : "");
    }
    const char *prefix = c->o->router.message_prefix;
    if (prefix && *prefix && PQserverVersion(c->sql) < 140000)
        checkout_reportf(&c->co, CK_FAIL, "messages",
                         "set outbox.message.prefix = \"\" if no one emits them, or use postgres.plugin = wal2json",
                         "outbox logical messages (prefix %s) need PostgreSQL 14 or later with pgoutput", prefix);
}

static void check_slot(ck_t *c) {
    if (pg_skipped(c, "slot"))
        return;
    load_slot(c);
    const ck_slot_t *s = &c->slot;
    const char *slot = c->o->slot;
    char fix[600];
    if (!s->known) {
        report(c, CK_FAIL, "slot", "cannot read pg_replication_slots", NULL);
    } else if (!s->exists && !c->o->create_slot) {
        snprintf(fix, sizeof(fix),
                 "create it with SELECT pg_create_logical_replication_slot('%s', '%s'); or set "
                 "postgres.slot.create = true. If it existed before, it was lost: docs/operations.md \"Slot "
                 "lost\"",
                 slot, plugin_name(c->o->plugin));
        checkout_reportf(&c->co, CK_FAIL, "slot", fix,
                         "replication slot \"%s\" does not exist and postgres.slot.create is false", slot);
    } else if (!s->exists) {
        checkout_reportf(&c->co, CK_OK, "slot", NULL,
                         "replication slot \"%s\" does not exist yet: outboxd creates it when it starts "
                         "(postgres.slot.create = true)%s and publishes what commits from then on",
                         slot,
                         c->o->backfill_where && *c->o->backfill_where
                             ? ", first publishing the rows outbox.backfill.where selects,"
                             : "");
    } else if (s->physical) {
        snprintf(fix, sizeof(fix), "set postgres.slot to another name");
        checkout_reportf(&c->co, CK_FAIL, "slot", fix, "replication slot \"%s\" is a physical slot", slot);
    } else if (strcmp(s->plugin, plugin_name(c->o->plugin)) != 0) {
        snprintf(fix, sizeof(fix),
                 "set postgres.plugin = %s, or set postgres.slot to another name, or drop the slot (SELECT "
                 "pg_drop_replication_slot('%s')) after outboxd confirmed everything (docs/operations.md, "
                 "\"Switching the output plugin\")",
                 s->plugin, slot);
        checkout_reportf(&c->co, CK_FAIL, "slot", fix,
                         "replication slot \"%s\" uses plugin %s, but postgres.plugin = %s", slot, s->plugin,
                         plugin_name(c->o->plugin));
    } else if (strcmp(s->database, c->db) != 0) {
        checkout_reportf(&c->co, CK_FAIL, "slot", "fix the dbname or use another postgres.slot",
                         "replication slot \"%s\" belongs to database \"%s\", but postgres.conninfo connects to \"%s\"",
                         slot, s->database, c->db);
    } else if (s->lost) {
        checkout_reportf(
            &c->co, CK_FAIL, "slot",
            "drop and recreate the slot, then republish from the table (docs/operations.md, \"Slot lost\")",
            "replication slot \"%s\" was invalidated (wal_status = lost): events written since its confirmed "
            "position %s may not have been published",
            slot, s->confirmed);
    } else if (s->active && !strstr(s->app, "outboxd")) {
        checkout_reportf(
            &c->co, CK_WARN, "slot", "stop that consumer, or set postgres.slot to another name",
            "replication slot \"%s\" is in use by PID %d (application_name \"%s\", client %s), which does not look "
            "like outboxd: outboxd waits until it is free",
            slot, s->active_pid, s->app, s->client);
    } else if (s->active) {
        checkout_reportf(&c->co, CK_OK, "slot", NULL,
                         "replication slot \"%s\" (%s, database %s) is active: streamed by walsender PID %d "
                         "(application_name %s, client %s); confirmed %s",
                         slot, s->plugin, s->database, s->active_pid, s->app, s->client, s->confirmed);
    } else {
        checkout_reportf(&c->co, CK_OK, "slot", NULL,
                         "replication slot \"%s\" (%s, database %s) exists, not active: outboxd resumes from %s%s%s",
                         slot, s->plugin, s->database, s->confirmed, *s->retained ? "; it retains " : "", s->retained);
    }
}

/* wal2json slots nothing streams besides postgres.slot (other_slots.h): each keeps WAL until
 * someone drops it. A warning only when there are some. */
static void check_other_slots(ck_t *c) {
    if (!c->sql)
        return;
    other_slot_t s[OTHER_SLOTS_MAX];
    size_t total = 0;
    err_t e;
    int n = other_slots_read(c->sql, c->o->slot, s, OTHER_SLOTS_MAX, &total, &e);
    if (n <= 0)
        return;
    char list[2048], fix[600], drop[128];
    snprintf(fix, sizeof(fix),
             "if no outboxd uses %s any more (a first start against another database, a renamed postgres.slot, a "
             "removed relay), drop %s: %s%s",
             total == 1 ? "it" : "them", total == 1 ? "it" : "each",
             other_slots_drop_statement(&s[0], drop, sizeof(drop)), total == 1 ? "" : " and so on");
    checkout_reportf(&c->co, CK_WARN, "other_slots", fix,
                     "%zu wal2json slot%s besides \"%s\" %s not streamed and keep%s WAL: %s", total,
                     total == 1 ? "" : "s", c->o->slot, total == 1 ? "is" : "are", total == 1 ? "s" : "",
                     other_slots_list(s, (size_t)n, total, list, sizeof(list)));
}

/* -------------------------------------------------------------------------------- Kafka */

static void noop_delivery(void *opaque, const kproducer_delivery_t *d) {
    (void)opaque;
    (void)d;
}

/* The broker's auto.create.topics.enable ("true"/"false") into value; -1 with errstr. */
static int broker_auto_create(rd_kafka_t *rk, int32_t broker, int timeout_ms, char *value, size_t value_size,
                              char *errstr, size_t errstr_size) {
    char id[16], e[256];
    int rc = -1;
    snprintf(id, sizeof(id), "%d", (int)broker);
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, id);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, e, sizeof(e));
    rd_kafka_DescribeConfigs(rk, &res, 1, opts, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    if (!ev) {
        snprintf(errstr, errstr_size, "no answer within %d ms", timeout_ms);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(errstr, errstr_size, "%s", rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_DescribeConfigs_result_t *r = rd_kafka_event_DescribeConfigs_result(ev);
    size_t n = 0, ne = 0;
    const rd_kafka_ConfigResource_t **rs = r ? rd_kafka_DescribeConfigs_result_resources(r, &n) : NULL;
    if (n != 1 || rd_kafka_ConfigResource_error(rs[0])) {
        snprintf(errstr, errstr_size, "%s", n == 1 ? rd_kafka_ConfigResource_error_string(rs[0]) : "no result");
        goto out;
    }
    const rd_kafka_ConfigEntry_t **entries = rd_kafka_ConfigResource_configs(rs[0], &ne);
    for (size_t i = 0; i < ne; i++)
        if (!strcmp(rd_kafka_ConfigEntry_name(entries[i]), "auto.create.topics.enable") &&
            rd_kafka_ConfigEntry_value(entries[i])) {
            snprintf(value, value_size, "%s", rd_kafka_ConfigEntry_value(entries[i]));
            rc = 0;
        }
    if (rc != 0)
        snprintf(errstr, errstr_size, "the broker did not list auto.create.topics.enable");
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_ConfigResource_destroy(res);
    return rc;
}

/* Partitions of topic in md; 0 when it does not exist. */
static int topic_partitions(const struct rd_kafka_metadata *md, const char *topic) {
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, topic))
            return md->topics[i].err ? 0 : md->topics[i].partition_cnt;
    return 0;
}

/* One literal topic: exists, or will be created by the broker, or neither. */
static void check_literal_topic(ck_t *c, const char *name, const char *topic, const struct rd_kafka_metadata *md,
                                int autocreate, const char *autocreate_err) {
    int parts = topic_partitions(md, topic);
    char fix[700];
    snprintf(fix, sizeof(fix),
             "create it (kafka-topics.sh --bootstrap-server ... --create --topic %s --partitions N) or set "
             "auto.create.topics.enable = true on the brokers",
             topic);
    if (parts > 0)
        checkout_reportf(&c->co, CK_OK, name, NULL, "topic %s exists (%d partitions)", topic, parts);
    else if (autocreate == 1)
        checkout_reportf(
            &c->co, CK_WARN, name, "create it with the partition count you want before the first event",
            "topic %s does not exist yet; the broker creates it at the first event with its default partition "
            "count (auto.create.topics.enable = true)",
            topic);
    else if (autocreate == 0)
        checkout_reportf(&c->co, CK_FAIL, name, fix, "topic %s does not exist and the broker does not create topics",
                         topic);
    else
        checkout_reportf(&c->co, CK_FAIL, name, fix, "topic %s does not exist (auto.create.topics.enable unknown: %s)",
                         topic, autocreate_err);
}

/* "N existing topics start with "<the template's literal prefix>"" into buf. */
static void prefix_count(const char *tpl, const struct rd_kafka_metadata *md, char *buf, size_t size) {
    const char *ph = strstr(tpl, "${");
    size_t plen = ph ? (size_t)(ph - tpl) : strlen(tpl);
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!md->topics[i].err && !strncmp(md->topics[i].topic, tpl, plen))
            n++;
    snprintf(buf, size, "%d existing topic%s start%s with \"%.*s\"", n, n == 1 ? "" : "s", n == 1 ? "s" : "", (int)plen,
             tpl);
}

/* The topics of a template with placeholders that the rows in the outbox tables need (topic_needs):
 * FAIL when one is missing and the broker does not create it; when the template cannot be
 * resolved (no rows, ${aggregate_id}, no SELECT), what the auto-creation setting says. */
static void check_template_topics(ck_t *c, const char *tpl, const struct rd_kafka_metadata *md, int autocreate,
                                  bool client_off, const char *aerr) {
    char have[400], list[1200] = "", why[1200] = "";
    prefix_count(tpl, md, have, sizeof(have));
    topic_needs_t needs = {0};
    err_t e;
    topic_needs_status_t st =
        c->sql && c->router ? topic_needs_resolve(c->sql, &c->o->router, c->router, &needs, &e) : TOPIC_NEEDS_FAILED;
    if (st == TOPIC_NEEDS_RESOLVED && needs.n > 0) {
        size_t missing = 0, o = 0;
        for (size_t i = 0; i < needs.n; i++)
            if (topic_partitions(md, needs.topics[i]) == 0 && o < sizeof(list)) {
                o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", missing ? ", " : "", needs.topics[i]);
                missing++;
            }
        char fix[1600];
        snprintf(fix, sizeof(fix),
                 "create %s (kafka-topics.sh --bootstrap-server ... --create --topic %s --partitions N%s), or let "
                 "the brokers create topics (auto.create.topics.enable = true, and kafka.allow.auto.create.topics "
                 "not false)",
                 missing == 1 ? "it" : "them", missing == 1 ? list : "<topic>", missing == 1 ? "" : ", for each");
        snprintf(why, sizeof(why), "%zu topic%s the rows in the outbox table%s need%s", needs.n,
                 needs.n == 1 ? "" : "s", router_table_count(c->router) == 1 ? "" : "s",
                 needs.truncated ? " (the first " : "");
        if (needs.truncated)
            snprintf(why + strlen(why), sizeof(why) - strlen(why), "%d values of each table)", TOPIC_NEEDS_MAX);
        if (missing == 0)
            checkout_reportf(&c->co, CK_OK, "topics", NULL, "template %s: all %s exist", tpl, why);
        else if (autocreate == 1)
            checkout_reportf(
                &c->co, CK_WARN, "topics", "create them with the partition count you want before their first event",
                "template %s: of the %s, %zu do%s not exist yet (%s); the broker creates them at their first event "
                "with its default partition count",
                tpl, why, missing, missing == 1 ? "es" : "", list);
        else if (autocreate == 0)
            checkout_reportf(
                &c->co, CK_FAIL, "topics", fix,
                "template %s: of the %s, %zu do%s not exist and the broker does not create topics (%s): %s; "
                "outboxd would stop at the first event for %s",
                tpl, why, missing, missing == 1 ? "es" : "",
                client_off ? "kafka.allow.auto.create.topics = false" : "auto.create.topics.enable = false", list,
                missing == 1 ? "it" : "each");
        else
            checkout_reportf(
                &c->co, CK_WARN, "topics", fix,
                "template %s: of the %s, %zu do%s not exist (%s), and the broker's auto.create.topics.enable "
                "cannot be read (%s)",
                tpl, why, missing, missing == 1 ? "es" : "", list, aerr);
        topic_needs_free(&needs);
        return;
    }
    if (st == TOPIC_NEEDS_RESOLVED)
        snprintf(why, sizeof(why), "; the outbox table%s hold%s no rows to resolve it against",
                 router_table_count(c->router) == 1 ? "" : "s", router_table_count(c->router) == 1 ? "s" : "");
    else if (st == TOPIC_NEEDS_PER_AGGREGATE)
        snprintf(why, sizeof(why), "; it uses ${aggregate_id} (a topic per aggregate), so its topics are not listed");
    else
        snprintf(why, sizeof(why), "; which topics the rows need is unknown (%s)",
                 c->sql ? e.msg : "PostgreSQL is not reachable");
    if (autocreate == 1)
        checkout_reportf(&c->co, CK_OK, "topics", NULL,
                         "template %s: the broker creates missing topics (auto.create.topics.enable = true); %s%s", tpl,
                         have, why);
    else if (autocreate == 0)
        checkout_reportf(
            &c->co, CK_WARN, "topics",
            "create every topic the template yields before its first event, or allow auto-creation "
            "(auto.create.topics.enable = true on the brokers, and kafka.allow.auto.create.topics not false)",
            "template %s: missing topics are not created automatically (%s); %s: an event for a missing "
            "topic stops outboxd%s",
            tpl, client_off ? "kafka.allow.auto.create.topics = false" : "auto.create.topics.enable = false", have,
            why);
    else
        checkout_reportf(&c->co, CK_WARN, "topics",
                         "make sure every topic the template yields exists, or that the brokers have "
                         "auto.create.topics.enable = true",
                         "template %s: cannot read the broker's auto.create.topics.enable (%s); %s%s", tpl, aerr, have,
                         why);
}

static void check_kafka(ck_t *c) {
    /* librdkafka logs each failed connection attempt; the check line says it once. */
    log_level_t level = log_get_level();
    if (level < LOG_DEBUG)
        log_set_level(LOG_ERROR);
    err_t e;
    kproducer_t *kp = kproducer_new(c->o->kafka_props, c->o->router.id_header, noop_delivery, NULL, &e);
    const struct rd_kafka_metadata *md = NULL;
    if (!kp) {
        report(c, CK_FAIL, "kafka", e.msg, *e.fix ? e.fix : NULL);
        report(c, CK_SKIP, "topics", "not checked: no Kafka producer", NULL);
        goto out;
    }
    int timeout_ms = c->o->startup_timeout_ms < KAFKA_TIMEOUT_MAX_MS ? c->o->startup_timeout_ms : KAFKA_TIMEOUT_MAX_MS;
    rd_kafka_t *rk = kproducer_handle(kp);
    if (kproducer_check_connect(kp, timeout_ms, &e) != 0) {
        report(c, CK_FAIL, "kafka", e.msg, *e.fix ? e.fix : NULL);
        report(c, CK_SKIP, "topics", "not checked: Kafka is not reachable", NULL);
        if (c->o->dead_letter_topic)
            report(c, CK_SKIP, "dead_letter_topic", "not checked: Kafka is not reachable", NULL);
        goto out;
    }
    rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (merr) {
        md = NULL;
        checkout_reportf(&c->co, CK_FAIL, "kafka", NULL, "a broker answered, but listing the topics failed: %s",
                         rd_kafka_err2str(merr));
        report(c, CK_SKIP, "topics", "not checked: cannot list the topics", NULL);
        goto out;
    }
    char bootstrap[300] = "";
    size_t bsize = sizeof(bootstrap);
    rd_kafka_conf_get(rd_kafka_conf(rk), "bootstrap.servers", bootstrap, &bsize);
    checkout_reportf(&c->co, CK_OK, "kafka", NULL, "reachable at bootstrap.servers=%s (%d broker%s)", bootstrap,
                     md->broker_cnt, md->broker_cnt == 1 ? "" : "s");

    /* Does a missing topic get created? The broker must allow it, and so must the client. */
    char value[16] = "", aerr[512] = "";
    int autocreate = -1;
    if (md->broker_cnt > 0 &&
        broker_auto_create(rk, md->brokers[0].id, timeout_ms, value, sizeof(value), aerr, sizeof(aerr)) == 0)
        autocreate = !strcasecmp(value, "true");
    char client[16] = "";
    size_t csize = sizeof(client);
    if (autocreate == 1 &&
        rd_kafka_conf_get(rd_kafka_conf(rk), "allow.auto.create.topics", client, &csize) == RD_KAFKA_CONF_OK &&
        !strcasecmp(client, "false"))
        autocreate = 0;

    const char *tpl = c->o->router.topic_template ? c->o->router.topic_template : "outbox.event.${aggregate_type}";
    const char *ph = strstr(tpl, "${");
    if (!c->router) {
        report(c, CK_SKIP, "topics", "not checked: the configuration is invalid (see the config line)", NULL);
    } else if (!ph) {
        check_literal_topic(c, "topics", tpl, md, autocreate, aerr);
    } else {
        check_template_topics(c, tpl, md, autocreate, !strcasecmp(client, "false"), aerr);
    }
    if (c->o->dead_letter_topic)
        check_literal_topic(c, "dead_letter_topic", c->o->dead_letter_topic, md, autocreate, aerr);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    kproducer_destroy(kp);
    log_set_level(level);
}

/* ------------------------------------------------------------------------------- run */

/* progress.table: the relay can read and write its record (or create the table), so that a
 * lost slot can be recovered without a person; what the record says now. */
static void check_progress(ck_t *c) {
    const char *t = c->o->progress_table;
    if (!t || !*t) {
        report(c, CK_WARN, "progress",
               "progress.table is empty: a lost slot stops outboxd (exit 2) instead of "
               "being recovered",
               "set progress.table (default public.outboxd_progress)");
        return;
    }
    if (pg_skipped(c, "progress"))
        return;
    char schema[128];
    const char *dot = strchr(t, '.');
    snprintf(schema, sizeof(schema), "%.*s", dot ? (int)(dot - t) : 6, dot ? t : "public");
    const char *params[3] = {t, schema, c->o->slot};
    PGresult *res = PQexecParams(
        c->sql,
        "SELECT to_regclass($1) IS NOT NULL, CASE WHEN to_regclass($1) IS NULL "
        "THEN coalesce(has_schema_privilege($2, 'CREATE'), false) ELSE has_table_privilege($1, 'SELECT') AND "
        "has_table_privilege($1, 'INSERT') AND has_table_privilege($1, 'UPDATE') END, current_user",
        2, NULL, params, NULL, NULL, 0);
    char fix[700];
    snprintf(fix, sizeof(fix),
             "as the table's owner or a superuser run sql/outbox.sql (it creates %s) and GRANT SELECT, INSERT, "
             "UPDATE ON %s TO the relay's role (sql/roles.sql does)",
             t, t);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char err[MSG_SIZE];
        pgconn_error(err, sizeof(err), "cannot check progress.table: ", PQresultErrorMessage(res));
        report(c, CK_WARN, "progress", err, NULL);
    } else if (PQgetvalue(res, 0, 1)[0] != 't') {
        checkout_reportf(
            &c->co, CK_WARN, "progress", fix,
            "role \"%s\" may not %s %s: outboxd runs, but a lost slot cannot be recovered without a person",
            PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0)[0] == 't' ? "read and write" : "create", t);
    } else if (PQgetvalue(res, 0, 0)[0] != 't') {
        checkout_reportf(&c->co, CK_OK, "progress", NULL, "%s does not exist yet; outboxd creates it (the role may)",
                         t);
    } else {
        progress_record_t rec;
        err_t e;
        int found = progress_load(c->sql, t, c->o->slot, &rec, &e);
        char lb[LSN_FMT_SIZE];
        if (found < 0)
            report(c, CK_WARN, "progress", e.msg, *e.fix ? e.fix : NULL);
        else if (found == 0)
            checkout_reportf(&c->co, CK_OK, "progress", NULL,
                             "%s is writable; no record for slot \"%s\" yet (a first start)", t, c->o->slot);
        else
            checkout_reportf(&c->co, CK_OK, "progress", NULL,
                             "%s: slot \"%s\" published up to %s (timeline %u, horizon xid %llu, written %s)", t,
                             c->o->slot, lsn_format(rec.confirmed, lb), (unsigned)rec.timeline,
                             (unsigned long long)rec.horizon, rec.updated_at);
    }
    PQclear(res);
}

/* PostgreSQL failover: the primary's synchronized_standby_slots must not name a slot nobody
 * streams (logical decoding then waits), and each standby of a multi-host conninfo should
 * sync the slot (PostgreSQL 17+). Without standbys in the conninfo and on a primary whose
 * setting is empty, there is nothing to say. */
static void check_failover(ck_t *c) {
    if (!c->sql)
        return;
    err_t e;
    char names[512], fix[1024];
    int blocking = pg_failover_blocking_standby_slots(c->sql, names, sizeof(names), &e);
    if (blocking < 0)
        report(c, CK_WARN, "standby_slots", e.msg, NULL);
    else if (blocking > 0)
        checkout_reportf(&c->co, CK_FAIL, "standby_slots", pg_failover_blocking_fix(names, fix, sizeof(fix)),
                         "synchronized_standby_slots names %s, which no standby streams: logical decoding waits for it",
                         names);
    pg_failover_host_t hosts[PG_FAILOVER_MAX_HOSTS];
    int n = pg_failover_standbys(c->o->conninfo, c->o->slot, hosts, PG_FAILOVER_MAX_HOSTS, &e);
    for (int i = 0; i < n; i++) {
        char name[300];
        snprintf(name, sizeof(name), "standby %.127s%s%.15s", hosts[i].host, hosts[i].port[0] ? ":" : "",
                 hosts[i].port);
        if (!hosts[i].reachable)
            report(c, CK_WARN, name, "not reachable: cannot tell whether it can take over the slot",
                   "start it, or remove it from postgres.conninfo");
        else if (hosts[i].problem[0])
            report(c, CK_WARN, name, hosts[i].problem, hosts[i].fix);
        else
            checkout_reportf(&c->co, CK_OK, name, NULL, "syncs replication slot \"%s\" (PostgreSQL 17 failover slot)",
                             c->o->slot);
    }
}

int check_run(const relay_options_t *opts, bool json, FILE *out) {
    ck_t c = {.o = opts};
    if (checkout_init(&c.co, "outboxd", json, out) != 0) {
        log_error("out of memory");
        return RELAY_EXIT_CONFIG;
    }
    check_config(&c);
    check_connect(&c);
    check_version(&c);
    check_wal_level(&c);
    check_plugin(&c);
    check_headroom(&c);
    check_privilege(&c);
    check_tables(&c);
    check_publication(&c);
    check_slot(&c);
    check_other_slots(&c);
    check_progress(&c);
    check_failover(&c);
    check_kafka(&c);

    int rc = checkout_finish(&c.co) ? RELAY_EXIT_CONFIG : 0;
    router_destroy(c.router);
    if (c.own)
        PQfinish(c.own);
    repl_stream_destroy(c.rs);
    return rc;
}
