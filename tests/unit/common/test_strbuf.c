/* test_strbuf.c - unit tests of strbuf.c: appending, the NUL after the contents, growth,
 * reuse and overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static void test_add(void **state) {
    strbuf_t b = {0};

    (void)state;
    assert_int_equal(strbuf_add(&b, "", 0), 0); /* allocates: p[0] is the NUL */
    assert_non_null(b.p);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    assert_int_equal(strbuf_add(&b, "ab", 2), 0);
    assert_int_equal(strbuf_addc(&b, 'c'), 0);
    assert_int_equal(strbuf_add(&b, "d\0e", 3), 0); /* NUL bytes are contents too */
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.p, "abcd\0e", 7);
    b.len = 0; /* reuse */
    assert_int_equal(strbuf_add(&b, "x", 1), 0);
    assert_string_equal(b.p, "x");
    strbuf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    strbuf_free(&b); /* twice is fine */
    strbuf_free(NULL);
}

static void test_growth(void **state) {
    strbuf_t b = {0};
    char *big = malloc(100000);

    (void)state;
    assert_non_null(big);
    memset(big, 'z', 100000);
    for (int i = 0; i < 10; i++)
        assert_int_equal(strbuf_add(&b, big, 10000), 0);
    assert_int_equal(b.len, 100000);
    assert_memory_equal(b.p, big, 100000);
    assert_int_equal(b.p[b.len], '\0');
    assert_true(b.cap > b.len);

    /* reserve: room for that many more bytes and the NUL, len unchanged */
    assert_int_equal(strbuf_reserve(&b, 300000), 0);
    assert_true(b.cap >= b.len + 300000 + 1);
    assert_int_equal(b.len, 100000);
    assert_int_equal(strbuf_reserve(&b, SIZE_MAX - 5), -1); /* would overflow */
    assert_int_equal(b.len, 100000);
    free(big);
    strbuf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
