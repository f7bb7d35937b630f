/* test_other_slots.c - unit tests for the pure part of other_slots.c: how the abandoned
 * wal2json slots are listed, and the statement that drops one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "other_slots.h"

static void test_list_and_drop(void **state) {
    (void)state;
    other_slot_t s[2] = {
        {.name = "outboxd_old", .database = "staging", .has_retained = true, .retained = 2469606195LL},
        {.name = "x", .database = "app", .has_retained = false, .wal_status = "lost"},
    };
    char buf[512], small[40];
    assert_string_equal(other_slots_list(s, 2, 2, buf, sizeof(buf)),
                        "\"outboxd_old\" (database staging, retains 2.3 GiB), \"x\" (database app, retains ?, "
                        "invalidated)");
    assert_string_equal(other_slots_list(s, 1, 5, buf, sizeof(buf)),
                        "\"outboxd_old\" (database staging, retains 2.3 GiB) and 4 more");
    other_slots_list(s, 2, 2, small, sizeof(small)); /* cut, never overrun */
    assert_true(strlen(small) < sizeof(small));
    assert_string_equal(other_slots_drop_statement(&s[0], buf, sizeof(buf)),
                        "SELECT pg_drop_replication_slot('outboxd_old');");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_list_and_drop)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
