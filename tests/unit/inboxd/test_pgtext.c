/* test_pgtext.c - unit tests for pgtext.c: which bytes are PostgreSQL text, the "\\x"-hex form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "pgtext.h"

static void test_is_text(void **state) {
    (void)state;
    assert_true(pgtext_is_text("", 0));
    assert_true(pgtext_is_text("abc", 3));
    assert_true(pgtext_is_text("\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", 8)); /* ключ */
    assert_true(pgtext_is_text("\xe2\x82\xac", 3));                     /* € */
    assert_true(pgtext_is_text("\xf0\x9f\x98\x80", 4));                 /* U+1F600 */
    assert_true(pgtext_is_text("\xf4\x8f\xbf\xbf", 4));                 /* U+10FFFF */
    assert_false(pgtext_is_text("a\0b", 3));                            /* NUL */
    assert_false(pgtext_is_text("\xff", 1));
    assert_false(pgtext_is_text("\x80", 1));             /* lone continuation */
    assert_false(pgtext_is_text("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(pgtext_is_text("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(pgtext_is_text("\xf0\x80\x80\xaf", 4)); /* overlong */
    assert_false(pgtext_is_text("\xed\xa0\x80", 3));     /* surrogate D800 */
    assert_false(pgtext_is_text("\xf4\x90\x80\x80", 4)); /* U+110000 */
    assert_false(pgtext_is_text("\xe2\x82", 2));         /* truncated */
    assert_false(pgtext_is_text("\xe2\x28\xa1", 3));     /* bad continuation */
}

static void test_hex(void **state) {
    (void)state;
    char *s = pgtext_hex("\x01\xff\x00z", 4);
    assert_string_equal(s, "\\x01ff007a");
    free(s);
    s = pgtext_hex("", 0);
    assert_string_equal(s, "\\x");
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_text),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
