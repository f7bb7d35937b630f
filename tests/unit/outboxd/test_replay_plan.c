/* test_replay_plan.c - unit tests for replay_plan.c: what `outboxd replay` does with a
 * dead-letter record, read from its headers (also those of an outboxd before outboxd.reason
 * and outboxd.topic), and which records a selection takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "replay_plan.h"

static void test_plan(void **state) {
    (void)state;
    char why[512];
    dlq_record_t refused = {.id = "e1", .reason = "unknown-topic", .topic = "outbox.event.invoice"};
    assert_int_equal(replay_plan(&refused, why, sizeof(why)), REPLAY_AS_IS);
    assert_int_equal(replay_reason_of(&refused), DEAD_LETTER_UNKNOWN_TOPIC);

    dlq_record_t unroutable = {.id = "e2", .reason = "unroutable"};
    assert_int_equal(replay_plan(&unroutable, why, sizeof(why)), REPLAY_REROUTE);

    dlq_record_t big = {.id = "e3", .reason = "too-large", .topic = "t", .value_size = "30021"};
    assert_int_equal(replay_plan(&big, why, sizeof(why)), REPLAY_IMPOSSIBLE);
    assert_non_null(strstr(why, "its value was not kept (30021 bytes"));

    /* Records of an outboxd before outboxd.reason and outboxd.topic. */
    dlq_record_t old_big = {.id = "e4", .value_size = "9000"};
    assert_int_equal(replay_reason_of(&old_big), DEAD_LETTER_TOO_LARGE);
    assert_int_equal(replay_plan(&old_big, why, sizeof(why)), REPLAY_IMPOSSIBLE);
    dlq_record_t old = {.id = "e5", .error = "bad topic name"};
    assert_int_equal(replay_reason_of(&old), DEAD_LETTER_UNROUTABLE);
    assert_int_equal(replay_plan(&old, why, sizeof(why)), REPLAY_REROUTE);
    dlq_record_t old_refused = {.id = "e6", .reason = "refused"};
    assert_int_equal(replay_plan(&old_refused, why, sizeof(why)), REPLAY_IMPOSSIBLE);
    assert_non_null(strstr(why, "no outboxd.topic header"));
}

static void test_selection(void **state) {
    (void)state;
    dlq_record_t a = {.id = "e1", .reason = "unknown-topic", .topic = "t"}, b = {.id = "e2", .reason = "unroutable"},
                 c = {.id = NULL, .reason = "refused", .topic = "t"};
    replay_selection_t all = {.all = true};
    assert_true(replay_selected(&all, &a) && replay_selected(&all, &c));
    const char *ids[] = {"e2", "nope"};
    replay_selection_t by_id = {.ids = ids, .nids = 2};
    assert_false(replay_selected(&by_id, &a));
    assert_true(replay_selected(&by_id, &b));
    assert_false(replay_selected(&by_id, &c)); /* no id header */
    dead_letter_reason_t reasons[] = {DEAD_LETTER_UNKNOWN_TOPIC, DEAD_LETTER_REFUSED};
    replay_selection_t by_reason = {.reasons = reasons, .nreasons = 2};
    assert_true(replay_selected(&by_reason, &a) && replay_selected(&by_reason, &c));
    assert_false(replay_selected(&by_reason, &b));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_plan), cmocka_unit_test(test_selection)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
