/* baseline_producer.c - BENCHMARK BASELINE, not part of outboxd: the Kafka floor of the live
 * latency workload. It produces records like outboxd's (1,000 keys, a ~130-byte value, id and
 * event_type headers) at a fixed rate with outboxd's producer settings (acks=all, idempotent,
 * linger.ms=5, murmur2_random) and no PostgreSQL at all, and measures produce() to delivery
 * report. bench/bench.py runs it while pgbench writes the same rows as in outboxd's run, so
 * the figures show what the machine's Kafka path alone costs under that load.
 *
 * Usage: baseline_producer BOOTSTRAP TOPIC RATE SECONDS [LINGER_MS]
 * Prints one JSON object: {"sent":N,"acked":N,"failed":N,"p50_ms":..,"p99_ms":..,
 * "p99.9_ms":..,"max_ms":..,"cpu_s":..}. Exit 1 on a setup error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct {
    double *lat_ms; /* one slot per message, indexed by the message number */
    size_t acked, failed;
} stats_t;

/* The opaque of each message is its send time's slot: sent times live in send_s. */
static double *send_s;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    stats_t *st = opaque;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (m->err) {
        st->failed++;
        return;
    }
    st->lat_ms[st->acked++] = (mono_s() - send_s[i]) * 1000.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, size_t n, double p) {
    if (n == 0)
        return -1;
    size_t i = (size_t)((double)n * p / 100.0);
    return sorted[i < n ? i : n - 1];
}

static int set(rd_kafka_conf_t *c, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "baseline_producer: %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: baseline_producer BOOTSTRAP TOPIC RATE SECONDS [LINGER_MS]\n");
        return 1;
    }
    const char *topic = argv[2];
    int rate = atoi(argv[3]), secs = atoi(argv[4]);
    if (rate < 1 || secs < 1) {
        fprintf(stderr, "baseline_producer: RATE and SECONDS must be positive\n");
        return 1;
    }
    size_t n = (size_t)rate * (size_t)secs;
    stats_t st = {.lat_ms = calloc(n, sizeof(double))};
    send_s = calloc(n, sizeof(double));
    if (!st.lat_ms || !send_s) {
        fprintf(stderr, "baseline_producer: out of memory\n");
        return 1;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", argv[1]) || set(conf, "acks", "all") ||
        set(conf, "enable.idempotence", "true") || set(conf, "linger.ms", argc > 5 ? argv[5] : "5") ||
        set(conf, "partitioner", "murmur2_random"))
        return 1;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &st);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "baseline_producer: %s\n", err);
        return 1;
    }
    /* Warm-up: connection, producer id and topic metadata are not part of the figures. */
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE("warm-up", 7),
                      RD_KAFKA_V_OPAQUE((void *)(uintptr_t)0), RD_KAFKA_V_END);
    send_s[0] = mono_s();
    if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR || st.acked != 1) {
        fprintf(stderr, "baseline_producer: warm-up record not acknowledged within 30 s\n");
        return 1;
    }
    st.acked = 0;

    char value[160];
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = mono_s();
    for (size_t i = 0; i < n; i++) {
        char key[24], id[48];
        int kl = snprintf(key, sizeof(key), "%zu", i % 1000);
        snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012zu", i);
        int vl = snprintf(value, sizeof(value),
                          "{\"order\": %zu, \"amount\": 42.5, \"currency\": \"EUR\", \"items\": "
                          "[{\"sku\": \"SKU-1\", \"qty\": 1}], \"note\": \"benchmark\"}",
                          i);
        send_s[i] = mono_s();
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                                      RD_KAFKA_V_VALUE(value, (size_t)vl), RD_KAFKA_V_HEADER("id", id, -1),
                                      RD_KAFKA_V_HEADER("event_type", "OrderPlaced", -1),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if (e) {
            fprintf(stderr, "baseline_producer: produce: %s\n", rd_kafka_err2str(e));
            return 1;
        }
        rd_kafka_poll(rk, 0);
        double wait = t0 + (double)(i + 1) / rate - mono_s();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    rd_kafka_flush(rk, 60000);
    getrusage(RUSAGE_SELF, &ru1);
    double cpu =
        (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
        (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    qsort(st.lat_ms, st.acked, sizeof(double), cmp_double);
    printf("{\"sent\": %zu, \"acked\": %zu, \"failed\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"p99.9_ms\": %.3f, \"max_ms\": %.3f, \"cpu_s\": %.3f}\n",
           n, st.acked, st.failed, pct(st.lat_ms, st.acked, 50), pct(st.lat_ms, st.acked, 99),
           pct(st.lat_ms, st.acked, 99.9), st.acked ? st.lat_ms[st.acked - 1] : -1.0, cpu);
    rd_kafka_destroy(rk);
    free(st.lat_ms);
    free(send_s);
    return st.failed || st.acked != n ? 1 : 0;
}
