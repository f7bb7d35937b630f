/* test_config.c - unit tests for config.c: typed keys, validation, passthrough keys, config
 * files, environment mapping, help table and redacted dump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define CONF(name) TEST_DATA_DIR "/config/" name

static const config_key_t keys[] = {
    {"postgres.conninfo", CONFIG_STRING, NULL, 0, 0, NULL, false, "libpq connection string"},
    {"postgres.password", CONFIG_STRING, NULL, 0, 0, NULL, true, "password for the connection"},
    {"slot.name", CONFIG_STRING, "outboxd", 0, 0, NULL, false, "replication slot name"},
    {"slot.create", CONFIG_BOOL, "true", 0, 0, NULL, false, "create the slot when missing"},
    {"relay.max_inflight", CONFIG_INT, "10000", 1, 1000000, NULL, false, "events in flight"},
    {"relay.offset", CONFIG_INT, "0", -100, 100, NULL, false, "a signed test knob"},
    {"outbox.on_invalid", CONFIG_ENUM, "stop", 0, 0, "stop|dead-letter", false, "what to do with an invalid event"},
    {"outbox.topic", CONFIG_STRING, "outbox.events", 0, 0, NULL, false, "default topic"},
    {"log.format", CONFIG_ENUM, "text", 0, 0, "text|json", false, "log line format"},
    {NULL, CONFIG_STRING, NULL, 0, 0, NULL, false, NULL},
};

static int setup(void **state) {
    config_t *cfg = config_new(keys, "kafka.", "OUTBOXD_");
    assert_non_null(cfg);
    *state = cfg;
    return 0;
}

static int teardown(void **state) {
    config_destroy(*state);
    return 0;
}

/* Sets key=value expecting success. */
static void set_ok(config_t *cfg, const char *key, const char *value) {
    char err[512] = "";
    if (config_set(cfg, key, value, "test", err, sizeof(err)) != 0)
        fail_msg("config_set(%s, %s) failed: %s", key, value, err);
}

/* Sets key=value expecting failure with an error equal to expected. */
static void set_fails(config_t *cfg, const char *key, const char *value, const char *origin, const char *expected) {
    char err[512] = "";
    if (config_set(cfg, key, value, origin, err, sizeof(err)) != -1)
        fail_msg("config_set(%s, %s) succeeded", key, value);
    if (expected != NULL && strcmp(err, expected) != 0)
        fail_msg("error\n  got      %s\n  expected %s", err, expected);
}

/* ---- typed keys --------------------------------------------------------------------------- */

static void test_defaults(void **state) {
    config_t *cfg = *state;

    assert_null(config_get(cfg, "postgres.conninfo"));
    assert_string_equal(config_get(cfg, "slot.name"), "outboxd");
    assert_true(config_get_bool(cfg, "slot.create"));
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 10000);
    assert_string_equal(config_get(cfg, "outbox.on_invalid"), "stop");
    assert_null(config_get(cfg, "no.such.key"));
    assert_null(config_get(cfg, "kafka.acks"));
    assert_int_equal(config_get_int(cfg, "postgres.conninfo"), 0);
    assert_false(config_get_bool(cfg, "postgres.conninfo"));
    assert_int_equal(config_passthrough_count(cfg), 0);
}

static void test_set_last_wins(void **state) {
    config_t *cfg = *state;

    set_ok(cfg, "slot.name", "first");
    set_ok(cfg, "slot.name", "second");
    assert_string_equal(config_get(cfg, "slot.name"), "second");
    set_ok(cfg, "slot.name", "");
    assert_string_equal(config_get(cfg, "slot.name"), "");
    set_ok(cfg, "relay.max_inflight", "7");
    set_ok(cfg, "relay.max_inflight", "8");
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 8);
}

/* config_is_set tells a value given by any source from a default, even an equal one. */
static void test_is_set(void **state) {
    config_t *cfg = *state;
    char err[512] = "";
    char *const env[] = {"OUTBOXD_LOG_FORMAT=json", NULL};

    assert_false(config_is_set(cfg, "slot.name"));
    assert_false(config_is_set(cfg, "postgres.conninfo")); /* no default, unset */
    assert_false(config_is_set(cfg, "no.such.key"));
    assert_false(config_is_set(cfg, "kafka.acks"));
    assert_false(config_is_set(NULL, "slot.name"));
    assert_false(config_is_set(cfg, NULL));
    set_ok(cfg, "slot.name", "outboxd"); /* equal to the default: still set */
    assert_true(config_is_set(cfg, "slot.name"));
    set_ok(cfg, "outbox.topic", "");
    assert_true(config_is_set(cfg, "outbox.topic"));
    set_ok(cfg, "kafka.acks", "all");
    assert_true(config_is_set(cfg, "kafka.acks"));
    assert_int_equal(config_load_env(cfg, env, err, sizeof(err)), 0);
    assert_true(config_is_set(cfg, "log.format"));
    assert_int_equal(config_set_kv(cfg, "relay.offset=0", "-X", err, sizeof(err)), 0);
    assert_true(config_is_set(cfg, "relay.offset"));
    /* a failed set leaves the flag alone */
    set_fails(cfg, "relay.max_inflight", "0", "test", NULL);
    assert_false(config_is_set(cfg, "relay.max_inflight"));
    assert_false(config_is_set(cfg, "slot.create"));
}

