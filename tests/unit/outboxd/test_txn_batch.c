/* test_txn_batch.c - unit tests for txn_batch.c: a Kafka transaction holds whole PostgreSQL
 * transactions, commits on each bound or when caught up, carries the last commit's end as its
 * checkpoint, and holds the confirmable LSN at its floor until it committed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "txn_batch.h"

static const txn_batch_limits_t LIMITS = {.max_txns = 3, .max_bytes = 1000, .max_ms = 100, .linger_ms = 0};

/* One PostgreSQL transaction of n records of `bytes` each, committing at end. */
static void pg_txn(txn_batch_t *b, int64_t now, lsn_t floor, int n, size_t bytes, lsn_t end) {
    for (int i = 0; i < n; i++)
        txn_batch_record(b, now, floor, bytes);
    txn_batch_pg_commit(b, end);
}

static void test_idle_follows_tracker(void **state) {
    (void)state;
    txn_batch_t b;
    txn_batch_init(&b, &LIMITS);
    assert_int_equal(b.state, TXN_BATCH_IDLE);
    assert_int_equal(txn_batch_cap(&b, 500), 500);
    txn_batch_pg_commit(&b, 600); /* a commit without events */
    assert_int_equal(b.last_end, 600);
    assert_false(txn_batch_due(&b, 0, false, true, true));
    assert_int_equal(txn_batch_due_in(&b, 0), -1);
}

static void test_open_holds_floor_until_committed(void **state) {
    (void)state;
    txn_batch_t b;
    txn_batch_init(&b, &LIMITS);
    assert_true(txn_batch_record(&b, 1000, 600, 10)); /* opens */
    assert_false(txn_batch_record(&b, 1001, 700, 10));
    assert_int_equal(b.floor, 600);
    txn_batch_pg_commit(&b, 800);
    assert_int_equal(txn_batch_cap(&b, 800), 600);
    assert_int_equal(txn_batch_cap(&b, 550), 550);
    assert_int_equal(txn_batch_committing(&b), 800);
    assert_int_equal(b.state, TXN_BATCH_COMMITTING);
    assert_int_equal(txn_batch_cap(&b, 800), 600);
    txn_batch_committed(&b);
    assert_int_equal(b.state, TXN_BATCH_IDLE);
    assert_int_equal(b.committed, 800);
    assert_int_equal(b.commits, 1);
    assert_int_equal(txn_batch_cap(&b, 800), 800);
}

static void test_due(void **state) {
    (void)state;
    txn_batch_t b;
    txn_batch_init(&b, &LIMITS);
    pg_txn(&b, 0, 0, 2, 10, 100);
    assert_false(txn_batch_due(&b, 10, false, false, false));
    assert_true(txn_batch_due(&b, 10, false, true, false));   /* caught up */
    assert_true(txn_batch_due(&b, 10, false, false, true));   /* stopping */
    assert_false(txn_batch_due(&b, 10, true, true, true));    /* never inside a PostgreSQL transaction */
    assert_true(txn_batch_due(&b, 100, false, false, false)); /* time */
    assert_int_equal(txn_batch_due_in(&b, 40), 60);
    assert_int_equal(txn_batch_due_in(&b, 140), 0);
    pg_txn(&b, 1, 0, 5, 10, 200); /* several records of one transaction count once */
    assert_int_equal(b.txns, 2);
    assert_false(txn_batch_due(&b, 10, false, false, false));
    pg_txn(&b, 2, 0, 1, 10, 300);
    assert_true(txn_batch_due(&b, 10, false, false, false)); /* count */
    txn_batch_committing(&b);
    assert_false(txn_batch_due(&b, 10, false, true, false)); /* not while committing */
    txn_batch_committed(&b);
    pg_txn(&b, 20, 300, 1, 1000, 400);
    assert_true(txn_batch_due(&b, 20, false, false, false)); /* bytes */
    assert_int_equal(b.txns, 1);
    assert_int_equal(b.records, 1);
}

static void test_linger(void **state) {
    (void)state;
    txn_batch_limits_t lim = LIMITS;
    lim.linger_ms = 30;
    txn_batch_t b;
    txn_batch_init(&b, &lim);
    pg_txn(&b, 1000, 0, 1, 10, 100);
    assert_false(txn_batch_due(&b, 1010, false, true, false)); /* caught up, but young */
    assert_int_equal(txn_batch_due_in(&b, 1010), 20);
    assert_true(txn_batch_due(&b, 1030, false, true, false));
    assert_false(txn_batch_due(&b, 1030, false, false, false)); /* not caught up: up to max_ms */
    assert_int_equal(txn_batch_due_in(&b, 1030), 70);
    assert_true(txn_batch_due(&b, 1010, false, false, true)); /* stopping does not linger */
    pg_txn(&b, 1001, 0, 1, 10, 200);
    pg_txn(&b, 1002, 0, 1, 10, 300);
    assert_true(txn_batch_due(&b, 1010, false, false, false)); /* count does not either */
}

static void test_failure_and_reset(void **state) {
    (void)state;
    txn_batch_t b;
    txn_batch_init(&b, &LIMITS);
    assert_false(txn_batch_failed(&b)); /* nothing open */
    pg_txn(&b, 0, 100, 1, 10, 200);
    assert_true(txn_batch_failed(&b));
    assert_int_equal(b.state, TXN_BATCH_FAILED);
    assert_int_equal(b.failures, 1);
    assert_int_equal(txn_batch_cap(&b, 200), 100); /* nothing of it may be confirmed */
    assert_false(txn_batch_due(&b, 1000, false, true, true));
    assert_false(txn_batch_failed(&b)); /* counted once */
    txn_batch_reset(&b, 150);
    assert_int_equal(b.state, TXN_BATCH_IDLE);
    assert_int_equal(b.committed, 150);
    assert_int_equal(b.last_end, 150); /* not 200: the new session's positions only */
    assert_int_equal(txn_batch_cap(&b, 200), 200);
    /* A commit that fails after it was handed over. */
    pg_txn(&b, 0, 200, 1, 10, 300);
    txn_batch_committing(&b);
    assert_true(txn_batch_failed(&b));
    assert_int_equal(b.committed, 150);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_follows_tracker),
        cmocka_unit_test(test_open_holds_floor_until_committed),
        cmocka_unit_test(test_due),
        cmocka_unit_test(test_linger),
        cmocka_unit_test(test_failure_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
