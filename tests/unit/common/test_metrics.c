/* test_metrics.c - unit tests for metrics.c: Prometheus text rendering of counters, gauges
 * and histograms, labels and escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(metrics_t *m) {
    size_t len = 0;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

static void test_counter_and_gauge(void **state) {
    (void)state;
    metrics_t *m = metrics_new();
    metrics_series_t *c = metrics_scalar(m, METRICS_COUNTER, "x_events_total", "Events.");
    metrics_series_t *g = metrics_scalar(m, METRICS_GAUGE, "x_lag_bytes", "Lag in bytes.");
    metrics_add(c, 3);
    metrics_add(c, 2);
    metrics_set(g, 1.5);
    metrics_set(g, -7);
    assert_true(metrics_value(c) == 5);
    char *t = render(m);
    assert_string_equal(t, "# HELP x_events_total Events.\n"
                           "# TYPE x_events_total counter\n"
                           "x_events_total 5\n"
                           "# HELP x_lag_bytes Lag in bytes.\n"
                           "# TYPE x_lag_bytes gauge\n"
                           "x_lag_bytes -7\n");
    free(t);
    metrics_destroy(m);
}

static void test_family_zero(void **state) {
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *lag = metrics_family(m, METRICS_GAUGE, "x_lag", "Lag.", "topic", NULL, 0);
    metrics_family_t *cnt = metrics_family(m, METRICS_COUNTER, "x_total", "Total.", "topic", NULL, 0);
    metrics_set(metrics_series(lag, "a"), 4);
    metrics_set(metrics_series(lag, "b"), 9);
    metrics_add(metrics_series(cnt, "a"), 2);
    metrics_family_zero(lag);
    metrics_family_zero(cnt); /* counters are left alone */
    metrics_family_zero(NULL);
    assert_true(metrics_value(metrics_series(lag, "a")) == 0);
    assert_true(metrics_value(metrics_series(lag, "b")) == 0);
    assert_true(metrics_value(metrics_series(cnt, "a")) == 2);
    metrics_add(metrics_series(lag, "b"), 3); /* re-added after the reset */
    char *t = render(m);
    assert_non_null(strstr(t, "x_lag{topic=\"a\"} 0\nx_lag{topic=\"b\"} 3\n"));
    free(t);
    metrics_destroy(m);
}

static void test_labels_and_escaping(void **state) {
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *f = metrics_family(m, METRICS_COUNTER, "x_bytes_total", "Bytes \\ per\ntopic.", "topic", NULL, 0);
    assert_non_null(f);
    char *t = render(m); /* a labelled family without series: only its header */
    assert_string_equal(t, "# HELP x_bytes_total Bytes \\\\ per\\ntopic.\n# TYPE x_bytes_total counter\n");
    free(t);
    metrics_add(metrics_series(f, "orders"), 10);
    metrics_add(metrics_series(f, "we\"ird\\na\nme"), 1);
    metrics_add(metrics_series(f, "orders"), 0.25);
    assert_ptr_equal(metrics_series(f, "orders"), metrics_series(f, "orders"));
    t = render(m);
    assert_non_null(strstr(t, "x_bytes_total{topic=\"orders\"} 10.25\n"));
    assert_non_null(strstr(t, "x_bytes_total{topic=\"we\\\"ird\\\\na\\nme\"} 1\n"));
    free(t);
    metrics_destroy(m);
}

static void test_histogram(void **state) {
    (void)state;
    metrics_t *m = metrics_new();
    static const double b[] = {0.01, 0.1, 1};
    metrics_series_t *h =
        metrics_series(metrics_family(m, METRICS_HISTOGRAM, "x_latency_seconds", "Latency.", NULL, b, 3), NULL);
    metrics_observe(h, 0.005);
    metrics_observe(h, 0.01); /* bounds are inclusive */
    metrics_observe(h, 0.5);
    metrics_observe(h, 30);
    assert_true(metrics_value(h) == 4);
    char *t = render(m);
    assert_string_equal(t, "# HELP x_latency_seconds Latency.\n"
                           "# TYPE x_latency_seconds histogram\n"
                           "x_latency_seconds_bucket{le=\"0.01\"} 2\n"
                           "x_latency_seconds_bucket{le=\"0.1\"} 2\n"
                           "x_latency_seconds_bucket{le=\"1\"} 3\n"
                           "x_latency_seconds_bucket{le=\"+Inf\"} 4\n"
                           "x_latency_seconds_sum 30.515\n"
                           "x_latency_seconds_count 4\n");
    free(t);
    metrics_destroy(m);
}

