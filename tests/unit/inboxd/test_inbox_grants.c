/* test_inbox_grants.c - unit tests for the pure part of inbox_grants.c: which privileges each
 * inboxd command needs, and the GRANT statements and lists that name them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "inbox_grants.h"

static void test_needed_per_command(void **state) {
    (void)state;
    inbox_grant_t g[INBOX_GRANTS_MAX];
    char buf[2048];

    size_t n = inbox_grants_needed(INBOX_NEEDS_STATUS, "public.inbox", NULL, "public", g);
    assert_int_equal(n, 1);
    assert_string_equal(inbox_grants_list(g, n, buf, sizeof(buf)), "SELECT on public.inbox");

    /* requeue: a column-level UPDATE and the function. */
    n = inbox_grants_needed(INBOX_NEEDS_REQUEUE, "public.inbox", NULL, "public", g);
    assert_int_equal(n, 3);
    assert_string_equal(inbox_grants_list(g, n, buf, sizeof(buf)),
                        "SELECT on public.inbox; UPDATE (" INBOX_REQUEUE_COLUMNS
                        ") on public.inbox; EXECUTE on public.inbox_requeue_dead(text)");

    /* The daemon with SQL handoff: the tables only; the offsets table only when named. */
    n = inbox_grants_needed(INBOX_NEEDS_INGEST, "public.inbox", "public.inbox_offsets", "public", g);
    assert_string_equal(inbox_grants_statements(g, n, "inboxd", buf, sizeof(buf)),
                        "GRANT SELECT, INSERT, DELETE ON public.inbox TO \"inboxd\"; "
                        "GRANT SELECT, INSERT, UPDATE ON public.inbox_offsets TO \"inboxd\";");
    assert_int_equal(inbox_grants_needed(INBOX_NEEDS_INGEST, "public.inbox", NULL, "public", g), 3);
}

static void test_push_covers_requeue(void **state) {
    (void)state;
    inbox_grant_t g[INBOX_GRANTS_MAX];
    char buf[2048];
    /* A whole-table UPDATE (push) covers the requeue's column-level one: listed once. */
    size_t n = inbox_grants_needed(INBOX_NEEDS_REQUEUE | INBOX_NEEDS_PUSH, "app.\"InBox\"", NULL, "app", g);
    assert_string_equal(inbox_grants_statements(g, n, "in\"boxd", buf, sizeof(buf)),
                        "GRANT SELECT, UPDATE ON app.\"InBox\" TO \"in\"\"boxd\"; "
                        "GRANT EXECUTE ON FUNCTION app.inbox_claim(integer, interval) TO \"in\"\"boxd\"; "
                        "GRANT EXECUTE ON FUNCTION app.inbox_complete(text) TO \"in\"\"boxd\"; "
                        "GRANT EXECUTE ON FUNCTION app.inbox_fail(text, text, integer, interval, interval) TO "
                        "\"in\"\"boxd\"; "
                        "GRANT EXECUTE ON FUNCTION app.inbox_requeue_dead(text) TO \"in\"\"boxd\";");
    for (size_t i = 0; i < n; i++)
        assert_null(g[i].columns);
}

static void test_missing_subset_and_truncation(void **state) {
    (void)state;
    inbox_grant_t g[INBOX_GRANTS_MAX];
    char buf[2048], small[24];
    size_t n = inbox_grants_needed(INBOX_NEEDS_REQUEUE, "public.inbox", NULL, "public", g);
    /* Only the column UPDATE (as a lookup would report it). */
    assert_string_equal(inbox_grants_statements(&g[1], 1, "r", buf, sizeof(buf)),
                        "GRANT UPDATE (" INBOX_REQUEUE_COLUMNS ") ON public.inbox TO \"r\";");
    assert_string_equal(inbox_grants_statements(g, 0, "r", buf, sizeof(buf)), "");
    /* A short buffer is cut, never overrun. */
    inbox_grants_statements(g, n, "r", small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_needed_per_command),
        cmocka_unit_test(test_push_covers_requeue),
        cmocka_unit_test(test_missing_subset_and_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
