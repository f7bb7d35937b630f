/* backfill_publish.c - publishes the backfill through the relay (routing, dead-lettering,
 * acknowledgement tracking, back-pressure) and creates the slot where the backfill ends. */
#include "backfill_publish.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "backfill.h"
#include "clock.h"
#include "log.h"

/* One backfill: the rows all get the temporary slot's consistent point as their LSN. */
typedef struct run {
    relay_t *r;
    lsn_t lsn;
    const char *what; /* "backfill" or "recovery" */
    char *json;       /* dead-letter value of the last invalid row */
    bool retry;       /* exactly-once: a Kafka transaction failed; the next attempt starts over */
    char why[RELAY_ERRSZ];
} run_t;

/* Waits up to 100 ms for delivery reports and serves them. Returns -1 when the relay must
 * stop (signal, fatal producer error, a failed event). */
static int wait_kafka(relay_t *r) {
    struct pollfd p = {.fd = kproducer_fd(r->kp), .events = POLLIN};
    struct timespec ts = {0, 100 * 1000000};
    ppoll(&p, 1, &ts, &r->unblocked);
    char err[RELAY_ERRSZ];
    if (kproducer_poll(r->kp, err, sizeof(err)) != 0) {
        relay_fail(r, RELAY_EXIT_RUNTIME, err);
        return -1;
    }
    return *r->stop || r->state == ST_SHUTDOWN ? -1 : 0;
}

/* The dead-letter value of a row the router refused: {"schema", "table", "columns": {name: text}}. */
static char *row_json(const w2j_record_t *rec) {
    json_t *cols = json_object(),
           *row = json_pack("{s:s, s:s, s:o}", "schema", rec->schema, "table", rec->table, "columns", cols);
    for (size_t i = 0; i < rec->ncolumns; i++)
        json_object_set_new(cols, rec->columns[i].name,
                            rec->columns[i].value ? json_stringn(rec->columns[i].value, rec->columns[i].value_len)
                                                  : json_null());
    char *s = json_dumps(row, JSON_COMPACT);
    json_decref(row);
    return s;
}

/* One backfilled row: route and publish it as a one-event transaction, waiting for
 * acknowledgements whenever the in-flight bounds are reached. */
static int publish_row(void *opaque, const w2j_record_t *rec) {
    run_t *b = opaque;
    relay_t *r = b->r;
    char err[RELAY_ERRSZ], msg[RELAY_ERRSZ + 256];
    relay_tick(r, clock_now_ms()); /* a long backfill keeps /healthz and the watchdog alive */
    while (ack_tracker_full(r->at))
        if (wait_kafka(r) != 0)
            return 1;
    router_result_t rr = router_route(r->router, rec, &r->ev, err, sizeof(err));
    if (rr == ROUTER_SKIP)
        return 0;
    r->ev_lsn = b->lsn;
    r->ev_is_dlq = false;
    if (rr == ROUTER_INVALID) {
        if (!r->dl) {
            snprintf(msg, sizeof(msg), "%s: event %s of %s.%s cannot be published: %s", b->what,
                     r->ev.id ? r->ev.id : "(no id)", rec->schema, rec->table, err);
            relay_fail(r, RELAY_EXIT_RUNTIME, msg);
            return 1;
        }
        free(b->json);
        b->json = row_json(rec);
        if (!b->json || dead_letter_unroutable(r->dl, &r->ev, r->ev_lsn, b->json, strlen(b->json), err) != 0)
            return 1;
        r->ev_is_dlq = true;
    }
    ack_tracker_begin(r->at);
    r->ev_seq = ack_tracker_add_event(r->at);
    relay_queue_cleanup(r, rec);
    relay_publish(r);
    while (r->pending && r->state != ST_SHUTDOWN) {
        if (wait_kafka(r) != 0)
            break;
        relay_publish(r);
    }
    ack_tracker_commit(r->at, b->lsn);
    if (r->eos) { /* a Kafka transaction per batch of rows, as for the stream */
        relay_eos_pg_commit(r->eos, b->lsn);
        if (relay_eos_backfill_row(r, b->why, sizeof(b->why)) != 0) {
            b->retry = true;
            return 1;
        }
    }
    return r->state == ST_SHUTDOWN || *r->stop ? 1 : 0;
}

/* Reads and publishes the rows of every table (*rows counts them); waits until all were
 * acknowledged. */