static void test_bool_spellings(void **state) {
    config_t *cfg = *state;
    static const char *const yes[] = {"true", "1", "yes", "on", "TRUE", "Yes", "ON", "tRuE"};
    static const char *const no[] = {"false", "0", "no", "off", "FALSE", "No", "OFF", "oFf"};
    static const char *const bad[] = {"", "2", "y", "n", "truee", " true", "true ", "enable"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        set_ok(cfg, "slot.create", "false");
        set_ok(cfg, "slot.create", yes[i]);
        if (!config_get_bool(cfg, "slot.create"))
            fail_msg("'%s' is not true", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        set_ok(cfg, "slot.create", "true");
        set_ok(cfg, "slot.create", no[i]);
        if (config_get_bool(cfg, "slot.create"))
            fail_msg("'%s' is not false", no[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        set_fails(cfg, "slot.create", bad[i], "x.conf:1", NULL);
    set_fails(cfg, "slot.create", "maybe", "x.conf:9",
              "invalid value 'maybe' for slot.create (x.conf:9): expected true/false, yes/no, "
              "on/off or 1/0");
    /* the failed sets left the last good value */
    assert_false(config_get_bool(cfg, "slot.create"));
}

static void test_int_bounds(void **state) {
    config_t *cfg = *state;
    static const char *const bad[] = {
        "0", "1000001", "", "-", "+5", " 5", "5 ", "0x10", "1e3", "5.0", "-1", "99999999999999999999", "１"};

    set_ok(cfg, "relay.max_inflight", "1");
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 1);
    set_ok(cfg, "relay.max_inflight", "1000000");
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 1000000);
    set_ok(cfg, "relay.max_inflight", "0042");
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 42);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        set_fails(cfg, "relay.max_inflight", bad[i], "-X", NULL);
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 42);
    set_fails(cfg, "relay.max_inflight", "1000001", "-X",
              "invalid value '1000001' for relay.max_inflight (-X): expected an integer from 1 "
              "to 1000000");

    set_ok(cfg, "relay.offset", "-100");
    assert_int_equal(config_get_int(cfg, "relay.offset"), -100);
    set_ok(cfg, "relay.offset", "100");
    assert_int_equal(config_get_int(cfg, "relay.offset"), 100);
    set_fails(cfg, "relay.offset", "-101", "-X", NULL);
    set_fails(cfg, "relay.offset", "101", "-X", NULL);
}

static void test_int_full_range(void **state) {
    (void)state;
    static const config_key_t wide[] = {
        {"n", CONFIG_INT, NULL, LLONG_MIN, LLONG_MAX, NULL, false, "any integer"},
        {NULL, CONFIG_STRING, NULL, 0, 0, NULL, false, NULL},
    };
    config_t *cfg = config_new(wide, NULL, NULL);
    char err[256];

    assert_non_null(cfg);
    assert_int_equal(config_set(cfg, "n", "9223372036854775807", NULL, err, sizeof(err)), 0);
    assert_true(config_get_int(cfg, "n") == LLONG_MAX);
    assert_int_equal(config_set(cfg, "n", "-9223372036854775808", NULL, err, sizeof(err)), 0);
    assert_true(config_get_int(cfg, "n") == LLONG_MIN);
    assert_int_equal(config_set(cfg, "n", "9223372036854775808", NULL, err, sizeof(err)), -1);
    /* no origin: no parenthesis */
    assert_string_equal(err, "invalid value '9223372036854775808' for n: expected an integer "
                             "from -9223372036854775808 to 9223372036854775807");
    config_destroy(cfg);
}

static void test_enum(void **state) {
    config_t *cfg = *state;

    set_ok(cfg, "outbox.on_invalid", "dead-letter");
    assert_string_equal(config_get(cfg, "outbox.on_invalid"), "dead-letter");
    set_ok(cfg, "outbox.on_invalid", "STOP"); /* any case; stored as the table spells it */
    assert_string_equal(config_get(cfg, "outbox.on_invalid"), "stop");
    set_fails(cfg, "outbox.on_invalid", "drop", "env OUTBOXD_OUTBOX_ON_INVALID",
              "invalid value 'drop' for outbox.on_invalid (env OUTBOXD_OUTBOX_ON_INVALID): "
              "expected one of stop, dead-letter");
    set_fails(cfg, "outbox.on_invalid", "", "-X", NULL);
    set_fails(cfg, "outbox.on_invalid", "stop|dead-letter", "-X", NULL);
    set_fails(cfg, "outbox.on_invalid", "dead", "-X", NULL);
    assert_string_equal(config_get(cfg, "outbox.on_invalid"), "stop");
}

static void test_secret_not_echoed(void **state) {
    (void)state;
    static const config_key_t sk[] = {
        {"pin", CONFIG_INT, NULL, 0, 9999, NULL, true, "a secret number"},
        {NULL, CONFIG_STRING, NULL, 0, 0, NULL, false, NULL},
    };
    config_t *cfg = config_new(sk, NULL, NULL);
    char err[256];

    assert_non_null(cfg);
    assert_int_equal(config_set(cfg, "pin", "12345x", "-X", err, sizeof(err)), -1);
    assert_null(strstr(err, "12345"));
    assert_non_null(strstr(err, "'***' for pin (-X)"));
    config_destroy(cfg);
}

static void test_unknown_key_suggestions(void **state) {
    config_t *cfg = *state;

    set_fails(cfg, "postgres.conninf", "x", "file.conf:3",
              "unknown config key 'postgres.conninf' (file.conf:3); did you mean "
              "'postgres.conninfo'?");
    set_fails(cfg, "slot.nmae", "x", "-X", "unknown config key 'slot.nmae' (-X); did you mean 'slot.name'?");
    set_fails(cfg, "Slot.Name", "x", "-X", "unknown config key 'Slot.Name' (-X); did you mean 'slot.name'?");
    set_fails(cfg, "outbox.on-invalid", "x", "-X",
              "unknown config key 'outbox.on-invalid' (-X); did you mean 'outbox.on_invalid'?");
    set_fails(cfg, "log.formt", "x", "-X", "unknown config key 'log.formt' (-X); did you mean 'log.format'?");
    /* misspelt passthrough prefix */
    set_fails(cfg, "kafak.bootstrap.servers", "x", "-X",
              "unknown config key 'kafak.bootstrap.servers' (-X); did you mean "
              "'kafka.bootstrap.servers'?");
    /* nothing close */
    set_fails(cfg, "completely.different", "x", "-X", "unknown config key 'completely.different' (-X)");
    set_fails(cfg, "foo", "x", NULL, "unknown config key 'foo'");
    set_fails(cfg, "", "x", "-X", "empty config key (-X)");
}

