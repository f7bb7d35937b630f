/* stream_connect.c - connect, preflight, the slot policy and START_REPLICATION: everything
 * between "the relay wants a stream" and "the stream runs" (see stream_connect.h). */
#include "stream_connect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_preflight.h"
#include "publication.h"
#include "strlist.h"

struct stream_connect {
    const stream_connect_options_t *o;
    router_t *router;
    cleanup_t *cl;
    const char *w2j_options[17]; /* wal2json's START_REPLICATION options, name/value pairs, NULL */
    const char *pgo_options[7];  /* pgoutput's */
    char pgo_publication[160];   /* publication_names: the name as a quoted identifier */
    bool partitioned;            /* an outbox table is partitioned (checked at each connect) */
    size_t part_idx[64];         /* wal2json: the partitioned outbox tables, by index */
    size_t npart;
    char **part_leaves; /* wal2json: their leaf partitions, schema and name of each (strlist) */
    size_t nleaves;

    char system_id[24]; /* the server of the current connection (IDENTIFY_SYSTEM) */
    uint32_t timeline;
    char streamed_system_id[24]; /* the server of the last stream; "" before the first */
    uint32_t streamed_timeline;
    progress_record_t rec; /* valid when has_rec */
    bool has_rec;
    char record_err[2048];    /* the last progress table failure logged (logged once) */
    progress_sample_t before; /* sampled right before a slot is created */
    bool has_before;
    bool failover_warned; /* postgres.slot.failover on a server before 17 (logged once) */
};

stream_connect_t *stream_connect_new(const stream_connect_options_t *o, router_t *router, cleanup_t *cl) {
    stream_connect_t *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return NULL;
    sc->o = o;
    sc->router = router;
    sc->cl = cl;
    const char *prefix = o->message_prefix;
    /* clang-format off */
    const char *opts[] = {"format-version", "2",
                          "include-xids", "1",
                          "include-timestamp", "1",
                          "include-lsn", "1",
                          "include-types", "0",
                          "actions", "insert",
                          "add-tables", router_add_tables_option(router),
                          /* an empty prefix list would let every message through */
                          "add-msg-prefixes", prefix && *prefix ? prefix : "outboxd.no-messages",
                          NULL};
    /* clang-format on */
    _Static_assert(sizeof(opts) == sizeof(sc->w2j_options), "w2j_options holds every option");
    memcpy(sc->w2j_options, opts, sizeof(opts));
    /* publication_names is a list of identifiers: quoted, so that any name is one item */
    size_t n = 0;
    const char *pub = o->publication ? o->publication : "outboxd";
    sc->pgo_publication[n++] = '"';
    for (const char *p = pub; *p && n < sizeof(sc->pgo_publication) - 3; p++) {
        if (*p == '"')
            sc->pgo_publication[n++] = '"';
        sc->pgo_publication[n++] = *p;
    }
    sc->pgo_publication[n++] = '"';
    sc->pgo_publication[n] = '\0';
    const char *pgo[] = {"proto_version", "1", "publication_names", sc->pgo_publication, "messages", "false", NULL};
    _Static_assert(sizeof(pgo) == sizeof(sc->pgo_options), "pgo_options holds every option");
    memcpy(sc->pgo_options, pgo, sizeof(pgo));
    return sc;
}

void stream_connect_destroy(stream_connect_t *sc) {
    if (sc)
        strlist_free(sc->part_leaves);
    free(sc);
}

/* Keeps table i's leaves (taken over from *leaves) for the partition watch. */
static int keep_leaves(stream_connect_t *sc, size_t i, char ***leaves, size_t n) {
    char **all = realloc(sc->part_leaves, (2 * (sc->nleaves + n) + 1) * sizeof(char *));
    if (!all)
        return -1;
    sc->part_leaves = all;
    for (size_t k = 0; k < 2 * n; k++)
        all[2 * sc->nleaves + k] = (*leaves)[k];
    sc->nleaves += n;
    all[2 * sc->nleaves] = NULL;
    free(*leaves); /* the strings moved */
    *leaves = NULL;
    sc->part_idx[sc->npart++] = i;
    return 0;
}

