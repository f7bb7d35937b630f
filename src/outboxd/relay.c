/* relay.c - the outboxd main loop: one thread, one ppoll() over the replication socket and
 * librdkafka's delivery-report fd; confirms the slot only up to fully acknowledged commits. */
#include "relay.h"
#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ack_tracker.h"
#include "backfill.h"
#include "cleanup.h"
#include "cli.h"
#include "kproducer.h"
#include "log.h"
#include "lsn.h"
#include "notify.h"
#include "pg_preflight.h"
#include "relay_ops.h"
#include "repl_stream.h"
#include "w2j_decode.h"

#define ERRSZ 1024
#define READ_BATCH 2048 /* messages read per loop turn before serving Kafka again */
#define PROGRESS_INTERVAL_MS 10000
#define STANDBY_RETRY_MS 1000 /* a standby checks this often whether the slot is free */
#define DLQ_FLAG (1ULL << 63) /* in a delivery opaque: the record went to the dead-letter topic */

typedef enum { ST_CONNECT, ST_STREAM, ST_DRAIN, ST_SHUTDOWN } state_t;

typedef struct relay {
    const relay_options_t *o;
    volatile sig_atomic_t *stop;
    sigset_t unblocked; /* the signal mask while waiting: SIGTERM and SIGINT deliverable */
    repl_stream_t *rs;
    w2j_decoder_t *dec;
    router_t *router;
    kproducer_t *kp;
    ack_tracker_t *at;
    const char **w2j_options; /* START_REPLICATION options, name/value pairs */

    state_t state;
    int exit_code;
    bool pending; /* ev was refused with QUEUE_FULL: retry before reading more */
    outbox_event_t ev;
    uint64_t ev_seq;
    lsn_t ev_lsn; /* LSN of ev's WAL record */
    bool ev_is_dlq; /* ev is a dead-letter record (a refusal then stops the relay) */
    router_header_t *dlq_hdrs; /* headers of a dead-letter ev: the original ones plus ours */
    size_t dlq_hdrs_cap;
    char dlq_reason[ERRSZ + 256], dlq_lsn[LSN_FMT_SIZE];
    uint64_t dead_lettered;
    lsn_t backfill_lsn;  /* the backfill slot's consistent point */
    cleanup_t *cl;       /* outbox.cleanup = delete; NULL otherwise */
    uint64_t confirmed_seq; /* transactions up to this seq were confirmed to PostgreSQL */
    char *backfill_json; /* dead-letter value of an invalid backfilled row */
    bool status_due;
    lsn_t sent_flush;
    int64_t last_status_ms, next_connect_ms, shutdown_deadline_ms;
    int backoff_ms;
    bool had_stream; /* streamed at least once: later connects are reconnects */

    uint64_t produced, acked, last_progress_acked;
    uint64_t stall_acked;   /* r->acked when stall_since was last reset */
    int64_t stall_since_ms; /* since when events are outstanding without any acknowledgement */
    int64_t last_progress_ms;

    relay_ops_t *ops;   /* metrics, HTTP endpoint, slot poll, guardrails */
    lsn_t wal_end;      /* the walsender's last reported WAL end */
    bool standby;       /* the slot is streamed by another process: waiting for it */
    char not_ready[ERRSZ + 64]; /* why not streaming, for /readyz */
} relay_t;

static int64_t now_ms(void) { return clock_now_ms(); }

static const char *fmt_lsn(lsn_t l, char *buf) { return lsn_format(l, buf); }

/* Stops the relay: log the reason, flush what was acknowledged, exit with code. */
static void relay_fail(relay_t *r, int code, const char *msg) {
    log_error("%s", msg);
    if (r->state != ST_SHUTDOWN) {
        notify_stopping();
        r->state = ST_SHUTDOWN;
        r->shutdown_deadline_ms = now_ms() + r->o->shutdown_timeout_ms;
    }
    if (code > r->exit_code)
        r->exit_code = code;
}

