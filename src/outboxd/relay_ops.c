/* relay_ops.c - outboxd's metrics, HTTP endpoint, slot and Kafka polls, guardrails and
 * systemd notifications, driven by the relay loop (see relay_ops.h). */
#include "relay_ops.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "daemon_ops.h"
#include "log.h"
#include "metrics.h"
#include "pgconn.h"
#include "pg_failover.h"
#include "other_slots.h"
#include "pgpoll.h"
#include "cmd_status.h"

#define PUBLISH_INTERVAL_MS 1000
#define RETAINED_REWARN_MS (10 * 60 * 1000) /* repeat the retained-WAL warning while above */

/* One transaction with events in flight, by its sequence number (seq % cap). */
typedef struct txn_slot {
    uint64_t seq;
    int64_t commit_us;   /* wal2json commit timestamp; 0 unknown */
    int64_t produced_ms; /* first event handed to Kafka */
    uint32_t outstanding;
} txn_slot_t;

/* What the slot poll reads (plain data, copied between threads). */
typedef struct slot_snap {
    bool others_known;            /* the other-slots query ran */
    size_t nothers, others_shown; /* wal2json slots nothing streams besides ours; how many in others */
    other_slot_t others[OTHER_SLOTS_MAX];
    bool exists, active, lost;
    int active_pid;
    bool has_retained, has_safe, has_lag;
    long long retained, safe, lag;
    lsn_t current, confirmed;
    char wal_status[16];
    int blocking;             /* synchronized_standby_slots entries holding decoding back */
    char blocking_names[256]; /* their names, comma separated */
} slot_snap_t;

struct relay_ops {
    relay_ops_options_t o;
    daemon_ops_t d;
    pgpoll_t *slot_poll;
    metrics_t *m;
    metrics_family_t *events, *bytes;
    metrics_series_t *in_flight, *errors, *reconnects, *received, *confirmed, *wal_end, *lag, *retained, *safe,
        *slot_active, *warn_bytes, *over_warn, *oldest_age, *latency, *streaming, *kafka_up, *standby, *poll_errors,
        *blocking, *recoveries, *republished, *unrecoverable, *other_slots, *other_retained;
    char others_logged[512]; /* the other slots last warned about, by name */
    txn_slot_t *txns;
    size_t cap;
    int64_t txn_commit_us; /* commit timestamp of the transaction being read */
    uint64_t last_acked_seq;
    txn_slot_t *last_acked;
    int64_t next_publish_ms;
    uint64_t slot_polls, slot_poll_failures;
    bool slot_poll_failing; /* slot polls failed (logged once) and none worked since */
    bool blocking_warned;   /* synchronized_standby_slots holds decoding back (logged once) */
    int shown_state;        /* streaming/standby as last published: a change is published at once */
    slot_snap_t slot;
    long long lag_bytes; /* what outboxd_lag_bytes shows */
    bool retained_warned;
    int64_t retained_warned_ms;
};

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The form outboxd's sessions get (DateStyle ISO, TimeZone UTC): "YYYY-MM-DD HH:MM:SS",
 * an optional fraction of 1-6 digits, "+00"; without sscanf and timegm, which cost more than
 * decoding a whole pgoutput transaction. Returns 0, or -1 for any other spelling. */
static int parse_utc_fast(const char *t, int64_t *us) {
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    int v[6] = {0}, field = 0;
    for (int i = 0; shape[i]; i++) {
        if (shape[i] == 'd') {
            if (t[i] < '0' || t[i] > '9')
                return -1;
            v[field] = v[field] * 10 + (t[i] - '0');
        } else if (t[i] != shape[i]) {
            return -1;
        } else {
            field++;
        }
    }
    const char *p = t + sizeof(shape) - 1;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
            frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 6; digits++)
            frac *= 10;
    }
    if (strcmp(p, "+00") != 0 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return -1;
    *us = ((days_from_civil(v[0], v[1], v[2]) * 24 + v[3]) * 60 + v[4]) * 60 * 1000000LL + v[5] * 1000000LL + frac;
    return 0;
}