/* A key that is the start of known keys suggests them. */
static void test_unknown_key_prefix_suggestion(void **state) {
    (void)state;
    static const config_key_t longer[] = {
        {"relay.window.events", CONFIG_INT, "1", 1, 10, NULL, false, "a key with a longer name"},
        {"relay.window.txns", CONFIG_INT, "1", 1, 10, NULL, false, "its sibling"},
        {NULL, CONFIG_STRING, NULL, 0, 0, NULL, false, NULL},
    };
    config_t *cfg = config_new(longer, "kafka.", "OUTBOXD_");
    assert_non_null(cfg);
    set_fails(cfg, "relay.window", "5", "f.conf:2",
              "unknown config key 'relay.window' (f.conf:2); did you mean 'relay.window.events' or "
              "'relay.window.txns'?");
    set_fails(cfg, "relay.window.", "5", "-X", "unknown config key 'relay.window.' (-X)");
    config_destroy(cfg);
}

/* ---- passthrough checks ------------------------------------------------------------------- */

static config_pt_verdict_t fake_check(const char *key, const char *value, char *why, size_t why_size, char *suggestion,
                                      size_t suggestion_size) {
    if (!strcmp(key, "bootstrap.server")) {
        snprintf(why, why_size, "no property \"%s\"", key);
        snprintf(suggestion, suggestion_size, "bootstrap.servers");
        return CONFIG_PT_UNKNOWN;
    }
    if (!strcmp(key, "nothing.like.it")) {
        snprintf(why, why_size, "no property \"%s\"", key);
        return CONFIG_PT_UNKNOWN;
    }
    if (!strcmp(value, "bad")) {
        snprintf(why, why_size, "not a good value");
        return CONFIG_PT_INVALID;
    }
    return CONFIG_PT_OK;
}

static bool fake_known(const char *name) { return !strcmp(name, "bootstrap.servers"); }

static void test_passthrough_check(void **state) {
    config_t *cfg = *state;
    config_pt_check_t check = {fake_check, fake_known};
    config_set_passthrough_check(cfg, &check);
    set_ok(cfg, "kafka.bootstrap.servers", "b:9092");
    set_fails(cfg, "kafka.bootstrap.server", "b:9092", "f.conf:7",
              "unknown config key 'kafka.bootstrap.server' (f.conf:7): no property \"bootstrap.server\"; did you "
              "mean 'kafka.bootstrap.servers'?");
    set_fails(cfg, "kafka.nothing.like.it", "1", "-X",
              "unknown config key 'kafka.nothing.like.it' (-X): no property \"nothing.like.it\"");
    set_fails(cfg, "kafka.linger.ms", "bad", "env OUTBOXD_KAFKA_LINGER_MS",
              "invalid value 'bad' for kafka.linger.ms (env OUTBOXD_KAFKA_LINGER_MS): not a good value");
    /* A secret-looking property never has its value echoed. */
    set_fails(cfg, "kafka.sasl.password", "bad", "-X",
              "invalid value '***' for kafka.sasl.password (-X): not a good value");
    /* A passthrough property written without the prefix. */
    set_fails(cfg, "bootstrap.servers", "b:9092", "f.conf:1",
              "unknown config key 'bootstrap.servers' (f.conf:1); did you mean 'kafka.bootstrap.servers'?");
    /* The failed keys were not stored. */
    assert_int_equal(config_passthrough_count(cfg), 1);
    config_set_passthrough_check(cfg, NULL);
    set_ok(cfg, "kafka.nothing.like.it", "1");
}

/* ---- passthrough -------------------------------------------------------------------------- */

static void test_passthrough_order(void **state) {
    config_t *cfg = *state;
    const char *k, *v;

    set_ok(cfg, "kafka.bootstrap.servers", "b1:9092");
    set_ok(cfg, "kafka.acks", "1");
    set_ok(cfg, "kafka.linger.ms", "5");
    set_ok(cfg, "kafka.acks", "all"); /* last value wins, position of first set kept */

    assert_int_equal(config_passthrough_count(cfg), 3);
    config_passthrough_get(cfg, 0, &k, &v);
    assert_string_equal(k, "bootstrap.servers");
    assert_string_equal(v, "b1:9092");
    config_passthrough_get(cfg, 1, &k, &v);
    assert_string_equal(k, "acks");
    assert_string_equal(v, "all");
    config_passthrough_get(cfg, 2, &k, &v);
    assert_string_equal(k, "linger.ms");
    assert_string_equal(v, "5");
    config_passthrough_get(cfg, 3, &k, &v);
    assert_null(k);
    assert_null(v);
    assert_string_equal(config_get(cfg, "kafka.acks"), "all");
    assert_null(config_get(cfg, "kafka.nope"));

    set_fails(cfg, "kafka.", "x", "file.conf:7",
              "config key 'kafka.' (file.conf:7) has nothing after the 'kafka.' prefix");
    assert_int_equal(config_passthrough_count(cfg), 3);
}

static void test_passthrough_many(void **state) {
    config_t *cfg = *state;
    char key[64], val[64];
    const char *k, *v;

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "kafka.k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        set_ok(cfg, key, val);
    }
    assert_int_equal(config_passthrough_count(cfg), 100);
    for (int i = 0; i < 100; i++) {
        config_passthrough_get(cfg, (size_t)i, &k, &v);
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        assert_string_equal(k, key);
        assert_string_equal(v, val);
    }
}

