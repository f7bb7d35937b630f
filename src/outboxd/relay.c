/* relay.c - the outboxd main loop: one thread, one ppoll() over the replication socket and
 * librdkafka's delivery-report fd; confirms the slot only up to fully acknowledged commits. */
#include "relay.h"
#include "relay_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backfill_publish.h"
#include "cli.h"
#include "delivery_failure.h"
#include "clock.h"
#include "log.h"
#include "notify.h"
#include "stop_confirm.h"
#include "relay_partitions.h"

#define READ_BATCH 2048 /* messages read per loop turn before serving Kafka again */
#define PROGRESS_INTERVAL_MS 10000
#define STANDBY_RETRY_MS 1000 /* a standby checks this often whether the slot is free */
#define DLQ_FLAG RELAY_DLQ_FLAG
#define STOP_CONFIRM_MS 3000 /* at a stop: how long to wait for PostgreSQL to take the final confirmation */

void relay_fail(relay_t *r, int code, const char *msg) {
    log_error("%s", msg);
    if (r->state != ST_SHUTDOWN) {
        notify_stopping();
        r->state = ST_SHUTDOWN;
        r->shutdown_deadline_ms = clock_now_ms() + r->o->shutdown_timeout_ms;
    }
    if (code > r->exit_code)
        r->exit_code = code;
}

