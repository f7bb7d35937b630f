/* test_positions.c - unit tests for positions.c: which consumed message is taken, dropped
 * (unassigned, seen, held) or an offset regression; the stored position a new database
 * connection finds (resync); the SQL that sets a stored position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "positions.h"

static void test_parts_take_and_drop(void **state) {
    (void)state;
    positions_t *p = positions_new();
    assert_non_null(positions_add(p, "t", 0, POSITION_READY, -1));
    assert_non_null(positions_add(p, "t", 1, POSITION_READY, 100));
    assert_int_equal(positions_count(p), 2);

    assert_int_equal(positions_offer(p, "u", 0, 5, false), POSITION_DROP_UNASSIGNED);
    assert_int_equal(positions_offer(p, "t", 2, 5, false), POSITION_DROP_UNASSIGNED);
    /* No position yet: the first message sets it. */
    assert_int_equal(positions_offer(p, "t", 0, 7, false), POSITION_TAKE);
    assert_int_equal(positions_find(p, "t", 0)->next, 8);
    /* Consuming from next: an older offset means the log went back. */
    assert_int_equal(positions_offer(p, "t", 0, 7, false), POSITION_REGRESSED);
    assert_int_equal(positions_find(p, "t", 0)->next, 8); /* unchanged */
    /* Gaps (compaction, transaction markers) are fine. */
    assert_int_equal(positions_offer(p, "t", 0, 10, false), POSITION_TAKE);
    assert_int_equal(positions_find(p, "t", 0)->next, 11);
    /* Stored position 100, assigned there: an older message is a regression, not a redelivery. */
    assert_int_equal(positions_offer(p, "t", 1, 99, false), POSITION_REGRESSED);
    assert_int_equal(positions_offer(p, "t", 1, 100, false), POSITION_TAKE);

    positions_remove(p, "t", 0);
    assert_int_equal(positions_count(p), 1);
    assert_int_equal(positions_offer(p, "t", 0, 11, false), POSITION_DROP_UNASSIGNED);
    assert_int_equal(positions_at(p, 0)->partition, 1);
    positions_destroy(p);
}

static void test_parts_hold(void **state) {
    (void)state;
    positions_t *p = positions_new();
    position_t *a = positions_add(p, "t", 0, POSITION_READY, 50);
    assert_int_equal(positions_offer(p, "t", 0, 50, false), POSITION_TAKE);
    /* Database down: what still arrives is dropped; the position stays at 51. */
    assert_int_equal(positions_offer(p, "t", 0, 51, true), POSITION_DROP_HELD);
    assert_int_equal(positions_offer(p, "t", 0, 52, true), POSITION_DROP_HELD);
    a = positions_find(p, "t", 0);
    assert_int_equal(a->next, 51);
    assert_true(a->need_seek);
    /* Back, but the seek has not happened: still held (never a gap). */
    assert_int_equal(positions_offer(p, "t", 0, 53, false), POSITION_DROP_HELD);
    assert_int_equal(a->next, 51);
    a->need_seek = false; /* the seek to 51 succeeded */
    assert_int_equal(positions_offer(p, "t", 0, 51, false), POSITION_TAKE);

    /* Unknown position (assigned while the database was down): held; the first dropped
     * offset becomes the position to come back to. */
    position_t *b = positions_add(p, "t", 1, POSITION_UNKNOWN, -1);
    assert_int_equal(positions_offer(p, "t", 1, 300, false), POSITION_DROP_HELD);
    b = positions_find(p, "t", 1);
    assert_int_equal(b->next, 300);
    assert_true(b->need_seek);
    assert_int_equal(positions_offer(p, "t", 1, 301, false), POSITION_DROP_HELD);
    assert_int_equal(b->next, 300);
    assert_int_equal(positions_offer(p, "t", 1, 299, false), POSITION_DROP_SEEN);

    /* Re-adding resets the entry. */
    b = positions_add(p, "t", 1, POSITION_READY, 10);
    assert_false(b->need_seek);
    assert_int_equal(b->next, 10);
    assert_int_equal(b->recorded, 10);
    assert_int_equal(b->committed, -1);
    assert_int_equal(positions_count(p), 2);
    positions_destroy(p);
    positions_destroy(NULL);
}

/* Redeliveries below the stored position (Kafka's committed offset lags the table) happen
 * only before the seek to it; after the seek an older offset is an offset regression (topic
 * recreated, log truncated, out-of-range reset): never a silent drop. */