static void test_labelled_histogram_and_special_values(void **state) {
    (void)state;
    metrics_t *m = metrics_new();
    static const double b[] = {1};
    metrics_family_t *f = metrics_family(m, METRICS_HISTOGRAM, "h", "", "topic", b, 1);
    metrics_observe(metrics_series(f, "a"), 2);
    metrics_series_t *g = metrics_scalar(m, METRICS_GAUGE, "g", "");
    metrics_set(g, INFINITY);
    char *t = render(m);
    assert_non_null(strstr(t, "h_bucket{topic=\"a\",le=\"1\"} 0\nh_bucket{topic=\"a\",le=\"+Inf\"} 1\n"
                              "h_sum{topic=\"a\"} 2\nh_count{topic=\"a\"} 1\n"));
    assert_non_null(strstr(t, "\ng +Inf\n"));
    free(t);
    metrics_set(g, NAN);
    t = render(m);
    assert_non_null(strstr(t, "\ng NaN\n"));
    free(t);
    /* NULL series are ignored, so a failed allocation only loses a metric */
    metrics_add(NULL, 1);
    metrics_set(NULL, 1);
    metrics_observe(NULL, 1);
    metrics_destroy(m);
    metrics_destroy(NULL);
}

/* Sums of observations are doubles: 0.1 + 0.2 + 0.663018 is 0.9630179999999999 in binary,
 * and the page shows the shortest text that reads back as the same number. Bucket bounds
 * likewise (0.0025, not 0.0025000000000000001). */
static void test_numbers_without_float_noise(void **state) {
    (void)state;
    metrics_t *m = metrics_new();
    metrics_series_t *g = metrics_scalar(m, METRICS_GAUGE, "x_g", "G.");
    double v = 0.1 + 0.2 + 0.663018;
    metrics_set(g, v);
    const double b[] = {0.0025, 0.1, 2.5};
    metrics_series_t *h = metrics_series(metrics_family(m, METRICS_HISTOGRAM, "x_h", "H.", NULL, b, 3), NULL);
    metrics_observe(h, 0.1);
    metrics_observe(h, 0.2);
    char *t = render(m);
    char want[64];
    snprintf(want, sizeof(want), "x_g %.17g\n", v);
    assert_null(strstr(t, want)); /* the noisy form */
    assert_non_null(strstr(t, "x_g 0.963018\n"));
    assert_non_null(strstr(t, "x_h_bucket{le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(t, "x_h_bucket{le=\"2.5\"} 2\n"));
    assert_non_null(strstr(t, "x_h_sum 0.30000000000000004\n")); /* 0.1 + 0.2 is not 0.3: kept exact */
    metrics_set(g, 1e-7);
    free(t);
    t = render(m);
    assert_non_null(strstr(t, "x_g 1e-07\n"));
    free(t);
    metrics_destroy(m);
}

/* Labels of fixed value come first on every line of the family, histogram lines included. */
static void test_const_labels(void **state) {
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *info = metrics_family(m, METRICS_GAUGE, "x_build_info", "Build.", NULL, NULL, 0);
    assert_int_equal(metrics_family_const_label(info, "version", "1.2.3"), 0);
    assert_int_equal(metrics_family_const_label(info, "librdkafka", "2.0.\"2\""), 0);
    metrics_set(metrics_series(info, NULL), 1);
    const double b[] = {1};
    metrics_family_t *lat = metrics_family(m, METRICS_HISTOGRAM, "x_lat", "Lat.", "topic", b, 1);
    assert_int_equal(metrics_family_const_label(lat, "group", "inv"), 0);
    metrics_observe(metrics_series(lat, "t1"), 0.5);
    assert_int_equal(metrics_family_const_label(NULL, "a", "b"), -1);
    char *t = render(m);
    assert_non_null(strstr(t, "x_build_info{version=\"1.2.3\",librdkafka=\"2.0.\\\"2\\\"\"} 1\n"));
    assert_non_null(strstr(t, "x_lat_bucket{group=\"inv\",topic=\"t1\",le=\"1\"} 1\n"));
    assert_non_null(strstr(t, "x_lat_bucket{group=\"inv\",topic=\"t1\",le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(t, "x_lat_sum{group=\"inv\",topic=\"t1\"} 0.5\n"));
    free(t);
    metrics_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge),
        cmocka_unit_test(test_numbers_without_float_noise),
        cmocka_unit_test(test_const_labels),
        cmocka_unit_test(test_family_zero),
        cmocka_unit_test(test_labels_and_escaping),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_labelled_histogram_and_special_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
