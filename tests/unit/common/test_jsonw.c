/* test_jsonw.c - unit tests of jsonw.c: shortest round-trip reals in PostgreSQL's float8
 * style, JSON string escapes, compact JSON of parsed values, and the JsonConverter (Jackson)
 * string and base64 forms, checked against recorded Debezium output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

static void check_real(double v, const char *text) {
    char buf[48];
    int n = jsonw_format_real(v, buf, sizeof(buf));

    if (n < 0 || strcmp(buf, text) != 0)
        fail_msg("%.17g: got \"%s\" (%d), expected \"%s\"", v, n < 0 ? "" : buf, n, text);
    assert_int_equal(n, (int)strlen(text));
    assert_true(strtod(buf, NULL) == v); /* reads back as the same double */
}

static void test_format_real(void **state) {
    char small[4];

    (void)state;
    check_real(0.1, "0.1"); /* jansson's dumper: 0.10000000000000001 */
    check_real(19.99, "19.99");
    check_real(1e3, "1000");
    check_real(0.0, "0");
    check_real(-0.0, "-0");
    check_real(1.5, "1.5");
    check_real(-12.25, "-12.25");
    check_real(0.0001, "0.0001"); /* exponent -4: still plain */
    check_real(0.00001, "1e-05");
    check_real(123456789012345.0, "123456789012345"); /* exponent 14: still plain */
    check_real(1e15, "1e+15");
    check_real(1.5e300, "1.5e+300");
    check_real(-1e300, "-1e+300");
    check_real(1234567890.1234, "1234567890.1234");
    check_real(0.30000000000000004, "0.30000000000000004"); /* 17 digits when needed */
    check_real(5e-324, "5e-324");
    assert_int_equal(jsonw_format_real(0.125, small, sizeof(small)), -1); /* does not fit */
}

static void check_string(const char *s, size_t n, const char *json) {
    strbuf_t b = {0};

    assert_int_equal(jsonw_string(&b, s, n), 0);
    assert_int_equal(b.len, strlen(json));
    assert_string_equal(b.p, json);
    strbuf_free(&b);
}