static void test_no_passthrough_prefix(void **state) {
    (void)state;
    config_t *cfg = config_new(keys, NULL, NULL);
    char err[256];

    assert_non_null(cfg);
    assert_int_equal(config_set(cfg, "kafka.acks", "all", "-X", err, sizeof(err)), -1);
    assert_string_equal(err, "unknown config key 'kafka.acks' (-X)");
    assert_int_equal(config_passthrough_count(cfg), 0);
    config_destroy(cfg);
}

/* ---- -X key=value ------------------------------------------------------------------------- */

static void test_set_kv(void **state) {
    config_t *cfg = *state;
    char err[256];

    assert_int_equal(config_set_kv(cfg, "slot.name=x1", "-X", err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "slot.name"), "x1");
    /* value keeps further '=' and spaces */
    assert_int_equal(config_set_kv(cfg, "postgres.conninfo=host=db port=5432", "-X", err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "postgres.conninfo"), "host=db port=5432");
    assert_int_equal(config_set_kv(cfg, " slot.name =x2", "-X", err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "slot.name"), "x2");
    assert_int_equal(config_set_kv(cfg, "kafka.acks=all", "-X", err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "kafka.acks"), "all");
    assert_int_equal(config_set_kv(cfg, "slot.name=", "-X", err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "slot.name"), "");

    assert_int_equal(config_set_kv(cfg, "postgres.password:hunter2", "-X", err, sizeof(err)), -1);
    assert_string_equal(err, "expected key=value (-X)");
    assert_int_equal(config_set_kv(cfg, "=x", "-X", err, sizeof(err)), -1);
    assert_string_equal(err, "missing key before '=' (-X)");
    assert_int_equal(config_set_kv(cfg, "slot.nam=x", "-X", err, sizeof(err)), -1);
    assert_string_equal(err, "unknown config key 'slot.nam' (-X); did you mean 'slot.name'?");
    assert_int_equal(config_set_kv(cfg, "relay.max_inflight=lots", "-X", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "relay.max_inflight (-X)"));
}

/* ---- files -------------------------------------------------------------------------------- */

static void test_load_file(void **state) {
    config_t *cfg = *state;
    char err[512] = "";
    const char *k, *v;

    if (config_load_file(cfg, CONF("good.conf"), err, sizeof(err)) != 0)
        fail_msg("load failed: %s", err);
    assert_string_equal(config_get(cfg, "postgres.conninfo"),
                        "host=db port=5432 user=app password=s3cret dbname=orders");
    assert_string_equal(config_get(cfg, "slot.name"), "my_slot");
    assert_false(config_get_bool(cfg, "slot.create"));
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 5000);
    assert_string_equal(config_get(cfg, "outbox.on_invalid"), "dead-letter");
    assert_string_equal(config_get(cfg, "outbox.topic"), "events#v2");
    assert_string_equal(config_get(cfg, "postgres.password"), "  spaced # not a comment \"quoted\" back\\slash  ");
    assert_int_equal(config_get_int(cfg, "relay.offset"), -7);
    assert_string_equal(config_get(cfg, "log.format"), "text"); /* untouched default */

    assert_int_equal(config_passthrough_count(cfg), 6);
    config_passthrough_get(cfg, 0, &k, &v);
    assert_string_equal(k, "bootstrap.servers");
    assert_string_equal(v, "broker1:9092,broker2:9092");
    config_passthrough_get(cfg, 1, &k, &v);
    assert_string_equal(k, "acks");
    assert_string_equal(v, "-1");
    config_passthrough_get(cfg, 2, &k, &v);
    assert_string_equal(k, "compression.type");
    assert_string_equal(v, "lz4");
    config_passthrough_get(cfg, 3, &k, &v);
    assert_string_equal(k, "client.id");
    assert_string_equal(v, "");
    config_passthrough_get(cfg, 4, &k, &v);
    assert_string_equal(k, "linger.ms");
    assert_string_equal(v, "");
    config_passthrough_get(cfg, 5, &k, &v);
    assert_string_equal(k, "transactional.id");
    assert_string_equal(v, "#kept");
}

static void test_load_file_crlf_bom(void **state) {
    config_t *cfg = *state;
    char err[512] = "";

    if (config_load_file(cfg, CONF("crlf_bom.conf"), err, sizeof(err)) != 0)
        fail_msg("load failed: %s", err);
    assert_string_equal(config_get(cfg, "slot.name"), "crlf_slot");
    assert_true(config_get_bool(cfg, "slot.create"));
    assert_string_equal(config_get(cfg, "kafka.acks"), "1");
}

static void load_fails(config_t *cfg, const char *path, const char *expected) {
    char err[1024] = "";
    if (config_load_file(cfg, path, err, sizeof(err)) != -1)
        fail_msg("loading %s succeeded", path);
    if (strcmp(err, expected) != 0)
        fail_msg("error\n  got      %s\n  expected %s", err, expected);
}