static void on_delivery(void *opaque, const kproducer_delivery_t *d) {
    relay_t *r = opaque;
    if (r->eos && relay_eos_delivery(r, d))
        return;
    uint64_t seq = d->seq & ~DLQ_FLAG;
    bool was_dlq = (d->seq & DLQ_FLAG) != 0;
    char msg[RELAY_ERRSZ + 1536], err[RELAY_ERRSZ];
    if (!d->err) {
        if (ack_tracker_ack(r->at, seq) == 0) {
            r->acked++;
            relay_ops_acked(r->ops, seq, d->topic, d->bytes);
        }
        return;
    }
    relay_ops_failed(r->ops, seq);
    lsn_t l = ack_tracker_seq_lsn(r->at, seq);
    if (r->dl && !was_dlq) {
        /* The broker refused it for good: send the same record to the dead-letter topic under
         * the same sequence number, so its acknowledgement settles the event. */
        if (dead_letter_redirect(r->dl, r->kp, d, seq | DLQ_FLAG, err, sizeof(err)) == KPRODUCER_OK)
            return;
        if (ack_tracker_fail(r->at, seq) != 0)
            return;
        snprintf(msg, sizeof(msg), "event %s could not be dead-lettered: %s; the slot stays before it",
                 d->event_id ? d->event_id : "(no id)", err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    }
    if (ack_tracker_fail(r->at, seq) != 0)
        return; /* a report from before a reconnect */
    relay_fail(r, delivery_failure_report(d, l, was_dlq, msg, sizeof(msg)), msg);
}

lsn_t relay_confirmable(const relay_t *r) {
    lsn_t c = relay_partitions_cap(r, ack_tracker_confirmable(r->at));
    return r->eos ? relay_eos_cap(r->eos, c) : c;
}

/* The replication connection broke: drop the unsent record, drain acks, reconnect. */
void relay_stream_lost(relay_t *r, const char *why) {
    if (r->pending) {
        ack_tracker_fail(r->at, r->ev_seq); /* never sent; the stream replays it */
        r->pending = false;
    }
    repl_stream_close(r->rs);
    if (r->eos)
        relay_eos_rewind(r); /* the open Kafka transaction is replayed too */
    if (r->state == ST_SHUTDOWN)
        return;
    if (r->eos) /* nothing of the open Kafka transaction is kept: no acknowledgement to wait for */
        log_warn("%s; reconnecting (exactly-once: what was not committed to Kafka is published again)", why);
    else
        log_warn("%s; waiting for %zu in-flight events, then reconnecting", why, ack_tracker_outstanding(r->at));
    snprintf(r->not_ready, sizeof(r->not_ready), "reconnecting: %s", why);
    r->state = ST_DRAIN;
}

static void send_status(relay_t *r) {
    if (!repl_stream_connected(r->rs))
        return;
    lsn_t flush = relay_confirmable(r), write = ack_tracker_received(r->at);
    uint64_t settled = ack_tracker_settled_seq(r->at);
    if (write < flush)
        write = flush;
    char err[RELAY_ERRSZ];
    if (repl_stream_send_status(r->rs, write, flush, err, sizeof(err)) != REPL_OK) {
        relay_stream_lost(r, err);
        return;
    }
    if (flush != r->sent_flush) {
        char lb[LSN_FMT_SIZE];
        log_debug("confirmed %s", lsn_format(flush, lb));
    }
    r->sent_flush = flush;
    if (flush == ack_tracker_confirmable(r->at)) /* not held back by an open Kafka transaction */
        r->confirmed_seq = settled;              /* (outbox.cleanup deletes only what is confirmed) */
    progress_writer_submit(r->pw, flush, stream_connect_system_id(r->sc), stream_connect_timeline(r->sc));
    r->last_status_ms = clock_now_ms();
    r->status_due = false;
}

void relay_publish(relay_t *r) {
    char err[RELAY_ERRSZ];
    if (r->eos && relay_eos_before_produce(r) != 0) {
        ack_tracker_fail(r->at, r->ev_seq); /* the relay is failing: never sent */
        r->pending = false;
        return;
    }
    kproducer_result_t res =
        kproducer_produce(r->kp, &r->ev, r->ev_is_dlq ? r->ev_seq | DLQ_FLAG : r->ev_seq, r->ev_lsn, err, sizeof(err));
    if ((res == KPRODUCER_INVALID || res == KPRODUCER_TOO_LARGE || res == KPRODUCER_UNKNOWN_TOPIC) && r->dl &&
        !r->ev_is_dlq) {
        if (dead_letter_event(r->dl, &r->ev, r->ev_lsn, err, dead_letter_reason_of_result(res)) == 0) {
            r->ev_is_dlq = true;
            res = kproducer_produce(r->kp, &r->ev, r->ev_seq | DLQ_FLAG, r->ev_lsn, err, sizeof(err));
        }
    }
    switch (res) {
    case KPRODUCER_OK:
        r->pending = false;
        r->ev_is_dlq = false;
        r->produced++;
        relay_ops_produced(r->ops, r->ev_seq, clock_now_ms());
        return;
    case KPRODUCER_QUEUE_FULL:
        r->pending = true;
        return;
    case KPRODUCER_INVALID:
    case KPRODUCER_TOO_LARGE:
    case KPRODUCER_UNKNOWN_TOPIC: {
        r->pending = false;
        r->ev_is_dlq = false;
        ack_tracker_fail(r->at, r->ev_seq);
        char msg[RELAY_ERRSZ + 1024];
        relay_fail(r, delivery_failure_produce(r->ev.id, r->ev.topic, r->ev_lsn, res, err, msg, sizeof(msg)), msg);
        return;
    }
    }
}

/* Rows only; messages have none. A partition's row is deleted through its outbox table. */
void relay_queue_cleanup(relay_t *r, const w2j_record_t *rec) {
    if (!r->cl || rec->action != W2J_INSERT || !r->ev.id || !r->ev_seq)
        return;
    size_t i = router_table_index(r->router, rec->schema, rec->table);
    if (i != SIZE_MAX)
        cleanup_push(r->cl, i, r->ev_seq, r->ev.id);
}

/* Handles one message of the output plugin. */
static void handle_data(relay_t *r, const repl_msg_t *m) {
    char err[RELAY_ERRSZ], msg[RELAY_ERRSZ + 256], lb[LSN_FMT_SIZE];
    w2j_record_t rec;
    int rc = decoder_decode(r->dec, m->data, m->len, m->data_start, &rec, err, sizeof(err));
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "cannot decode the %s message at LSN %s: %s", plugin_name(r->o->plugin),
                 lsn_format(m->data_start, lb), err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    }
    if (rc == 0)
        return; /* it fed the decoder (pgoutput's relations) */
    switch (rec.action) {
    case W2J_BEGIN:
        r->txn_commit_us = rec.commit_time_us; /* pgoutput: a number; wal2json: the text */
        if (!r->txn_commit_us && relay_ops_parse_timestamp(rec.timestamp, &r->txn_commit_us) != 0)
            r->txn_commit_us = 0;
        relay_ops_begin_txn(r->ops, r->txn_commit_us);
        if (ack_tracker_begin(r->at) != 0)
            relay_stream_lost(r, "replication protocol error: BEGIN inside a transaction");
        else if (r->eos)
            relay_eos_pg_begin(r->eos, rec.lsn); /* rec.lsn: where its commit record starts */
        return;
    case W2J_COMMIT:
        if (ack_tracker_commit(r->at, rec.nextlsn ? rec.nextlsn : rec.lsn) != 0)
            relay_stream_lost(r, "replication protocol error: COMMIT outside a transaction");
        else if (r->eos)
            relay_eos_pg_commit(r->eos, rec.nextlsn ? rec.nextlsn : rec.lsn);
        relay_partitions_commit(r, rec.xid, rec.nextlsn ? rec.nextlsn : rec.lsn);
        return;
    default:
        break;
    }
    if (r->eos && relay_eos_skipping(r->eos, m->data_start, ack_tracker_in_txn(r->at)))
        return; /* exactly-once: Kafka has it already (the checkpoint says so) */
    switch (router_route(r->router, &rec, &r->ev, err, sizeof(err))) {
    case ROUTER_SKIP:
        return;
    case ROUTER_INVALID:
        if (r->dl) {
            /* No record could be built: dead-letter the plugin's record (as wal2json's). */
            bool own_txn = !ack_tracker_in_txn(r->at); /* a non-transactional message */
            r->ev_lsn = m->data_start;
            if (own_txn)
                ack_tracker_begin(r->at);
            r->ev_seq = ack_tracker_add_event(r->at);
            relay_queue_cleanup(r, &rec);
            const char *raw;
            size_t raw_len;
            if (decoder_as_wal2json(r->dec, &rec, m->data, m->len, &raw, &raw_len) == 0 &&
                dead_letter_unroutable(r->dl, &r->ev, r->ev_lsn, raw, raw_len, err) == 0) {
                r->ev_is_dlq = true;
                relay_publish(r);
            } else {
                relay_fail(r, RELAY_EXIT_RUNTIME,
                           "cannot build its dead-letter record: out of memory, or text that is not UTF-8");
            }
            if (own_txn) {
                ack_tracker_commit(r->at, m->data_start);
                if (r->eos)
                    relay_eos_pg_commit(r->eos, m->data_start);
            }
            return;
        }
        snprintf(msg, sizeof(msg), "event %s at LSN %s cannot be published: %s; the slot stays before it",
                 r->ev.id ? r->ev.id : "(no id)", lsn_format(m->data_start, lb), err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    case ROUTER_EVENT:
        break;
    }
    r->ev_lsn = m->data_start;
    r->ev_is_dlq = false;
    r->ev.commit_us = r->o->commit_time_header && ack_tracker_in_txn(r->at) ? r->txn_commit_us : 0;
    r->ev_seq = ack_tracker_add_event(r->at);
    relay_queue_cleanup(r, &rec);
    if (r->ev_seq == 0) {
        snprintf(msg, sizeof(msg), "outbox record at LSN %s arrived outside a transaction",
                 lsn_format(m->data_start, lb));
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return;
    }
    relay_publish(r);
}

void relay_tick(relay_t *r, int64_t now) {
    char err[RELAY_ERRSZ + 512];
    if (r->state == ST_STREAM && relay_partitions_changed(r))
        relay_stream_lost(
            r, "the partitions of an outbox table changed: restarting the stream from the confirmed position "
               "with them");
    relay_ops_state_t os = {.streaming = r->state == ST_STREAM,
                            .not_ready = r->state == ST_SHUTDOWN ? "stopping" : r->not_ready,
                            .standby = r->standby,
                            .received = ack_tracker_received(r->at),
                            .confirmed = r->sent_flush,
                            .wal_end = r->wal_end,
                            .in_flight = ack_tracker_outstanding(r->at)};
    if (relay_ops_tick(r->ops, now, &os, err, sizeof(err)) != 0 && r->state != ST_SHUTDOWN) {
        /* The slot was invalidated: reconnecting finds it so and recovers, or stop. */
        if (!r->o->recover_lost_slot) {
            repl_stream_close(r->rs);
            relay_fail(r, RELAY_EXIT_CONFIG, err);
        } else if (r->state == ST_STREAM) {
            relay_stream_lost(r, "the replication slot was invalidated (wal_status = lost)");
        }
    }
}

/* The watermark moved past what was confirmed: ms until it may be confirmed (0: now), else
 * -1. Acknowledgements are confirmed as soon as they move it, at most every
 * status.confirm.ms (10), so that a crash re-sends about what was in flight, not a status
 * interval's worth. A value of status.interval.ms or more leaves it to the periodic update. */
static int64_t confirm_due(const relay_t *r, int64_t now) {
    if (r->o->status_confirm_ms >= r->o->status_interval_ms || relay_confirmable(r) == r->sent_flush)
        return -1;
    int64_t wait = r->last_status_ms + r->o->status_confirm_ms - now;
    return wait > 0 ? wait : 0;
}

/* SIGTERM in the middle of a transaction: read on to its commit (within half of
 * shutdown.timeout.ms, while nothing failed), so that its events are confirmed with it
 * instead of all sent again after the restart. Returns true while that goes on. */
static bool finish_open_txn(relay_t *r, int64_t now) {
    if (!r->stop_ms)
        r->stop_ms = now;
    bool go_on = r->state == ST_STREAM && *r->stop < 2 && !r->exit_code && ack_tracker_in_txn(r->at) &&
                 !ack_tracker_failed(r->at) && now - r->stop_ms < r->o->shutdown_timeout_ms / 2;
    if (go_on && !r->finishing)
        log_info("stopping: reading to the end of the open transaction first (%zu events in flight), so that it is "
                 "confirmed rather than sent again after a restart",
                 ack_tracker_outstanding(r->at));
    r->finishing = go_on;
    return go_on;
}

static bool blocked(const relay_t *r) {
    return r->pending || ack_tracker_full(r->at) || relay_partitions_full(r) || (r->eos && relay_eos_blocked(r->eos));
}

/* Reads buffered replication messages until none is left or back-pressure applies (or,
 * when finishing, the open transaction committed). Returns true when it stopped at READ_BATCH:
 * libpq may still hold whole messages that the socket will not signal, so the loop must come
 * back without waiting. */
static bool read_stream(relay_t *r) {
    if (r->pending)
        relay_publish(r);
    char err[RELAY_ERRSZ];
    for (int i = 0; i < READ_BATCH; i++) {
        if (r->state != ST_STREAM || blocked(r) || (r->finishing && !ack_tracker_in_txn(r->at)))
            return false;
        repl_msg_t m;
        repl_status_t why;
        int n = repl_stream_read(r->rs, &m, &why, err, sizeof(err));
        r->caught_up = n == 0;
        if (n == 0)
            return false;
        if (n < 0) {
            if (why == REPL_SLOT_INVALIDATED && !r->o->recover_lost_slot) {
                relay_fail(r, RELAY_EXIT_CONFIG, err);
                repl_stream_close(r->rs);
            } else {
                relay_stream_lost(r, err);
            }
            return false;
        }
        if (m.wal_end > r->wal_end)
            r->wal_end = m.wal_end;
        if (m.kind == REPL_MSG_KEEPALIVE) {
            ack_tracker_keepalive(r->at, m.wal_end);
            relay_partitions_keepalive(r, m.wal_end);
            if (m.reply_requested)
                r->status_due = true;
        } else {
            handle_data(r, &m);
        }
    }
    return true;
}

/* (Re)starts the progress writer for the server just connected to, backed by the record
 * stream_connect loaded or wrote. */
static void start_progress(relay_t *r) {
    const relay_options_t *o = r->o;
    if (!o->progress_table || !*o->progress_table)
        return;
    progress_writer_stop(r->pw);
    r->pw = progress_writer_start(o->conninfo, o->progress_table, o->slot, o->progress_interval_ms,
                                  stream_connect_record(r->sc));
    if (!r->pw)
        log_warn("cannot start the progress writer (out of memory): a lost slot cannot be recovered by itself");
}

/* The slot was lost (errstr: how): drop what is left of it, republish the rows the progress
 * record cannot rule out, and say what a table cannot give back. Returns the status of the
 * republishing (REPL_OK: the slot exists again). */
static repl_status_t recover(relay_t *r, const char *how, char *errstr, size_t errstr_size) {
    char where[160], lb[LSN_FMT_SIZE];
    const progress_record_t *rp;
    log_warn("%s: recovering: republishing the outbox rows committed since the progress record, then streaming "
             "from a new slot (postgres.slot.on_lost = recover)",
             how);
    repl_status_t st = repl_stream_drop_slot(r->rs, r->o->slot, errstr, errstr_size);
    if (st != REPL_OK)
        return st;
    if (stream_connect_recovery(r->sc, r->rs, where, sizeof(where), &rp, errstr, errstr_size) != 0)
        return REPL_RETRY;
    const progress_record_t old = *rp, *rec = &old; /* the run writes the new slot's record */
    uint64_t rows = 0;
    int64_t t0 = clock_now_ms();
    st = backfill_publish_run(r, where, "recovery", &rows, errstr, errstr_size);
    if (st != REPL_OK)
        return st;
    relay_ops_recovered(r->ops, rows, progress_time_unix(rec->horizon_time));
    log_warn("recovery: republished %" PRIu64 " outbox rows in %.1f s (rows committed after %s, where %s); those "
             "already in Kafka are now there twice (at least once)",
             rows, (double)(clock_now_ms() - t0) / 1000.0, lsn_format(rec->confirmed, lb), where);
    /* Logical messages and rows deleted in their own transaction live only in the WAL. */
    log_error("recovery: table-less events (outbox logical messages, rows deleted in the transaction that inserted "
              "them) committed between %s and now (UTC) could not be republished: they existed only in the WAL the "
              "lost slot held; check their producers for that window",
              rec->horizon_time[0] ? rec->horizon_time : "the last progress record");
    return REPL_OK;
}

/* Connects and starts streaming (stream_connect.c decides about the slot), or backfills (or
 * recovers a lost slot) and creates the slot first; then the loop streams, stands by, backs
 * off or stops. */
static void connect_step(relay_t *r) {
    char err[RELAY_ERRSZ], lb[LSN_FMT_SIZE];
    lsn_t start;
    stream_connect_result_t res =
        stream_connect_open(r->sc, r->rs, r->had_stream, relay_confirmable(r), &start, err, sizeof(err));
    if (res == STREAM_CONNECT_BACKFILL || res == STREAM_CONNECT_RECOVER) {
        uint64_t rows;
        char how[RELAY_ERRSZ];
        snprintf(how, sizeof(how), "%s", err);
        repl_status_t st = REPL_OK;
        if (r->eos && relay_eos_session_sync(r, err, sizeof(err)) != 0)
            st = REPL_RETRY; /* a relay_fail stops the loop anyway */
        else if (res == STREAM_CONNECT_RECOVER)
            st = recover(r, how, err, sizeof(err));
        else
            st = backfill_publish_run(r, r->o->backfill_where, "backfill", &rows, err, sizeof(err));
        if (st == REPL_OK) { /* the slot exists now: connect again and stream it */
            repl_stream_close(r->rs);
            r->next_connect_ms = clock_now_ms();
            return;
        }
        res = st == REPL_RETRY ? STREAM_CONNECT_RETRY : STREAM_CONNECT_FATAL;
    }
    switch (res) {
    case STREAM_CONNECT_FATAL:
        repl_stream_close(r->rs);
        relay_fail(r, RELAY_EXIT_CONFIG, err);
        return;
    case STREAM_CONNECT_STANDBY:
        /* Standby: one line when it starts, then check every second without backoff, so that
         * this instance takes over within about a second of the holder's end. */
        repl_stream_close(r->rs);
        if (!r->standby)
            log_warn("%s: standing by, checking every %d ms; this instance takes over when the slot is free", err,
                     STANDBY_RETRY_MS);
        r->standby = true;
        snprintf(r->not_ready, sizeof(r->not_ready), "standby: %s", err);
        r->next_connect_ms = clock_now_ms() + STANDBY_RETRY_MS;
        return;
    case STREAM_CONNECT_RETRY:
    case STREAM_CONNECT_BACKFILL: /* not after backfill_publish_run */
    case STREAM_CONNECT_RECOVER:
        repl_stream_close(r->rs);
        snprintf(r->not_ready, sizeof(r->not_ready), "not streaming: %s", err);
        log_warn("%s (retrying in %d ms)", err, r->backoff_ms);
        r->next_connect_ms = clock_now_ms() + r->backoff_ms;
        r->backoff_ms =
            r->backoff_ms * 2 > r->o->reconnect_backoff_max_ms ? r->o->reconnect_backoff_max_ms : r->backoff_ms * 2;
        return;
    case STREAM_CONNECT_STREAMING:
        break;
    }
    ack_tracker_reset(r->at, start);
    decoder_reset(r->dec);
    relay_partitions_streaming(r, start);
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
             lsn_format(start, lb));
    r->had_stream = true;
    start_progress(r);
    if (r->eos)
        relay_eos_session_start(r); /* reading waits until the producer fenced the older ones */
}

