/* inbox_ops.c - inboxd's metrics, HTTP endpoint, inbox table poll, Kafka probe, consumer lag
 * and systemd notifications, driven by the inbox loop (see inbox_ops.h). */
#include "inbox_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "clock.h"
#include "daemon_ops.h"
#include "inbox_catalog.h"
#include "inbox_deliver.h"
#include "metrics.h"
#include "pgpoll.h"
#include "record_headers.h"

#define PUBLISH_INTERVAL_MS 1000

static const char *const statuses[] = {"pending", "processing", "done", "failed", "dead"};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

/* Delivery latency from outboxd's commit time header, seconds: outboxd_commit_to_ack_seconds'
 * bounds, then longer ones for what a service takes to process. */
static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,    10,    30,   60,  120,  300, 600};
#define NLAT (sizeof(latency_buckets) / sizeof(latency_buckets[0]))
#define MAX_PROCESSED_TOPICS 32 /* topics tracked by inboxd_commit_to_processed_seconds; more are not shown */
#define PROCESSED_ROWS_PER_PAGE 20000
#define PROCESSED_PAGES_PER_POLL 10 /* up to 200,000 rows per inbox.metrics.interval.ms */

/* One topic's commit -> processed histogram, counted by the poller. */
typedef struct topic_hist {
    char topic[256];
    uint64_t buckets[NLAT]; /* per bound, not cumulative */
    uint64_t count;
    double sum;
} topic_hist_t;

typedef struct table_snap {
    long long count[NSTATUS];
    double oldest_pending_s; /* 0: none pending */
    topic_hist_t processed[MAX_PROCESSED_TOPICS];
    size_t nprocessed;
} table_snap_t;

/* Poller-thread state (never touched by the loop thread while the poller runs). */
typedef struct table_arg {
    const char *table;
    char resolved[512]; /* schema.table quoted by the server (inbox_catalog_lookup) */
    /* Done rows are read once, in (processed_at, id) order after this position; the first poll
     * starts at the server's now(): rows processed before inboxd started are not counted. */
    char after_at[64], after_id[24];
    topic_hist_t processed[MAX_PROCESSED_TOPICS];
    size_t nprocessed;
} table_arg_t;

static void observe_processed(table_arg_t *a, const char *topic, double s) {
    size_t i = 0;
    while (i < a->nprocessed && strcmp(a->processed[i].topic, topic) != 0)
        i++;
    if (i == a->nprocessed) {
        if (i == MAX_PROCESSED_TOPICS || strlen(topic) >= sizeof(a->processed[0].topic))
            return;
        snprintf(a->processed[a->nprocessed++].topic, sizeof(a->processed[0].topic), "%s", topic);
    }
    topic_hist_t *h = &a->processed[i];
    if (s < 0)
        s = 0; /* the clocks of two database servers may disagree a little */
    h->count++;
    h->sum += s;
    for (size_t k = 0; k < NLAT; k++)
        if (s <= latency_buckets[k]) {
            h->buckets[k]++;
            break;
        }
}