static void test_load_file_errors(void **state) {
    config_t *cfg = *state;

    load_fails(cfg, CONF("noeq.conf"), CONF("noeq.conf") ":3: expected 'key = value'");
    load_fails(cfg, CONF("commentbeforeeq.conf"), CONF("commentbeforeeq.conf") ":1: expected 'key = value'");
    load_fails(cfg, CONF("nokey.conf"), CONF("nokey.conf") ":1: expected 'key = value' (missing key)");
    load_fails(cfg, CONF("unknown.conf"),
               "unknown config key 'postgres.conninf' (" CONF("unknown.conf") ":4); did you mean 'postgres.conninfo'?");
    load_fails(
        cfg, CONF("badint.conf"),
        "invalid value '0' for relay.max_inflight (" CONF("badint.conf") ":2): expected an integer from 1 to 1000000");
    load_fails(cfg, CONF("badbool.conf"),
               "invalid value 'maybe' for slot.create (" CONF(
                   "badbool.conf") ":2): expected true/false, yes/no, on/off or 1/0");
    load_fails(cfg, CONF("unterminated.conf"), CONF("unterminated.conf") ":1: unterminated quoted value");
    load_fails(cfg, CONF("afterquote.conf"), CONF("afterquote.conf") ":1: unexpected text after closing quote");
    load_fails(cfg, CONF("emptypt.conf"),
               "config key 'kafka.' (" CONF("emptypt.conf") ":1) has nothing after the 'kafka.' prefix");
    load_fails(cfg, CONF("does-not-exist.conf"),
               "cannot open config file '" CONF("does-not-exist.conf") "': No such file or directory");
    /* lines before the error were applied */
    assert_string_equal(config_get(cfg, "slot.name"), "a");
}

/* ---- environment -------------------------------------------------------------------------- */

static void test_env_mapping(void **state) {
    config_t *cfg = *state;
    char err[512] = "";
    const char *k, *v;
    char *const envp[] = {
        "PATH=/usr/bin",
        "OUTBOXD=not-a-prefixed-variable",
        "POSTGRES_CONNINFO=ignored",
        "OUTBOXD_POSTGRES_CONNINFO=host=envdb password=pw",
        "OUTBOXD_OUTBOX_ON_INVALID=dead-letter",
        "OUTBOXD_RELAY_MAX_INFLIGHT=123",
        "OUTBOXD_KAFKA_BOOTSTRAP_SERVERS=k1:9092",
        "OUTBOXD_KAFKA_SASL_PASSWORD=kpw",
        "OUTBOXD_SLOT_CREATE=no",
        "OUTBOXD_SLOT_NAME=a=b",
        NULL,
    };

    if (config_load_env(cfg, envp, err, sizeof(err)) != 0)
        fail_msg("load_env failed: %s", err);
    assert_string_equal(config_get(cfg, "postgres.conninfo"), "host=envdb password=pw");
    assert_string_equal(config_get(cfg, "outbox.on_invalid"), "dead-letter");
    assert_int_equal(config_get_int(cfg, "relay.max_inflight"), 123);
    assert_false(config_get_bool(cfg, "slot.create"));
    assert_string_equal(config_get(cfg, "slot.name"), "a=b");
    assert_int_equal(config_passthrough_count(cfg), 2);
    config_passthrough_get(cfg, 0, &k, &v);
    assert_string_equal(k, "bootstrap.servers");
    assert_string_equal(v, "k1:9092");
    config_passthrough_get(cfg, 1, &k, &v);
    assert_string_equal(k, "sasl.password");
    assert_string_equal(v, "kpw");
    assert_string_equal(config_get(cfg, "kafka.bootstrap.servers"), "k1:9092");
}

static void env_fails(config_t *cfg, const char *var, const char *expected) {
    char err[512] = "";
    char *const envp[] = {(char *)var, NULL};

    if (config_load_env(cfg, envp, err, sizeof(err)) != -1)
        fail_msg("%s was accepted", var);
    if (strcmp(err, expected) != 0)
        fail_msg("error\n  got      %s\n  expected %s", err, expected);
}

static void test_env_errors(void **state) {
    config_t *cfg = *state;

    env_fails(cfg, "OUTBOXD_FOO=1", "unknown environment variable OUTBOXD_FOO: no config key matches it");
    env_fails(cfg, "OUTBOXD_SLOT_NAM=x",
              "unknown environment variable OUTBOXD_SLOT_NAM: no config key matches; did you "
              "mean OUTBOXD_SLOT_NAME?");
    env_fails(cfg, "OUTBOXD_OUTBOX_ON_INVALD=x",
              "unknown environment variable OUTBOXD_OUTBOX_ON_INVALD: no config key matches; "
              "did you mean OUTBOXD_OUTBOX_ON_INVALID?");
    env_fails(cfg, "OUTBOXD_SLOT_CREATE=perhaps",
              "invalid value 'perhaps' for slot.create (env OUTBOXD_SLOT_CREATE): expected "
              "true/false, yes/no, on/off or 1/0");
    env_fails(cfg, "OUTBOXD_KAFKA_=x",
              "config key 'kafka.' (env OUTBOXD_KAFKA_) has nothing after the 'kafka.' prefix");
    env_fails(cfg, "OUTBOXD_=x", "unknown environment variable OUTBOXD_: no config key matches it");
    /* a lower-case spelling is not the mapped name */
    env_fails(cfg, "OUTBOXD_slot_name=x",
              "unknown environment variable OUTBOXD_slot_name: no config key matches; did you "
              "mean OUTBOXD_SLOT_NAME?");
}

static void test_env_without_prefixes(void **state) {
    (void)state;
    char err[256] = "";
    char *const envp[] = {"OUTBOXD_FOO=1", "OUTBOXD_KAFKA_ACKS=all", NULL};
    config_t *none = config_new(keys, "kafka.", NULL);
    config_t *nopt = config_new(keys, NULL, "OUTBOXD_");

    assert_non_null(none);
    assert_non_null(nopt);
    /* no env prefix: no mapping at all */
    assert_int_equal(config_load_env(none, envp, err, sizeof(err)), 0);
    assert_int_equal(config_passthrough_count(none), 0);
    /* no passthrough prefix: OUTBOXD_KAFKA_* maps to nothing */
    assert_int_equal(config_load_env(nopt, envp + 1, err, sizeof(err)), -1);
    assert_string_equal(err, "unknown environment variable OUTBOXD_KAFKA_ACKS: no config key "
                             "matches it");
    config_destroy(none);
    config_destroy(nopt);
}