static void test_parts_regression(void **state) {
    (void)state;
    positions_t *p = positions_new();
    /* Assigned while PostgreSQL was down: started at Kafka's committed offset 40. */
    position_t *a = positions_add(p, "t", 0, POSITION_UNKNOWN, -1);
    assert_int_equal(positions_offer(p, "t", 0, 40, false), POSITION_DROP_HELD);
    /* The table says 100: the partition seeks there; until then older ones are redeliveries. */
    a = positions_find(p, "t", 0);
    a->state = POSITION_READY;
    a->next = 100;
    a->need_seek = true;
    assert_int_equal(positions_offer(p, "t", 0, 41, false), POSITION_DROP_SEEN);
    assert_int_equal(positions_offer(p, "t", 0, 42, true), POSITION_DROP_SEEN);
    /* Seeked to 100, and Kafka hands out 0: the log went back. Reported, nothing changed. */
    a->need_seek = false;
    assert_int_equal(positions_offer(p, "t", 0, 0, false), POSITION_REGRESSED);
    assert_int_equal(positions_offer(p, "t", 0, 0, false), POSITION_REGRESSED);
    assert_int_equal(a->next, 100);
    assert_false(a->need_seek);
    /* The same while holding: dropped, and the partition seeks back to 100 later (where the
     * check runs again). */
    assert_int_equal(positions_offer(p, "t", 0, 1, true), POSITION_DROP_HELD);
    assert_true(a->need_seek);
    assert_int_equal(a->next, 100);
    a->need_seek = false;
    /* Adopting the new offsets (inbox.on_offset_regression = reset): position 0, then taken. */
    a->next = 0;
    assert_int_equal(positions_offer(p, "t", 0, 0, false), POSITION_TAKE);
    assert_int_equal(positions_offer(p, "t", 0, 1, false), POSITION_TAKE);
    assert_int_equal(a->next, 2);

    /* Assigned without a stored position: whatever comes first is taken. */
    assert_non_null(positions_add(p, "t", 1, POSITION_READY, -1));
    assert_int_equal(positions_offer(p, "t", 1, 0, false), POSITION_TAKE);
    positions_destroy(p);
}

/* A new database connection finds the stored positions: the same as recorded (a restart
 * of the same server), behind (the last transactions lost in a failover), without a row
 * (even the row's creation lost), or ahead (another writer; a commit whose outcome was
 * unknown). */
static void test_parts_resync(void **state) {
    (void)state;
    positions_t *p = positions_new();
    int64_t rewound = -7;

    /* Loaded 100, took 100..149, recorded up to 150, 150..159 in the unwritten batch. */
    position_t *a = positions_add(p, "t", 0, POSITION_READY, 100);
    assert_int_equal(a->origin, 100);
    for (int64_t o = 100; o < 160; o++)
        assert_int_equal(positions_offer(p, "t", 0, o, false), POSITION_TAKE);
    a->recorded = 150;
    a->committed = 150;
    /* Same server, or a standby that had everything: nothing changes, the batch stays. */
    assert_false(positions_resync(a, 150, &rewound));
    assert_int_equal(rewound, 0);
    assert_int_equal(a->next, 160);
    assert_int_equal(a->recorded, 150);
    assert_int_equal(a->committed, 150);
    assert_false(a->need_seek);
    /* The new primary has 120: 30 recorded offsets are gone; consume again from 120, and
     * commit 120 to Kafka (committed reset). */
    assert_true(positions_resync(a, 120, &rewound));
    assert_int_equal(rewound, 30);
    assert_int_equal(a->next, 120);
    assert_int_equal(a->recorded, 120);
    assert_int_equal(a->committed, -1);
    assert_true(a->need_seek);
    /* Until the seek, what still arrives is not taken; older offsets are redeliveries. */
    assert_int_equal(positions_offer(p, "t", 0, 160, false), POSITION_DROP_HELD);
    assert_int_equal(positions_offer(p, "t", 0, 119, false), POSITION_DROP_SEEN);
    a->need_seek = false; /* the seek to 120 succeeded */
    assert_int_equal(positions_offer(p, "t", 0, 120, false), POSITION_TAKE);
    assert_int_equal(a->origin, 100);

    /* No row on the new primary although inboxd recorded up to 40 from origin 10 (the
     * partition had no stored position at assignment): back to where it started. */
    position_t *b = positions_add(p, "t", 1, POSITION_READY, -1);
    assert_int_equal(b->origin, -1);
    assert_int_equal(positions_offer(p, "t", 1, 10, false), POSITION_TAKE);
    assert_int_equal(b->origin, 10);
    b->recorded = 40;
    assert_true(positions_resync(b, -1, &rewound));
    assert_int_equal(rewound, 30);
    assert_int_equal(b->next, 10);
    assert_int_equal(b->recorded, -1);
    assert_true(b->need_seek);
    /* Again without a row: nothing changes now. */
    assert_false(positions_resync(b, -1, &rewound));
    assert_int_equal(rewound, 0);

    /* Nothing recorded yet, no row: the batch is still valid. */
    position_t *c = positions_add(p, "t", 2, POSITION_READY, -1);
    assert_int_equal(positions_offer(p, "t", 2, 5, false), POSITION_TAKE);
    assert_false(positions_resync(c, -1, &rewound));
    assert_int_equal(c->next, 6);
    assert_false(c->need_seek);
    /* Ahead (another writer recorded up to 80): continue from there, nothing rewound. */
    assert_true(positions_resync(c, 80, &rewound));
    assert_int_equal(rewound, 0);
    assert_int_equal(c->next, 80);
    assert_int_equal(c->recorded, 80);
    assert_true(c->need_seek);
    positions_destroy(p);
}

static void test_position_sql(void **state) {
    (void)state;
    char buf[256];
    positions_set_sql(buf, sizeof(buf), "public.inbox_offsets", "it's", "orders", 3, 1200);
    assert_string_equal(buf, "UPDATE public.inbox_offsets SET next_offset = 1200 WHERE consumer_group = 'it''s' "
                             "AND topic = 'orders' AND partition = 3;");
    char small[20];
    positions_set_sql(small, sizeof(small), "public.inbox_offsets", "g", "t", 0, 0);
    assert_int_equal(strlen(small), sizeof(small) - 1); /* cut, terminated */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_take_and_drop), cmocka_unit_test(test_parts_hold),
        cmocka_unit_test(test_parts_regression),    cmocka_unit_test(test_parts_resync),
        cmocka_unit_test(test_position_sql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
