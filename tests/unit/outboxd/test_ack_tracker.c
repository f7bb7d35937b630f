/* test_ack_tracker.c - unit tests of the LSN watermark: out-of-order acks, failures,
 * empty transactions, keepalives, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "ack_tracker.h"

static ack_tracker_t *mk(void) { return ack_tracker_new(100, 1000, 100000); }

/* One transaction with n events; returns its seq. */
static uint64_t txn(ack_tracker_t *t, int n, lsn_t end) {
    uint64_t seq = 0;
    assert_int_equal(ack_tracker_begin(t), 0);
    for (int i = 0; i < n; i++)
        seq = ack_tracker_add_event(t);
    assert_int_equal(ack_tracker_commit(t, end), 0);
    return seq;
}

static void test_start_position(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    assert_int_equal(ack_tracker_confirmable(t), 100);
    assert_int_equal(ack_tracker_outstanding(t), 0);
    assert_false(ack_tracker_full(t));
    ack_tracker_destroy(t);
    ack_tracker_destroy(NULL);
}

static void test_in_order_acks(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    uint64_t a = txn(t, 2, 200);
    uint64_t b = txn(t, 1, 300);
    assert_int_not_equal(a, b);
    assert_int_equal(ack_tracker_confirmable(t), 100);
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_confirmable(t), 100); /* one event of a still out */
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_confirmable(t), 200);
    assert_int_equal(ack_tracker_ack(t, b), 0);
    assert_int_equal(ack_tracker_confirmable(t), 300);
    assert_int_equal(ack_tracker_outstanding(t), 0);
    assert_int_equal(ack_tracker_txns(t), 0);
    ack_tracker_destroy(t);
}

static void test_out_of_order_acks(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    uint64_t a = txn(t, 1, 200);
    uint64_t b = txn(t, 1, 300);
    uint64_t c = txn(t, 1, 400);
    assert_int_equal(ack_tracker_ack(t, c), 0);
    assert_int_equal(ack_tracker_ack(t, b), 0);
    assert_int_equal(ack_tracker_confirmable(t), 100); /* a still outstanding */
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_confirmable(t), 400);
    ack_tracker_destroy(t);
}

static void test_ack_before_commit(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    assert_int_equal(ack_tracker_begin(t), 0);
    uint64_t a = ack_tracker_add_event(t);
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_confirmable(t), 100); /* not committed yet */
    ack_tracker_keepalive(t, 999);                     /* mid-transaction: ignored */
    assert_int_equal(ack_tracker_confirmable(t), 100);
    assert_int_equal(ack_tracker_commit(t, 250), 0);
    assert_int_equal(ack_tracker_confirmable(t), 250);
    ack_tracker_destroy(t);
}

static void test_failure_never_advances(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    uint64_t a = txn(t, 1, 200);
    uint64_t b = txn(t, 2, 300);
    uint64_t c = txn(t, 1, 400);
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_fail(t, b), 0);
    assert_int_equal(ack_tracker_ack(t, b), 0);
    assert_int_equal(ack_tracker_ack(t, c), 0);
    assert_true(ack_tracker_failed(t));
    assert_int_equal(ack_tracker_confirmable(t), 200);
    /* Empty transactions and keepalives after a failure do not move it either. */
    txn(t, 0, 500);
    ack_tracker_keepalive(t, 600);
    assert_int_equal(ack_tracker_confirmable(t), 200);
    ack_tracker_destroy(t);
}

static void test_empty_txn_and_keepalive_idle(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    txn(t, 0, 150); /* empty transaction, nothing held: confirmable at once */
    assert_int_equal(ack_tracker_confirmable(t), 150);
    ack_tracker_keepalive(t, 180);
    assert_int_equal(ack_tracker_confirmable(t), 180);
    assert_int_equal(ack_tracker_received(t), 180);
    ack_tracker_keepalive(t, 170); /* never backwards */
    assert_int_equal(ack_tracker_confirmable(t), 180);
    ack_tracker_destroy(t);
}

