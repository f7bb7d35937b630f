/* test_inbox_http.c - unit tests for inbox_http.c: status classification, Kafka header ->
 * HTTP header mapping, static headers, last_error text, PostgreSQL error classification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbox_http.h"
#include "strlist.h"

static void test_classify(void **state) {
    (void)state;
    assert_int_equal(inbox_http_classify(200), INBOX_HTTP_DONE);
    assert_int_equal(inbox_http_classify(201), INBOX_HTTP_DONE);
    assert_int_equal(inbox_http_classify(204), INBOX_HTTP_DONE);
    assert_int_equal(inbox_http_classify(299), INBOX_HTTP_DONE);
    assert_int_equal(inbox_http_classify(0), INBOX_HTTP_RETRY); /* no response */
    assert_int_equal(inbox_http_classify(408), INBOX_HTTP_RETRY);
    assert_int_equal(inbox_http_classify(429), INBOX_HTTP_RETRY);
    assert_int_equal(inbox_http_classify(500), INBOX_HTTP_RETRY);
    assert_int_equal(inbox_http_classify(503), INBOX_HTTP_RETRY);
    assert_int_equal(inbox_http_classify(599), INBOX_HTTP_RETRY);
    assert_int_equal(inbox_http_classify(400), INBOX_HTTP_DEAD);
    assert_int_equal(inbox_http_classify(401), INBOX_HTTP_DEAD);
    assert_int_equal(inbox_http_classify(404), INBOX_HTTP_DEAD);
    assert_int_equal(inbox_http_classify(409), INBOX_HTTP_DEAD);
    assert_int_equal(inbox_http_classify(422), INBOX_HTTP_DEAD);
    assert_int_equal(inbox_http_classify(301), INBOX_HTTP_DEAD); /* redirects are not followed */
    assert_int_equal(inbox_http_classify(304), INBOX_HTTP_DEAD);
    assert_int_equal(inbox_http_classify(600), INBOX_HTTP_DEAD);
}

static void test_pg_classify(void **state) {
    (void)state;
    /* The server or the connection is away, busy or in a failover: retried. */
    const char *retry[] = {NULL,    "",      "08006", "08003", "08001", "57P01", "57P02", "57P03", "40001",
                           "40P01", "25006", "53300", "53100", "55P03", "57014", "XX000", "23505", "0800"};
    for (size_t i = 0; i < sizeof(retry) / sizeof(*retry); i++)
        assert_int_equal(inbox_http_pg_classify(retry[i]), INBOX_PG_RETRY);
    /* The schema or the grants need a fix: stopping beats retrying for ever. */
    const char *fatal[] = {"42501", "42703", "42883", "42P01", "42804", "42601", "3F000"};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(*fatal); i++)
        assert_int_equal(inbox_http_pg_classify(fatal[i]), INBOX_PG_FATAL);
}