static repl_status_t publish_rows(run_t *b, const char *snapshot, const char *where, uint64_t *rows, char *errstr,
                                  size_t errstr_size) {
    relay_t *r = b->r;
    size_t n = router_table_count(r->router);
    const char **schemas = calloc(n + 1, sizeof(char *)), **tables = calloc(n + 1, sizeof(char *));
    if (!schemas || !tables) {
        free(schemas);
        free(tables);
        snprintf(errstr, errstr_size, "out of memory");
        return REPL_FATAL;
    }
    for (size_t i = 0; i < n; i++)
        router_table_get(r->router, i, &schemas[i], &tables[i]);
    backfill_options_t bo = {
        .conninfo = r->o->conninfo, .snapshot = snapshot, .where = where, .order = r->o->backfill_order, .batch = 500};
    errstr[0] = '\0';
    int rc = backfill_read(&bo, schemas, tables, n, publish_row, b, rows, errstr, errstr_size);
    free(schemas);
    free(tables);
    if (rc != 0) {
        if (rc < 0)
            return REPL_FATAL; /* err says what: a bad predicate, order or permission */
        if (b->retry && r->state != ST_SHUTDOWN) {
            snprintf(errstr, errstr_size, "%s: %s", b->what, b->why);
            return REPL_RETRY;
        }
        snprintf(errstr, errstr_size, "%s interrupted after %" PRIu64 " rows; the next start does it again", b->what,
                 *rows);
        return REPL_FATAL;
    }
    while (ack_tracker_outstanding(r->at) > 0)
        if (wait_kafka(r) != 0) {
            snprintf(errstr, errstr_size,
                     "%s interrupted while waiting for acknowledgements; the next start does it again", b->what);
            return REPL_FATAL;
        }
    if (ack_tracker_failed(r->at)) {
        snprintf(errstr, errstr_size, "%s: an event was not acknowledged; the next start does it again", b->what);
        return r->eos && r->state != ST_SHUTDOWN ? REPL_RETRY : REPL_FATAL;
    }
    if (r->eos && relay_eos_commit_sync(r, b->why, sizeof(b->why)) != 0) {
        snprintf(errstr, errstr_size, "%s: %s", b->what, b->why);
        return r->state == ST_SHUTDOWN ? REPL_FATAL : REPL_RETRY;
    }
    return REPL_OK;
}

repl_status_t backfill_publish_run(relay_t *r, const char *where, const char *what, uint64_t *rows, char *errstr,
                                   size_t errstr_size) {
    char tmp[64], snapshot[128], lb[LSN_FMT_SIZE];
    run_t b = {.r = r, .what = what};
    *rows = 0;
    snprintf(tmp, sizeof(tmp), "%.54s_backfill", r->o->slot);
    stream_connect_sample(r->sc, r->rs); /* the record's horizon for the new slot */
    repl_status_t st = repl_stream_create_temp_slot(r->rs, tmp, plugin_name(r->o->plugin), snapshot, sizeof(snapshot),
                                                    &b.lsn, errstr, errstr_size);
    if (st != REPL_OK)
        return st;
    ack_tracker_reset(r->at, b.lsn);
    snprintf(r->not_ready, sizeof(r->not_ready), "%s: publishing existing rows before streaming", what);
    log_info("%s: publishing rows WHERE %s ORDER BY %s as of the new slot's snapshot (LSN %s)", what, where,
             r->o->backfill_order, lsn_format(b.lsn, lb));
    if (r->eos)
        log_warn("%s: at least once even with delivery.guarantee = exactly-once: rows carry no position Kafka could "
                 "hold, so rows already in Kafka are published again, and an interrupted %s starts over",
                 what, what);
    st = publish_rows(&b, snapshot, where, rows, errstr, errstr_size);
    if (r->pending) { /* interrupted with a row refused for a full queue: it is not sent */
        ack_tracker_fail(r->at, r->ev_seq);
        r->pending = false;
    }
    free(b.json); /* r->ev may point to it no longer */
    if (st != REPL_OK)
        return st;
    st = repl_stream_copy_slot(r->rs, tmp, r->o->slot, errstr, errstr_size);
    if (st != REPL_OK)
        return st;
    stream_connect_record_slot(r->sc, r->rs, b.lsn);
    log_info("%s: published %" PRIu64 " rows; created replication slot \"%s\" at %s", what, *rows, r->o->slot,
             lsn_format(b.lsn, lb));
    return REPL_OK;
}