/* Kafka acknowledged nothing for relay.stall.timeout.ms while events are outstanding: let go
 * of the replication connection until it does. Holding it would block a clean PostgreSQL
 * shutdown (the walsender waits until its client confirmed all it sent) for as long as
 * Kafka is down. After the drain, streaming resumes from the confirmed LSN. */
static void check_stall(relay_t *r, int64_t now) {
    if (r->eos && r->state == ST_STREAM && relay_eos_stalled(r->eos, now, r->o->stall_timeout_ms)) {
        char why[256];
        snprintf(why, sizeof(why),
                 "Kafka did not answer the transactional producer for %d ms: closing the replication stream until "
                 "it does",
                 r->o->stall_timeout_ms);
        relay_stream_lost(r, why);
        return;
    }
    if (ack_tracker_outstanding(r->at) == 0 || r->acked != r->stall_acked) {
        r->stall_since_ms = now;
        r->stall_acked = r->acked;
        return;
    }
    char topic[256], line[RELAY_ERRSZ + 1024];
    if (r->state != ST_SHUTDOWN && kproducer_missing_topic(r->kp, now, topic, sizeof(topic)) == 1) {
        /* A topic that is not created: say so now, not when librdkafka gives up on its records
         * (topic.metadata.propagation.max.ms); with dead-letter, that delivery report
         * dead-letters them. */
        int code =
            delivery_failure_missing_topic(topic, ack_tracker_outstanding(r->at), r->dl != NULL, line, sizeof(line));
        if (r->dl) {
            log_warn("%s", line);
        } else {
            relay_fail(r, code, line);
            r->shutdown_deadline_ms = now; /* its records never get an answer: do not wait for them */
            return;
        }
    }
    if (r->state == ST_STREAM && r->o->stall_timeout_ms > 0 && now - r->stall_since_ms >= r->o->stall_timeout_ms) {
        char why[256];
        snprintf(why, sizeof(why),
                 "Kafka acknowledged nothing for %d ms (%s): closing the replication stream until it does",
                 r->o->stall_timeout_ms,
                 r->kp && kproducer_last_error(r->kp)[0] ? kproducer_last_error(r->kp) : "no error yet");
        relay_stream_lost(r, why);
    }
}

