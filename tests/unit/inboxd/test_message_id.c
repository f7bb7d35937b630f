/* test_message_id.c - unit tests for message_id.c: ids from a header (text, bytes as hex,
 * SHA-256 of ids too long to index) or from topic/partition/offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmsg_fixture.h"
#include "message_id.h"

static void test_msgid_header(void **state) {
    (void)state;
    kmsg_header_t h[] = {{"event_type", "X", 1}, {"id", "abc-1", 5}};
    kmsg_t m = msg("orders", 2, 1234, h, 2);
    char *id = message_id_of(&m, "id");
    assert_string_equal(id, "abc-1");
    free(id);

    /* The last non-empty header of that name wins (Kafka's lastHeader). */
    kmsg_header_t h2[] = {{"id", "first", 5}, {"id", "second", 6}, {"id", "", 0}, {"id", NULL, 0}};
    m = msg("orders", 2, 1234, h2, 4);
    id = message_id_of(&m, "id");
    assert_string_equal(id, "second");
    free(id);

    /* A custom header name. */
    kmsg_header_t h3[] = {{"id", "a", 1}, {"message-id", "b", 1}};
    m = msg("orders", 2, 1234, h3, 2);
    id = message_id_of(&m, "message-id");
    assert_string_equal(id, "b");
    free(id);
}

static void test_msgid_fallback(void **state) {
    (void)state;
    kmsg_t m = msg("orders.events", 7, 9000000000LL, NULL, 0);
    char *id = message_id_of(&m, "id");
    assert_string_equal(id, "orders.events/7/9000000000");
    free(id);

    /* Empty and null id headers do not count. */
    kmsg_header_t h[] = {{"id", "", 0}, {"id", NULL, 0}};
    m = msg("t", 0, 0, h, 2);
    id = message_id_of(&m, "id");
    assert_string_equal(id, "t/0/0");
    free(id);

    /* No id header configured: always topic/partition/offset. */
    kmsg_header_t h2[] = {{"id", "x", 1}};
    m = msg("t", 1, 5, h2, 1);
    id = message_id_of(&m, "");
    assert_string_equal(id, "t/1/5");
    free(id);
    id = message_id_of(&m, NULL);
    assert_string_equal(id, "t/1/5");
    free(id);
}

static void test_msgid_binary(void **state) {
    (void)state;
    kmsg_header_t h[] = {{"id", "\x01\xff\x00z", 4}};
    kmsg_t m = msg("t", 0, 0, h, 1);
    char *id = message_id_of(&m, "id");
    assert_string_equal(id, "\\x01ff007a");
    free(id);
    /* Deterministic: the same bytes give the same id. */
    id = message_id_of(&m, "id");
    assert_string_equal(id, "\\x01ff007a");
    free(id);
}

/* Ids longer than MESSAGE_ID_MAX would break the unique index: they become sha256:<hex> of
 * the header's bytes, the same for every copy. */
static void test_msgid_long(void **state) {
    (void)state;
    char *text = malloc(MESSAGE_ID_MAX + 1);
    assert_non_null(text);
    memset(text, 'x', MESSAGE_ID_MAX + 1);
    kmsg_header_t h[] = {{"id", text, MESSAGE_ID_MAX}};
    kmsg_t m = msg("t", 0, 1, h, 1);
    char *id = message_id_of(&m, "id");
    assert_int_equal(strlen(id), MESSAGE_ID_MAX); /* at the limit: as it is */
    free(id);
    h[0].len = MESSAGE_ID_MAX + 1;
    id = message_id_of(&m, "id");
    assert_string_equal(id, "sha256:c6d8e9905300876046729949cc95c2385221270d389176f7234fe7ac00c4e430");
    free(id);
    /* Binary ids count in their \x-hex form: 511 bytes -> 1024 characters, 512 -> hashed. */
    unsigned char bin[512];
    memset(bin, 0xff, sizeof(bin));
    kmsg_header_t hb[] = {{"id", bin, 511}};
    m = msg("t", 0, 1, hb, 1);
    id = message_id_of(&m, "id");
    assert_int_equal(strlen(id), 2 + 2 * 511);
    assert_memory_equal(id, "\\xffff", 6);
    free(id);
    hb[0].len = 512;
    id = message_id_of(&m, "id");
    assert_string_equal(id, "sha256:9f56cda75fefeab90f6fa5d5ddc9601544b121732c5ecccab32e631060453a5d");
    free(id);
    free(text);
}

/* The SHA-256 (libcrypto) of an id too long to index, against a FIPS 180-2 test vector: one
 * million 'a'. */
static void test_msgid_sha256_vector(void **state) {
    (void)state;
    size_t len = 1000000;
    char *text = malloc(len);
    assert_non_null(text);
    memset(text, 'a', len);
    kmsg_header_t h[] = {{"id", text, len}};
    kmsg_t m = msg("t", 0, 1, h, 1);
    char *id = message_id_of(&m, "id");
    assert_string_equal(id, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(id);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msgid_header),        cmocka_unit_test(test_msgid_fallback),
        cmocka_unit_test(test_msgid_binary),        cmocka_unit_test(test_msgid_long),
        cmocka_unit_test(test_msgid_sha256_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