/* Whether table i is partitioned; with wal2json, its leaf partitions go to the router (rows
 * arrive under their names; add-tables lists them) and to the partition watch. */
static repl_status_t check_partitions(stream_connect_t *sc, PGconn *conn, size_t i, char *errstr, size_t errstr_size) {
    const char *schema, *table;
    bool partitioned;
    char **leaves;
    size_t n;
    err_t e;
    router_table_get(sc->router, i, &schema, &table);
    repl_status_t st = pg_preflight_partitions(conn, schema, table, &partitioned, &leaves, &n, &e);
    if (st != REPL_OK) {
        err_line(&e, errstr, errstr_size);
        return st;
    }
    sc->partitioned = sc->partitioned || partitioned;
    if (sc->o->plugin == PLUGIN_WAL2JSON) {
        const char **schemas = calloc(n + 1, sizeof(char *)), **tables = calloc(n + 1, sizeof(char *));
        for (size_t k = 0; schemas && tables && k < n; k++) {
            schemas[k] = leaves[2 * k];
            tables[k] = leaves[2 * k + 1];
        }
        if (!schemas || !tables || router_set_partitions(sc->router, i, n, schemas, tables) != 0 ||
            (partitioned && sc->npart < 64 && n > 0 && keep_leaves(sc, i, &leaves, n) != 0)) {
            snprintf(errstr, errstr_size, "out of memory");
            st = REPL_FATAL;
        } else if (partitioned && n == 0 && sc->npart < 64) {
            sc->part_idx[sc->npart++] = i; /* no partition yet: watch for the first */
        }
        free(schemas);
        free(tables);
    }
    strlist_free(leaves);
    return st;
}

/* pgoutput: the publication publishes every outbox table (created or extended when it can be),
 * and logical messages can be asked for. */
static repl_status_t check_publication(stream_connect_t *sc, PGconn *conn, char *errstr, size_t errstr_size) {
    const stream_connect_options_t *o = sc->o;
    bool added;
    err_t e;
    repl_status_t st = publication_ensure(conn, o->publication, sc->router, sc->partitioned, &added, &e);
    if (st != REPL_OK) {
        err_line(&e, errstr, errstr_size);
        return st;
    }
    if (added)
        log_warn("added outbox tables to publication \"%s\": rows written into them before now are not published "
                 "(pgoutput reads the publication as it was when each row was written); outbox.backfill.where on "
                 "a new postgres.slot publishes existing rows",
                 o->publication);
    bool messages = o->message_prefix && *o->message_prefix;
    if (messages && PQserverVersion(conn) < 140000) {
        snprintf(errstr, errstr_size,
                 "outbox logical messages (outbox.message.prefix = %s) need PostgreSQL 14 or later with "
                 "postgres.plugin = pgoutput (this server is %d): set outbox.message.prefix = \"\" if no one emits "
                 "them, or use postgres.plugin = wal2json",
                 o->message_prefix, PQserverVersion(conn) / 10000);
        return REPL_FATAL;
    }
    sc->pgo_options[5] = messages ? "true" : "false";
    return REPL_OK;
}

/* Every configured table exists with the required columns; sets each table's payload type
 * in the router and registers it for outbox.cleanup; partitions and, with pgoutput, the
 * publication. */
