/* test_inbox_config.c - unit tests for inbox_config.c: inboxd's key table with config.c
 * (defaults, environment INBOXD_*, kafka.* passthrough) and inbox_config_build's checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbox_config.h"

static int setup(void **state) {
    config_t *cfg = config_new(inbox_config_keys, "kafka.", "INBOXD_");
    assert_non_null(cfg);
    *state = cfg;
    return 0;
}

static int teardown(void **state) {
    config_destroy(*state);
    return 0;
}

static void set_ok(config_t *cfg, const char *key, const char *value) {
    char err[512] = "";
    if (config_set(cfg, key, value, "test", err, sizeof(err)) != 0)
        fail_msg("config_set(%s, %s) failed: %s", key, value, err);
}

static void build_fails(config_t *cfg, const char *expected_part) {
    inbox_config_t ic;
    char err[1024] = "";
    if (inbox_config_build(cfg, &ic, err, sizeof(err)) == 0)
        fail_msg("inbox_config_build succeeded");
    if (!strstr(err, expected_part))
        fail_msg("error '%s' lacks '%s'", err, expected_part);
}

static void test_defaults(void **state) {
    config_t *cfg = *state;
    set_ok(cfg, "inbox.topics", "orders.events");
    inbox_config_t ic;
    char err[1024] = "";
    if (inbox_config_build(cfg, &ic, err, sizeof(err)) != 0)
        fail_msg("build: %s", err);
    const inbox_options_t *o = &ic.opts;
    assert_string_equal(o->conninfo, "");
    assert_string_equal(o->table, "public.inbox");
    assert_string_equal(o->offsets_table, "public.inbox_offsets");
    assert_string_equal(o->id_header, "id");
    assert_int_equal(o->ntopics, 1);
    assert_string_equal(o->topics[0], "orders.events");
    assert_null(o->topics[1]);
    assert_int_equal(o->batch_max, 1000);
    assert_int_equal(o->batch_max_bytes, 16777216);
    assert_int_equal(o->retention_s, 7 * 86400);
    assert_int_equal(o->retention_batch, 1000);
    assert_int_equal(o->retention_interval_ms, 60000);
    assert_int_equal(o->commit_interval_ms, 1000);
    assert_int_equal(o->startup_timeout_ms, 30000);
    assert_int_equal(o->reconnect_backoff_max_ms, 30000);
    assert_false(o->offset_regression_reset); /* fail: never skip a recreated topic silently */
    assert_non_null(o->kafka_props);
    assert_null(o->kafka_props[0]);
    assert_int_equal(config_get_int(cfg, "deliver.max_attempts"), 10);
    inbox_config_free(&ic);
    inbox_config_free(&ic); /* zeroed: harmless */
}

static void test_values(void **state) {
    config_t *cfg = *state;
    set_ok(cfg, "inbox.topics", " a , b ,^c\\..*");
    set_ok(cfg, "inbox.table", "svc.inbox");
    set_ok(cfg, "inbox.retention", "1d12h");
    set_ok(cfg, "inbox.batch.max", "5000");
    set_ok(cfg, "kafka.bootstrap.servers", "k:9092");
    set_ok(cfg, "kafka.group.id", "inventory");
    set_ok(cfg, "inbox.header.id", "");
    set_ok(cfg, "inbox.on_offset_regression", "reset");
    inbox_config_t ic;
    char err[1024] = "";
    if (inbox_config_build(cfg, &ic, err, sizeof(err)) != 0)
        fail_msg("build: %s", err);
    const inbox_options_t *o = &ic.opts;
    assert_int_equal(o->ntopics, 3);
    assert_string_equal(o->topics[0], "a");
    assert_string_equal(o->topics[1], "b");
    assert_string_equal(o->topics[2], "^c\\..*");
    assert_string_equal(o->table, "svc.inbox");
    assert_int_equal(o->retention_s, 129600);
    assert_int_equal(o->batch_max, 5000);
    assert_string_equal(o->id_header, "");
    assert_true(o->offset_regression_reset);
    assert_string_equal(o->kafka_props[0], "bootstrap.servers");
    assert_string_equal(o->kafka_props[1], "k:9092");
    assert_string_equal(o->kafka_props[2], "group.id");
    assert_string_equal(o->kafka_props[3], "inventory");
    assert_null(o->kafka_props[4]);
    inbox_config_free(&ic);

    set_ok(cfg, "inbox.retention", "0");
    assert_int_equal(inbox_config_build(cfg, &ic, err, sizeof(err)), 0);
    assert_int_equal(ic.opts.retention_s, 0);
    inbox_config_free(&ic);
}

