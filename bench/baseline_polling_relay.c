/* baseline_polling_relay.c - BENCHMARK BASELINE, not part of outboxd: the polling outbox relay
 * of the widespread tutorials, in C (libpq + librdkafka) so the comparison is fair.
 *
 * Loop: BEGIN; SELECT ... FROM outbox ORDER BY created_at LIMIT batch FOR UPDATE SKIP LOCKED;
 * produce each row (topic <prefix>.<aggregate_type>, key aggregate_id, value payload, headers
 * id and event_type; acks=all, idempotent, linger.ms=5 as outboxd); wait for every ack
 * (rd_kafka_flush); DELETE the published rows; COMMIT. A short batch means the table is
 * drained: sleep the poll interval before the next query. Several instances may run side by
 * side (SKIP LOCKED). Per-key order holds only with one instance.
 *
 * Usage: baseline_polling_relay CONNINFO BOOTSTRAP TOPIC_PREFIX [BATCH [INTERVAL_MS]]
 *        (defaults: batch 500, poll interval 100 ms). SIGTERM/SIGINT: finish the batch, exit 0.
 * Needs an index on outbox(created_at) to be fair (bench/bench.py creates it). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "pgconn.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static int failed; /* set by the delivery report callback */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        fprintf(stderr, "baseline_polling_relay: delivery failed: %s\n", rd_kafka_err2str(m->err));
        failed = 1;
    }
}

static int exec_ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "baseline_polling_relay: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* One poll: returns the number of rows published (and deleted), or -1 on error. */
static int poll_once(PGconn *c, rd_kafka_t *rk, const char *prefix, const char *select_sql) {
    if (!exec_ok(c, "BEGIN"))
        return -1;
    PGresult *r = PQexec(c, select_sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "baseline_polling_relay: select: %s", PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    size_t ids_cap = 4 + (size_t)n * 40, ids_len = 0;
    char *ids = malloc(ids_cap);
    if (!ids) {
        PQclear(r);
        return -1;
    }
    ids_len += (size_t)snprintf(ids, ids_cap, "{");
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(r, i, 0), *type = PQgetvalue(r, i, 3);
        char topic[256];
        snprintf(topic, sizeof(topic), "%s.%s", prefix, PQgetvalue(r, i, 1));
        rd_kafka_resp_err_t err;
        do {
            err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2)),
                RD_KAFKA_V_VALUE(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4)), RD_KAFKA_V_HEADER("id", id, -1),
                RD_KAFKA_V_HEADER("event_type", type, -1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (err) {
            fprintf(stderr, "baseline_polling_relay: produce: %s\n", rd_kafka_err2str(err));
            failed = 1;
        }
        ids_len += (size_t)snprintf(ids + ids_len, ids_cap - ids_len, "%s%s", i ? "," : "", id);
    }
    snprintf(ids + ids_len, ids_cap - ids_len, "}");
    PQclear(r);
    /* Mark sent only after Kafka acknowledged every record of the batch. */
    while (rd_kafka_flush(rk, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT && !failed)
        ;
    if (failed) {
        free(ids);
        return -1;
    }
    const char *params[1] = {ids};
    r = PQexecParams(c, "DELETE FROM outbox WHERE id = ANY($1::uuid[])", 1, NULL, params, NULL, NULL, 0);
    free(ids);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "baseline_polling_relay: delete: %s", PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return exec_ok(c, "COMMIT") ? n : -1;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s CONNINFO BOOTSTRAP TOPIC_PREFIX [BATCH [INTERVAL_MS]]\n", argv[0]);
        return 2;
    }
    int batch = argc > 4 ? atoi(argv[4]) : 500, interval_ms = argc > 5 ? atoi(argv[5]) : 100;
    if (batch < 1 || interval_ms < 0) {
        fprintf(stderr, "baseline_polling_relay: BATCH must be >= 1 and INTERVAL_MS >= 0\n");
        return 2;
    }
    char select_sql[256], errstr[512];
    snprintf(select_sql, sizeof(select_sql),
             "SELECT id, aggregate_type, aggregate_id, event_type, payload::text FROM outbox "
             "ORDER BY created_at LIMIT %d FOR UPDATE SKIP LOCKED",
             batch);

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    PGconn *c = pgconn_open(argv[1], "baseline_polling_relay", false);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        pgconn_error(errstr, sizeof(errstr), "baseline_polling_relay: cannot connect: ", c ? PQerrorMessage(c) : NULL);
        fprintf(stderr, "%s\n", errstr);
        PQfinish(c);
        return 2;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[] = {"bootstrap.servers",  argv[2],          "acks",      "all",
                           "enable.idempotence", "true",           "linger.ms", "5",
                           "partitioner",        "murmur2_random", NULL};
    for (int i = 0; props[i]; i += 2)
        if (rd_kafka_conf_set(conf, props[i], props[i + 1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "baseline_polling_relay: %s\n", errstr);
            return 2;
        }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "baseline_polling_relay: %s\n", errstr);
        return 2;
    }
    fprintf(stderr, "baseline_polling_relay: polling every %d ms, batch %d\n", interval_ms, batch);
    long total = 0;
    int rc = 0;
    while (!stop) {
        int n = poll_once(c, rk, argv[3], select_sql);
        if (n < 0) {
            rc = 1;
            break;
        }
        total += n;
        if (n < batch && interval_ms > 0) {
            struct timespec ts = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
    PQfinish(c);
    fprintf(stderr, "baseline_polling_relay: published %ld events\n", total);
    return rc;
}
