/* test_partition_fence.c - the confirm fence of a wal2json stream over a partitioned outbox:
 * commits wait for a poll that shows them finished with the stream's partitions, keepalives
 * move it only when nothing waits, other partitions ask for a restart, xids wrap, snapshots
 * parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "partition_fence.h"

/* A poll that saw `unknown` partitions the stream does not read. */
static partition_snapshot_t snap(const char *text, uint32_t unknown) {
    static partition_snapshot_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(partition_fence_parse_snapshot(text, &s), 0);
    s.unknown = unknown;
    return s;
}

static void test_commits_wait_for_a_covering_poll(void **state) {
    (void)state;
    partition_fence_t *f = partition_fence_new(8);
    partition_fence_reset(f, 0x100);
    assert_true(partition_fence_position(f) == 0x100);
    partition_fence_keepalive(f, 0x150); /* no poll yet: nothing is known */
    assert_true(partition_fence_position(f) == 0x100);
    assert_int_equal(partition_fence_commit(f, 1000, 0x200), 0);
    assert_int_equal(partition_fence_commit(f, 1002, 0x300), 0);
    assert_int_equal(partition_fence_commit(f, 1001, 0x400), 0);
    assert_int_equal(partition_fence_pending(f), 3);
    /* 1001 still running when the poll was taken: the fence stops before it */
    partition_snapshot_t s = snap("999:1003:1001", 0);
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_SAME);
    assert_true(partition_fence_position(f) == 0x300);
    assert_int_equal(partition_fence_pending(f), 1);
    partition_fence_keepalive(f, 0x500); /* 1001 waits: no move */
    assert_true(partition_fence_position(f) == 0x300);
    s = snap("1003:1003:", 0);
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_SAME);
    assert_true(partition_fence_position(f) == 0x500); /* the keepalive seen since */
    /* with nothing waiting, a commit the last poll covers passes at once (a backlog) */
    assert_int_equal(partition_fence_commit(f, 1002, 0x600), 0);
    assert_true(partition_fence_position(f) == 0x600);
    assert_int_equal(partition_fence_commit(f, 1003, 0x700), 0); /* started after the poll */
    assert_true(partition_fence_position(f) == 0x600);
    partition_fence_keepalive(f, 0x800);
    assert_true(partition_fence_position(f) == 0x600);
    partition_fence_destroy(f);
    partition_fence_destroy(NULL);
}

static void test_other_partitions_ask_for_a_restart(void **state) {
    (void)state;
    partition_fence_t *f = partition_fence_new(8);
    partition_fence_reset(f, 0x100);
    assert_int_equal(partition_fence_commit(f, 1000, 0x200), 0);
    partition_snapshot_t s = snap("1001:1001:", 1);
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_CHANGED);
    assert_true(partition_fence_position(f) == 0x100); /* never past the transaction */
    /* the restarted stream reads the new partition too: the same partitions are all known */
    partition_fence_reset(f, 0x100);
    assert_int_equal(partition_fence_commit(f, 1000, 0x200), 0);
    assert_true(partition_fence_position(f) == 0x100); /* no poll of this stream yet */
    s.unknown = 0;
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_SAME);
    assert_true(partition_fence_position(f) == 0x200);
    /* an overflowing snapshot is ignored */
    s.overflow = true;
    s.unknown = 7;
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_SAME);
    partition_fence_destroy(f);
}

static void test_full_and_wraparound(void **state) {
    (void)state;
    partition_fence_t *f = partition_fence_new(2);
    partition_fence_reset(f, 0);
    /* xmax just past a 32-bit wrap: 0xFFFFFFF0 was assigned before it, 5 after */
    uint64_t epoch1 = 1ULL << 32;
    assert_int_equal(partition_fence_commit(f, 0xFFFFFFF0u, 0x10), 0);
    assert_int_equal(partition_fence_commit(f, 5, 0x20), 0);
    assert_true(partition_fence_full(f));
    char text[80];
    snprintf(text, sizeof(text), "%llu:%llu:", (unsigned long long)(epoch1 - 20), (unsigned long long)(epoch1 + 3));
    partition_snapshot_t s = snap(text, 0);
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_SAME);
    assert_true(partition_fence_position(f) == 0x10); /* 5 is epoch1 + 5 >= xmax */
    snprintf(text, sizeof(text), "%llu:%llu:%llu", (unsigned long long)(epoch1 + 2), (unsigned long long)(epoch1 + 9),
             (unsigned long long)(epoch1 + 5));
    s = snap(text, 0);
    partition_fence_apply(f, &s);
    assert_true(partition_fence_position(f) == 0x10); /* still in progress */
    snprintf(text, sizeof(text), "%llu:%llu:", (unsigned long long)(epoch1 + 9), (unsigned long long)(epoch1 + 9));
    partition_snapshot_t done = snap(text, 0);
    partition_fence_apply(f, &done);
    assert_true(partition_fence_position(f) == 0x20);
    /* a commit that does not fit: the fence stays, the next poll asks for a restart */
    assert_int_equal(partition_fence_commit(f, 20, 0x30), 0);
    assert_int_equal(partition_fence_commit(f, 21, 0x40), 0);
    assert_int_equal(partition_fence_commit(f, 22, 0x50), -1);
    snprintf(text, sizeof(text), "%llu:%llu:", (unsigned long long)(epoch1 + 30), (unsigned long long)(epoch1 + 30));
    s = snap(text, 0);
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_CHANGED);
    assert_true(partition_fence_position(f) == 0x20);
    partition_fence_reset(f, 0x20);
    assert_int_equal(partition_fence_apply(f, &s), PARTITION_FENCE_SAME);
    partition_fence_destroy(f);
}

static void test_parse(void **state) {
    (void)state;
    partition_snapshot_t s;
    assert_int_equal(partition_fence_parse_snapshot("10:20:11,15,19", &s), 0);
    assert_true(s.xmax == 20 && s.nxip == 3 && s.xip[2] == 19 && !s.overflow);
    assert_int_equal(partition_fence_parse_snapshot("10:20:", &s), 0);
    assert_int_equal(s.nxip, 0);
    assert_int_equal(partition_fence_parse_snapshot("10", &s), -1);
    assert_int_equal(partition_fence_parse_snapshot("10:x:", &s), -1);
    assert_int_equal(partition_fence_parse_snapshot("10:20:1,,2", &s), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commits_wait_for_a_covering_poll),
        cmocka_unit_test(test_other_partitions_ask_for_a_restart),
        cmocka_unit_test(test_full_and_wraparound),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