static void test_env_name(void **state) {
    config_t *cfg = *state;
    char buf[64], small[10];

    config_env_name(cfg, "postgres.conninfo", buf, sizeof(buf));
    assert_string_equal(buf, "OUTBOXD_POSTGRES_CONNINFO");
    config_env_name(cfg, "outbox.on_invalid", buf, sizeof(buf));
    assert_string_equal(buf, "OUTBOXD_OUTBOX_ON_INVALID");
    config_env_name(cfg, "kafka.bootstrap.servers", buf, sizeof(buf));
    assert_string_equal(buf, "OUTBOXD_KAFKA_BOOTSTRAP_SERVERS");
    config_env_name(cfg, "slot.name", small, sizeof(small));
    assert_string_equal(small, "OUTBOXD_S");
}

/* file, then environment, then -X: each later source overrides. */
static void test_precedence(void **state) {
    config_t *cfg = *state;
    char err[512] = "";
    char *const envp[] = {"OUTBOXD_SLOT_NAME=from_env", "OUTBOXD_KAFKA_ACKS=0", NULL};

    assert_int_equal(config_load_file(cfg, CONF("good.conf"), err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "slot.name"), "my_slot");
    assert_string_equal(config_get(cfg, "kafka.acks"), "-1");
    assert_int_equal(config_load_env(cfg, envp, err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "slot.name"), "from_env");
    assert_string_equal(config_get(cfg, "kafka.acks"), "0");
    assert_int_equal(config_set_kv(cfg, "slot.name=from_cli", "-X", err, sizeof(err)), 0);
    assert_int_equal(config_set_kv(cfg, "kafka.acks=all", "-X", err, sizeof(err)), 0);
    assert_string_equal(config_get(cfg, "slot.name"), "from_cli");
    assert_string_equal(config_get(cfg, "kafka.acks"), "all");
    assert_int_equal(config_passthrough_count(cfg), 6); /* acks kept its place */
}

/* ---- help and dump ------------------------------------------------------------------------ */

/* Captured output of config_dump (caller frees). */
static char *dump_to_string(const config_t *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    config_dump(cfg, f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void test_dump_redaction(void **state) {
    config_t *cfg = *state;
    char *out;

    set_ok(cfg, "postgres.conninfo", "host=db user=app password='zq sw8' dbname=orders");
    set_ok(cfg, "postgres.password", "pgsecret");
    set_ok(cfg, "outbox.topic", "a # b");
    set_ok(cfg, "kafka.bootstrap.servers", "b1:9092");
    set_ok(cfg, "kafka.sasl.username", "svc");
    set_ok(cfg, "kafka.sasl.password", "saslpw");
    set_ok(cfg, "kafka.ssl.key.password", "keypw");
    set_ok(cfg, "kafka.ssl.key.pem", "-----BEGIN PRIVATE KEY-----");
    set_ok(cfg, "kafka.sasl.oauthbearer.client.secret", "oauthsecret");
    set_ok(cfg, "kafka.SSL.KEYSTORE.PASSWORD", "kspw");
    set_ok(cfg, "kafka.acks", "all");

    out = dump_to_string(cfg);
    assert_string_equal(out, "postgres.conninfo = host=db user=app password=*** dbname=orders\n"
                             "postgres.password = ***\n"
                             "slot.name = outboxd\n"
                             "slot.create = true\n"
                             "relay.max_inflight = 10000\n"
                             "relay.offset = 0\n"
                             "outbox.on_invalid = stop\n"
                             "outbox.topic = \"a # b\"\n"
                             "log.format = text\n"
                             "kafka.bootstrap.servers = b1:9092\n"
                             "kafka.sasl.username = svc\n"
                             "kafka.sasl.password = ***\n"
                             "kafka.ssl.key.password = ***\n"
                             "kafka.ssl.key.pem = ***\n"
                             "kafka.sasl.oauthbearer.client.secret = ***\n"
                             "kafka.SSL.KEYSTORE.PASSWORD = ***\n"
                             "kafka.acks = all\n");
    static const char *const secrets[] = {"zq", "sw8", "pgsecret", "saslpw", "keypw", "BEGIN", "oauthsecret", "kspw"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (strstr(out, secrets[i]) != NULL)
            fail_msg("dump leaks '%s':\n%s", secrets[i], out);
    free(out);
    /* An empty secret is shown as empty: "***" would say that one is set. */
    set_ok(cfg, "postgres.password", "");
    out = dump_to_string(cfg);
    assert_non_null(strstr(out, "postgres.password = \"\"\n"));
    free(out);
}

static void test_dump_uri_conninfo(void **state) {
    config_t *cfg = *state;
    char *out;

    set_ok(cfg, "postgres.conninfo", "postgresql://app:s3cret@db/orders?sslmode=require");
    out = dump_to_string(cfg);
    assert_non_null(strstr(out, "postgres.conninfo = postgresql://app:***@db/orders?sslmode=require\n"));
    assert_null(strstr(out, "s3cret"));
    assert_null(strstr(out, "postgres.password")); /* unset keys are not listed */
    free(out);
}

/* What config_dump prints (without secrets) loads back to the same values. */
static void test_dump_roundtrip(void **state) {
    config_t *cfg = *state;
    config_t *back = config_new(keys, "kafka.", "OUTBOXD_");
    char path[] = "/tmp/test_config_XXXXXX";
    char err[512] = "";
    char *out;
    int fd;
    static const char *const names[] = {"slot.name",    "outbox.topic",    "log.format",
                                        "relay.offset", "kafka.client.id", "kafka.x"};

    assert_non_null(back);
    set_ok(cfg, "slot.name", "  lead and trail  ");
    set_ok(cfg, "outbox.topic", "quote \" back \\ hash # end");
    set_ok(cfg, "log.format", "json");
    set_ok(cfg, "relay.offset", "-3");
    set_ok(cfg, "kafka.client.id", "");
    set_ok(cfg, "kafka.x", "\"starts with quote");
    out = dump_to_string(cfg);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, out, strlen(out)), (ssize_t)strlen(out));
    close(fd);
    if (config_load_file(back, path, err, sizeof(err)) != 0)
        fail_msg("reload failed: %s\n%s", err, out);
    unlink(path);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_string_equal(config_get(back, names[i]), config_get(cfg, names[i]));
    free(out);
    config_destroy(back);
}

static void test_print_help(void **state) {
    (void)state;
    char *buf = NULL, *line, *save = NULL;
    size_t len = 0, hdr_type, hdr_def, hdr_env, hdr_desc;
    FILE *f = open_memstream(&buf, &len);
    int rows = 0;

    assert_non_null(f);
    config_print_help(keys, "OUTBOXD_", f);
    assert_int_equal(fclose(f), 0);

    line = strtok_r(buf, "\n", &save);
    assert_non_null(line);
    assert_true(strncmp(line, "KEY ", 4) == 0);
    hdr_type = (size_t)(strstr(line, "TYPE") - line);
    hdr_def = (size_t)(strstr(line, "DEFAULT") - line);
    hdr_env = (size_t)(strstr(line, "ENVIRONMENT") - line);
    hdr_desc = (size_t)(strstr(line, "DESCRIPTION") - line);
    assert_true(hdr_type < hdr_def && hdr_def < hdr_env && hdr_env < hdr_desc);

    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        const size_t cols[] = {hdr_type, hdr_def, hdr_env, hdr_desc};
        rows++;
        for (size_t c = 0; c < 4; c++) {
            assert_true(strlen(line) > cols[c]);
            if (line[cols[c] - 1] != ' ' || line[cols[c]] == ' ')
                fail_msg("column %zu misaligned in '%s'", c, line);
        }
    }
    assert_int_equal(rows, 9);
    free(buf);

    /* spot-check content */
    buf = NULL;
    f = open_memstream(&buf, &len);
    config_print_help(keys, "OUTBOXD_", f);
    fclose(f);
    assert_non_null(strstr(buf, "outbox.on_invalid "));
    assert_non_null(strstr(buf, " stop|dead-letter "));
    assert_non_null(strstr(buf, " OUTBOXD_OUTBOX_ON_INVALID "));
    assert_non_null(strstr(buf, " int 1..1000000 "));
    assert_non_null(strstr(buf, " int -100..100 "));
    assert_non_null(strstr(buf, " 10000 "));
    assert_non_null(strstr(buf, " what to do with an invalid event\n"));
    assert_non_null(strstr(buf, " password for the connection (secret)\n"));
    free(buf);

    /* without env prefix: no environment column */
    buf = NULL;
    f = open_memstream(&buf, &len);
    config_print_help(keys, NULL, f);
    fclose(f);
    assert_null(strstr(buf, "ENVIRONMENT"));
    assert_null(strstr(buf, "OUTBOXD_"));
    assert_non_null(strstr(buf, "DESCRIPTION"));
    free(buf);
}

