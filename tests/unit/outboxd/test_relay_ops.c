/* test_relay_ops.c - unit tests for relay_ops_parse_timestamp: wal2json's commit timestamps
 * (PostgreSQL's ISO form) with the offsets and fractions the commit-to-ack histogram meets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "relay_ops.h"

static void test_parse_timestamps(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int64_t us;
    } cases[] = {
        {"2026-11-23 06:22:05.190386+00", 1795414925190386LL}, /* what wal2json sends with TimeZone UTC */
        {"2026-11-23 06:22:05.190386", 1795414925190386LL},    /* no offset: UTC */
        {"2026-12-03 13:32:34.3121+05:30", 1796284954312100LL}, {"2026-12-03 04:32:34.3121-03:30", 1796284954312100LL},
        {"2026-12-03 21:47:34.3121+13:45", 1796284954312100LL}, {"2026-12-03 08:02:34.3121+00", 1796284954312100LL},
        {"2000-01-01 00:00:00+00", 946684800000000LL},         /* no fraction */
        {"2000-01-01 01:00:00.5+01", 946684800500000LL},       /* one digit */
        {"2024-02-29 12:00:00+00", 1709208000000000LL},        /* leap day */
        {"1890-01-01 00:00:00+00:53:28", -2524524808000000LL}, /* a local mean time offset */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t us = 0;
        assert_int_equal(relay_ops_parse_timestamp(cases[i].text, &us), 0);
        if (us != cases[i].us)
            fail_msg("%s: %lld, expected %lld", cases[i].text, (long long)us, (long long)cases[i].us);
    }
}

static void test_parse_rejects_other_forms(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        "infinity",
        "-infinity",
        "2026-11-23",
        "2026-11-23 06:22",
        "23.11.2026 06:22:05.19 UTC",      /* DateStyle German */
        "Mon Nov 23 06:22:05.19 2026 UTC", /* DateStyle Postgres */
        "11/23/2026 06:22:05.19 UTC",      /* DateStyle SQL */
        "2026-11-23T06:22:05Z",            /* not PostgreSQL's form */
        "2026-11-23 06:22:05+00 BC",
        "2026-11-23 06:22:05 UTC",
        "2026-11-23 06:22:05+",
        "2026-11-23 06:22:05+5",
        "2026-11-23 06:22:05+0530",
        "2026-11-23 06:22:05+05:",
        "2026-11-23 06:22:05+05:30:00:00",
        "2026-13-23 06:22:05+00",
        "2026-11-00 06:22:05+00",
        "2026-11-23 24:22:05+00",
        "2026-11-23 06:60:05+00",
        "2026-11-23 06:22:61+00",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t us = 42;
        if (relay_ops_parse_timestamp(bad[i], &us) != -1)
            fail_msg("accepted \"%s\" as %lld", bad[i], (long long)us);
    }
    int64_t us;
    assert_int_equal(relay_ops_parse_timestamp(NULL, &us), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_timestamps),
        cmocka_unit_test(test_parse_rejects_other_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
