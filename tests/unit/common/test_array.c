/* test_array.c - unit tests for array.c: growing by doubling, keeping the array on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "array.h"

static void test_grow(void **state) {
    (void)state;
    size_t cap = 0;
    int *v = array_grow(NULL, &cap, 0, sizeof(int), 0);
    assert_non_null(v); /* memory even for nothing: NULL means out of memory only */
    assert_int_equal(cap, 1);
    v = array_grow(v, &cap, 1, sizeof(int), 4);
    assert_int_equal(cap, 1); /* room already */
    v[0] = 7;
    v = array_grow(v, &cap, 2, sizeof(int), 4);
    assert_non_null(v);
    assert_int_equal(cap, 2); /* doubled */
    assert_int_equal(v[0], 7);
    v = array_grow(v, &cap, 9, sizeof(int), 4);
    assert_int_equal(cap, 16);
    for (int i = 0; i < 9; i++)
        v[i] = i;
    free(v);

    cap = 0;
    v = array_grow(NULL, &cap, 3, sizeof(int), 256);
    assert_int_equal(cap, 256); /* first */
    free(v);
}

static void test_overflow(void **state) {
    (void)state;
    size_t cap = 4;
    int *v = malloc(4 * sizeof(int));
    assert_non_null(v);
    v[3] = 3;
    assert_null(array_grow(v, &cap, SIZE_MAX / 2 + 2, sizeof(int), 4));
    assert_null(array_grow(v, &cap, SIZE_MAX / sizeof(int) + 1, sizeof(int), 4));
    assert_int_equal(cap, 4); /* unchanged, and v still valid */
    assert_int_equal(v[3], 3);
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