static void on_delivery(void *opaque, const kproducer_delivery_t *d) {
    relay_t *r = opaque;
    uint64_t seq = d->seq & ~DLQ_FLAG;
    bool was_dlq = (d->seq & DLQ_FLAG) != 0;
    char msg[ERRSZ + 512], err[ERRSZ], lb[LSN_FMT_SIZE];
    if (!d->err) {
        if (ack_tracker_ack(r->at, seq) == 0) {
            r->acked++;
            relay_ops_acked(r->ops, seq, d->topic, d->bytes);
        }
        return;
    }
    relay_ops_failed(r->ops, seq);
    lsn_t l = ack_tracker_seq_lsn(r->at, seq);
    if (r->o->dead_letter_topic && !was_dlq) {
        /* The broker refused it for good: send the same record to the dead-letter topic under
         * the same sequence number, so its acknowledgement settles the event. */
        snprintf(msg, sizeof(msg), "Kafka refused it for topic %s: %s", d->topic ? d->topic : "?",
                 d->errstr ? d->errstr : "error");
        if (kproducer_redirect(r->kp, d, r->o->dead_letter_topic, msg, d->too_large, seq | DLQ_FLAG, err,
                               sizeof(err)) == KPRODUCER_OK) {
            r->dead_lettered++;
            log_warn("event %s sent to dead-letter topic %s: %s", d->event_id ? d->event_id : "(no id)",
                     r->o->dead_letter_topic, msg);
            return;
        }
        if (ack_tracker_fail(r->at, seq) != 0)
            return;
        snprintf(msg, sizeof(msg), "event %s could not be dead-lettered: %s; the slot stays before it",
                 d->event_id ? d->event_id : "(no id)", err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    }
    if (ack_tracker_fail(r->at, seq) != 0)
        return; /* a report from before a reconnect */
    snprintf(msg, sizeof(msg),
             "event %s for topic %s was not acknowledged by Kafka: %s (transaction %s%s); the slot stays "
             "before it: fix the cause and restart outboxd",
             d->event_id ? d->event_id : "(no id)", d->topic ? d->topic : "?", d->errstr ? d->errstr : "error",
             l ? "commit end " : "still open", l ? fmt_lsn(l, lb) : "");
    relay_fail(r, RELAY_EXIT_RUNTIME, msg);
}

/* Turns r->ev into its dead-letter record: same key and headers plus outboxd.error and
 * outboxd.lsn; value is the original (or, when it was the problem, empty with its size
 * in outboxd.value.size). Returns -1 on allocation failure. */
static int make_dead_letter(relay_t *r, const char *reason, bool drop_value) {
    size_t need = r->ev.nheaders + 3;
    if (need > r->dlq_hdrs_cap) {
        router_header_t *h = realloc(r->dlq_hdrs, need * sizeof(*h));
        if (!h)
            return -1;
        r->dlq_hdrs = h;
        r->dlq_hdrs_cap = need;
    }
    size_t n = 0;
    for (size_t i = 0; i < r->ev.nheaders; i++)
        r->dlq_hdrs[n++] = r->ev.headers[i];
    snprintf(r->dlq_reason, sizeof(r->dlq_reason), "%s", reason);
    lsn_format(r->ev_lsn, r->dlq_lsn);
    r->dlq_hdrs[n++] = (router_header_t){"outboxd.error", r->dlq_reason, strlen(r->dlq_reason)};
    r->dlq_hdrs[n++] = (router_header_t){"outboxd.lsn", r->dlq_lsn, strlen(r->dlq_lsn)};
    static char size[32];
    if (drop_value) {
        snprintf(size, sizeof(size), "%zu", r->ev.value_len);
        r->dlq_hdrs[n++] = (router_header_t){"outboxd.value.size", size, strlen(size)};
        r->ev.value = "";
        r->ev.value_len = 0;
    }
    r->ev.headers = r->dlq_hdrs;
    r->ev.nheaders = n;
    r->ev.topic = r->o->dead_letter_topic;
    r->ev_is_dlq = true;
    return 0;
}

/* An event the router could not turn into a record: r->ev becomes its dead-letter record
 * with value as the value and the id header when the id is known (r->ev.id, set by the
 * router). Returns -1 on allocation failure. */
static int dead_letter_unroutable(relay_t *r, const char *value, size_t len, const char *reason) {
    const char *id = r->ev.id;
    router_header_t idh = {r->o->router.id_header ? r->o->router.id_header : "id", id, id ? strlen(id) : 0};
    r->ev = (outbox_event_t){.id = id, .value = value, .value_len = len, .headers = &idh, .nheaders = id ? 1 : 0};
    if (make_dead_letter(r, reason, false) != 0) /* copies idh */
        return -1;
    char lb[LSN_FMT_SIZE];
    r->dead_lettered++;
    log_warn("event %s at LSN %s sent to dead-letter topic %s: %s", id ? id : "(no id)", fmt_lsn(r->ev_lsn, lb),
             r->o->dead_letter_topic, reason);
    return 0;
}

/* The replication connection broke: drop the unsent record, drain acks, reconnect. */
static void stream_lost(relay_t *r, const char *why) {
    if (r->pending) {
        ack_tracker_fail(r->at, r->ev_seq); /* never sent; the stream replays it */
        r->pending = false;
    }
    repl_stream_close(r->rs);
    if (r->state == ST_SHUTDOWN)
        return;
    log_warn("%s; waiting for %zu in-flight events, then reconnecting", why, ack_tracker_outstanding(r->at));
    snprintf(r->not_ready, sizeof(r->not_ready), "reconnecting: %s", why);
    r->state = ST_DRAIN;
}

static void send_status(relay_t *r) {
    if (!repl_stream_connected(r->rs))
        return;
    lsn_t flush = ack_tracker_confirmable(r->at), write = ack_tracker_received(r->at);
    uint64_t settled = ack_tracker_settled_seq(r->at);
    if (write < flush)
        write = flush;
    char err[ERRSZ];
    if (repl_stream_send_status(r->rs, write, flush, err, sizeof(err)) != REPL_OK) {
        stream_lost(r, err);
        return;
    }
    if (flush != r->sent_flush) {
        char lb[LSN_FMT_SIZE];
        log_debug("confirmed %s", fmt_lsn(flush, lb));
    }
    r->sent_flush = flush;
    r->confirmed_seq = settled;
    r->last_status_ms = now_ms();
    r->status_due = false;
}

static void publish(relay_t *r) {
    char err[ERRSZ];
    kproducer_result_t res = kproducer_produce(r->kp, &r->ev, r->ev_is_dlq ? r->ev_seq | DLQ_FLAG : r->ev_seq, err,
                                               sizeof(err));
    if ((res == KPRODUCER_INVALID || res == KPRODUCER_TOO_LARGE) && r->o->dead_letter_topic && !r->ev_is_dlq) {
        const char *id = r->ev.id ? r->ev.id : "(no id)";
        if (make_dead_letter(r, err, res == KPRODUCER_TOO_LARGE) == 0) {
            r->dead_lettered++;
            log_warn("event %s sent to dead-letter topic %s: %s", id, r->o->dead_letter_topic, err);
            res = kproducer_produce(r->kp, &r->ev, r->ev_seq | DLQ_FLAG, err, sizeof(err));
        }
    }
    switch (res) {
    case KPRODUCER_OK:
        r->pending = false;
        r->ev_is_dlq = false;
        r->produced++;
        relay_ops_produced(r->ops, r->ev_seq, now_ms());
        return;
    case KPRODUCER_QUEUE_FULL:
        r->pending = true;
        return;
    case KPRODUCER_INVALID:
    case KPRODUCER_TOO_LARGE: {
        r->pending = false;
        r->ev_is_dlq = false;
        ack_tracker_fail(r->at, r->ev_seq);
        char msg[ERRSZ + 256], lb[LSN_FMT_SIZE];
        snprintf(msg, sizeof(msg), "event %s at LSN %s cannot be published: %s; the slot stays before it", r->ev.id,
                 fmt_lsn(r->ev_lsn, lb), err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    }
    }
}

/* outbox.cleanup = delete: queue the row of r->ev (rows only; messages have none). */
static void queue_cleanup(relay_t *r, const w2j_record_t *rec) {
    if (!r->cl || rec->action != W2J_INSERT || !r->ev.id || !r->ev_seq)
        return;
    for (size_t i = 0; i < router_table_count(r->router); i++) {
        const char *schema, *table;
        router_table_get(r->router, i, &schema, &table);
        if (rec->schema && rec->table && !strcmp(schema, rec->schema) && !strcmp(table, rec->table)) {
            cleanup_push(r->cl, i, r->ev_seq, r->ev.id);
            return;
        }
    }
}

/* Handles one wal2json record. */
static void handle_data(relay_t *r, const repl_msg_t *m) {
    char err[ERRSZ], msg[ERRSZ + 256], lb[LSN_FMT_SIZE];
    w2j_record_t rec;
    if (w2j_decode(r->dec, m->data, m->len, &rec, err, sizeof(err)) != 0) {
        snprintf(msg, sizeof(msg), "cannot decode the wal2json record at LSN %s: %s", fmt_lsn(m->data_start, lb), err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    }
    switch (rec.action) {
    case W2J_BEGIN:
        relay_ops_begin_txn(r->ops, rec.timestamp);
        if (ack_tracker_begin(r->at) != 0)
            stream_lost(r, "replication protocol error: BEGIN inside a transaction");
        return;
    case W2J_COMMIT:
        if (ack_tracker_commit(r->at, rec.nextlsn ? rec.nextlsn : rec.lsn) != 0)
            stream_lost(r, "replication protocol error: COMMIT outside a transaction");
        return;
    default:
        break;
    }
    switch (router_route(r->router, &rec, &r->ev, err, sizeof(err))) {
    case ROUTER_SKIP:
        return;
    case ROUTER_INVALID:
        if (r->o->dead_letter_topic) {
            /* No record could be built: dead-letter the wal2json record itself. */
            bool own_txn = !ack_tracker_in_txn(r->at); /* a non-transactional message */
            r->ev_lsn = m->data_start;
            if (own_txn)
                ack_tracker_begin(r->at);
            r->ev_seq = ack_tracker_add_event(r->at);
            queue_cleanup(r, &rec);
            if (dead_letter_unroutable(r, m->data, m->len, err) == 0)
                publish(r);
            else
                relay_fail(r, RELAY_EXIT_RUNTIME, "out of memory");
            if (own_txn)
                ack_tracker_commit(r->at, m->data_start);
            return;
        }
        snprintf(msg, sizeof(msg), "event %s at LSN %s cannot be published: %s; the slot stays before it",
                 r->ev.id ? r->ev.id : "(no id)", fmt_lsn(m->data_start, lb), err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    case ROUTER_EVENT:
        break;
    }
    r->ev_lsn = m->data_start;
    r->ev_is_dlq = false;
    r->ev_seq = ack_tracker_add_event(r->at);
    queue_cleanup(r, &rec);
    if (r->ev_seq == 0) {
        snprintf(msg, sizeof(msg), "outbox record at LSN %s arrived outside a transaction", fmt_lsn(m->data_start, lb));
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    }
    publish(r);
}

/* Metrics, health and guardrails (cheap unless a second has passed); a lost slot stops us. */
static void ops_tick(relay_t *r, int64_t now) {
    char err[ERRSZ + 512];
    relay_ops_state_t os = {.streaming = r->state == ST_STREAM,
                            .not_ready = r->state == ST_SHUTDOWN ? "stopping" : r->not_ready,
                            .standby = r->standby,
                            .received = ack_tracker_received(r->at),
                            .confirmed = r->sent_flush,
                            .wal_end = r->wal_end,
                            .in_flight = ack_tracker_outstanding(r->at)};
    if (relay_ops_tick(r->ops, now, &os, err, sizeof(err)) != 0 && r->state != ST_SHUTDOWN) {
        repl_stream_close(r->rs);
        relay_fail(r, RELAY_EXIT_CONFIG, err);
    }
}

static bool blocked(const relay_t *r) { return r->pending || ack_tracker_full(r->at); }

/* Reads buffered replication messages until none is left or back-pressure applies.
 * Returns true when it stopped at READ_BATCH: libpq may still hold whole messages that
 * the socket will not signal, so the loop must come back without waiting. */
static bool read_stream(relay_t *r) {
    if (r->pending)
        publish(r);
    char err[ERRSZ];
    for (int i = 0; i < READ_BATCH; i++) {
        if (r->state != ST_STREAM || blocked(r))
            return false;
        repl_msg_t m;
        int n = repl_stream_read(r->rs, &m, err, sizeof(err));
        if (n == 0)
            return false;
        if (n < 0) {
            if (strstr(err, "invalidated")) {
                relay_fail(r, RELAY_EXIT_CONFIG, err);
                repl_stream_close(r->rs);
            } else {
                stream_lost(r, err);
            }
            return false;
        }
        if (m.wal_end > r->wal_end)
            r->wal_end = m.wal_end;
        if (m.kind == REPL_MSG_KEEPALIVE) {
            ack_tracker_keepalive(r->at, m.wal_end);
            if (m.reply_requested)
                r->status_due = true;
        } else {
            handle_data(r, &m);
        }
    }
    return true;
}

/* Waits up to 100 ms for delivery reports and serves them. Returns -1 when the relay must
 * stop (signal, fatal producer error, a failed event). */
static int wait_kafka(relay_t *r) {
    struct pollfd p = {.fd = kproducer_fd(r->kp), .events = POLLIN};
    struct timespec ts = {0, 100 * 1000000};
    ppoll(&p, 1, &ts, &r->unblocked);
    char err[ERRSZ];
    if (kproducer_poll(r->kp, err, sizeof(err)) != 0) {
        relay_fail(r, RELAY_EXIT_RUNTIME, err);
        return -1;
    }
    return *r->stop || r->state == ST_SHUTDOWN ? -1 : 0;
}

/* One backfilled row: route and publish it as a one-event transaction, waiting for
 * acknowledgements whenever the in-flight bounds are reached. */
static int backfill_row(void *opaque, const w2j_record_t *rec) {
    relay_t *r = opaque;
    char err[ERRSZ], msg[ERRSZ + 256];
    ops_tick(r, now_ms()); /* a long backfill keeps /healthz and the watchdog alive */
    while (ack_tracker_full(r->at))
        if (wait_kafka(r) != 0)
            return 1;
    router_result_t rr = router_route(r->router, rec, &r->ev, err, sizeof(err));
    if (rr == ROUTER_SKIP)
        return 0;
    r->ev_lsn = r->backfill_lsn;
    r->ev_is_dlq = false;
    if (rr == ROUTER_INVALID) {
        if (!r->o->dead_letter_topic) {
            snprintf(msg, sizeof(msg), "backfill: event %s of %s.%s cannot be published: %s",
                     r->ev.id ? r->ev.id : "(no id)", rec->schema, rec->table, err);
            relay_fail(r, RELAY_EXIT_RUNTIME, msg);
            return 1;
        }
        /* Dead-letter the row as JSON: {"schema", "table", "columns": {name: text}} */
        json_t *cols = json_object(), *row = json_pack("{s:s, s:s, s:o}", "schema", rec->schema, "table",
                                                        rec->table, "columns", cols);
        for (size_t i = 0; i < rec->ncolumns; i++)
            json_object_set_new(cols, rec->columns[i].name,
                                rec->columns[i].value ? json_stringn(rec->columns[i].value, rec->columns[i].value_len)
                                                      : json_null());
        free(r->backfill_json);
        r->backfill_json = json_dumps(row, JSON_COMPACT);
        json_decref(row);
        if (!r->backfill_json || dead_letter_unroutable(r, r->backfill_json, strlen(r->backfill_json), err) != 0)
            return 1;
    }
    ack_tracker_begin(r->at);
    r->ev_seq = ack_tracker_add_event(r->at);
    queue_cleanup(r, rec);
    publish(r);
    while (r->pending && r->state != ST_SHUTDOWN) {
        if (wait_kafka(r) != 0)
            break;
        publish(r);
    }
    ack_tracker_commit(r->at, r->backfill_lsn);
    return r->state == ST_SHUTDOWN || *r->stop ? 1 : 0;
}

/* First start with outbox.backfill.where: a temporary slot exports the snapshot its stream
 * starts from; the rows matching the predicate in that snapshot are published and
 * acknowledged; only then is the slot copied to its permanent name. A crash before the copy
 * leaves no slot behind, so the next start backfills again (duplicates, never a gap). */
static repl_status_t backfill_and_create_slot(relay_t *r, char *err, size_t errsz) {
    char tmp[64], snapshot[128], lb[LSN_FMT_SIZE];
    snprintf(tmp, sizeof(tmp), "%.54s_backfill", r->o->slot);
    repl_status_t st = repl_stream_create_temp_slot(r->rs, tmp, "wal2json", snapshot, sizeof(snapshot),
                                                    &r->backfill_lsn, err, errsz);
    if (st != REPL_OK)
        return st;
    ack_tracker_reset(r->at, r->backfill_lsn);
    size_t n = router_table_count(r->router);
    const char **schemas = calloc(n + 1, sizeof(char *)), **tables = calloc(n + 1, sizeof(char *));
    if (!schemas || !tables) {
        free(schemas);
        free(tables);
        snprintf(err, errsz, "out of memory");
        return REPL_FATAL;
    }
    for (size_t i = 0; i < n; i++)
        router_table_get(r->router, i, &schemas[i], &tables[i]);
    snprintf(r->not_ready, sizeof(r->not_ready), "backfill: publishing the existing rows before streaming");
    log_info("backfill: publishing rows WHERE %s ORDER BY %s as of the new slot's snapshot (LSN %s)",
             r->o->backfill_where, r->o->backfill_order, fmt_lsn(r->backfill_lsn, lb));
    backfill_options_t bo = {.conninfo = r->o->conninfo, .snapshot = snapshot, .where = r->o->backfill_where,
                             .order = r->o->backfill_order, .batch = 500};
    uint64_t rows = 0;
    err[0] = '\0';
    int rc = backfill_run(&bo, schemas, tables, n, backfill_row, r, &rows, err, errsz);
    free(schemas);
    free(tables);
    if (rc != 0) {
        if (rc < 0)
            return REPL_FATAL; /* err says what: a bad predicate, order or permission */
        snprintf(err, errsz, "backfill interrupted after %" PRIu64 " rows; the next start backfills again", rows);
        return REPL_FATAL;
    }
    while (ack_tracker_outstanding(r->at) > 0)
        if (wait_kafka(r) != 0) {
            snprintf(err, errsz, "backfill interrupted while waiting for acknowledgements; the next start backfills again");
            return REPL_FATAL;
        }
    if (ack_tracker_failed(r->at)) {
        snprintf(err, errsz, "backfill: an event was not acknowledged; the next start backfills again");
        return REPL_FATAL;
    }
    st = repl_stream_copy_slot(r->rs, tmp, r->o->slot, err, errsz);
    if (st == REPL_OK)
        log_info("backfill: published %" PRIu64 " rows; created replication slot \"%s\" at %s", rows, r->o->slot,
                 fmt_lsn(r->backfill_lsn, lb));
    return st;
}

/* Connects, checks, finds or creates the slot and starts streaming from the confirmed LSN. */
static void connect_and_start(relay_t *r) {
    char err[ERRSZ], lb[LSN_FMT_SIZE];
    repl_status_t st = repl_stream_connect(r->rs, r->o->conninfo, err, sizeof(err));
    if (st == REPL_OK)
        st = pg_preflight_server(repl_stream_conn(r->rs), err, sizeof(err));
    const router_columns_t *c = &r->o->router.columns;
    const char *required[] = {c->id, c->aggregate_type, c->aggregate_id, c->event_type, c->payload, NULL};
    for (size_t i = 0; st == REPL_OK && i < router_table_count(r->router); i++) {
        const char *schema, *table;
        bool has_headers = false;
        char types[6][PG_PREFLIGHT_TYPE_SIZE]; /* one per entry of required; [4] = payload */
        router_table_get(r->router, i, &schema, &table);
        st = pg_preflight_table(repl_stream_conn(r->rs), schema, table, required, types, c->headers, &has_headers,
                                err, sizeof(err));
        if (st == REPL_OK)
            router_set_payload_type(r->router, i, router_payload_type_for(types[4]));
        if (st == REPL_OK && r->cl && cleanup_set_table(r->cl, i, schema, table, c->id, types[0]) != 0)
            log_warn("outbox.cleanup: cannot handle table %s.%s", schema, table);
        if (st == REPL_OK && c->headers && *c->headers && !has_headers && !r->had_stream)
            log_info("outbox table %s.%s has no \"%s\" column: records get only the id and type headers",
                     schema, table, c->headers);
    }
    repl_slot_info_t slot;
    bool busy = false; /* another process streams the slot: stand by */
    if (st == REPL_OK)
        st = repl_stream_slot_info(r->rs, r->o->slot, &slot, err, sizeof(err));
    if (st == REPL_OK && slot.exists) {
        const char *db = PQdb(repl_stream_conn(r->rs));
        if (strcmp(slot.plugin, "wal2json") != 0) {
            snprintf(err, sizeof(err),
                     "replication slot \"%s\" uses plugin %s, not wal2json: set postgres.slot to another name "
                     "or drop the slot (SELECT pg_drop_replication_slot('%s'))",
                     r->o->slot, slot.plugin, r->o->slot);
            st = REPL_FATAL;
        } else if (db && strcmp(slot.database, db) != 0) {
            snprintf(err, sizeof(err),
                     "replication slot \"%s\" belongs to database \"%s\", but postgres.conninfo connects to "
                     "\"%s\": fix the dbname or use another postgres.slot",
                     r->o->slot, slot.database, db);
            st = REPL_FATAL;
        } else if (slot.active) {
            snprintf(err, sizeof(err), "replication slot \"%s\" is in use by PID %d (another outboxd?)", r->o->slot,
                     slot.active_pid);
            st = REPL_RETRY;
            busy = true;
        }
    } else if (st == REPL_OK) {
        if (r->had_stream) {
            /* It existed when we streamed: dropped, or PostgreSQL failed over to a server without
             * it. Recreating it silently would skip everything committed in between. */
            snprintf(err, sizeof(err),
                     "replication slot \"%s\" disappeared while outboxd was streaming it (dropped, or a "
                     "failover to a server without it): events committed since %s may not have been "
                     "published. Recreate the slot and republish from the table (docs/operations.md, "
                     "\"Slot invalidated\"), then restart outboxd",
                     r->o->slot, fmt_lsn(ack_tracker_confirmable(r->at), lb));
            st = REPL_FATAL;
        } else if (!r->o->create_slot) {
            snprintf(err, sizeof(err),
                     "replication slot \"%s\" does not exist and postgres.slot.create is false: create it with "
                     "SELECT pg_create_logical_replication_slot('%s', 'wal2json'); or set postgres.slot.create "
                     "= true",
                     r->o->slot, r->o->slot);
            st = REPL_FATAL;
        } else if (r->o->backfill_where && *r->o->backfill_where) {
            st = backfill_and_create_slot(r, err, sizeof(err));
            if (st == REPL_OK) { /* the slot exists now: connect again and stream it */
                repl_stream_close(r->rs);
                r->next_connect_ms = now_ms();
                return;
            }
        } else {
            st = repl_stream_create_slot(r->rs, r->o->slot, "wal2json", err, sizeof(err));
            if (st == REPL_OK) {
                log_warn("created replication slot \"%s\" (wal2json): outboxd publishes what commits from "
                         "now on; rows committed before are not streamed",
                         r->o->slot);
                st = repl_stream_slot_info(r->rs, r->o->slot, &slot, err, sizeof(err));
            }
        }
    }
    lsn_t start = ack_tracker_confirmable(r->at);
    if (st == REPL_OK) {
        if (slot.confirmed_flush > start)
            start = slot.confirmed_flush;
        st = repl_stream_start(r->rs, r->o->slot, start, (const char *const *)r->w2j_options, err, sizeof(err));
        busy = st == REPL_RETRY && strstr(err, "replication slot busy") != NULL; /* taken since slot_info */
    }
    if (st == REPL_FATAL) {
        repl_stream_close(r->rs);
        relay_fail(r, RELAY_EXIT_CONFIG, err);
        return;
    }
    if (busy) {
        /* Standby: one line when it starts, then check every second without backoff, so that
         * this instance takes over within about a second of the holder's end. */
        repl_stream_close(r->rs);
        if (!r->standby)
            log_warn("%s: standing by, checking every %d ms; this instance takes over when the slot is free", err,
                     STANDBY_RETRY_MS);
        r->standby = true;
        snprintf(r->not_ready, sizeof(r->not_ready), "standby: %s", err);
        r->next_connect_ms = now_ms() + STANDBY_RETRY_MS;
        return;
    }
    if (st == REPL_RETRY) {
        repl_stream_close(r->rs);
        snprintf(r->not_ready, sizeof(r->not_ready), "not streaming: %s", err);
        log_warn("%s (retrying in %d ms)", err, r->backoff_ms);
        r->next_connect_ms = now_ms() + r->backoff_ms;
        r->backoff_ms = r->backoff_ms * 2 > r->o->reconnect_backoff_max_ms ? r->o->reconnect_backoff_max_ms
                                                                           : r->backoff_ms * 2;
        return;
    }
    ack_tracker_reset(r->at, start);
    relay_ops_reset(r->ops);
    if (r->had_stream)
        relay_ops_reconnected(r->ops);
    if (r->standby)
        log_info("replication slot \"%s\" is free: taking over", r->o->slot);
    r->standby = false;
    r->sent_flush = start;
    r->backoff_ms = 500;
    r->state = ST_STREAM;
    r->status_due = true;
    log_info("%s slot \"%s\" from %s", r->had_stream ? "resumed streaming" : "streaming", r->o->slot,
             fmt_lsn(start, lb));
    r->had_stream = true;
}

/* Kafka acknowledged nothing for relay.stall.timeout.ms while events are outstanding: let go
 * of the replication connection until it does. Holding it would block a clean PostgreSQL
 * shutdown (the walsender waits until its client confirmed all it sent) for as long as
 * Kafka is down. After the drain, streaming resumes from the confirmed LSN. */
static void check_stall(relay_t *r, int64_t now) {
    if (ack_tracker_outstanding(r->at) == 0 || r->acked != r->stall_acked) {
        r->stall_since_ms = now;
        r->stall_acked = r->acked;
        return;
    }
    if (r->state == ST_STREAM && r->o->stall_timeout_ms > 0 && now - r->stall_since_ms >= r->o->stall_timeout_ms) {
        char why[256];
        snprintf(why, sizeof(why),
                 "Kafka acknowledged nothing for %d ms (%s): closing the replication stream until it does",
                 r->o->stall_timeout_ms, kproducer_last_error(r->kp)[0] ? kproducer_last_error(r->kp) : "no error yet");
        stream_lost(r, why);
    }
}

static void progress(relay_t *r, int64_t now) {
    if (now - r->last_progress_ms < PROGRESS_INTERVAL_MS)
        return;
    uint64_t n = r->acked - r->last_progress_acked;
    if (n > 0 || ack_tracker_outstanding(r->at) > 0) {
        char lb[LSN_FMT_SIZE];
        log_info("published %" PRIu64 " events (%.1f/s), %zu in flight, confirmed %s, lag %lld bytes", n,
                 n * 1000.0 / (double)(now - r->last_progress_ms), ack_tracker_outstanding(r->at),
                 fmt_lsn(ack_tracker_confirmable(r->at), lb), relay_ops_lag_bytes(r->ops));
    }
    r->last_progress_ms = now;
    r->last_progress_acked = r->acked;
}

static int build_w2j_options(relay_t *r) {
    const char *prefix = r->o->router.message_prefix;
    const char *opts[] = {"format-version", "2",
                          "include-xids", "1",
                          "include-timestamp", "1",
                          "include-lsn", "1",
                          "include-types", "0",
                          "actions", "insert",
                          "add-tables", router_add_tables_option(r->router),
                          /* an empty prefix list would let every message through */
                          "add-msg-prefixes", prefix && *prefix ? prefix : "outboxd.no-messages",
                          NULL};
    size_t n = sizeof(opts) / sizeof(opts[0]);
    r->w2j_options = calloc(n, sizeof(char *));
    if (!r->w2j_options)
        return -1;
    memcpy(r->w2j_options, opts, sizeof(opts));
    return 0;
}

/* Shutdown: stop reading, wait (bounded) for acks, send the final status update. */
static bool shutdown_step(relay_t *r, int64_t now) {
    if (r->pending) {
        ack_tracker_fail(r->at, r->ev_seq);
        r->pending = false;
    }
    bool drained = ack_tracker_outstanding(r->at) == 0;
    if (!drained && now < r->shutdown_deadline_ms && *r->stop < 2)
        return false;
    if (!drained)
        log_warn("stopping with %zu events not acknowledged by Kafka; they will be published again after restart",
                 ack_tracker_outstanding(r->at));
    send_status(r);
    for (int i = 0; i < 50 && repl_stream_connected(r->rs) && repl_stream_flush(r->rs) == 1; i++) {
        struct pollfd p = {.fd = repl_stream_fd(r->rs), .events = POLLOUT};
        poll(&p, 1, 100);
    }
    /* Delete the confirmed rows still queued (bounded): after a restart nobody knows them. */
    for (int64_t until = now_ms() + 3000; r->cl && now_ms() < until;) {
        cleanup_step(r->cl, r->confirmed_seq, now_ms());
        if (cleanup_fd(r->cl) < 0)
            break;
        struct pollfd p = {.fd = cleanup_fd(r->cl), .events = POLLIN};
        poll(&p, 1, 100);
        cleanup_on_readable(r->cl);
    }
    char lb[LSN_FMT_SIZE];
    if (r->had_stream)
        log_info("stopped; slot \"%s\" confirmed at %s", r->o->slot, fmt_lsn(r->sent_flush, lb));
    else
        log_info("stopped before streaming");
    return true;
}

int relay_run(const relay_options_t *o, volatile sig_atomic_t *stop) {
    relay_t r = {.o = o, .stop = stop, .backoff_ms = 500, .state = ST_CONNECT};
    char err[ERRSZ];
    int rc = RELAY_EXIT_CONFIG;
    sigprocmask(SIG_SETMASK, NULL, &r.unblocked);
    sigdelset(&r.unblocked, SIGTERM);
    sigdelset(&r.unblocked, SIGINT);
    sigdelset(&r.unblocked, SIGHUP);
    snprintf(r.not_ready, sizeof(r.not_ready), "starting: waiting for Kafka");

    r.router = router_new(&o->router, err, sizeof(err));
    if (!r.router) {
        log_error("%s", err);
        goto out;
    }
    r.at = ack_tracker_new(0, o->max_inflight_txns, o->max_inflight_events);
    r.dec = w2j_decoder_new();
    r.rs = repl_stream_new();
    if (!r.at || !r.dec || !r.rs || build_w2j_options(&r) != 0) {
        log_error("out of memory");
        goto out;
    }
    if (o->cleanup && !(r.cl = cleanup_new(o->conninfo, 100000, 500))) {
        log_error("out of memory");
        goto out;
    }
    relay_ops_options_t oo = {.http_listen = o->http_listen, .conninfo = o->conninfo, .slot = o->slot,
                              .retained_warn_bytes = o->retained_warn_bytes,
                              .slot_poll_interval_ms = o->slot_poll_interval_ms, .max_txns = o->max_inflight_txns};
    r.ops = relay_ops_new(&oo, err, sizeof(err));
    if (!r.ops) {
        log_error("%s", err);
        goto out;
    }
    r.kp = kproducer_new(o->kafka_props, o->router.id_header, on_delivery, &r, err, sizeof(err));
    if (!r.kp) {
        log_error("%s", err);
        goto out;
    }
    relay_ops_watch_kafka(r.ops, kproducer_handle(r.kp));
    /* Wait for Kafka in short slices so SIGTERM (blocked outside ppoll) still stops us. */
    for (int waited = 0;; waited += 500) {
        relay_ops_state_t os = {.not_ready = r.not_ready};
        relay_ops_tick(r.ops, now_ms(), &os, err, sizeof(err));
        int slice = o->startup_timeout_ms - waited < 500 ? o->startup_timeout_ms - waited : 500;
        if (kproducer_check_connect(r.kp, slice, err, sizeof(err)) == 0)
            break;
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) {
            log_info("stopped before streaming");
            rc = RELAY_EXIT_OK;
            goto out;
        }
        if (waited + slice >= o->startup_timeout_ms) {
            /* err names the last slice; say how long we waited in all. A broker that is down
             * (say, at boot) is worth a restart by the supervisor: exit 1, not 2. */
            log_error("%s (gave up after startup.timeout.ms=%d)", err, o->startup_timeout_ms);
            rc = RELAY_EXIT_RUNTIME;
            goto out;
        }
    }
    r.last_progress_ms = now_ms();
    snprintf(r.not_ready, sizeof(r.not_ready), "connecting to PostgreSQL");

    for (;;) {
        int64_t now = now_ms();
        bool more = false; /* read_stream left whole messages in libpq's buffer */
        if (cli_reload_pending())
            cli_reload();
        if (*stop && r.state != ST_SHUTDOWN) {
            notify_stopping();
            snprintf(r.not_ready, sizeof(r.not_ready), "stopping");
            log_info("stopping: waiting for %zu in-flight events", ack_tracker_outstanding(r.at));
            r.state = ST_SHUTDOWN;
            r.shutdown_deadline_ms = now + o->shutdown_timeout_ms;
        }
        if (kproducer_poll(r.kp, err, sizeof(err)) != 0) {
            /* Fatal producer error: exit without confirming anything unacked. */
            log_error("%s", err);
            rc = RELAY_EXIT_RUNTIME;
            goto out;
        }
        switch (r.state) {
        case ST_CONNECT:
            if (now >= r.next_connect_ms)
                connect_and_start(&r);
            break;
        case ST_STREAM:
            more = read_stream(&r);
            break;
        case ST_DRAIN:
            if (ack_tracker_outstanding(r.at) == 0) {
                r.state = ST_CONNECT;
                r.next_connect_ms = now + r.backoff_ms;
            }
            break;
        case ST_SHUTDOWN:
            if (shutdown_step(&r, now)) {
                rc = r.exit_code;
                goto out;
            }
            break;
        }
        if (r.state == ST_STREAM &&
            (r.status_due || now - r.last_status_ms >= o->status_interval_ms))
            send_status(&r);
        check_stall(&r, now);
        progress(&r, now);
        ops_tick(&r, now);
        if (r.cl)
            cleanup_step(r.cl, r.confirmed_seq, now);

        struct pollfd fds[3];
        int nfds = 0;
        fds[nfds++] = (struct pollfd){.fd = kproducer_fd(r.kp), .events = POLLIN};
        int pg = -1;
        if (repl_stream_connected(r.rs) && r.state == ST_STREAM) {
            short ev = blocked(&r) ? 0 : POLLIN;
            if (repl_stream_flush(r.rs) == 1)
                ev |= POLLOUT;
            pg = nfds;
            fds[nfds++] = (struct pollfd){.fd = repl_stream_fd(r.rs), .events = ev};
        }
        int cl = -1;
        if (r.cl && cleanup_fd(r.cl) >= 0) {
            cl = nfds;
            fds[nfds++] = (struct pollfd){.fd = cleanup_fd(r.cl), .events = POLLIN};
        }
        int64_t wait = 1000;
        if (r.state == ST_STREAM) {
            int64_t due = r.last_status_ms + o->status_interval_ms - now;
            if (due < wait)
                wait = due;
        } else if (r.state == ST_CONNECT) {
            if (r.next_connect_ms - now < wait) /* at least once a second: metrics, health */
                wait = r.next_connect_ms - now;
        } else {
            wait = 100;
        }
        if (wait < 0 || more)
            wait = 0;
        struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
        int n = ppoll(fds, (nfds_t)nfds, &ts, &r.unblocked);
        if (n < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            rc = RELAY_EXIT_RUNTIME;
            goto out;
        }
        if (n > 0 && cl >= 0 && fds[cl].revents)
            cleanup_on_readable(r.cl);
        if (n > 0 && pg >= 0 && (fds[pg].revents & (POLLIN | POLLERR | POLLHUP))) {
            if (repl_stream_consume(r.rs, err, sizeof(err)) != REPL_OK)
                stream_lost(&r, err);
        }
    }
out:
    relay_ops_destroy(r.ops); /* before the producer: its Kafka probe uses the handle */
    kproducer_destroy(r.kp);
    repl_stream_destroy(r.rs);
    w2j_decoder_destroy(r.dec);
    router_destroy(r.router);
    ack_tracker_destroy(r.at);
    free(r.w2j_options);
    free(r.dlq_hdrs);
    free(r.backfill_json);
    cleanup_destroy(r.cl);
    return rc;
}