int relay_ops_parse_timestamp(const char *text, int64_t *us) {
    if (text && parse_utc_fast(text, us) == 0)
        return 0;
    int y, mo, d, h, mi, n = 0;
    double sec;
    if (!text || sscanf(text, "%4d-%2d-%2d %2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || !(sec >= 0 && sec < 61))
        return -1;
    /* The offset: "+HH", "+HH:MM" or "+HH:MM:SS" (PostgreSQL's ISO form); none means UTC. */
    const char *p = text + n;
    int off = 0;
    if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, part[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
                return -1;
            part[i] = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
            if (i == 2 || *p != ':')
                break;
            p++;
        }
        off = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    }
    if (*p)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *us = ((int64_t)t - off) * 1000000 + (int64_t)(sec * 1e6 + 0.5);
    return 0;
}

static int poll_slot(PGconn *conn, void *snapshot, void *arg, char *errstr, size_t errstr_size) {
    relay_ops_t *ops = arg;
    slot_snap_t *s = snapshot;
    PGresult *res = status_query(conn, ops->o.slot);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != STATUS_C_COUNT) {
        char raw[1024];
        snprintf(raw, sizeof(raw), "cannot read pg_replication_slots: %s", PQresultErrorMessage(res));
        pgconn_one_line(raw, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) == 1) {
        s->exists = true;
        s->active = PQgetvalue(res, 0, STATUS_C_ACTIVE)[0] == 't';
        s->active_pid = atoi(PQgetvalue(res, 0, STATUS_C_ACTIVE_PID));
        s->has_retained = !PQgetisnull(res, 0, STATUS_C_RETAINED);
        s->retained = atoll(PQgetvalue(res, 0, STATUS_C_RETAINED));
        s->has_lag = !PQgetisnull(res, 0, STATUS_C_LAG);
        s->lag = atoll(PQgetvalue(res, 0, STATUS_C_LAG));
        lsn_parse(PQgetvalue(res, 0, STATUS_C_CONFIRMED), &s->confirmed);
        s->has_safe = !PQgetisnull(res, 0, STATUS_C_SAFE_WAL_SIZE);
        s->safe = atoll(PQgetvalue(res, 0, STATUS_C_SAFE_WAL_SIZE));
        lsn_parse(PQgetvalue(res, 0, STATUS_C_CURRENT), &s->current);
        snprintf(s->wal_status, sizeof(s->wal_status), "%s", PQgetvalue(res, 0, STATUS_C_WAL_STATUS));
        s->lost = !strcmp(s->wal_status, "lost");
    }
    PQclear(res);
    /* PostgreSQL 17: a standby slot named in synchronized_standby_slots that nobody consumes
     * holds every logical walsender back, telling only the client (a WARNING). */
    err_t e;
    s->blocking = pg_failover_blocking_standby_slots(conn, s->blocking_names, sizeof(s->blocking_names), &e);
    if (s->blocking < 0)
        s->blocking = 0;
    int n = other_slots_read(conn, ops->o.slot, s->others, OTHER_SLOTS_MAX, &s->nothers, &e);
    s->others_known = n >= 0;
    s->others_shown = n > 0 ? (size_t)n : 0;
    return 0;
}

/* A metadata request without topics: answered by any live broker (librdkafka handles are
 * thread-safe). */