/* destroy(NULL) does nothing: a config that exists meanwhile keeps every value. Destroying a
 * config that holds values and passthrough keys frees all of it (the ASan run of the suite
 * reports a leak otherwise). */
static void test_destroy_null(void **state) {
    (void)state;
    char err[256];
    config_t *cfg = config_new(keys, "kafka.", "OUTBOXD_");
    assert_non_null(cfg);
    assert_int_equal(config_set(cfg, "slot.name", "s1", "test", err, sizeof(err)), 0);
    assert_int_equal(config_set(cfg, "kafka.bootstrap.servers", "k:9092", "test", err, sizeof(err)), 0);
    config_destroy(NULL);
    assert_string_equal(config_get(cfg, "slot.name"), "s1");
    assert_true(config_is_set(cfg, "slot.name"));
    assert_string_equal(config_get(cfg, "outbox.topic"), "outbox.events");
    assert_int_equal(config_passthrough_count(cfg), 1);
    const char *k = NULL, *v = NULL;
    config_passthrough_get(cfg, 0, &k, &v);
    assert_string_equal(k, "bootstrap.servers");
    assert_string_equal(v, "k:9092");
    config_destroy(cfg);
}

/* ---- values from files (<key>.file, <VAR>_FILE) -------------------------------------------- */

/* Writes content to a new temporary file; returns its path (static buffer per slot). */
static const char *temp_file(int slot, const char *content, size_t len) {
    static char paths[4][64];
    snprintf(paths[slot], sizeof(paths[slot]), "/tmp/test_config_file_XXXXXX");
    int fd = mkstemp(paths[slot]);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return paths[slot];
}

