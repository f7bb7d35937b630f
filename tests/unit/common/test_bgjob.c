/* test_bgjob.c - unit tests for bgjob.c: a job runs off the calling thread, its end shows on
 * the fd with its result, one job at a time, and a long job sees a cancel and a stop. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "bgjob.h"

static int add_one(bgjob_t *j, void *arg) {
    (void)j;
    int *v = arg;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    return ++*v;
}

static int until_cancelled(bgjob_t *j, void *arg) {
    int *turns = arg;
    struct timespec ts = {0, 1000000};
    while (!bgjob_cancelled(j)) {
        nanosleep(&ts, NULL);
        ++*turns;
    }
    return -7;
}

static int wait_done(bgjob_t *j) {
    struct pollfd p = {.fd = bgjob_fd(j), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    int rc = 0;
    assert_true(bgjob_done(j, &rc));
    return rc;
}

static void test_runs_and_reports(void **state) {
    (void)state;
    bgjob_t *j = bgjob_start();
    assert_non_null(j);
    int v = 41, rc = 0;
    assert_false(bgjob_busy(j));
    assert_false(bgjob_done(j, &rc));
    assert_int_equal(bgjob_submit(j, add_one, &v), 0);
    assert_true(bgjob_busy(j));
    assert_int_equal(bgjob_submit(j, add_one, &v), -1); /* one at a time */
    assert_int_equal(wait_done(j), 42);
    assert_int_equal(v, 42);
    assert_false(bgjob_busy(j));
    struct pollfd p = {.fd = bgjob_fd(j), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);               /* drained */
    assert_int_equal(bgjob_submit(j, add_one, &v), 0); /* free again */
    assert_int_equal(wait_done(j), 43);
    bgjob_stop(j);
    bgjob_stop(NULL);
    assert_int_equal(bgjob_fd(NULL), -1);
}

static void test_cancel(void **state) {
    (void)state;
    bgjob_t *j = bgjob_start();
    int turns = 0;
    assert_int_equal(bgjob_submit(j, until_cancelled, &turns), 0);
    struct pollfd p = {.fd = bgjob_fd(j), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 50), 0); /* still running */
    bgjob_cancel(j);
    assert_int_equal(wait_done(j), -7);
    assert_true(turns > 0);
    /* A new job is not cancelled by the old cancel. */
    int v = 0;
    assert_int_equal(bgjob_submit(j, add_one, &v), 0);
    assert_int_equal(wait_done(j), 1);
    /* bgjob_stop cancels a running job and waits for it. */
    assert_int_equal(bgjob_submit(j, until_cancelled, &turns), 0);
    bgjob_stop(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_and_reports),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