relay_ops_t *relay_ops_new(const relay_ops_options_t *o, char *errstr, size_t errstr_size) {
    static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    relay_ops_t *ops = calloc(1, sizeof(*ops));
    if (!ops) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ops->o = *o;
    ops->cap = o->max_txns + 2;
    ops->txns = calloc(ops->cap, sizeof(txn_slot_t));
    metrics_t *m = ops->m = metrics_new();
    if (!ops->txns || !m) {
        relay_ops_destroy(ops);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    daemon_ops_build_info(m, "outboxd");
    ops->events =
        metrics_family(m, METRICS_COUNTER, "outboxd_events_published_total",
                       "Events acknowledged by Kafka, by topic (dead-letter records included).", "topic", NULL, 0);
    ops->bytes = metrics_family(m, METRICS_COUNTER, "outboxd_bytes_published_total",
                                "Key and value bytes of the events acknowledged by Kafka, by topic.", "topic", NULL, 0);
    ops->in_flight = metrics_scalar(m, METRICS_GAUGE, "outboxd_events_in_flight",
                                    "Events handed to Kafka and not acknowledged yet.");
    ops->errors =
        metrics_scalar(m, METRICS_COUNTER, "outboxd_delivery_errors_total",
                       "Delivery reports with an error (each stops the relay or goes to the dead-letter topic).");
    ops->recoveries = metrics_scalar(m, METRICS_COUNTER, "outboxd_slot_recoveries_total",
                                     "Times a lost replication slot (missing or invalidated) was recovered from the "
                                     "progress record.");
    ops->republished =
        metrics_scalar(m, METRICS_COUNTER, "outboxd_recovery_republished_events_total",
                       "Outbox rows republished by slot recoveries (at least once: some were in Kafka).");
    ops->unrecoverable =
        metrics_scalar(m, METRICS_GAUGE, "outboxd_recovery_unrecoverable_since_seconds",
                       "Unix time from which table-less events (logical messages, rows deleted in their "
                       "own transaction) could not be republished by the last recovery; 0 = none.");
    ops->reconnects = metrics_scalar(m, METRICS_COUNTER, "outboxd_reconnects_total",
                                     "Times streaming resumed after the replication connection was lost or released.");
    ops->received = metrics_scalar(m, METRICS_GAUGE, "outboxd_received_lsn",
                                   "Highest commit end or keepalive position received, as a number (LSN).");
    ops->confirmed = metrics_scalar(m, METRICS_GAUGE, "outboxd_confirmed_lsn",
                                    "Position confirmed to PostgreSQL (the slot's confirmed_flush_lsn), as a number.");
    ops->wal_end = metrics_scalar(m, METRICS_GAUGE, "outboxd_server_wal_end_lsn",
                                  "The server's WAL end: the newer of the walsender's last report and the slot poll.");
    ops->lag = metrics_scalar(m, METRICS_GAUGE, "outboxd_lag_bytes",
                              "Server WAL end minus the confirmed position: WAL not yet confirmed.");
    ops->retained = metrics_scalar(m, METRICS_GAUGE, "outboxd_slot_retained_bytes",
                                   "WAL kept on disk for the slot (current WAL - restart_lsn), polled.");
    ops->safe = metrics_scalar(m, METRICS_GAUGE, "outboxd_slot_safe_wal_size_bytes",
                               "WAL that may still be written before the slot is invalidated (-1: no "
                               "max_slot_wal_keep_size), polled.");
    ops->slot_active = metrics_scalar(m, METRICS_GAUGE, "outboxd_slot_active",
                                      "1 when some process streams the slot (pg_replication_slots.active), polled.");
    ops->warn_bytes = metrics_scalar(m, METRICS_GAUGE, "outboxd_slot_retained_warn_bytes",
                                     "slot.retained.warn.bytes (0: no warning).");
    ops->over_warn = metrics_scalar(m, METRICS_GAUGE, "outboxd_slot_retained_over_warn",
                                    "1 while the slot's retained WAL is above slot.retained.warn.bytes.");
    ops->oldest_age = metrics_scalar(m, METRICS_GAUGE, "outboxd_oldest_unacked_event_age_seconds",
                                     "Time since the oldest event not yet acknowledged was handed to Kafka (0: none).");
    ops->latency =
        metrics_series(metrics_family(m, METRICS_HISTOGRAM, "outboxd_commit_to_ack_seconds",
                                      "From the transaction's commit (PostgreSQL's clock) to Kafka's "
                                      "acknowledgement of each of its events.",
                                      NULL, latency_buckets, sizeof(latency_buckets) / sizeof(latency_buckets[0])),
                       NULL);
    ops->streaming = metrics_scalar(m, METRICS_GAUGE, "outboxd_streaming", "1 while the slot is streamed.");
    ops->kafka_up = metrics_scalar(m, METRICS_GAUGE, "outboxd_kafka_reachable",
                                   "1 when a broker answered the last metadata probe (every 2 s).");
    ops->standby = metrics_scalar(m, METRICS_GAUGE, "outboxd_standby",
                                  "1 while waiting for the slot that another process streams.");
    ops->blocking = metrics_scalar(m, METRICS_GAUGE, "outboxd_standby_slots_blocking",
                                   "Entries of the primary's synchronized_standby_slots (PostgreSQL 17) whose physical "
                                   "slot is missing, invalidated or not streamed: logical decoding waits for them.");
    ops->poll_errors = metrics_scalar(m, METRICS_COUNTER, "outboxd_slot_poll_errors_total",
                                      "Reads of the slot from pg_replication_slots that failed (the slot metrics "
                                      "keep their last values meanwhile).");
    ops->other_slots = metrics_scalar(m, METRICS_GAUGE, "outboxd_other_inactive_slots",
                                      "wal2json replication slots on the server, besides postgres.slot, that nothing "
                                      "streams: each keeps WAL until dropped (outboxd status lists them), polled.");
    ops->other_retained =
        metrics_scalar(m, METRICS_GAUGE, "outboxd_other_inactive_slots_retained_bytes",
                       "The most WAL one of those slots keeps (current WAL - its restart_lsn), polled.");
    metrics_set(ops->warn_bytes, (double)o->retained_warn_bytes);
    metrics_set(ops->safe, -1);
    if (daemon_ops_start(&ops->d, o->http_listen, errstr, errstr_size) != 0) {
        relay_ops_destroy(ops);
        return NULL;
    }
    ops->slot_poll =
        pgpoll_start(o->conninfo, "outboxd metrics", o->slot_poll_interval_ms, sizeof(slot_snap_t), poll_slot, ops);
    if (!ops->slot_poll) {
        relay_ops_destroy(ops);
        snprintf(errstr, errstr_size, "cannot start the slot poll thread");
        return NULL;
    }
    return ops;
}

void relay_ops_destroy(relay_ops_t *ops) {
    if (!ops)
        return;
    pgpoll_stop(ops->slot_poll);
    daemon_ops_stop(&ops->d);
    metrics_destroy(ops->m);
    free(ops->txns);
    free(ops);
}

void relay_ops_watch_kafka(relay_ops_t *ops, void *rd_kafka_handle) {
    if (ops)
        daemon_ops_watch_kafka(&ops->d, rd_kafka_handle);
}

void relay_ops_begin_txn(relay_ops_t *ops, int64_t commit_us) {
    if (ops)
        ops->txn_commit_us = commit_us;
}

void relay_ops_produced(relay_ops_t *ops, uint64_t seq, int64_t now_ms) {
    if (!ops)
        return;
    txn_slot_t *t = &ops->txns[seq % ops->cap];
    if (t->seq != seq) /* a slot still in use here would only skew the age metric */
        *t = (txn_slot_t){.seq = seq, .commit_us = ops->txn_commit_us, .produced_ms = now_ms};
    t->outstanding++;
}

static txn_slot_t *settle(relay_ops_t *ops, uint64_t seq) {
    txn_slot_t *t = &ops->txns[seq % ops->cap];
    if (t->seq != seq || t->outstanding == 0)
        return NULL;
    t->outstanding--;
    return t;
}

void relay_ops_acked(relay_ops_t *ops, uint64_t seq, const char *topic, size_t bytes) {
    if (!ops)
        return;
    txn_slot_t *t = settle(ops, seq);
    metrics_add(metrics_series(ops->events, topic ? topic : ""), 1);
    metrics_add(metrics_series(ops->bytes, topic ? topic : ""), (double)bytes);
    if (t && t->commit_us > 0) {
        double s = (double)(clock_wall_us() - t->commit_us) / 1e6;
        metrics_observe(ops->latency, s < 0 ? 0 : s); /* clocks of two hosts may disagree a little */
    }
}

void relay_ops_failed(relay_ops_t *ops, uint64_t seq) {
    if (!ops)
        return;
    settle(ops, seq);
    metrics_add(ops->errors, 1);
}

void relay_ops_recovered(relay_ops_t *ops, uint64_t rows, double unrecoverable_since) {
    if (!ops)
        return;
    metrics_add(ops->recoveries, 1);
    metrics_add(ops->republished, (double)rows);
    metrics_set(ops->unrecoverable, unrecoverable_since);
}

void relay_ops_reconnected(relay_ops_t *ops) {
    if (ops)
        metrics_add(ops->reconnects, 1);
}

void relay_ops_reset(relay_ops_t *ops) {
    if (ops)
        memset(ops->txns, 0, ops->cap * sizeof(txn_slot_t));
}

static double oldest_age_s(const relay_ops_t *ops, int64_t now_ms) {
    int64_t oldest = 0;
    for (size_t i = 0; i < ops->cap; i++)
        if (ops->txns[i].outstanding && (!oldest || ops->txns[i].produced_ms < oldest))
            oldest = ops->txns[i].produced_ms;
    return oldest ? (double)(now_ms - oldest) / 1000.0 : 0;
}

/* slot.retained.warn.bytes: warn when retained WAL passes it, again every 10 minutes while it
 * stays above, and once more (info) when it is back below. */
static void retained_guard(relay_ops_t *ops, int64_t now_ms) {
    long long limit = ops->o.retained_warn_bytes;
    if (limit <= 0)
        return;
    if (!ops->slot.has_retained) { /* the slot is gone (or has no restart_lsn): nothing retained */
        metrics_set(ops->over_warn, 0);
        ops->retained_warned = false;
        return;
    }
    bool over = ops->slot.retained > limit;
    metrics_set(ops->over_warn, over);
    char b1[32], b2[32];
    status_format_bytes(ops->slot.retained, b1, sizeof(b1));
    status_format_bytes(limit, b2, sizeof(b2));
    if (over && (!ops->retained_warned || now_ms - ops->retained_warned_ms >= RETAINED_REWARN_MS)) {
        log_warn("replication slot \"%s\" retains %s of WAL, more than slot.retained.warn.bytes (%s)%s: outboxd "
                 "is behind or stopped reading (Kafka down?); PostgreSQL keeps this WAL on disk until the slot "
                 "confirms it (see outboxd status, docs/operations.md \"Watching retained WAL\")",
                 ops->o.slot, b1, b2, ops->slot.has_safe ? "" : ", and nothing caps it (max_slot_wal_keep_size = -1)");
        ops->retained_warned = true;
        ops->retained_warned_ms = now_ms;
    } else if (!over && ops->retained_warned) {
        log_info("replication slot \"%s\" retains %s of WAL again, within slot.retained.warn.bytes (%s)", ops->o.slot,
                 b1, b2);
        ops->retained_warned = false;
    }
}

/* The other inactive wal2json slots: their metrics, and a warning naming them whenever the set
 * changes (at the first poll too), so an abandoned slot does not go unnoticed. */
static void other_slots_guard(relay_ops_t *ops) {
    const slot_snap_t *s = &ops->slot;
    if (!s->others_known)
        return;
    metrics_set(ops->other_slots, (double)s->nothers);
    metrics_set(ops->other_retained, s->others_shown && s->others[0].has_retained ? (double)s->others[0].retained : 0);
    char names[sizeof(ops->others_logged)] = "", list[2048], drop[128];
    for (size_t i = 0, o = 0; i < s->others_shown && o < sizeof(names); i++)
        o += (size_t)snprintf(names + o, sizeof(names) - o, "%s ", s->others[i].name);
    if (!strcmp(names, ops->others_logged))
        return;
    snprintf(ops->others_logged, sizeof(ops->others_logged), "%s", names);
    if (!s->nothers)
        return;
    log_warn("%zu wal2json replication slot%s besides \"%s\" %s not streamed and keep%s WAL: %s; if no outboxd uses "
             "%s any more, drop %s (%s); outboxd status lists them",
             s->nothers, s->nothers == 1 ? "" : "s", ops->o.slot, s->nothers == 1 ? "is" : "are",
             s->nothers == 1 ? "s" : "", other_slots_list(s->others, s->others_shown, s->nothers, list, sizeof(list)),
             s->nothers == 1 ? "it" : "them", s->nothers == 1 ? "it" : "each",
             other_slots_drop_statement(&s->others[0], drop, sizeof(drop)));
}

int relay_ops_tick(relay_ops_t *ops, int64_t now_ms, const relay_ops_state_t *st, char *errstr, size_t errstr_size) {
    if (!ops)
        return 0;
    daemon_ops_heartbeat(&ops->d, now_ms);
    /* Streaming or not: /readyz and systemd learn a change at once, the rest once a second. */
    int state = (st->streaming ? 1 : 0) | (st->standby ? 2 : 0);
    if (now_ms < ops->next_publish_ms && state == ops->shown_state)
        return 0;
    ops->shown_state = state;
    ops->next_publish_ms = now_ms + PUBLISH_INTERVAL_MS;

    char perr[1024] = "", ferr[1024];
    uint64_t polls = pgpoll_get(ops->slot_poll, &ops->slot, perr, sizeof(perr));
    bool fresh = polls != ops->slot_polls;
    ops->slot_polls = polls;
    /* Slot poll failures: one line when they start and one when a poll works again, not one
     * per poll; the counter says how many. A failure and the recovery may both fall between
     * two ticks (the poll runs on its own interval). */
    uint64_t failures = pgpoll_failures(ops->slot_poll, ferr, sizeof(ferr));
    metrics_set(ops->poll_errors, (double)failures);
    if (failures != ops->slot_poll_failures && !ops->slot_poll_failing) {
        log_warn("replication slot \"%s\": %s; the slot metrics and the retained-WAL guardrail keep their last "
                 "values until a poll works again (retrying every %d ms)",
                 ops->o.slot, ferr, ops->o.slot_poll_interval_ms);
        ops->slot_poll_failing = true;
    }
    ops->slot_poll_failures = failures;
    if (ops->slot_poll_failing && fresh && !perr[0]) {
        log_info("replication slot \"%s\": reading pg_replication_slots works again", ops->o.slot);
        ops->slot_poll_failing = false;
    }

    /* While streaming, the relay knows what it confirmed. Before the first stream, on a standby
     * or while reconnecting, it confirms nothing itself: show the slot's own position instead
     * (0 while the slot is unknown or missing), not the whole WAL as lag. */
    lsn_t wal_end = st->wal_end > ops->slot.current ? st->wal_end : ops->slot.current;
    lsn_t confirmed = st->confirmed;
    long long lag = 0;
    if (st->streaming)
        lag = wal_end > confirmed ? (long long)(wal_end - confirmed) : 0;
    else if (ops->slot.exists) {
        confirmed = ops->slot.confirmed;
        lag = ops->slot.has_lag && ops->slot.lag > 0 ? ops->slot.lag : 0;
    }
    ops->lag_bytes = lag;
    metrics_set(ops->in_flight, (double)st->in_flight);
    metrics_set(ops->received, (double)st->received);
    metrics_set(ops->confirmed, (double)confirmed);
    metrics_set(ops->wal_end, (double)wal_end);
    metrics_set(ops->lag, (double)lag);
    metrics_set(ops->oldest_age, oldest_age_s(ops, now_ms));
    metrics_set(ops->streaming, st->streaming);
    metrics_set(ops->standby, st->standby);
    metrics_set(ops->kafka_up, daemon_ops_kafka_up(&ops->d));
    if (polls) {
        metrics_set(ops->retained, ops->slot.has_retained ? (double)ops->slot.retained : 0);
        metrics_set(ops->safe, ops->slot.has_safe ? (double)ops->slot.safe : -1);
        metrics_set(ops->slot_active, ops->slot.active);
    }
    if (fresh) {
        retained_guard(ops, now_ms);
        other_slots_guard(ops);
    }

    /* synchronized_standby_slots holding decoding back: not ready, one WARN when it starts. */
    char held[768] = "";
    if (polls)
        metrics_set(ops->blocking, ops->slot.blocking);
    if (ops->slot.blocking > 0) {
        char fix[512];
        snprintf(held, sizeof(held), "logical decoding is held back by synchronized_standby_slots (%s): %s",
                 ops->slot.blocking_names, pg_failover_blocking_fix(ops->slot.blocking_names, fix, sizeof(fix)));
        if (!ops->blocking_warned)
            log_warn("%s", held);
    } else if (ops->blocking_warned) {
        log_info("synchronized_standby_slots no longer holds logical decoding back");
    }
    ops->blocking_warned = ops->slot.blocking > 0;

    /* systemd: ready once streaming or standing by (a standby is up and doing its job), or
     * held back (starting would otherwise wait forever); from then on STATUS= follows what
     * it does. */
    daemon_ops_publish(&ops->d, ops->m, st->streaming && !held[0], "streaming",
                       held[0]         ? held
                       : st->not_ready ? st->not_ready
                                       : "not streaming",
                       st->standby || held[0]);

    if (fresh && ops->slot.lost) {
        char lb[LSN_FMT_SIZE];
        snprintf(errstr, errstr_size,
                 "replication slot \"%s\" was invalidated by PostgreSQL (wal_status = lost): the server removed WAL "
                 "the slot still needed (max_slot_wal_keep_size). Events committed after the last confirmed "
                 "position %s may not have been published, and this slot can never stream them. Recover: drop and "
                 "recreate the slot, then republish those rows from the outbox table (docs/operations.md, \"Slot "
                 "lost\")",
                 ops->o.slot, lsn_format(st->confirmed, lb));
        return -1;
    }
    return 0;
}

long long relay_ops_lag_bytes(const relay_ops_t *ops) { return ops ? ops->lag_bytes : 0; }