/* The progress writer's failures: one WARN when they start, one INFO when it works again
 * (until then the record stays behind and a recovery republishes more). */
static void watch_progress_writer(relay_t *r) {
    progress_record_t rec;
    char err[RELAY_ERRSZ];
    if (!r->pw)
        return;
    progress_writer_get(r->pw, &rec, err, sizeof(err));
    if (err[0] && !r->progress_failing)
        log_warn("progress record: %s (retrying every %d ms; a slot recovery meanwhile republishes from the last "
                 "record written)",
                 err, r->o->progress_interval_ms);
    else if (!err[0] && r->progress_failing)
        log_info("progress record: writing works again");
    r->progress_failing = err[0] != '\0';
}

static void progress(relay_t *r, int64_t now) {
    if (now - r->progress_check_ms >= 1000) {
        r->progress_check_ms = now;
        watch_progress_writer(r);
    }
    if (now - r->last_progress_ms < PROGRESS_INTERVAL_MS)
        return;
    uint64_t n = r->acked - r->last_progress_acked;
    if (n > 0 || ack_tracker_outstanding(r->at) > 0) {
        char lb[LSN_FMT_SIZE];
        log_info("published %" PRIu64 " events (%.1f/s), %zu in flight, confirmed %s, lag %lld bytes", n,
                 n * 1000.0 / (double)(now - r->last_progress_ms), ack_tracker_outstanding(r->at),
                 lsn_format(ack_tracker_confirmable(r->at), lb), relay_ops_lag_bytes(r->ops));
    }
    r->last_progress_ms = now;
    r->last_progress_acked = r->acked;
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
    if (r->eos && !relay_eos_finish(r, now))
        return false; /* committing the open Kafka transaction */
    if (!drained)
        log_warn("stopping with %zu events not acknowledged by Kafka; they will be published again after restart",
                 ack_tracker_outstanding(r->at));
    send_status(r);
    for (int i = 0; i < 50 && repl_stream_connected(r->rs) && repl_stream_flush(r->rs) == 1; i++) {
        struct pollfd p = {.fd = repl_stream_fd(r->rs), .events = POLLOUT};
        poll(&p, 1, 100);
    }
    /* Delete the confirmed rows still queued (bounded): after a restart nobody knows them. */
    for (int64_t until = clock_now_ms() + 3000; r->cl && clock_now_ms() < until;) {
        cleanup_step(r->cl, r->confirmed_seq, clock_now_ms());
        if (cleanup_fd(r->cl) < 0)
            break;
        struct pollfd p = {.fd = cleanup_fd(r->cl), .events = POLLIN};
        poll(&p, 1, 100);
        cleanup_on_readable(r->cl);
    }
    if (r->had_stream) /* the line says what pg_replication_slots shows */
        stop_confirm_report(r->o->conninfo, r->o->slot, r->sent_flush, repl_stream_connected(r->rs) && *r->stop < 2,
                            STOP_CONFIRM_MS);
    else
        log_info("stopped before streaming");
    return true;
}