static void check_value(const char *in, size_t len, const char *want) {
    char *v = inbox_http_value(in, len);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void test_values(void **state) {
    (void)state;
    check_value("OrderPlaced", 11, "OrderPlaced");
    check_value("a b\tc", 5, "\\x6120620963");                        /* a tab: hex */
    check_value("50% off", 7, "50% off");                             /* inner spaces and % stay */
    check_value("\xd0\xb8\xd0\xb4-4", 6, "\xd0\xb8\xd0\xb4-4");       /* UTF-8 text stays */
    check_value(" x", 2, "\\x2078");                                  /* leading space */
    check_value("x ", 2, "\\x7820");                                  /* trailing space */
    check_value("a\r\nX-Evil: 1", 12, "\\x610d0a582d4576696c3a2031"); /* no header injection */
    check_value("\xff\x00", 2, "\\xff00");                            /* bytes */
    check_value("\x7f", 1, "\\x7f");
    check_value("", 0, "");
    check_value("\\xff00", 6, "\\xff00"); /* what inbox.headers holds for bytes passes as is */
}

static void check_name(const char *prefix, const char *in, const char *want) {
    char *n = inbox_http_name(prefix, in);
    assert_non_null(n);
    assert_string_equal(n, want);
    free(n);
}

static void test_names(void **state) {
    (void)state;
    check_name("", "event_type", "event_type");
    check_name("", "X-Trace.id~1", "X-Trace.id~1");
    check_name("", "a b:c", "a%20b%3Ac");
    check_name("", "100%", "100%25"); /* '%' itself is escaped: the mapping is reversible */
    check_name("", "\xd0\xb8", "%D0%B8");
    check_name("", "a\r\nb", "a%0D%0Ab");
    check_name("", "a(b)\"/", "a%28b%29%22%2F");
    check_name("Kafka-Header-", "event_type", "Kafka-Header-event_type");
    assert_true(inbox_http_is_token("Kafka-Header-"));
    assert_false(inbox_http_is_token("Kafka Header"));
    assert_false(inbox_http_is_token(""));
    assert_true(inbox_http_reserved("Host"));
    assert_true(inbox_http_reserved("CONTENT-LENGTH"));
    assert_true(inbox_http_reserved("Proxy-Anything"));
    assert_true(inbox_http_reserved("idempotency-key"));
    assert_true(inbox_http_reserved("Kafka-Key"));
    assert_true(inbox_http_reserved("Authorization"));
    assert_false(inbox_http_reserved("Content-Type"));
    assert_false(inbox_http_reserved("event_type"));
}

static void test_kafka_headers(void **state) {
    (void)state;
    size_t n;
    bool ct;
    const char *skip[] = {"X-Env"};
    char **l = inbox_http_kafka_headers("{\"id\": \"e-1\", \"event_type\": \"OrderPlaced\", \"n\": null, "
                                        "\"bin\": \"\\\\xff00\", \"Host\": \"evil\", \"x-env\": \"dev\", "
                                        "\"\": \"noname\", \"nl\": \"a\\nb\", \"content-type\": \"application/json\", "
                                        "\"Idempotency-Key\": \"forged\", \"sp ace\": \"v\"}",
                                        "", skip, 1, &n, &ct);
    assert_non_null(l);
    assert_true(ct);
    /* jsonb order is not ours to rely on: compare as a set */
    const char *want[] = {"id: e-1",       "event_type: OrderPlaced",        "n;",         "bin: \\xff00",
                          "nl: \\x610a62", "content-type: application/json", "sp%20ace: v"};
    size_t nw = sizeof(want) / sizeof(*want);
    assert_int_equal(n, nw);
    for (size_t i = 0; i < nw; i++) {
        bool found = false;
        for (size_t k = 0; k < n; k++)
            found |= !strcmp(l[k], want[i]);
        if (!found)
            fail_msg("missing header line '%s'", want[i]);
    }
    assert_null(l[n]);
    strlist_free(l);

    l = inbox_http_kafka_headers("{\"Host\": \"x\"}", "Kafka-", NULL, 0, &n, &ct); /* prefixed: not reserved */
    assert_non_null(l);
    assert_int_equal(n, 1);
    assert_string_equal(l[0], "Kafka-Host: x");
    assert_false(ct);
    strlist_free(l);

    /* W3C Trace Context keeps its names under a prefix: OpenTelemetry reads traceparent. */
    l = inbox_http_kafka_headers("{\"traceparent\": \"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\", "
                                 "\"tracestate\": \"k=v\", \"TraceParent\": \"x\"}",
                                 "Kafka-", NULL, 0, &n, &ct);
    assert_non_null(l);
    assert_int_equal(n, 3);
    assert_string_equal(l[0], "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_string_equal(l[1], "tracestate: k=v");
    assert_string_equal(l[2], "Kafka-TraceParent: x"); /* Kafka header names are case-sensitive */
    strlist_free(l);

    l = inbox_http_kafka_headers(NULL, "", NULL, 0, &n, &ct);
    assert_non_null(l);
    assert_int_equal(n, 0);
    strlist_free(l);
    assert_null(inbox_http_kafka_headers("[1]", "", NULL, 0, &n, &ct));
    assert_null(inbox_http_kafka_headers("{bad", "", NULL, 0, &n, &ct));
}

static void test_static_headers(void **state) {
    (void)state;
    size_t n;
    char err[256];
    char **l = inbox_http_static_headers(" Authorization: Bearer a:b ; X-Empty: ;; X-Env:prod", &n, err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(n, 3);
    assert_string_equal(l[0], "Authorization: Bearer a:b");
    assert_string_equal(l[1], "X-Empty;");
    assert_string_equal(l[2], "X-Env: prod");
    assert_null(l[3]);
    strlist_free(l);
    l = inbox_http_static_headers("", &n, err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(n, 0);
    strlist_free(l);
    assert_null(inbox_http_static_headers("X Y: 1", &n, err, sizeof(err)));
    assert_non_null(strstr(err, "invalid header name 'X Y'"));
    assert_null(inbox_http_static_headers("Content-Length: 3", &n, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot set Content-Length"));
    assert_null(inbox_http_static_headers("Idempotency-Key: 3", &n, err, sizeof(err)));
    assert_null(inbox_http_static_headers("novalue", &n, err, sizeof(err)));
    assert_non_null(strstr(err, "expected 'Name: value'"));
}

static void test_error_text(void **state) {
    (void)state;
    char out[512];
    inbox_http_error_text(500, "", 0, 200, out, sizeof(out));
    assert_string_equal(out, "HTTP 500");
    inbox_http_error_text(400, "bad\r\norder\x00x", 12, 200, out, sizeof(out));
    assert_string_equal(out, "HTTP 400: bad  order x");
    inbox_http_error_text(400, "abcdefghij", 10, 4, out, sizeof(out));
    assert_string_equal(out, "HTTP 400: abcd...");
    /* a cut never splits a character; bytes that are not UTF-8 become '?' */
    inbox_http_error_text(422, "ab\xd0\xb8\xd0\xb8", 6, 5, out, sizeof(out));
    assert_string_equal(out, "HTTP 422: ab\xd0\xb8...");
    inbox_http_error_text(422,
                          "a\xff\xfe"
                          "b",
                          4, 200, out, sizeof(out));
    assert_string_equal(out, "HTTP 422: a??b");
    char small[16];
    inbox_http_error_text(503, "0123456789abcdef", 16, 200, small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_memory_equal(small, "HTTP 503: ", 10);
}

/* Regression (libFuzzer, fuzz_http_response): a huge Retry-After overflowed retry_after * 1000. */
static void test_retry_after(void **state) {
    (void)state;
    assert_int_equal(inbox_http_retry_after_secs(0, 300000), 0);
    assert_int_equal(inbox_http_retry_after_secs(-5, 300000), 0);
    assert_int_equal(inbox_http_retry_after_secs(30, 300000), 30);
    assert_int_equal(inbox_http_retry_after_secs(300, 300000), 300);
    assert_int_equal(inbox_http_retry_after_secs(301, 300000), 300);
    assert_int_equal(inbox_http_retry_after_secs(5, 1500), 1); /* the cap in whole seconds */
    assert_int_equal(inbox_http_retry_after_secs(5, 999), 0);
    assert_int_equal(inbox_http_retry_after_secs(720575940379279360LL, 300000), 300);
    assert_int_equal(inbox_http_retry_after_secs(LLONG_MAX, 86400000), 86400);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),   cmocka_unit_test(test_pg_classify),   cmocka_unit_test(test_values),
        cmocka_unit_test(test_names),      cmocka_unit_test(test_kafka_headers), cmocka_unit_test(test_static_headers),
        cmocka_unit_test(test_error_text), cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