static repl_status_t check_tables(stream_connect_t *sc, PGconn *conn, bool had_stream, char *errstr,
                                  size_t errstr_size) {
    sc->partitioned = false;
    sc->npart = 0;
    strlist_free(sc->part_leaves);
    sc->part_leaves = NULL;
    sc->nleaves = 0;
    const router_columns_t *c = sc->o->columns;
    const char *required[PG_PREFLIGHT_COL_COUNT + 1];
    pg_preflight_required_columns(c, required);
    for (size_t i = 0; i < router_table_count(sc->router); i++) {
        const char *schema, *table;
        bool has_headers = false;
        char types[PG_PREFLIGHT_COL_COUNT][PG_PREFLIGHT_TYPE_SIZE];
        router_table_get(sc->router, i, &schema, &table);
        err_t e;
        repl_status_t st = pg_preflight_table(conn, schema, table, required, types, c->headers, &has_headers, &e);
        if (st != REPL_OK) {
            err_line(&e, errstr, errstr_size);
            return st;
        }
        router_set_payload_type(sc->router, i, router_payload_type_for(types[PG_PREFLIGHT_COL_PAYLOAD]));
        if (sc->cl && cleanup_set_table(sc->cl, i, schema, table, c->id, types[PG_PREFLIGHT_COL_ID]) != 0)
            log_warn("outbox.cleanup: cannot handle table %s.%s", schema, table);
        if (c->headers && *c->headers && !has_headers && !had_stream)
            log_info("outbox table %s.%s has no \"%s\" column: records get only the id and type headers", schema, table,
                     c->headers);
        st = check_partitions(sc, conn, i, errstr, errstr_size);
        if (st != REPL_OK)
            return st;
    }
    if (sc->o->plugin == PLUGIN_PGOUTPUT)
        return check_publication(sc, conn, errstr, errstr_size);
    const char *add_tables = router_add_tables_option(sc->router);
    if (!add_tables) {
        snprintf(errstr, errstr_size, "out of memory");
        return REPL_FATAL;
    }
    sc->w2j_options[13] = add_tables; /* follows the partitions found now */
    return REPL_OK;
}

/* The slot is gone (missing, or invalidated) after outboxd published from this database:
 * recover from the record, or refuse with the runbook. */
static stream_slot_action_t decide_lost(const stream_connect_options_t *o, const repl_slot_info_t *slot,
                                        lsn_t confirmed, const progress_record_t *rec, const char *system_id,
                                        char *errstr, size_t errstr_size) {
    char lb[LSN_FMT_SIZE], how[256];
    lsn_t since = rec ? rec->confirmed : confirmed;
    if (slot->exists)
        snprintf(how, sizeof(how),
                 "replication slot \"%s\" was invalidated (wal_status = lost: the server removed WAL it still needed)",
                 o->slot);
    else
        snprintf(how, sizeof(how),
                 "replication slot \"%s\" is missing although outboxd published from this database (dropped, or a "
                 "failover to a server without it)",
                 o->slot);
    if (!o->recover) {
        snprintf(errstr, errstr_size,
                 "%s: events committed since %s may not have been published, and postgres.slot.on_lost = fail: "
                 "recreate the slot and republish from the table (docs/operations.md, \"Slot lost\"), or set "
                 "postgres.slot.on_lost = recover",
                 how, lsn_format(since, lb));
        return STREAM_SLOT_REFUSE;
    }
    if (!rec) {
        snprintf(errstr, errstr_size,
                 "%s, and there is no progress record (progress.table) to recover from: events committed since %s "
                 "may not have been published. Republish them from the table (docs/operations.md, \"Slot lost\"), "
                 "then restart outboxd",
                 how, lsn_format(since, lb));
        return STREAM_SLOT_REFUSE;
    }
    if (system_id && *system_id && strcmp(rec->system_id, system_id) != 0) {
        snprintf(errstr, errstr_size,
                 "%s, and the progress record is of another PostgreSQL system (%s, this server is %s: a restored "
                 "copy or another cluster), so it cannot say what was published here. If this is a new database, "
                 "delete the slot's row from %s and start again (outbox.backfill.where publishes existing rows)",
                 how, rec->system_id, system_id, o->progress_table);
        return STREAM_SLOT_REFUSE;
    }
    snprintf(errstr, errstr_size, "%s", how);
    return STREAM_SLOT_RECOVER;
}