static void test_file_values(void **state) {
    config_t *cfg = *state;
    const char *pw = temp_file(0, "s3cret\n", 7);
    const char *crlf = temp_file(1, "k1:9092\r\n", 9);
    const char *two = temp_file(2, "line1\nline2\n\n", 13);
    char buf[2048];

    set_ok(cfg, "postgres.password.file", pw);
    assert_string_equal(config_get(cfg, "postgres.password"), "s3cret"); /* one final newline removed */
    assert_true(config_is_set(cfg, "postgres.password"));
    assert_string_equal(config_file_of(cfg, "postgres.password"), pw);
    set_ok(cfg, "kafka.bootstrap.servers.file", crlf);
    assert_string_equal(config_get(cfg, "kafka.bootstrap.servers"), "k1:9092");
    assert_string_equal(config_file_of(cfg, "kafka.bootstrap.servers"), crlf);
    set_ok(cfg, "outbox.topic.file", two);
    assert_string_equal(config_get(cfg, "outbox.topic"), "line1\nline2\n"); /* only one newline goes */

    /* A later plain setting replaces the file's value and forgets the file. */
    set_ok(cfg, "outbox.topic", "t");
    assert_null(config_file_of(cfg, "outbox.topic"));
    assert_null(config_file_of(cfg, "slot.name"));

    /* The dump says where the value is, never what it is. */
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    config_dump(cfg, f);
    fclose(f);
    assert_null(strstr(buf, "s3cret"));
    char want[200];
    snprintf(want, sizeof(want), "postgres.password.file = %s\n", pw);
    assert_non_null(strstr(buf, want));
    snprintf(want, sizeof(want), "kafka.bootstrap.servers.file = %s\n", crlf);
    assert_non_null(strstr(buf, want));
    unlink(pw);
    unlink(crlf);
    unlink(two);
}

static void test_file_value_errors(void **state) {
    config_t *cfg = *state;
    set_fails(cfg, "postgres.password.file", "/nonexistent/pw", "a.conf:3",
              "cannot read postgres.password.file '/nonexistent/pw' (a.conf:3): No such file or directory");
    set_fails(cfg, "kafka.sasl.password.file", "", "-X", "kafka.sasl.password.file (-X) is empty: it must name a file");
    const char *nul = temp_file(0, "ab\0cd", 5);
    char want[300];
    snprintf(want, sizeof(want), "cannot read slot.name.file '%s' (-X): it holds a NUL byte", nul);
    set_fails(cfg, "slot.name.file", nul, "-X", want);
    unlink(nul);
    /* A bad value from a file is not echoed: it may be a secret in the wrong key. */
    const char *bad = temp_file(1, "hunter2\n", 8);
    snprintf(want, sizeof(want),
             "invalid value '***' for relay.max_inflight (relay.max_inflight.file '%s' (-X)): expected an integer "
             "from 1 to 1000000",
             bad);
    set_fails(cfg, "relay.max_inflight.file", bad, "-X", want);
    unlink(bad);
    /* Only regular files: a directory, a FIFO or a terminal would fail or hang. */
    set_fails(cfg, "slot.name.file", "/tmp", "-X", "cannot read slot.name.file '/tmp' (-X): not a regular file");
    /* .file of something that is no key stays an unknown key. */
    set_fails(cfg, "no.such.key.file", "/etc/hostname", "-X", NULL);
    char *big = calloc(1, CONFIG_FILE_MAX + 2);
    memset(big, 'x', CONFIG_FILE_MAX + 1);
    const char *large = temp_file(2, big, CONFIG_FILE_MAX + 1);
    free(big);
    snprintf(want, sizeof(want), "cannot read slot.name.file '%s' (-X): larger than 64 KiB", large);
    set_fails(cfg, "slot.name.file", large, "-X", want);
    unlink(large);
}

static void test_env_file_values(void **state) {
    config_t *cfg = *state;
    const char *pw = temp_file(0, "pgpw", 4);
    const char *kpw = temp_file(1, "kafkapw\n", 8);
    char v1[128], v2[128], err[512] = "";
    snprintf(v1, sizeof(v1), "OUTBOXD_POSTGRES_PASSWORD_FILE=%s", pw);
    snprintf(v2, sizeof(v2), "OUTBOXD_KAFKA_SASL_PASSWORD_FILE=%s", kpw);
    char *const envp[] = {v1, v2, NULL};
    if (config_load_env(cfg, envp, err, sizeof(err)) != 0)
        fail_msg("load_env failed: %s", err);
    assert_string_equal(config_get(cfg, "postgres.password"), "pgpw");
    assert_string_equal(config_get(cfg, "kafka.sasl.password"), "kafkapw");
    assert_string_equal(config_file_of(cfg, "kafka.sasl.password"), kpw);

    /* A value and its _FILE twin together: which wins would depend on the environment's order. */
    char *const both[] = {v1, "OUTBOXD_POSTGRES_PASSWORD=x", NULL};
    assert_int_equal(config_load_env(cfg, both, err, sizeof(err)), -1);
    assert_string_equal(err, "both OUTBOXD_POSTGRES_PASSWORD and OUTBOXD_POSTGRES_PASSWORD_FILE are set: set the "
                             "value or the file that holds it, not both");
    env_fails(cfg, "OUTBOXD_SLOT_NAM_FILE=/x",
              "unknown environment variable OUTBOXD_SLOT_NAM_FILE: no config key matches; did you mean "
              "OUTBOXD_SLOT_NAME_FILE?");
    unlink(pw);
    unlink(kpw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_last_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_is_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_spellings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_bounds, setup, teardown),
        cmocka_unit_test(test_int_full_range),
        cmocka_unit_test_setup_teardown(test_enum, setup, teardown),
        cmocka_unit_test(test_secret_not_echoed),
        cmocka_unit_test_setup_teardown(test_unknown_key_suggestions, setup, teardown),
        cmocka_unit_test(test_unknown_key_prefix_suggestion),
        cmocka_unit_test_setup_teardown(test_passthrough_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passthrough_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passthrough_many, setup, teardown),
        cmocka_unit_test(test_no_passthrough_prefix),
        cmocka_unit_test_setup_teardown(test_set_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_crlf_bom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_errors, setup, teardown),
        cmocka_unit_test(test_env_without_prefixes),
        cmocka_unit_test_setup_teardown(test_env_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_redaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_uri_conninfo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_roundtrip, setup, teardown),
        cmocka_unit_test(test_print_help),
        cmocka_unit_test_setup_teardown(test_file_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_value_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_file_values, setup, teardown),
        cmocka_unit_test(test_destroy_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
