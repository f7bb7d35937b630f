/* test_headers_json.c - unit tests for headers_json.c: Kafka headers as the JSON of inbox.headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "headers_json.h"

static void test_headers_json(void **state) {
    (void)state;
    char *j = headers_json_encode(NULL, 0);
    assert_string_equal(j, "{}");
    free(j);

    kmsg_header_t h[] = {{"id", "e1", 2},        {"event_type", "OrderPlaced", 11}, {"n", NULL, 0},
                         {"bin", "\xff\x00", 2}, {"quote", "a\"b\\c\n", 6},         {"id", "e2", 2}};
    j = headers_json_encode(h, 6);
    assert_string_equal(j, "{\"id\":\"e2\",\"event_type\":\"OrderPlaced\",\"n\":null,\"bin\":\"\\\\xff00\","
                           "\"quote\":\"a\\\"b\\\\c\\n\"}");
    free(j);

    kmsg_header_t h2[] = {{"\xff", "v", 1}, {"", "empty name", 10}};
    j = headers_json_encode(h2, 2);
    assert_string_equal(j, "{\"\\\\xff\":\"v\",\"\":\"empty name\"}");
    free(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