/* Creates the relay's parts. Returns 0, or -1 after logging why. */
static int start_up(relay_t *r) {
    const relay_options_t *o = r->o;
    char err[RELAY_ERRSZ];
    r->router = router_new(&o->router, err, sizeof(err));
    if (!r->router) {
        log_error("%s", err);
        return -1;
    }
    r->at = ack_tracker_new(0, o->max_inflight_txns, o->max_inflight_events);
    r->dec = decoder_new(o->plugin);
    r->rs = repl_stream_new();
    r->sco = (stream_connect_options_t){.conninfo = o->conninfo,
                                        .slot = o->slot,
                                        .create_slot = o->create_slot,
                                        .backfill = o->backfill_where && *o->backfill_where,
                                        .message_prefix = o->router.message_prefix,
                                        .columns = &o->router.columns,
                                        .progress_table = o->progress_table,
                                        .recover = o->recover_lost_slot,
                                        .recovery_margin_xids = (uint64_t)o->recovery_margin_xids,
                                        .failover = o->failover_slot,
                                        .plugin = o->plugin,
                                        .publication = o->publication};
    if (!r->at || !r->dec || !r->rs || (o->cleanup && !(r->cl = cleanup_new(o->conninfo, 100000, 500))) ||
        (o->dead_letter_topic && !(r->dl = dead_letter_new(o->dead_letter_topic, o->router.id_header))) ||
        !(r->sc = stream_connect_new(&r->sco, r->router, r->cl))) {
        log_error("out of memory");
        return -1;
    }
    relay_ops_options_t oo = {.http_listen = o->http_listen,
                              .conninfo = o->conninfo,
                              .slot = o->slot,
                              .retained_warn_bytes = o->retained_warn_bytes,
                              .slot_poll_interval_ms = o->slot_poll_interval_ms,
                              .max_txns = o->max_inflight_txns};
    r->ops = relay_ops_new(&oo, err, sizeof(err));
    if (!r->ops) {
        log_error("%s", err);
        return -1;
    }
    err_t e;
    if (o->exactly_once) /* its producers come with each streaming session */
        r->eos = relay_eos_new(r, on_delivery, &e);
    else
        r->kp = kproducer_new(o->kafka_props, o->router.id_header, on_delivery, r, &e);
    if (!r->kp && !r->eos) {
        log_error("%s", err_line(&e, err, sizeof(err)));
        return -1;
    }
    relay_ops_watch_kafka(r->ops, r->eos ? relay_eos_kafka_handle(r->eos) : kproducer_handle(r->kp));
    return 0;
}

