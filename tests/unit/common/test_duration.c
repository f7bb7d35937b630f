/* test_duration.c - unit tests for duration.c: durations such as 7d, 1d12h, 90 min as seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "duration.h"

static void test_duration(void **state) {
    (void)state;
    static const struct {
        const char *s;
        long long v;
    } ok[] = {
        {"0", 0},           {"3600", 3600},    {"7d", 604800},     {"12h", 43200},       {"90m", 5400},
        {"90 min", 5400},   {"1d12h", 129600}, {"1d 12h", 129600}, {"2 weeks", 1209600}, {"1w", 604800},
        {"30s", 30},        {"1 second", 1},   {"5 Minutes", 300}, {" 7d ", 604800},     {"0d", 0},
        {"1h30m15s", 5415},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        long long v = -1;
        if (duration_parse(ok[i].s, &v) != 0)
            fail_msg("'%s' refused", ok[i].s);
        if (v != ok[i].v)
            fail_msg("'%s' = %lld, expected %lld", ok[i].s, v, ok[i].v);
    }
    static const char *const bad[] = {"",
                                      " ",
                                      "d",
                                      "7x",
                                      "-1d",
                                      "1.5h",
                                      "7d x",
                                      "10 20",
                                      "1d 5",
                                      "99999999999999999999",
                                      "9223372036854775807w",
                                      "7 days ago"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long long v = -1;
        if (duration_parse(bad[i], &v) == 0)
            fail_msg("'%s' accepted (%lld)", bad[i], v);
    }
    long long v;
    assert_int_equal(duration_parse(NULL, &v), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