stream_slot_action_t stream_connect_decide(const stream_connect_options_t *o, const repl_slot_info_t *slot,
                                           const char *db, bool had_stream, lsn_t confirmed,
                                           const progress_record_t *rec, const char *system_id, char *errstr,
                                           size_t errstr_size) {
    if (slot->exists) {
        if (strcmp(slot->plugin, plugin_name(o->plugin)) != 0) {
            snprintf(errstr, errstr_size,
                     "replication slot \"%s\" uses plugin %s, but postgres.plugin = %s: set postgres.plugin = %s, "
                     "or set postgres.slot to another name, or drop the slot (SELECT pg_drop_replication_slot('%s')) "
                     "after outboxd confirmed everything (docs/operations.md, \"Switching the output plugin\")",
                     o->slot, slot->plugin, plugin_name(o->plugin), slot->plugin, o->slot);
            return STREAM_SLOT_REFUSE;
        }
        if (db && strcmp(slot->database, db) != 0) {
            snprintf(errstr, errstr_size,
                     "replication slot \"%s\" belongs to database \"%s\", but postgres.conninfo connects to "
                     "\"%s\": fix the dbname or use another postgres.slot",
                     o->slot, slot->database, db);
            return STREAM_SLOT_REFUSE;
        }
        if (slot->lost)
            return decide_lost(o, slot, confirmed, rec, system_id, errstr, errstr_size);
        if (slot->active) {
            snprintf(errstr, errstr_size, "replication slot \"%s\" is in use by PID %d (another outboxd?)", o->slot,
                     slot->active_pid);
            return STREAM_SLOT_STANDBY;
        }
        return STREAM_SLOT_USE;
    }
    /* It existed when we streamed, or the record says we published from here: dropped, or a
     * failover to a server without it. Creating it where it is now would skip everything
     * committed in between. */
    if (had_stream || rec)
        return decide_lost(o, slot, confirmed, rec, system_id, errstr, errstr_size);
    if (!o->create_slot) {
        snprintf(errstr, errstr_size,
                 "replication slot \"%s\" does not exist and postgres.slot.create is false: create it with "
                 "SELECT pg_create_logical_replication_slot('%s', '%s'); or set postgres.slot.create "
                 "= true",
                 o->slot, o->slot, plugin_name(o->plugin));
        return STREAM_SLOT_REFUSE;
    }
    return o->backfill ? STREAM_SLOT_BACKFILL : STREAM_SLOT_CREATE;
}

static stream_connect_result_t result_of(repl_status_t st) {
    switch (st) {
    case REPL_OK:
        return STREAM_CONNECT_STREAMING;
    case REPL_RETRY:
    case REPL_SLOT_MISSING: /* dropped since it was looked up: the next look decides */
        return STREAM_CONNECT_RETRY;
    case REPL_SLOT_BUSY: /* taken since it was looked up */
        return STREAM_CONNECT_STANDBY;
    case REPL_FATAL:
    case REPL_SLOT_INVALIDATED:
    case REPL_NO_FREE_SLOT:
        break;
    }
    return STREAM_CONNECT_FATAL;
}

size_t stream_connect_partitioned(const stream_connect_t *sc, const size_t **indexes, const char *const **leaves,
                                  size_t *nleaves) {
    *indexes = sc->part_idx;
    *leaves = (const char *const *)sc->part_leaves;
    *nleaves = sc->nleaves;
    return sc->npart;
}

const char *stream_connect_system_id(const stream_connect_t *sc) { return sc->system_id; }
uint32_t stream_connect_timeline(const stream_connect_t *sc) { return sc->timeline; }
const progress_record_t *stream_connect_record(const stream_connect_t *sc) { return sc->has_rec ? &sc->rec : NULL; }

static bool progress_on(const stream_connect_t *sc) { return sc->o->progress_table && *sc->o->progress_table; }

/* A progress table failure: a WARN line once per distinct failure (the relay keeps
 * publishing; only an automatic recovery needs the record). */
static void record_failed(stream_connect_t *sc, const err_t *e) {
    char line[sizeof(e->msg) + sizeof(e->fix) + 64];
    err_line(e, line, sizeof(line));
    if (strcmp(sc->record_err, line) != 0)
        log_warn("%s (without the record, outboxd cannot recover a lost slot by itself)", line);
    snprintf(sc->record_err, sizeof(sc->record_err), "%s", line);
}