/* Waits for Kafka in short slices so SIGTERM (blocked outside ppoll) still stops us. Returns
 * -1 once a broker answered, else the exit code. */
static int wait_for_kafka(relay_t *r) {
    const relay_options_t *o = r->o;
    char err[RELAY_ERRSZ];
    for (int waited = 0;; waited += 500) {
        relay_ops_state_t os = {.not_ready = r->not_ready};
        relay_ops_tick(r->ops, clock_now_ms(), &os, err, sizeof(err));
        int slice = o->startup_timeout_ms - waited < 500 ? o->startup_timeout_ms - waited : 500;
        err_t e;
        if ((r->eos ? relay_eos_check_connect(r->eos, slice, &e) : kproducer_check_connect(r->kp, slice, &e)) == 0)
            return -1;
        if (e.kind == ERR_PERMANENT) { /* refused credentials or certificate: retrying cannot help */
            log_error("%s", err_line(&e, err, sizeof(err)));
            return RELAY_EXIT_CONFIG;
        }
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) {
            log_info("stopped before streaming");
            return RELAY_EXIT_OK;
        }
        if (waited + slice >= o->startup_timeout_ms) {
            /* err names the last slice; say how long we waited in all. A broker that is down
             * (say, at boot) is worth a restart by the supervisor: exit 1, not 2. */
            log_error("%s (gave up after startup.timeout.ms=%d): %s", e.msg, o->startup_timeout_ms, e.fix);
            return RELAY_EXIT_RUNTIME;
        }
    }
}