static void test_string(void **state) {
    (void)state;
    check_string("", 0, "\"\"");
    check_string("plain", 5, "\"plain\"");
    check_string("q\"b\\", 4, "\"q\\\"b\\\\\"");
    check_string("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
    check_string("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\""); /* DEL is not a control character in JSON */
    check_string("a\0b", 3, "\"a\\u0000b\"");
    check_string("/caf\xc3\xa9", 6, "\"/caf\xc3\xa9\""); /* UTF-8 and '/' as they are */
}

static void check_value(const char *in, const char *out) {
    json_error_t jerr;
    json_t *v = json_loads(in, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    strbuf_t b = {0};

    if (v == NULL)
        fail_msg("\"%s\": %s", in, jerr.text);
    assert_int_equal(jsonw_value(&b, v), 0);
    if (strcmp(b.p, out) != 0)
        fail_msg("\"%s\": got \"%s\", expected \"%s\"", in, b.p, out);
    json_decref(v);
    strbuf_free(&b);
}

static void test_value(void **state) {
    (void)state;
    check_value("{\"b\": 1, \"a\": 2}", "{\"b\":1,\"a\":2}"); /* member order kept */
    check_value("{\"z\":[0.1, 19.99, 1e3, -0.0, true, false, null], \"e\":{}, \"f\":[]}",
                "{\"z\":[0.1,19.99,1000,-0,true,false,null],\"e\":{},\"f\":[]}");
    check_value("\"q\\\"\\\\\\n\\t\\u0001\\u00e9/\"", "\"q\\\"\\\\\\n\\t\\u0001\xc3\xa9/\"");
    check_value("-9223372036854775808", "-9223372036854775808");
    check_value("1.5e300", "1.5e+300");
    check_value("null", "null");
    check_value("{\"a\":{\"b\":{\"c\":[[1],[2,{\"d\":\"x\"}]]}}}", "{\"a\":{\"b\":{\"c\":[[1],[2,{\"d\":\"x\"}]]}}}");
}

/* Appends after what the buffer holds. */
static void test_appends(void **state) {
    strbuf_t b = {0};
    json_t *v = json_integer(42);

    (void)state;
    assert_int_equal(strbuf_add(&b, "x=", 2), 0);
    assert_int_equal(jsonw_value(&b, v), 0);
    assert_int_equal(jsonw_string(&b, "s", 1), 0);
    assert_string_equal(b.p, "x=42\"s\"");
    json_decref(v);
    strbuf_free(&b);
}

static void check_java(const char *in, size_t n, const char *want) {
    strbuf_t b = {0};

    assert_int_equal(jsonw_java_string(&b, in, n), 0);
    if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
        fail_msg("got %.*s, expected %s", (int)b.len, b.p, want);
    strbuf_free(&b);
}

static void test_java_string(void **state) {
    (void)state;
    check_java("", 0, "\"\"");
    check_java("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    check_java("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
    check_java("\x01\x1f\x7f", 3, "\"\\u0001\\u001F\x7f\""); /* upper-case hex; DEL as is */
    check_java("\0x", 2, "\"\\u0000x\"");
    check_java("\xC3\xA9 \xE2\x80\xA8 \xEF\xBF\xBF", 10, "\"\xC3\xA9 \xE2\x80\xA8 \xEF\xBF\xBF\""); /* BMP: as is */
    check_java("\xF0\x9F\x98\x80", 4, "\"\\uD83D\\uDE00\"");                                        /* U+1F600 */
    check_java("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", 8, "\"\\uD800\\uDC00\\uDBFF\\uDFFF\"");          /* ends */
    check_java("\xF0\x9F\x98", 3, "\"\xF0\x9F\x98\"");         /* cut short: bytes as they are */
    check_java("\xF5\x80\x80\x80", 4, "\"\xF5\x80\x80\x80\""); /* beyond U+10FFFF */
}

static void test_base64_string(void **state) {
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {{"", 0, "\"\""},        {"f", 1, "\"Zg==\""},        {"fo", 2, "\"Zm8=\""},
                 {"foo", 3, "\"Zm9v\""}, {"foob", 4, "\"Zm9vYg==\""}, {"\0\xff\xfe", 3, "\"AP/+\""}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_t b = {0};
        assert_int_equal(jsonw_base64_string(&b, (const unsigned char *)cases[i].in, cases[i].n), 0);
        assert_int_equal(strbuf_addc(&b, '\0'), 0);
        assert_string_equal(b.p, cases[i].want);
        strbuf_free(&b);
    }
}

/* The bytes of a fixture value: {"utf8": text} (base64 values are not used here), or NULL. */
static const char *fixture_bytes(const json_t *v, size_t *len) {
    const json_t *t = json_object_get(v, "utf8");

    *len = t ? json_string_length(t) : 0;
    return t ? json_string_value(t) : NULL;
}

/* tests/data/debezium/records.json: what Debezium 3.1.3 sent for the same rows with
 * StringConverter ("string") and with JsonConverter, schemas.enable=false ("json"). The json
 * key and value of each event are jsonw_java_string of the string ones; a NULL payload is the
 * 4 bytes null there. */
static void test_java_string_matches_recorded_debezium(void **state) {
    json_error_t jerr;
    json_t *doc = json_load_file(TEST_DATA_DIR "/debezium/records.json", 0, &jerr);
    size_t checked = 0;

    (void)state;
    if (doc == NULL)
        fail_msg("records.json: %s", jerr.text);
    const json_t *settings = json_object_get(doc, "settings");
    const json_t *str = json_object_get(settings, "string"), *js = json_object_get(settings, "json");
    assert_true(json_array_size(str) > 0 && json_array_size(str) == json_array_size(js));
    for (size_t i = 0; i < json_array_size(str); i++) {
        const json_t *s = json_array_get(str, i), *j = json_array_get(js, i);
        assert_string_equal(json_string_value(json_object_get(s, "id")), json_string_value(json_object_get(j, "id")));
        const char *fields[] = {"key", "value"};
        for (size_t f = 0; f < 2; f++) {
            size_t slen, jlen;
            const char *sv = fixture_bytes(json_object_get(s, fields[f]), &slen);
            const char *jv = fixture_bytes(json_object_get(j, fields[f]), &jlen);
            strbuf_t b = {0};

            if (sv == NULL)
                assert_int_equal(strbuf_add(&b, "null", 4), 0);
            else
                assert_int_equal(jsonw_java_string(&b, sv, slen), 0);
            if (jv == NULL || b.len != jlen || memcmp(b.p, jv, jlen) != 0)
                fail_msg("event %s %s: got %.*s, Debezium sent %s", json_string_value(json_object_get(s, "id")),
                         fields[f], (int)b.len, b.p, jv ? jv : "no value");
            strbuf_free(&b);
            checked++;
        }
    }
    assert_true(checked >= 40);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_java_string),
        cmocka_unit_test(test_base64_string),
        cmocka_unit_test(test_java_string_matches_recorded_debezium),
        cmocka_unit_test(test_format_real),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
