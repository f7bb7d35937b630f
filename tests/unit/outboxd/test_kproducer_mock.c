/* test_kproducer_mock.c - producer fault injection with librdkafka's mock cluster: transient
 * errors keep per-key order, a down broker acks nothing until it returns, permanent errors
 * are reported with the event id and LSN and can be dead-lettered from the delivery report.
 * Complements the tests against the real broker. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "dead_letter.h"
#include "kproducer.h"
#include "log.h"

#define MAXN 1000
#define APIKEY_PRODUCE 0
#define DLQ_SEQ (1ULL << 63) /* as the relay marks a dead-letter record's sequence number */

typedef struct result {
    int n, nerr;
    int err[MAXN + 1];
    int64_t offset[MAXN + 1];
    int32_t partition[MAXN + 1];
    char id[MAXN + 1][32];
    int order[MAXN + 1]; /* seqs in report order */
    lsn_t lsn[MAXN + 1];
    /* With dl set, a refused record goes to the dead-letter topic; its report lands here. */
    kproducer_t *p;
    dead_letter_t *dl;
    int dlq_reports, dlq_err;
    lsn_t dlq_lsn;
    char dlq_topic[64], dlq_id[32], dlq_error[256], dlq_lsn_header[32];
} result_t;

static void header_text(const rd_kafka_message_t *m, const char *name, char *out, size_t size) {
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
        snprintf(out, size, "%.*s", (int)n, (const char *)v);
}

static void on_dlq_dr(result_t *r, const kproducer_delivery_t *d) {
    r->dlq_reports++;
    r->dlq_err = d->err;
    r->dlq_lsn = d->lsn;
    snprintf(r->dlq_topic, sizeof(r->dlq_topic), "%s", d->topic ? d->topic : "");
    header_text(d->msg, "id", r->dlq_id, sizeof(r->dlq_id));
    header_text(d->msg, "outboxd.error", r->dlq_error, sizeof(r->dlq_error));
    header_text(d->msg, "outboxd.lsn", r->dlq_lsn_header, sizeof(r->dlq_lsn_header));
    r->n++;
}

static void on_dr(void *opaque, const kproducer_delivery_t *d) {
    result_t *r = opaque;
    if (d->seq & DLQ_SEQ) {
        on_dlq_dr(r, d);
        return;
    }
    uint64_t seq = d->seq;
    int err = d->err;
    const char *event_id = d->event_id;
    int32_t partition = d->partition;
    int64_t offset = d->offset;
    assert_true(seq >= 1 && seq <= MAXN);
    r->err[seq] = err;
    r->lsn[seq] = d->lsn;
    r->offset[seq] = offset;
    r->partition[seq] = partition;
    snprintf(r->id[seq], sizeof(r->id[seq]), "%s", event_id ? event_id : "");
    r->order[r->n++] = (int)seq;
    if (err)
        r->nerr++;
    char e[512];
    if (err && r->dl)
        assert_int_equal(dead_letter_redirect(r->dl, r->p, d, seq | DLQ_SEQ, e, sizeof(e)), KPRODUCER_OK);
}

static kproducer_t *mk(result_t *r, const char *extra_k, const char *extra_v) {
    const char *props[] = {
        "bootstrap.servers", "mock", "test.mock.num.brokers", "1", "retry.backoff.ms", "10", extra_k, extra_v, NULL};
    err_t e;
    memset(r, 0, sizeof(*r));
    kproducer_t *p = kproducer_new(props, "id", on_dr, r, &e);
    if (!p)
        fail_msg("kproducer_new: %s", e.msg);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(kproducer_handle(p));
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "t", 4, 1), 0);
    assert_int_equal(kproducer_check_connect(p, 5000, &e), 0);
    return p;
}

static kproducer_result_t produce_at(kproducer_t *p, int seq, int key, size_t value_len, lsn_t lsn) {
    char id[32], k[16], *value = malloc(value_len + 1);
    snprintf(id, sizeof(id), "ev-%d", seq);
    snprintf(k, sizeof(k), "k%d", key);
    memset(value, 'v', value_len);
    value[value_len] = '\0';
    router_header_t h[2] = {{"id", id, strlen(id)}, {"event_type", "t", 1}};
    outbox_event_t ev = {.id = id,
                         .topic = "t",
                         .key = k,
                         .key_len = strlen(k),
                         .value = value,
                         .value_len = value_len,
                         .event_type = "t",
                         .nheaders = 2,
                         .headers = h};
    char err[512];
    kproducer_result_t res = kproducer_produce(p, &ev, (uint64_t)seq, lsn, err, sizeof(err));
    free(value);
    return res;
}

