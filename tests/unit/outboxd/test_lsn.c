/* test_lsn.c - unit tests for lsn.c: parsing and formatting the "X/Y" LSN text form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "lsn.h"

static void test_parse_valid(void **state) {
    (void)state;
    static const struct {
        const char *text;
        lsn_t value;
    } cases[] = {
        {"0/0", 0},
        {"0/1", 1},
        {"16/B374D848", 0x16B374D848ULL},
        {"16/b374d848", 0x16B374D848ULL},
        {"1/0", 0x100000000ULL},
        {"FFFFFFFF/FFFFFFFF", UINT64_MAX},
        {"00000000/00000001", 1},
        {"DEADBEEF/0", 0xDEADBEEF00000000ULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lsn_t v = 12345;
        assert_int_equal(lsn_parse(cases[i].text, &v), 0);
        assert_true(v == cases[i].value);
    }
}

static void test_parse_invalid(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",      "/",     "0/",    "/0",   "0",    "16B374D848", "1/2/3", "123456789/0", "0/123456789",
        "0x1/2", "1/0x2", " 1/2",  "1/2 ", "1 /2", "1/ 2",       "+1/2",  "-1/2",        "1/-2",
        "g/1",   "1/g",   "1/2\n", "1\\2", "1:2",  "1/2x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lsn_t v = 777;
        if (lsn_parse(bad[i], &v) != -1)
            fail_msg("lsn_parse accepted '%s'", bad[i]);
        assert_true(v == 777); /* untouched on failure */
    }
    assert_int_equal(lsn_parse(NULL, NULL), -1);
}

static void test_format(void **state) {
    (void)state;
    char buf[LSN_FMT_SIZE];

    assert_string_equal(lsn_format(0, buf), "0/0");
    assert_string_equal(lsn_format(0x16B374D848ULL, buf), "16/B374D848");
    assert_string_equal(lsn_format(0x100000000ULL, buf), "1/0");
    assert_string_equal(lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
    assert_int_equal(strlen(buf) + 1, LSN_FMT_SIZE);
    assert_ptr_equal(lsn_format(1, buf), buf);
}

static void test_roundtrip(void **state) {
    (void)state;
    static const lsn_t values[] = {
        0, 1, 0xFF, 0x1234ABCDULL, 0x1234ABCD00000000ULL, 0xFFFFFFFF00000000ULL, 0x00000000FFFFFFFFULL, UINT64_MAX - 1};
    char buf[LSN_FMT_SIZE];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        lsn_t back = 0;
        assert_int_equal(lsn_parse(lsn_format(values[i], buf), &back), 0);
        assert_true(back == values[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
