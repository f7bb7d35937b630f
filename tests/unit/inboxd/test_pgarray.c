/* test_pgarray.c - unit tests for pgarray.c: PostgreSQL binary arrays (empty, NULLs, int4, int8,
 * growth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pgarray.h"
#include "pgarray_read.h"

static void test_pgarray(void **state) {
    (void)state;
    pgarray_t a;
    pgarray_init(&a, PGARRAY_OID_INT4);
    assert_int_equal(pgarray_finish(&a), 0);
    assert_int_equal(a.len, 12);
    assert_int_equal(get32(a.data), 0);
    assert_int_equal(get32(a.data + 8), PGARRAY_OID_INT4);
    pgarray_free(&a);

    pgarray_init(&a, PGARRAY_OID_INT4);
    pgarray_add_int4(&a, -1);
    pgarray_add(&a, NULL, 0);
    pgarray_add_int4(&a, 0x7fffffff);
    assert_int_equal(pgarray_finish(&a), 0);
    const char *v[3];
    int32_t l[3];
    assert_int_equal(decode_array(&a, PGARRAY_OID_INT4, v, l, 3), 3);
    assert_int_equal(get32(v[0]), 0xffffffffu);
    assert_null(v[1]);
    assert_int_equal(get32(v[2]), 0x7fffffff);
    pgarray_free(&a);
    pgarray_free(&a); /* twice is fine */

    pgarray_init(&a, PGARRAY_OID_INT8);
    pgarray_add_int8(&a, -2);
    assert_int_equal(pgarray_finish(&a), 0);
    assert_int_equal(decode_array(&a, PGARRAY_OID_INT8, v, l, 3), 1);
    assert_int_equal(get32(v[0]), 0xffffffffu);
    assert_int_equal(get32(v[0] + 4), 0xfffffffeu);
    pgarray_free(&a);

    /* Large arrays grow. */
    pgarray_init(&a, PGARRAY_OID_TEXT);
    for (int i = 0; i < 10000; i++)
        pgarray_add(&a, "0123456789", 10);
    assert_int_equal(pgarray_finish(&a), 0);
    assert_int_equal(a.len, 20 + 10000 * 14);
    pgarray_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pgarray),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