static kproducer_result_t produce(kproducer_t *p, int seq, int key, size_t value_len) {
    return produce_at(p, seq, key, value_len, (lsn_t)seq << 8);
}

/* Polls delivery reports until want reports arrived or ms passed. */
static void wait_reports(kproducer_t *p, result_t *r, int want, int ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char err[512];
    for (;;) {
        assert_int_equal(kproducer_poll(p, err, sizeof(err)), 0);
        if (r->n >= want)
            return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (el >= ms)
            return;
        struct pollfd pfd = {.fd = kproducer_fd(p), .events = POLLIN};
        poll(&pfd, 1, 50);
    }
}

static void test_transient_errors_keep_key_order(void **state) {
    (void)state;
    result_t *r = calloc(1, sizeof(*r));
    kproducer_t *p = mk(r, NULL, NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(kproducer_handle(p));
    rd_kafka_mock_push_request_errors(mc, APIKEY_PRODUCE, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
    const int n = 400;
    for (int i = 1; i <= n; i++)
        assert_int_equal(produce(p, i, i % 10, 100), KPRODUCER_OK);
    wait_reports(p, r, n, 20000);
    assert_int_equal(r->n, n);
    assert_int_equal(r->nerr, 0);
    /* Same key -> same partition, offsets increase in produce order. An acknowledged record's
     * report carries no event id (looked up for failures only). */
    for (int i = 1; i <= n; i++) {
        assert_string_equal(r->id[i], "");
        assert_true(r->lsn[i] == (lsn_t)i << 8); /* the report is the record's */
        if (i > 10) {
            assert_int_equal(r->partition[i], r->partition[i - 10]);
            assert_true(r->offset[i] > r->offset[i - 10]);
        }
    }
    kproducer_destroy(p);
    free(r);
}

static void test_broker_down_acks_nothing(void **state) {
    (void)state;
    result_t *r = calloc(1, sizeof(*r));
    kproducer_t *p = mk(r, NULL, NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(kproducer_handle(p));
    assert_int_equal(rd_kafka_mock_broker_set_down(mc, 1), 0);
    for (int i = 1; i <= 50; i++)
        assert_int_equal(produce(p, i, i % 3, 10), KPRODUCER_OK);
    wait_reports(p, r, 1, 3000);
    assert_int_equal(r->n, 0); /* neither success nor failure while down */
    assert_int_equal(rd_kafka_outq_len(kproducer_handle(p)), 50);
    assert_int_equal(rd_kafka_mock_broker_set_up(mc, 1), 0);
    wait_reports(p, r, 50, 20000);
    assert_int_equal(r->n, 50);
    assert_int_equal(r->nerr, 0);
    kproducer_destroy(p);
    free(r);
}

static void test_permanent_error_reported_with_id(void **state) {
    (void)state;
    result_t *r = calloc(1, sizeof(*r));
    kproducer_t *p = mk(r, NULL, NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(kproducer_handle(p));
    rd_kafka_mock_push_request_errors(mc, APIKEY_PRODUCE, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(produce(p, 7, 1, 10), KPRODUCER_OK);
    wait_reports(p, r, 1, 10000);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->nerr, 1);
    assert_int_not_equal(r->err[7], 0);
    assert_string_equal(r->id[7], "ev-7");
    assert_int_equal(r->lsn[7], 7 << 8);
    kproducer_destroy(p);
    free(r);
}

/* A record the broker refuses is dead-lettered from its delivery report with the headers
 * every dead-letter record carries: its own, outboxd.error and outboxd.lsn (the LSN the record
 * was produced with), and the copy's report brings that LSN back too. */
static void test_refused_record_dead_lettered_with_its_lsn(void **state) {
    (void)state;
    result_t *r = calloc(1, sizeof(*r));
    kproducer_t *p = mk(r, NULL, NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(kproducer_handle(p));
    assert_int_equal(rd_kafka_mock_topic_create(mc, "dead", 1, 1), 0);
    r->p = p;
    r->dl = dead_letter_new("dead", "id");
    rd_kafka_mock_push_request_errors(mc, APIKEY_PRODUCE, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(produce_at(p, 7, 1, 10, 0x16B3F28), KPRODUCER_OK);
    wait_reports(p, r, 2, 10000);
    assert_int_equal(r->nerr, 1);
    assert_int_equal(r->lsn[7], 0x16B3F28);
    assert_int_equal(r->dlq_reports, 1);
    assert_int_equal(r->dlq_err, 0);
    assert_string_equal(r->dlq_topic, "dead");
    assert_string_equal(r->dlq_id, "ev-7");
    assert_non_null(strstr(r->dlq_error, "Kafka refused it for topic t"));
    assert_string_equal(r->dlq_lsn_header, "0/16B3F28");
    assert_int_equal(r->dlq_lsn, 0x16B3F28);
    kproducer_destroy(p);
    dead_letter_destroy(r->dl);
    free(r);
}

static void test_oversized_record_refused_at_once(void **state) {
    (void)state;
    result_t *r = calloc(1, sizeof(*r));
    kproducer_t *p = mk(r, "message.max.bytes", "2000");
    assert_int_equal(produce(p, 1, 1, 5000), KPRODUCER_TOO_LARGE);
    assert_int_equal(produce(p, 2, 1, 100), KPRODUCER_OK);
    wait_reports(p, r, 1, 10000);
    assert_int_equal(r->n, 1);
    assert_int_equal(r->err[2], 0);
    kproducer_destroy(p);
    free(r);
}

static void test_queue_full_is_backpressure(void **state) {
    (void)state;
    result_t *r = calloc(1, sizeof(*r));
    kproducer_t *p = mk(r, "queue.buffering.max.messages", "20");
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(kproducer_handle(p));
    assert_int_equal(rd_kafka_mock_broker_set_down(mc, 1), 0);
    int ok = 0;
    kproducer_result_t res = KPRODUCER_OK;
    for (int i = 1; i <= 100 && res == KPRODUCER_OK; i++)
        if ((res = produce(p, i, 0, 10)) == KPRODUCER_OK)
            ok++;
    assert_int_equal(res, KPRODUCER_QUEUE_FULL);
    assert_int_equal(ok, 20);
    rd_kafka_mock_broker_set_up(mc, 1);
    wait_reports(p, r, ok, 20000);
    assert_int_equal(r->n, ok);
    assert_int_equal(produce(p, ok + 1, 0, 10), KPRODUCER_OK);
    kproducer_destroy(p);
    free(r);
}

/* A fatal producer error surfaces from kproducer_poll, so the relay stops without
 * confirming anything unacknowledged. */
static void test_fatal_error_reported(void **state) {
    (void)state;
    result_t *r = calloc(1, sizeof(*r));
    kproducer_t *p = mk(r, NULL, NULL);
    char err[512] = "";
    assert_int_equal(kproducer_poll(p, err, sizeof(err)), 0);
    rd_kafka_test_fatal_error(kproducer_handle(p), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "test");
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        struct pollfd pfd = {.fd = kproducer_fd(p), .events = POLLIN};
        poll(&pfd, 1, 50);
        rc = kproducer_poll(p, err, sizeof(err));
    }
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "fatal Kafka producer error"));
    kproducer_destroy(p);
    free(r);
}

static void test_guarantee_settings_enforced(void **state) {
    (void)state;
    err_t e;
    const char *a[] = {"bootstrap.servers", "x:1", "acks", "1", NULL};
    assert_null(kproducer_new(a, "id", on_dr, NULL, &e));
    assert_non_null(strstr(e.msg, "acks"));
    const char *b[] = {"bootstrap.servers", "x:1", "enable.idempotence", "false", NULL};
    assert_null(kproducer_new(b, "id", on_dr, NULL, &e));
    assert_non_null(strstr(e.msg, "enable.idempotence"));
    const char *c[] = {"linger.ms", "5", NULL};
    assert_null(kproducer_new(c, "id", on_dr, NULL, &e));
    assert_non_null(strstr(e.msg, "kafka.bootstrap.servers"));
    assert_non_null(strstr(e.fix, "OUTBOXD_KAFKA_BOOTSTRAP_SERVERS"));
    assert_int_equal(e.kind, ERR_PERMANENT);
    const char *d[] = {"bootstrap.servers", "x:1", "no.such.property", "1", NULL};
    assert_null(kproducer_new(d, "id", on_dr, NULL, &e));
    assert_non_null(strstr(e.msg, "kafka.no.such.property"));
}

int main(void) {
    log_init("test", LOG_ERROR, LOG_FORMAT_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient_errors_keep_key_order),
        cmocka_unit_test(test_broker_down_acks_nothing),
        cmocka_unit_test(test_permanent_error_reported_with_id),
        cmocka_unit_test(test_refused_record_dead_lettered_with_its_lsn),
        cmocka_unit_test(test_oversized_record_refused_at_once),
        cmocka_unit_test(test_queue_full_is_backpressure),
        cmocka_unit_test(test_fatal_error_reported),
        cmocka_unit_test(test_guarantee_settings_enforced),
    };
    return cmocka_run_group_tests_name("kproducer_mock", tests, NULL, NULL);
}