/* Which server this is; logs a change of system or timeline once, with both values. */
static repl_status_t identify(stream_connect_t *sc, repl_stream_t *rs, char *errstr, size_t errstr_size) {
    repl_status_t st =
        repl_stream_identify(rs, sc->system_id, sizeof(sc->system_id), &sc->timeline, errstr, errstr_size);
    if (st != REPL_OK || !sc->streamed_system_id[0])
        return st;
    if (strcmp(sc->streamed_system_id, sc->system_id) != 0)
        log_warn("PostgreSQL system identifier changed from %s to %s (timeline %" PRIu32 " to %" PRIu32
                 "): another server answers postgres.conninfo now",
                 sc->streamed_system_id, sc->system_id, sc->streamed_timeline, sc->timeline);
    else if (sc->streamed_timeline != sc->timeline)
        log_warn("PostgreSQL timeline changed from %" PRIu32 " to %" PRIu32 " on system %s: a standby was promoted "
                 "(failover)",
                 sc->streamed_timeline, sc->timeline, sc->system_id);
    return st;
}

/* Loads the record (creating the table when missing and allowed). */
static void load_record(stream_connect_t *sc, repl_stream_t *rs) {
    sc->has_rec = false;
    if (!progress_on(sc))
        return;
    err_t e;
    PGconn *conn = repl_stream_conn(rs);
    int found = progress_ensure_table(conn, sc->o->progress_table, &e);
    if (found == 0)
        found = progress_load(conn, sc->o->progress_table, sc->o->slot, &sc->rec, &e);
    if (found < 0) {
        record_failed(sc, &e);
        return;
    }
    sc->record_err[0] = '\0';
    sc->has_rec = found == 1;
}

int stream_connect_sample(stream_connect_t *sc, repl_stream_t *rs) {
    sc->has_before = false;
    if (!progress_on(sc))
        return -1;
    err_t e;
    if (progress_sample(repl_stream_conn(rs), &sc->before, &e) != 0) {
        record_failed(sc, &e);
        return -1;
    }
    sc->has_before = true;
    return 0;
}

void stream_connect_record_slot(stream_connect_t *sc, repl_stream_t *rs, lsn_t at) {
    if (!sc->has_before)
        return;
    progress_record_t rec = {.timeline = sc->timeline, .confirmed = at, .horizon = sc->before.oldest_xid};
    snprintf(rec.system_id, sizeof(rec.system_id), "%s", sc->system_id);
    snprintf(rec.horizon_time, sizeof(rec.horizon_time), "%s", sc->before.time);
    err_t e;
    if (progress_store(repl_stream_conn(rs), sc->o->progress_table, sc->o->slot, &rec, &e) != 0) {
        record_failed(sc, &e);
        return;
    }
    sc->rec = rec;
    sc->has_rec = true;
    sc->has_before = false;
}

int stream_connect_recovery(stream_connect_t *sc, repl_stream_t *rs, char *where, size_t where_size,
                            const progress_record_t **rec, char *errstr, size_t errstr_size) {
    progress_sample_t now;
    err_t e;
    *rec = sc->has_rec ? &sc->rec : NULL;
    if (!sc->has_rec) {
        snprintf(errstr, errstr_size, "no progress record");
        return -1;
    }
    if (progress_sample(repl_stream_conn(rs), &now, &e) != 0) {
        err_line(&e, errstr, errstr_size);
        return -1;
    }
    progress_recovery_where(&sc->rec, now.next_xid, sc->o->recovery_margin_xids, where, where_size);
    return 0;
}

/* postgres.slot.failover: the slot (which exists) becomes a failover slot on PostgreSQL 17+. */
static repl_status_t ensure_failover(stream_connect_t *sc, repl_stream_t *rs, const repl_slot_info_t *slot,
                                     char *errstr, size_t errstr_size) {
    if (!sc->o->failover || slot->failover)
        return REPL_OK;
    if (PQserverVersion(repl_stream_conn(rs)) < 170000) {
        if (!sc->failover_warned)
            log_warn("postgres.slot.failover = true needs PostgreSQL 17 or later (this server is %d): the slot is "
                     "not synced to standbys; after a failover outboxd recovers it from the progress record instead",
                     PQserverVersion(repl_stream_conn(rs)) / 10000);
        sc->failover_warned = true;
        return REPL_OK;
    }
    repl_status_t st = repl_stream_set_failover(rs, sc->o->slot, errstr, errstr_size);
    if (st == REPL_OK)
        log_info("replication slot \"%s\" is a failover slot now (postgres.slot.failover): standbys with "
                 "sync_replication_slots = on keep a copy",
                 sc->o->slot);
    return st;
}