/* Waits (ppoll, with SIGTERM and SIGINT deliverable) until the replication socket, the
 * delivery reports or the cleanup's query have something, or the next timer is due, and
 * reads what the sockets have. more: the stream holds whole messages already: do not wait.
 * Returns 0, or -1 when poll failed (logged). */
static int wait_and_serve(relay_t *r, int64_t now, bool more) {
    struct pollfd fds[4];
    int nfds = 0;
    fds[nfds++] = (struct pollfd){.fd = r->kp ? kproducer_fd(r->kp) : -1, .events = POLLIN};
    int job = -1;
    if (r->eos && relay_eos_fd(r->eos) >= 0) {
        job = nfds;
        fds[nfds++] = (struct pollfd){.fd = relay_eos_fd(r->eos), .events = POLLIN};
    }
    int pg = -1;
    if (repl_stream_connected(r->rs) && r->state == ST_STREAM) {
        short ev = blocked(r) ? 0 : POLLIN;
        if (repl_stream_flush(r->rs) == 1)
            ev |= POLLOUT;
        pg = nfds;
        fds[nfds++] = (struct pollfd){.fd = repl_stream_fd(r->rs), .events = ev};
    }
    int cl = -1;
    if (r->cl && cleanup_fd(r->cl) >= 0) {
        cl = nfds;
        fds[nfds++] = (struct pollfd){.fd = cleanup_fd(r->cl), .events = POLLIN};
    }
    int64_t wait = 1000;
    if (r->state == ST_STREAM) {
        int64_t due = r->last_status_ms + r->o->status_interval_ms - now, confirm = confirm_due(r, now);
        if (confirm >= 0 && confirm < due)
            due = confirm;
        if (due < wait)
            wait = due;
    } else if (r->state == ST_CONNECT) {
        if (r->next_connect_ms - now < wait) /* at least once a second: metrics, health */
            wait = r->next_connect_ms - now;
    } else {
        wait = 100;
    }
    int64_t eos_due = r->eos ? relay_eos_due_in(r->eos, now) : -1;
    if (eos_due >= 0 && eos_due < wait)
        wait = eos_due;
    if (wait < 0 || more)
        wait = 0;
    struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
    int n = ppoll(fds, (nfds_t)nfds, &ts, &r->unblocked);
    if (n < 0 && errno != EINTR) {
        log_error("poll: %s", strerror(errno));
        return -1;
    }
    if (n > 0 && cl >= 0 && fds[cl].revents)
        cleanup_on_readable(r->cl);
    if (n > 0 && job >= 0 && fds[job].revents)
        relay_eos_on_fd(r);
    if (n > 0 && pg >= 0 && (fds[pg].revents & (POLLIN | POLLERR | POLLHUP))) {
        char err[RELAY_ERRSZ];
        if (repl_stream_consume(r->rs, err, sizeof(err)) != REPL_OK)
            relay_stream_lost(r, err);
    }
    return 0;
}