static void test_errors(void **state) {
    config_t *cfg = *state;
    build_fails(cfg, "inbox.topics is not set");
    set_ok(cfg, "inbox.topics", " , ,");
    build_fails(cfg, "inbox.topics is not set");
    set_ok(cfg, "inbox.topics", "t");
    set_ok(cfg, "inbox.retention", "a week");
    build_fails(cfg, "invalid value 'a week' for inbox.retention");
    set_ok(cfg, "inbox.retention", "7d");
    set_ok(cfg, "deliver.url", "svc:8080/inbox");
    build_fails(cfg, "invalid deliver.url 'svc:8080/inbox'");
    set_ok(cfg, "deliver.url", "ftp://svc/inbox");
    build_fails(cfg, "the scheme must be http or https, not ftp");
    set_ok(cfg, "deliver.url", "http://");
    build_fails(cfg, "invalid deliver.url 'http://'");
    set_ok(cfg, "deliver.url", "http://svc:8080/inbox");
    set_ok(cfg, "deliver.header.prefix", "Kafka Header");
    build_fails(cfg, "invalid deliver.header.prefix 'Kafka Header'");
    set_ok(cfg, "deliver.header.prefix", "");
    set_ok(cfg, "deliver.headers", "X-Env prod");
    build_fails(cfg, "invalid deliver.headers entry 'X-Env prod'");
    set_ok(cfg, "deliver.headers", "Host: other");
    build_fails(cfg, "deliver.headers cannot set Host");
    set_ok(cfg, "deliver.headers", "");
    set_ok(cfg, "deliver.tls.cert.location", "/etc/inboxd/client.pem");
    build_fails(cfg, "deliver.tls.cert.location and deliver.tls.key.location go together");
    set_ok(cfg, "deliver.tls.cert.location", "");
    set_ok(cfg, "deliver.url", "");
    set_ok(cfg, "inbox.table", "");
    build_fails(cfg, "inbox.table is empty");
    set_ok(cfg, "inbox.table", "public.inbox");
    set_ok(cfg, "inbox.offsets.table", "");
    build_fails(cfg, "inbox.offsets.table is empty");

    /* The key table's own checks. */
    char err[512] = "";
    assert_int_equal(config_set(cfg, "inbox.batch.max", "0", "-X", err, sizeof(err)), -1);
    assert_string_equal(err, "invalid value '0' for inbox.batch.max (-X): expected an integer from 1 to 100000");
    assert_int_equal(config_set(cfg, "inbox.topic", "x", "-X", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "did you mean 'inbox.topics'?"));
    assert_int_equal(config_set(cfg, "deliver.max_attempts", "0", NULL, err, sizeof(err)), -1);
    assert_int_equal(config_set(cfg, "inbox.on_offset_regression", "skip", "-X", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "inbox.on_offset_regression"));
}

static void test_deliver(void **state) {
    config_t *cfg = *state;
    set_ok(cfg, "inbox.topics", "t");
    inbox_config_t ic;
    char err[1024] = "";
    assert_int_equal(inbox_config_build(cfg, &ic, err, sizeof(err)), 0);
    assert_null(ic.opts.deliver); /* no deliver.url: no HTTP push */
    inbox_config_free(&ic);

    set_ok(cfg, "deliver.url", "https://user:pw@svc.internal:8443/inbox?x=1");
    set_ok(cfg, "deliver.headers", "Authorization: Bearer abc; X-Env: prod ;");
    if (inbox_config_build(cfg, &ic, err, sizeof(err)) != 0)
        fail_msg("build: %s", err);
    const inbox_deliver_options_t *d = ic.opts.deliver;
    assert_non_null(d);
    assert_string_equal(d->url, "https://user:pw@svc.internal:8443/inbox?x=1");
    assert_string_equal(d->table, "public.inbox");
    assert_int_equal(d->concurrency, 8);
    assert_int_equal(d->timeout_ms, 10000);
    assert_int_equal(d->max_attempts, 10);
    assert_int_equal(d->poll_ms, 1000);
    assert_int_equal(d->backoff_base_ms, 1000);
    assert_int_equal(d->backoff_max_ms, 300000);
    assert_string_equal(d->header_prefix, "");
    assert_string_equal(d->content_type, "application/octet-stream");
    assert_string_equal(d->static_headers[0], "Authorization: Bearer abc");
    assert_string_equal(d->static_headers[1], "X-Env: prod");
    assert_null(d->static_headers[2]);
    inbox_config_free(&ic);
}

static void test_environment(void **state) {
    config_t *cfg = *state;
    char *env[] = {"INBOXD_INBOX_TOPICS=x,y",
                   "INBOXD_KAFKA_GROUP_ID=g1",
                   "INBOXD_INBOX_RETENTION=12h",
                   "OUTBOXD_POSTGRES_SLOT=ignored",
                   "PATH=/bin",
                   NULL};
    char err[512] = "";
    if (config_load_env(cfg, env, err, sizeof(err)) != 0)
        fail_msg("env: %s", err);
    assert_string_equal(config_get(cfg, "inbox.topics"), "x,y");
    assert_string_equal(config_get(cfg, "kafka.group.id"), "g1");
    assert_string_equal(config_get(cfg, "inbox.retention"), "12h");

    char *bad[] = {"INBOXD_INBOX_TOPIC=x", NULL};
    assert_int_equal(config_load_env(cfg, bad, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "did you mean INBOXD_INBOX_TOPICS?"));

    char name[128];
    config_env_name(cfg, "inbox.retention.interval.ms", name, sizeof(name));
    assert_string_equal(name, "INBOXD_INBOX_RETENTION_INTERVAL_MS");
}

static void test_help_lists_every_key(void **state) {
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    config_print_help(inbox_config_keys, "INBOXD_", f);
    fclose(f);
    for (const config_key_t *k = inbox_config_keys; k->name; k++)
        if (!strstr(buf, k->name))
            fail_msg("--help lacks %s", k->name);
    assert_non_null(strstr(buf, "INBOXD_POSTGRES_CONNINFO"));
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
        cmocka_unit_test(test_help_lists_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
