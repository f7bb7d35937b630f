/* test_strlist.c - unit tests for strlist.c: comma-separated lists split and trimmed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "strlist.h"

static void test_split(void **state) {
    (void)state;
    size_t n = 99;
    char **l = strlist_split(" a, b.c ,,^re.*,  ", &n);
    assert_int_equal(n, 3);
    assert_string_equal(l[0], "a");
    assert_string_equal(l[1], "b.c");
    assert_string_equal(l[2], "^re.*");
    assert_null(l[3]);
    strlist_free(l);
    l = strlist_split("", &n);
    assert_int_equal(n, 0);
    assert_null(l[0]);
    strlist_free(l);
    strlist_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
