/* test_checkpoint.c - unit tests for checkpoint.c: the record's JSON round trip and refusals,
 * murmur2 against Kafka's own test vectors, the partition, and when a checkpoint fits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "checkpoint.h"

static checkpoint_t sample(void) {
    checkpoint_t c = {.timeline = 3, .lsn = 0x16B3748ULL};
    strcpy(c.database, "app \"db\"");
    strcpy(c.slot, "outboxd");
    strcpy(c.system_id, "7301234567890123456");
    strcpy(c.written_at, "2026-12-04T09:30:12.345Z");
    return c;
}

static void test_round_trip(void **state) {
    (void)state;
    checkpoint_t c = sample(), d;
    char buf[512], err[256];
    int n = checkpoint_encode(&c, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    assert_non_null(strstr(buf, "\"lsn\":\"0/16B3748\""));
    assert_non_null(strstr(buf, "\"version\":1"));
    assert_int_equal(checkpoint_decode(buf, (size_t)n, &d, err, sizeof(err)), 0);
    assert_string_equal(d.database, c.database);
    assert_string_equal(d.slot, c.slot);
    assert_string_equal(d.system_id, c.system_id);
    assert_string_equal(d.written_at, c.written_at);
    assert_int_equal(d.timeline, 3);
    assert_int_equal(d.lsn, c.lsn);
    assert_int_equal(checkpoint_encode(&c, buf, 20), -1); /* too small */
}

static void test_decode_refuses(void **state) {
    (void)state;
    checkpoint_t d;
    char err[256];
    const char *bad[] = {
        "",
        "[]",
        "{\"version\":2,\"database\":\"a\",\"slot\":\"s\",\"system_id\":\"1\",\"timeline\":1,\"lsn\":\"0/1\"}",
        "{\"version\":1,\"slot\":\"s\",\"system_id\":\"1\",\"timeline\":1,\"lsn\":\"0/1\"}",
        "{\"version\":1,\"database\":\"a\",\"slot\":\"s\",\"system_id\":\"1\",\"timeline\":\"1\",\"lsn\":\"0/1\"}",
        "{\"version\":1,\"database\":\"a\",\"slot\":\"s\",\"system_id\":\"1\",\"timeline\":1,\"lsn\":\"zz\"}",
        "{\"version\":1,\"database\":\"a\",\"slot\":\"s\",\"system_id\":\"1\",\"timeline\":-1,\"lsn\":\"0/1\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(checkpoint_decode(bad[i], strlen(bad[i]), &d, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(checkpoint_decode(NULL, 0, &d, err, sizeof(err)), -1);
}

/* Kafka's UtilsTest.testMurmur2 vectors; the partitions as harness/partition.py (checked
 * against the Java client) computes them. */
static void test_murmur2(void **state) {
    (void)state;
    assert_int_equal(checkpoint_murmur2("21", 2), -973932308);
    assert_int_equal(checkpoint_murmur2("foobar", 6), -790332482);
    assert_int_equal(checkpoint_murmur2("a-little-bit-long-string", 24), -985981536);
    assert_int_equal(checkpoint_murmur2("abc", 3), 479470107);
    assert_int_equal(checkpoint_partition("21", 2, 7), 3);
    assert_int_equal(checkpoint_partition("abc", 3, 7), 4);
    assert_int_equal(checkpoint_partition("outboxd-app-outboxd", 19, 7), 0);
    assert_int_equal(checkpoint_partition("", 0, 7), 2);
    assert_int_equal(checkpoint_partition("abc", 3, 1), 0);
    assert_int_equal(checkpoint_partition("abc", 3, 0), 0);
}

static void test_fit(void **state) {
    (void)state;
    checkpoint_t c = sample();
    char why[512];
    assert_int_equal(checkpoint_fit(&c, "app \"db\"", "outboxd", c.system_id, 3, 0x2000000, why, sizeof(why)),
                     CHECKPOINT_FITS);
    assert_string_equal(why, "");
    assert_int_equal(checkpoint_fit(&c, "app \"db\"", "outboxd", c.system_id, 3, 0, why, sizeof(why)),
                     CHECKPOINT_FITS); /* WAL end unknown */
    assert_int_equal(checkpoint_fit(&c, "other", "outboxd", c.system_id, 3, 0x2000000, why, sizeof(why)),
                     CHECKPOINT_OTHER_STREAM);
    assert_non_null(strstr(why, "share delivery.transactional.id"));
    assert_int_equal(checkpoint_fit(&c, "app \"db\"", "s2", c.system_id, 3, 0x2000000, why, sizeof(why)),
                     CHECKPOINT_OTHER_STREAM);
    assert_int_equal(checkpoint_fit(&c, "app \"db\"", "outboxd", "42", 3, 0x2000000, why, sizeof(why)),
                     CHECKPOINT_OTHER_SYSTEM);
    assert_int_equal(checkpoint_fit(&c, "app \"db\"", "outboxd", c.system_id, 4, 0x2000000, why, sizeof(why)),
                     CHECKPOINT_OTHER_TIMELINE);
    assert_non_null(strstr(why, "timeline 3"));
    assert_int_equal(checkpoint_fit(&c, "app \"db\"", "outboxd", c.system_id, 3, 0x16B3747, why, sizeof(why)),
                     CHECKPOINT_AHEAD);
    assert_int_equal(checkpoint_fit(&c, "app \"db\"", "outboxd", c.system_id, 3, 0x16B3748, why, sizeof(why)),
                     CHECKPOINT_FITS);
    char id[64];
    assert_string_equal(checkpoint_default_txn_id("app", "outboxd", id, sizeof(id)), "outboxd-app-outboxd");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_murmur2),
        cmocka_unit_test(test_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