static void test_empty_txn_behind_held(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    uint64_t a = txn(t, 1, 200);
    txn(t, 0, 300);
    txn(t, 0, 350);
    ack_tracker_keepalive(t, 400); /* a outstanding: keepalive must not advance */
    assert_int_equal(ack_tracker_confirmable(t), 100);
    assert_int_equal(ack_tracker_received(t), 400);
    assert_int_equal(ack_tracker_ack(t, a), 0);
    /* The empty ones after a come along, and so does the keepalive's position. */
    assert_int_equal(ack_tracker_confirmable(t), 400);
    ack_tracker_destroy(t);
}

/* The keepalive that reports the end of the WAL often arrives while the last events are
 * still in flight; no further keepalive may come while the server sees nothing new. The
 * watermark must reach it when the acks arrive, or an idle slot stays a few bytes behind. */
static void test_keepalive_during_acks_is_kept(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    uint64_t a = txn(t, 2, 200);
    ack_tracker_keepalive(t, 260);
    assert_int_equal(ack_tracker_confirmable(t), 100);
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_confirmable(t), 100); /* one of a's events outstanding */
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_confirmable(t), 260);
    /* A keepalive inside a transaction says nothing about it: not kept. */
    assert_int_equal(ack_tracker_begin(t), 0);
    uint64_t b = ack_tracker_add_event(t);
    ack_tracker_keepalive(t, 900);
    assert_int_equal(ack_tracker_commit(t, 300), 0);
    assert_int_equal(ack_tracker_ack(t, b), 0);
    assert_int_equal(ack_tracker_confirmable(t), 300);
    /* Nor does a keepalive pass a failure. */
    uint64_t c = txn(t, 1, 400);
    ack_tracker_keepalive(t, 450);
    assert_int_equal(ack_tracker_fail(t, c), 0);
    assert_int_equal(ack_tracker_confirmable(t), 300);
    ack_tracker_destroy(t);
}

static void test_bad_reports(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    assert_int_equal(ack_tracker_add_event(t), 0); /* no transaction open */
    assert_int_equal(ack_tracker_commit(t, 5), -1);
    uint64_t a = txn(t, 1, 200);
    assert_int_equal(ack_tracker_ack(t, a), 0);
    assert_int_equal(ack_tracker_ack(t, a), -1); /* settled already */
    assert_int_equal(ack_tracker_ack(t, a + 100), -1);
    assert_int_equal(ack_tracker_fail(t, 0), -1);
    assert_int_equal(ack_tracker_begin(t), 0);
    assert_int_equal(ack_tracker_begin(t), -1); /* nested begin */
    ack_tracker_destroy(t);
}

static void test_full_by_events_and_txns(void **state) {
    (void)state;
    ack_tracker_t *t = ack_tracker_new(0, 3, 5);
    uint64_t a = txn(t, 4, 10);
    assert_false(ack_tracker_full(t));
    assert_int_equal(ack_tracker_begin(t), 0);
    ack_tracker_add_event(t);
    assert_true(ack_tracker_full(t)); /* 5 events */
    ack_tracker_commit(t, 20);
    for (int i = 0; i < 4; i++)
        ack_tracker_ack(t, a);
    assert_false(ack_tracker_full(t));
    ack_tracker_destroy(t);

    /* Acked transactions held behind an unacked one count against max_txns. */
    t = ack_tracker_new(0, 3, 1000);
    uint64_t first = txn(t, 1, 10);
    uint64_t s2 = txn(t, 1, 20);
    uint64_t s3 = txn(t, 1, 30);
    ack_tracker_ack(t, s2);
    ack_tracker_ack(t, s3);
    assert_int_equal(ack_tracker_outstanding(t), 1);
    assert_true(ack_tracker_full(t));
    ack_tracker_ack(t, first);
    assert_false(ack_tracker_full(t));
    assert_int_equal(ack_tracker_confirmable(t), 30);
    ack_tracker_destroy(t);
}

