/* test_progress.c - unit tests for progress.c's pure parts: which sample's horizon is valid for
 * a confirmed position, and the recovery predicate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "progress.h"

static void test_horizon_newest_sample_not_after_position(void **state) {
    (void)state;
    progress_sample_t s[3] = {
        {.oldest_xid = 100, .wal_lsn = 0x1000, .time = "t1"},
        {.oldest_xid = 150, .wal_lsn = 0x2000, .time = "t2"},
        {.oldest_xid = 190, .wal_lsn = 0x3000, .time = "t3"},
    };
    const char *when = NULL;
    /* 0x2800: the sample at 0x3000 was taken after it; 0x2000 is the newest valid one */
    assert_int_equal(progress_horizon_for(0x2800, s, 3, 0, &when), 150);
    assert_string_equal(when, "t2");
    /* exactly at the sample's position is still valid */
    assert_int_equal(progress_horizon_for(0x3000, s, 3, 0, NULL), 190);
    /* before every sample: only the fallback (an older record's horizon) */
    assert_int_equal(progress_horizon_for(0x0800, s, 3, 42, NULL), 42);
    assert_int_equal(progress_horizon_for(0x0800, s, 3, 0, NULL), 0);
}

static void test_horizon_ring_order_does_not_matter(void **state) {
    (void)state;
    progress_sample_t s[3] = {
        {.oldest_xid = 190, .wal_lsn = 0x3000},
        {.oldest_xid = 100, .wal_lsn = 0x1000},
        {.oldest_xid = 150, .wal_lsn = 0x2000},
    };
    assert_int_equal(progress_horizon_for(0x2fff, s, 3, 0, NULL), 150);
    /* a fallback newer than the samples wins: it is valid too */
    assert_int_equal(progress_horizon_for(0x2fff, s, 3, 170, NULL), 170);
}

static void test_recovery_where(void **state) {
    (void)state;
    char buf[96];
    progress_record_t r = {.horizon = 1000};
    assert_string_equal(progress_recovery_where(&r, 1500, 0, buf, sizeof(buf)),
                        "age(xmin) BETWEEN 0 AND age('1000'::xid)::bigint + 0");
    assert_string_equal(progress_recovery_where(&r, 1500, 100, buf, sizeof(buf)),
                        "age(xmin) BETWEEN 0 AND age('1000'::xid)::bigint + 100");
    /* a 64-bit xid (epoch 2): the 32-bit xid the rows carry */
    r.horizon = (2ULL << 32) + 7;
    assert_string_equal(progress_recovery_where(&r, (2ULL << 32) + 900, 0, buf, sizeof(buf)),
                        "age(xmin) BETWEEN 0 AND age('7'::xid)::bigint + 0");
    r.horizon = 1000;
    /* horizon ahead of the server's next xid (not this server's history): every row */
    assert_string_equal(progress_recovery_where(&r, 900, 10, buf, sizeof(buf)), "true");
    /* beyond what 32-bit xids can tell apart: every row */
    r.horizon = 10;
    assert_string_equal(progress_recovery_where(&r, 10 + 3000000000ULL, 0, buf, sizeof(buf)), "true");
    /* no horizon known: every row */
    r.horizon = 0;
    assert_string_equal(progress_recovery_where(&r, 5, 0, buf, sizeof(buf)), "true");
}

static void test_time_unix(void **state) {
    (void)state;
    assert_true(progress_time_unix("2026-12-04T09:30:12.250Z") == 1796376612.25);
    assert_true(progress_time_unix("1970-01-01T00:00:00.000Z") == 0);
    assert_true(progress_time_unix("") == 0);
    assert_true(progress_time_unix("yesterday") == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_horizon_newest_sample_not_after_position),
        cmocka_unit_test(test_horizon_ring_order_does_not_matter),
        cmocka_unit_test(test_recovery_where),
        cmocka_unit_test(test_time_unix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