int relay_run(const relay_options_t *o, volatile sig_atomic_t *stop) {
    relay_t r = {.o = o, .stop = stop, .backoff_ms = 500, .state = ST_CONNECT};
    char err[RELAY_ERRSZ];
    int rc = RELAY_EXIT_CONFIG;
    sigprocmask(SIG_SETMASK, NULL, &r.unblocked);
    sigdelset(&r.unblocked, SIGTERM);
    sigdelset(&r.unblocked, SIGINT);
    sigdelset(&r.unblocked, SIGHUP);
    snprintf(r.not_ready, sizeof(r.not_ready), "starting: waiting for Kafka");
    if (start_up(&r) != 0 || (rc = wait_for_kafka(&r)) >= 0)
        goto out;
    r.last_progress_ms = clock_now_ms();
    snprintf(r.not_ready, sizeof(r.not_ready), "connecting to PostgreSQL");

    for (;;) {
        int64_t now = clock_now_ms();
        bool more = false; /* read_stream left whole messages in libpq's buffer */
        if (cli_reload_pending())
            cli_reload();
        if (*stop && r.state != ST_SHUTDOWN && !finish_open_txn(&r, now)) {
            notify_stopping();
            snprintf(r.not_ready, sizeof(r.not_ready), "stopping");
            log_info("stopping: waiting for %zu in-flight events", ack_tracker_outstanding(r.at));
            r.state = ST_SHUTDOWN;
            r.shutdown_deadline_ms = r.stop_ms + o->shutdown_timeout_ms;
        }
        if (r.kp && kproducer_poll(r.kp, err, sizeof(err)) != 0 &&
            !(r.eos && relay_eos_on_fatal(&r, err, sizeof(err)))) {
            /* Fatal producer error: exit without confirming anything unacked (exactly-once: fenced). */
            log_error("%s", err);
            rc = RELAY_EXIT_RUNTIME;
            goto out;
        }
        switch (r.state) {
        case ST_CONNECT:
            if (now >= r.next_connect_ms)
                connect_step(&r);
            break;
        case ST_STREAM:
            more = read_stream(&r);
            if (r.eos)
                relay_eos_step(&r, now); /* commits when due, retries a session start */
            break;
        case ST_DRAIN:
            if (r.eos ? relay_eos_drained(r.eos) : ack_tracker_outstanding(r.at) == 0) {
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
            (r.status_due || now - r.last_status_ms >= o->status_interval_ms || confirm_due(&r, now) == 0))
            send_status(&r);
        check_stall(&r, now);
        progress(&r, now);
        relay_tick(&r, now);
        if (r.cl)
            cleanup_step(r.cl, r.confirmed_seq, now);
        if (wait_and_serve(&r, now, more) != 0) {
            rc = RELAY_EXIT_RUNTIME;
            goto out;
        }
    }
out:
    progress_writer_stop(r.pw); /* writes the last confirmed position (after the final status update) */
    relay_partitions_stop(&r);
    relay_ops_destroy(r.ops); /* before the producer: its Kafka probe uses the handle */
    relay_eos_destroy(r.eos); /* stops the job thread, which may use r.kp */
    kproducer_destroy(r.kp);
    repl_stream_destroy(r.rs);
    decoder_destroy(r.dec);
    router_destroy(r.router);
    ack_tracker_destroy(r.at);
    stream_connect_destroy(r.sc);
    dead_letter_destroy(r.dl);
    cleanup_destroy(r.cl);
    return rc;
}
