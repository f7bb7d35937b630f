/* stream_connect.c - connect, preflight, the slot policy and START_REPLICATION: everything
 * between "the relay wants a stream" and "the stream runs" (see stream_connect.h). */
#include "stream_connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_preflight.h"

struct stream_connect {
    const stream_connect_options_t *o;
    router_t *router;
    cleanup_t *cl;
    const char *w2j_options[17]; /* START_REPLICATION options, name/value pairs, NULL */
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
    return sc;
}

void stream_connect_destroy(stream_connect_t *sc) { free(sc); }

/* Every configured table exists with the required columns; sets each table's payload type
 * in the router and registers it for outbox.cleanup. */
static repl_status_t check_tables(stream_connect_t *sc, PGconn *conn, bool had_stream, char *errstr,
                                  size_t errstr_size) {
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
    }
    return REPL_OK;
}

stream_slot_action_t stream_connect_decide(const stream_connect_options_t *o, const repl_slot_info_t *slot,
                                           const char *db, bool had_stream, lsn_t confirmed, char *errstr,
                                           size_t errstr_size) {
    char lb[LSN_FMT_SIZE];
    if (slot->exists) {
        if (strcmp(slot->plugin, "wal2json") != 0) {
            snprintf(errstr, errstr_size,
                     "replication slot \"%s\" uses plugin %s, not wal2json: set postgres.slot to another name "
                     "or drop the slot (SELECT pg_drop_replication_slot('%s'))",
                     o->slot, slot->plugin, o->slot);
            return STREAM_SLOT_REFUSE;
        }
        if (db && strcmp(slot->database, db) != 0) {
            snprintf(errstr, errstr_size,
                     "replication slot \"%s\" belongs to database \"%s\", but postgres.conninfo connects to "
                     "\"%s\": fix the dbname or use another postgres.slot",
                     o->slot, slot->database, db);
            return STREAM_SLOT_REFUSE;
        }
        if (slot->active) {
            snprintf(errstr, errstr_size, "replication slot \"%s\" is in use by PID %d (another outboxd?)", o->slot,
                     slot->active_pid);
            return STREAM_SLOT_STANDBY;
        }
        return STREAM_SLOT_USE;
    }
    if (had_stream) {
        /* It existed when we streamed: dropped, or PostgreSQL failed over to a server without
         * it. Recreating it silently would skip everything committed in between. */
        snprintf(errstr, errstr_size,
                 "replication slot \"%s\" disappeared while outboxd was streaming it (dropped, or a "
                 "failover to a server without it): events committed since %s may not have been "
                 "published. Recreate the slot and republish from the table (docs/operations.md, "
                 "\"Slot invalidated\"), then restart outboxd",
                 o->slot, lsn_format(confirmed, lb));
        return STREAM_SLOT_REFUSE;
    }
    if (!o->create_slot) {
        snprintf(errstr, errstr_size,
                 "replication slot \"%s\" does not exist and postgres.slot.create is false: create it with "
                 "SELECT pg_create_logical_replication_slot('%s', 'wal2json'); or set postgres.slot.create "
                 "= true",
                 o->slot, o->slot);
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

stream_connect_result_t stream_connect_open(stream_connect_t *sc, repl_stream_t *rs, bool had_stream, lsn_t confirmed,
                                            lsn_t *start, char *errstr, size_t errstr_size) {
    const stream_connect_options_t *o = sc->o;
    *start = confirmed;
    repl_status_t st = repl_stream_connect(rs, o->conninfo, errstr, errstr_size);
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
    switch (stream_connect_decide(o, &slot, PQdb(repl_stream_conn(rs)), had_stream, confirmed, errstr, errstr_size)) {
    case STREAM_SLOT_USE:
        break;
    case STREAM_SLOT_STANDBY:
        return STREAM_CONNECT_STANDBY;
    case STREAM_SLOT_REFUSE:
        return STREAM_CONNECT_FATAL;
    case STREAM_SLOT_BACKFILL:
        return STREAM_CONNECT_BACKFILL;
    case STREAM_SLOT_CREATE:
        st = repl_stream_create_slot(rs, o->slot, "wal2json", errstr, errstr_size);
        if (st != REPL_OK)
            return result_of(st);
        log_warn("created replication slot \"%s\" (wal2json): outboxd publishes what commits from "
                 "now on; rows committed before are not streamed",
                 o->slot);
        st = repl_stream_slot_info(rs, o->slot, &slot, errstr, errstr_size);
        if (st != REPL_OK)
            return result_of(st);
        break;
    }
    if (slot.confirmed_flush > *start)
        *start = slot.confirmed_flush;
    return result_of(repl_stream_start(rs, o->slot, *start, sc->w2j_options, errstr, errstr_size));
}
