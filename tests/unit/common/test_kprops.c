/* test_kprops.c - unit tests for kprops.c: kafka.* keys checked against librdkafka's own
 * property table when the configuration is read, with suggestions for misspelt names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "kprops.h"

static void test_known_names(void **state) {
    (void)state;
    assert_true(kprops_count() > 100); /* global and topic properties */
    assert_true(kprops_known("bootstrap.servers"));
    assert_true(kprops_known("acks")); /* topic level */
    assert_true(kprops_known("group.id"));
    assert_false(kprops_known("bootstrap.server"));
    assert_false(kprops_known("Property"));
    assert_true(kprops_for_consumer("bootstrap.servers"));
    assert_true(kprops_for_consumer("group.id"));
    assert_true(kprops_for_consumer("security.protocol"));
    assert_false(kprops_for_consumer("linger.ms"));
    assert_false(kprops_for_consumer("acks"));
    assert_false(kprops_for_consumer("no.such.thing"));
}

static void test_check(void **state) {
    (void)state;
    char why[512], sug[128];
    assert_int_equal(kprops_check("bootstrap.servers", "a:9092,b:9092", why, sizeof(why), sug, sizeof(sug)),
                     CONFIG_PT_OK);
    assert_int_equal(kprops_check("bootstrap.server", "a:9092", why, sizeof(why), sug, sizeof(sug)), CONFIG_PT_UNKNOWN);
    assert_string_equal(why, "librdkafka has no property \"bootstrap.server\"");
    assert_string_equal(sug, "bootstrap.servers");
    assert_int_equal(kprops_check("linger.msec", "5", why, sizeof(why), sug, sizeof(sug)), CONFIG_PT_UNKNOWN);
    assert_string_equal(sug, "linger.ms");
    assert_int_equal(kprops_check("zzzz.nothing.like.it", "5", why, sizeof(why), sug, sizeof(sug)), CONFIG_PT_UNKNOWN);
    assert_string_equal(sug, "");
    /* librdkafka's own reason for a bad value */
    assert_int_equal(kprops_check("linger.ms", "-5", why, sizeof(why), sug, sizeof(sug)), CONFIG_PT_INVALID);
    assert_non_null(strstr(why, "-5"));
    assert_int_equal(kprops_check("compression.type", "zip", why, sizeof(why), sug, sizeof(sug)), CONFIG_PT_INVALID);
    /* Not tried: setting it would load the plugins. */
    assert_int_equal(kprops_check("plugin.library.paths", "/nope.so", why, sizeof(why), sug, sizeof(sug)),
                     CONFIG_PT_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_names),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