/* Creates the slot where the server is now, with a record for that position. */
static repl_status_t create_slot(stream_connect_t *sc, repl_stream_t *rs, repl_slot_info_t *slot, char *errstr,
                                 size_t errstr_size) {
    const char *name = sc->o->slot;
    stream_connect_sample(sc, rs);
    repl_status_t st = repl_stream_create_slot(rs, name, plugin_name(sc->o->plugin), errstr, errstr_size);
    if (st != REPL_OK)
        return st;
    log_warn("created replication slot \"%s\" (%s): outboxd publishes what commits from "
             "now on; rows committed before are not streamed",
             name, plugin_name(sc->o->plugin));
    st = repl_stream_slot_info(rs, name, slot, errstr, errstr_size);
    if (st == REPL_OK && slot->exists)
        stream_connect_record_slot(sc, rs, slot->confirmed_flush);
    return st;
}

stream_connect_result_t stream_connect_open(stream_connect_t *sc, repl_stream_t *rs, bool had_stream, lsn_t confirmed,
                                            lsn_t *start, char *errstr, size_t errstr_size) {
    const stream_connect_options_t *o = sc->o;
    *start = confirmed;
    repl_status_t st = repl_stream_connect(rs, o->conninfo, errstr, errstr_size);
    if (st == REPL_OK)
        st = identify(sc, rs, errstr, errstr_size);
    if (st == REPL_OK) {
        err_t e;
        st = pg_preflight_server(repl_stream_conn(rs), &e);
        if (st != REPL_OK)
            err_line(&e, errstr, errstr_size);
    }
    if (st == REPL_OK)
        st = check_tables(sc, repl_stream_conn(rs), had_stream, errstr, errstr_size);
    repl_slot_info_t slot;
    if (st == REPL_OK)
        st = repl_stream_slot_info(rs, o->slot, &slot, errstr, errstr_size);
    if (st != REPL_OK)
        return result_of(st);
    load_record(sc, rs);
    switch (stream_connect_decide(o, &slot, PQdb(repl_stream_conn(rs)), had_stream, confirmed,
                                  stream_connect_record(sc), sc->system_id, errstr, errstr_size)) {
    case STREAM_SLOT_USE:
        break;
    case STREAM_SLOT_STANDBY:
        return STREAM_CONNECT_STANDBY;
    case STREAM_SLOT_REFUSE:
        return STREAM_CONNECT_FATAL;
    case STREAM_SLOT_BACKFILL:
        return STREAM_CONNECT_BACKFILL;
    case STREAM_SLOT_RECOVER:
        return STREAM_CONNECT_RECOVER;
    case STREAM_SLOT_CREATE:
        st = create_slot(sc, rs, &slot, errstr, errstr_size);
        if (st != REPL_OK)
            return result_of(st);
        break;
    }
    /* On another server or timeline, what this process confirmed before may be ahead of this
     * server's history (a standby that had not replayed it): its positions past the promotion
     * are other transactions. Start where the slot here says. */
    st = ensure_failover(sc, rs, &slot, errstr, errstr_size);
    if (st != REPL_OK)
        return result_of(st);
    bool same_server = !strcmp(sc->streamed_system_id, sc->system_id) && sc->streamed_timeline == sc->timeline;
    if (!same_server || slot.confirmed_flush > *start)
        *start = slot.confirmed_flush;
    st = repl_stream_start(rs, o->slot, plugin_name(o->plugin), *start,
                           o->plugin == PLUGIN_PGOUTPUT ? sc->pgo_options : sc->w2j_options, errstr, errstr_size);
    if (st == REPL_OK) {
        snprintf(sc->streamed_system_id, sizeof(sc->streamed_system_id), "%s", sc->system_id);
        sc->streamed_timeline = sc->timeline;
    }
    return result_of(st);
}