/* The first poll starts at the server's now(). Returns 0 or -1 with errstr. */
static int start_position(PGconn *conn, table_arg_t *a, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(conn, "SELECT now()::text");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        snprintf(errstr, errstr_size, "cannot read now(): %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    snprintf(a->after_at, sizeof(a->after_at), "%s", PQgetvalue(res, 0, 0));
    snprintf(a->after_id, sizeof(a->after_id), "0");
    PQclear(res);
    return 0;
}

/* One page of rows done after the position, observed; the position moves to its last row.
 * Returns the number of rows, or -1 with errstr. */
static int read_processed_page(PGconn *conn, table_arg_t *a, char *errstr, size_t errstr_size) {
    char sql[1400];
    snprintf(
        sql, sizeof(sql),
        "SELECT topic, extract(epoch FROM processed_at)::float8 - (headers->>'" RECORD_HEADER_COMMIT_TIME
        "')::float8 / 1e6, processed_at::text, id FROM %s WHERE status = 'done' AND processed_at >= $1::timestamptz "
        "AND (processed_at, id) > ($1::timestamptz, $2::bigint) AND headers->>'" RECORD_HEADER_COMMIT_TIME
        "' ~ '^[0-9]{1,18}$' ORDER BY processed_at, id LIMIT %d",
        a->resolved, PROCESSED_ROWS_PER_PAGE);
    const char *params[2] = {a->after_at, a->after_id};
    PGresult *res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(errstr, errstr_size, "cannot read processed messages: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
        observe_processed(a, PQgetvalue(res, i, 0), atof(PQgetvalue(res, i, 1)));
    if (n > 0) {
        snprintf(a->after_at, sizeof(a->after_at), "%s", PQgetvalue(res, n - 1, 2));
        snprintf(a->after_id, sizeof(a->after_id), "%s", PQgetvalue(res, n - 1, 3));
    }
    PQclear(res);
    return n;
}

/* Counts the rows that became done since the last poll: processed_at (the database's clock)
 * minus the commit time header, at most PROCESSED_PAGES_PER_POLL pages (beyond that, the next
 * poll goes on where this one stopped). A row whose processing transaction commits after a
 * later position was read is not counted (a sample, not a ledger). */
static int poll_processed(PGconn *conn, table_arg_t *a, char *errstr, size_t errstr_size) {
    if (!a->after_at[0] && start_position(conn, a, errstr, errstr_size) != 0)
        return -1;
    for (int page = 0; page < PROCESSED_PAGES_PER_POLL; page++) {
        int n = read_processed_page(conn, a, errstr, errstr_size);
        if (n < 0)
            return -1;
        if (n < PROCESSED_ROWS_PER_PAGE)
            break;
    }
    return 0;
}

struct inbox_ops {
    inbox_ops_options_t o;
    daemon_ops_t d;
    pgpoll_t *table_poll;
    table_arg_t targ;
    void *rk;
    metrics_t *m;
    metrics_series_t *deliver_attempts, *deliver_successes, *deliver_retries, *deliver_dead, *deliver_inflight;
    metrics_series_t *recorded, *duplicates, *batches, *batch_messages, *oldest_pending, *consuming, *kafka_up;
    metrics_series_t *status[NSTATUS];
    metrics_series_t *dropped_redelivered, *dropped_paused, *dropped_unassigned, *regressions, *rewound;
    metrics_family_t *lag, *to_recorded, *to_processed;
    long long lag_total; /* sum over the assigned partitions at the last update; -1: unknown */
    int64_t next_publish_ms;
    bool was_consuming;
};

static int poll_table(PGconn *conn, void *snapshot, void *arg, char *errstr, size_t errstr_size) {
    table_arg_t *a = arg;
    table_snap_t *s = snapshot;
    if (!a->resolved[0]) {
        inbox_catalog_t cat;
        PGresult *failed;
        if (inbox_catalog_lookup(conn, a->table, &cat, &failed) != INBOX_CATALOG_FOUND) {
            snprintf(errstr, errstr_size, "inbox table %s not found", a->table);
            PQclear(failed);
            return -1;
        }
        snprintf(a->resolved, sizeof(a->resolved), "%s", cat.table);
        inbox_catalog_free(&cat);
    }
    char sql[800];
    snprintf(sql, sizeof(sql),
             "SELECT status, count(*), coalesce(extract(epoch FROM now() - min(received_at)), 0)::float8 "
             "FROM %s GROUP BY status",
             a->resolved);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(errstr, errstr_size, "cannot count the inbox: %s", PQresultErrorMessage(res));
        a->resolved[0] = '\0'; /* the table may have been renamed: resolve again */
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++)
        for (size_t k = 0; k < NSTATUS; k++)
            if (!strcmp(PQgetvalue(res, i, 0), statuses[k])) {
                s->count[k] = atoll(PQgetvalue(res, i, 1));
                if (k == 0)
                    s->oldest_pending_s = atof(PQgetvalue(res, i, 2));
            }
    PQclear(res);
    if (poll_processed(conn, a, errstr, errstr_size) != 0)
        return -1;
    memcpy(s->processed, a->processed, sizeof(s->processed));
    s->nprocessed = a->nprocessed;
    return 0;
}

inbox_ops_t *inbox_ops_new(const inbox_ops_options_t *o, char *errstr, size_t errstr_size) {
    inbox_ops_t *ops = calloc(1, sizeof(*ops));
    metrics_t *m = ops ? (ops->m = metrics_new()) : NULL;
    if (!m) {
        inbox_ops_destroy(ops);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    ops->o = *o;
    ops->targ.table = o->table;
    daemon_ops_build_info(m, "inboxd");
    ops->recorded =
        metrics_scalar(m, METRICS_COUNTER, "inboxd_messages_recorded_total", "Messages inserted into the inbox table.");
    ops->duplicates = metrics_scalar(m, METRICS_COUNTER, "inboxd_duplicates_skipped_total",
                                     "Messages skipped because they were already recorded (by position or id).");
    ops->deliver_attempts =
        metrics_scalar(m, METRICS_COUNTER, "inboxd_delivery_attempts_total", "HTTP push: requests sent (deliver.url).");
    ops->deliver_successes = metrics_scalar(m, METRICS_COUNTER, "inboxd_delivery_successes_total",
                                            "HTTP push: 2xx answers; the message is done.");
    ops->deliver_retries = metrics_scalar(m, METRICS_COUNTER, "inboxd_delivery_failures_total",
                                          "HTTP push: attempts that failed and will be retried (429, 5xx, timeouts, "
                                          "connection errors).");
    ops->deliver_dead = metrics_scalar(m, METRICS_COUNTER, "inboxd_delivery_dead_total",
                                       "HTTP push: messages made dead (another 4xx, or the last attempt failed).");
    ops->deliver_inflight =
        metrics_scalar(m, METRICS_GAUGE, "inboxd_delivery_in_flight", "HTTP push: requests under way now.");
    ops->batches = metrics_scalar(m, METRICS_COUNTER, "inboxd_batches_total", "Database transactions written.");
    ops->batch_messages = metrics_scalar(m, METRICS_GAUGE, "inboxd_batch_messages",
                                         "Messages consumed and waiting for the next database transaction.");
    metrics_family_t *st = metrics_family(m, METRICS_GAUGE, "inboxd_inbox_messages",
                                          "Rows of the inbox table by status, polled.", "status", NULL, 0);
    for (size_t k = 0; k < NSTATUS; k++)
        ops->status[k] = metrics_series(st, statuses[k]);
    ops->oldest_pending = metrics_scalar(m, METRICS_GAUGE, "inboxd_oldest_pending_age_seconds",
                                         "Age of the oldest pending row (received_at), polled; 0: none pending.");
    ops->lag = metrics_family(m, METRICS_GAUGE, "inboxd_consumer_lag_messages",
                              "High watermark minus the consumer's position (while paused for PostgreSQL: the position "
                              "recorded in the inbox), summed over the assigned partitions of each topic.",
                              "topic", NULL, 0);
    metrics_family_t *dr =
        metrics_family(m, METRICS_COUNTER, "inboxd_messages_dropped_total",
                       "Consumed messages not taken into a batch, by reason: redelivered (before the partition's "
                       "stored position: recorded already), paused (consumed while paused for PostgreSQL: read "
                       "again later), unassigned (the partition was revoked).",
                       "reason", NULL, 0);
    ops->dropped_redelivered = metrics_series(dr, "redelivered");
    ops->dropped_paused = metrics_series(dr, "paused");
    ops->dropped_unassigned = metrics_series(dr, "unassigned");
    ops->regressions = metrics_scalar(m, METRICS_COUNTER, "inboxd_offset_regressions_total",
                                      "Times a partition's offsets went back below its stored position (topic "
                                      "recreated, log truncated; see inbox.on_offset_regression).");
    ops->rewound = metrics_scalar(m, METRICS_COUNTER, "inboxd_rewound_offsets_total",
                                  "Offsets inboxd had recorded that the database did not have when it connected "
                                  "again (the last transactions lost in a failover to a lagging standby, or a "
                                  "restore): read again from Kafka.");
    ops->lag_total = -1;
    ops->consuming = metrics_scalar(m, METRICS_GAUGE, "inboxd_consuming",
                                    "1 while consuming (0: paused for PostgreSQL, starting, stopping).");
    ops->kafka_up = metrics_scalar(m, METRICS_GAUGE, "inboxd_kafka_reachable",
                                   "1 when a broker answered the last metadata probe (every 2 s).");
    ops->to_recorded = metrics_family(
        m, METRICS_HISTOGRAM, "inboxd_commit_to_recorded_seconds",
        "Per message with outboxd's commit time header: from the sending transaction's commit (its database's clock) "
        "to the commit of the inbox transaction that recorded it (inboxd's clock).",
        "topic", latency_buckets, NLAT);
    ops->to_processed = metrics_family(
        m, METRICS_HISTOGRAM, "inboxd_commit_to_processed_seconds",
        "Per message with outboxd's commit time header: from the sending transaction's commit to processed_at of "
        "the inbox row when it became done (the inbox database's clock); read from the table every "
        "inbox.metrics.interval.ms.",
        "topic", latency_buckets, NLAT);
    if (daemon_ops_start(&ops->d, o->http_listen, errstr, errstr_size) != 0) {
        inbox_ops_destroy(ops);
        return NULL;
    }
    ops->table_poll =
        pgpoll_start(o->conninfo, "inboxd metrics", o->poll_interval_ms, sizeof(table_snap_t), poll_table, &ops->targ);
    if (!ops->table_poll) {
        inbox_ops_destroy(ops);
        snprintf(errstr, errstr_size, "cannot start the inbox poll thread");
        return NULL;
    }
    return ops;
}

void inbox_ops_destroy(inbox_ops_t *ops) {
    if (!ops)
        return;
    pgpoll_stop(ops->table_poll);
    daemon_ops_stop(&ops->d);
    metrics_destroy(ops->m);
    free(ops);
}

void inbox_ops_watch_kafka(inbox_ops_t *ops, void *rd_kafka_handle, const char *group) {
    if (!ops || ops->rk)
        return;
    metrics_family_const_label(ops->to_recorded, "group", group);
    metrics_family_const_label(ops->to_processed, "group", group);
    ops->rk = rd_kafka_handle;
    daemon_ops_watch_kafka(&ops->d, rd_kafka_handle);
}

/* Per topic: high watermark (cached from fetches, no request) minus the position: the one
 * recorded in the inbox while inboxd holds for PostgreSQL (consumed but unwritten messages
 * count, so the lag stays above 0 although the paused partitions' watermarks are the last
 * ones fetched), else the consumer's. Every series is zeroed first: a topic whose partitions all moved to another
 * instance (or an empty assignment) shows 0, not the value from before the rebalance. */
static void update_lag(inbox_ops_t *ops, const inbox_ops_state_t *st) {
    metrics_family_zero(ops->lag);
    ops->lag_total = -1;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (!ops->rk || rd_kafka_assignment(ops->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || !a)
        return;
    rd_kafka_position(ops->rk, a);
    long long total = 0;
    bool known = false;
    for (int i = 0; i < a->cnt; i++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_topic_partition_t *p = &a->elems[i];
        metrics_series_t *s = metrics_series(ops->lag, p->topic);
        int64_t rec =
            st->recorded_position ? st->recorded_position(st->recorded_position_arg, p->topic, p->partition) : -1;
        if (rec >= 0)
            p->offset = rec;
        if (rd_kafka_get_watermark_offsets(ops->rk, p->topic, p->partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0 || p->offset < 0)
            continue;
        long long lag = hi > p->offset ? hi - p->offset : 0;
        metrics_add(s, (double)lag);
        total += lag;
        known = true;
    }
    if (known)
        ops->lag_total = total;
    rd_kafka_topic_partition_list_destroy(a);
}

void inbox_ops_recorded(inbox_ops_t *ops, const char *topic, int64_t commit_us, int64_t now_us) {
    double s = (double)(now_us - commit_us) / 1e6;
    if (ops)
        metrics_observe(metrics_series(ops->to_recorded, topic), s < 0 ? 0 : s); /* clocks of two hosts */
}

long long inbox_ops_consumer_lag(const inbox_ops_t *ops) { return ops ? ops->lag_total : -1; }

void inbox_ops_tick(inbox_ops_t *ops, int64_t now_ms, const inbox_ops_state_t *st) {
    if (!ops)
        return;
    daemon_ops_heartbeat(&ops->d, now_ms);
    if (now_ms < ops->next_publish_ms && st->consuming == ops->was_consuming) /* a change goes out at once */
        return;
    ops->next_publish_ms = now_ms + PUBLISH_INTERVAL_MS;
    ops->was_consuming = st->consuming;
    table_snap_t t;
    if (pgpoll_get(ops->table_poll, &t, NULL, 0)) {
        for (size_t k = 0; k < NSTATUS; k++)
            metrics_set(ops->status[k], (double)t.count[k]);
        metrics_set(ops->oldest_pending, t.oldest_pending_s);
        for (size_t i = 0; i < t.nprocessed; i++)
            metrics_histogram_set(metrics_series(ops->to_processed, t.processed[i].topic), t.processed[i].buckets, NLAT,
                                  t.processed[i].count, t.processed[i].sum);
    }
    metrics_set(ops->recorded, (double)st->recorded);
    metrics_set(ops->duplicates, (double)st->duplicates);
    metrics_set(ops->batches, (double)st->batches);
    inbox_deliver_stats_t ds;
    inbox_deliver_stats_get(&ds);
    metrics_set(ops->deliver_attempts, (double)ds.attempts);
    metrics_set(ops->deliver_successes, (double)ds.successes);
    metrics_set(ops->deliver_retries, (double)ds.retries);
    metrics_set(ops->deliver_dead, (double)ds.dead);
    metrics_set(ops->deliver_inflight, (double)ds.in_flight);
    metrics_set(ops->batch_messages, (double)st->batch_messages);
    metrics_set(ops->dropped_redelivered, (double)st->dropped_redelivered);
    metrics_set(ops->dropped_paused, (double)st->dropped_paused);
    metrics_set(ops->dropped_unassigned, (double)st->dropped_unassigned);
    metrics_set(ops->regressions, (double)st->regressions);
    metrics_set(ops->rewound, (double)st->rewound);
    metrics_set(ops->consuming, st->consuming);
    metrics_set(ops->kafka_up, daemon_ops_kafka_up(&ops->d));
    update_lag(ops, st);
    /* systemd: ready once consuming; from then on STATUS= follows what it does. */
    daemon_ops_publish(&ops->d, ops->m, st->consuming, "consuming", st->not_ready ? st->not_ready : "not consuming",
                       false);
}