/* max_txns = 1 must not deadlock: the open transaction's own commit has to be read. */
static void test_open_txn_not_counted(void **state) {
    (void)state;
    ack_tracker_t *t = ack_tracker_new(0, 1, 1000);
    assert_int_equal(ack_tracker_begin(t), 0);
    uint64_t a = ack_tracker_add_event(t);
    ack_tracker_add_event(t);
    assert_false(ack_tracker_full(t)); /* still inside the transaction */
    assert_int_equal(ack_tracker_commit(t, 10), 0);
    assert_true(ack_tracker_full(t)); /* one committed transaction held */
    ack_tracker_ack(t, a);
    ack_tracker_ack(t, a);
    assert_false(ack_tracker_full(t));
    assert_int_equal(ack_tracker_confirmable(t), 10);
    ack_tracker_destroy(t);
}

static void test_seq_lsn(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    assert_int_equal(ack_tracker_begin(t), 0);
    uint64_t a = ack_tracker_add_event(t);
    assert_int_equal(ack_tracker_seq_lsn(t, a), 0);
    ack_tracker_commit(t, 777);
    assert_int_equal(ack_tracker_seq_lsn(t, a), 777);
    ack_tracker_destroy(t);
}

static void test_reset_forgets_old_reports(void **state) {
    (void)state;
    ack_tracker_t *t = mk();
    uint64_t a = txn(t, 1, 200);
    ack_tracker_reset(t, 150);
    assert_int_equal(ack_tracker_confirmable(t), 150);
    assert_int_equal(ack_tracker_ack(t, a), -1);
    uint64_t b = txn(t, 1, 300);
    assert_true(b > a);
    assert_int_equal(ack_tracker_ack(t, b), 0);
    assert_int_equal(ack_tracker_confirmable(t), 300);
    ack_tracker_destroy(t);
}

/* Randomized: compare against a simple model that recomputes the watermark from scratch. */
static void test_random_against_model(void **state) {
    (void)state;
    enum { N = 3000 };
    static lsn_t end[N];
    static int left[N], failed[N];
    static uint64_t seqs[N];
    srand(12345);
    for (int round = 0; round < 20; round++) {
        ack_tracker_t *t = ack_tracker_new(1, N, 1000000);
        int ntx = 0;
        lsn_t lsn = 1;
        uint64_t pending[N * 4];
        int npend = 0;
        lsn_t last_conf = 1;
        for (int step = 0; step < 6000; step++) {
            int r = rand() % 10;
            if (r < 4 && ntx < N) {
                int n = rand() % 4;
                lsn += 1 + rand() % 50;
                seqs[ntx] = txn(t, n, lsn);
                end[ntx] = lsn;
                left[ntx] = n;
                failed[ntx] = 0;
                for (int i = 0; i < n; i++)
                    pending[npend++] = (uint64_t)ntx;
                ntx++;
            } else if (npend > 0) {
                int i = rand() % npend;
                int x = (int)pending[i];
                pending[i] = pending[--npend];
                int fail = rand() % 200 == 0;
                if (fail) {
                    failed[x] = 1;
                    assert_int_equal(ack_tracker_fail(t, seqs[x]), 0);
                } else {
                    assert_int_equal(ack_tracker_ack(t, seqs[x]), 0);
                }
                left[x]--;
            }
            /* Model: newest end such that all earlier txns are settled without failure. */
            lsn_t model = 1;
            for (int i = 0; i < ntx; i++) {
                if (left[i] > 0 || failed[i])
                    break;
                model = end[i];
            }
            lsn_t got = ack_tracker_confirmable(t);
            assert_int_equal(got, model);
            assert_true(got >= last_conf);
            last_conf = got;
        }
        ack_tracker_destroy(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_position),
        cmocka_unit_test(test_in_order_acks),
        cmocka_unit_test(test_out_of_order_acks),
        cmocka_unit_test(test_ack_before_commit),
        cmocka_unit_test(test_failure_never_advances),
        cmocka_unit_test(test_empty_txn_and_keepalive_idle),
        cmocka_unit_test(test_keepalive_during_acks_is_kept),
        cmocka_unit_test(test_empty_txn_behind_held),
        cmocka_unit_test(test_bad_reports),
        cmocka_unit_test(test_full_by_events_and_txns),
        cmocka_unit_test(test_open_txn_not_counted),
        cmocka_unit_test(test_seq_lsn),
        cmocka_unit_test(test_reset_forgets_old_reports),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests_name("ack_tracker", tests, NULL, NULL);
}
