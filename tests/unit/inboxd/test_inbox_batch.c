/* test_inbox_batch.c - unit tests for inbox_batch.c: spans, fences and duplicates, dropped
 * partitions, the INSERT's columns and ranges of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbox_batch.h"
#include "kmsg_fixture.h"
#include "pgarray_read.h"

static void add(inbox_batch_t *b, const char *topic, int32_t partition, int64_t offset, const char *id) {
    kmsg_header_t h[] = {{"id", id, id ? strlen(id) : 0}};
    kmsg_t m = msg(topic, partition, offset, h, id ? 1 : 0);
    assert_int_equal(inbox_batch_add(b, &m, "id"), 0);
}

static void test_batch_spans(void **state) {
    (void)state;
    inbox_batch_t *b = inbox_batch_new();
    size_t n = 99;
    assert_null(inbox_batch_spans(b, &n));
    assert_int_equal(n, 0);
    add(b, "b", 1, 10, "x1");
    add(b, "a", 2, 5, "x2");
    add(b, "b", 1, 11, "x3");
    add(b, "a", 0, 7, NULL);
    add(b, "b", 0, 3, "x5");
    add(b, "b", 1, 15, "x6");
    assert_int_equal(inbox_batch_count(b), 6);
    assert_true(inbox_batch_bytes(b) > 0);
    inbox_row_ref_t r;
    assert_true(inbox_batch_unfenced_row(b, 3, &r)); /* nothing fenced: message 3 */
    assert_string_equal(r.msgid, "a/0/7");
    assert_false(inbox_batch_unfenced_row(b, 6, &r));
    const inbox_span_t *s = inbox_batch_spans(b, &n);
    assert_int_equal(n, 4);
    /* Sorted by topic, then partition: the writers' lock order. */
    assert_string_equal(s[0].topic, "a");
    assert_int_equal(s[0].partition, 0);
    assert_string_equal(s[1].topic, "a");
    assert_int_equal(s[1].partition, 2);
    assert_string_equal(s[2].topic, "b");
    assert_int_equal(s[2].partition, 0);
    assert_string_equal(s[3].topic, "b");
    assert_int_equal(s[3].partition, 1);
    assert_int_equal(s[3].first, 10);
    assert_int_equal(s[3].last, 15);
    assert_int_equal(s[3].count, 3);

    inbox_batch_clear(b);
    assert_int_equal(inbox_batch_count(b), 0);
    assert_int_equal(inbox_batch_bytes(b), 0);
    assert_null(inbox_batch_spans(b, &n));
    inbox_batch_destroy(b);
    inbox_batch_destroy(NULL);
}

/* The writer's bookkeeping for one batch: fenced by the stored position, then inserted;
 * duplicates = batch size - inserted. */
static void test_batch_fence_and_duplicates(void **state) {
    (void)state;
    inbox_batch_t *b = inbox_batch_new();
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "m%d", i % 7); /* m0..m2 produced twice */
        add(b, "t", 0, 100 + i, id);
    }
    add(b, "t", 1, 5, "p5");
    add(b, "t", 1, 6, "p6");

    /* The offsets table says t/0 is recorded up to 104 (exclusive), t/1 up to 0. */
    assert_int_equal(inbox_batch_fence(b, "t", 0, 104), 4);
    assert_int_equal(inbox_batch_fence(b, "t", 0, 104), 0); /* idempotent */
    assert_int_equal(inbox_batch_fence(b, "t", 1, 0), 0);
    assert_int_equal(inbox_batch_fence(b, "u", 0, 1000), 0);
    assert_int_equal(inbox_batch_unfenced(b), 8);

    pgarray_t cols[INBOX_NCOLS];
    long rows = inbox_batch_encode(b, cols);
    assert_int_equal(rows, 8);
    const char *ids[16];
    int32_t lens[16];
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], PGARRAY_OID_TEXT, ids, lens, 16), 8);
    /* Batch order, fenced ones left out: m4 m5 m6 m0 m1 m2, p5 p6. */
    assert_int_equal(lens[0], 2);
    assert_memory_equal(ids[0], "m4", 2);
    assert_memory_equal(ids[3], "m0", 2);
    assert_memory_equal(ids[6], "p5", 2);
    const char *offs[16];
    assert_int_equal(decode_array(&cols[INBOX_COL_OFFSET], PGARRAY_OID_INT8, offs, lens, 16), 8);
    assert_int_equal(lens[0], 8);
    assert_int_equal(get32(offs[0] + 4), 104);
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);
    /* Say the insert added 5 of the 8 (m0..m2 were in the inbox already): */
    size_t inserted = 5, conflicts = (size_t)rows - inserted;
    assert_int_equal(conflicts, 3);
    assert_int_equal(4 + conflicts, inbox_batch_count(b) - inserted); /* duplicates = batch - inserted */

    /* A retry starts from scratch. */
    inbox_batch_unfence(b);
    assert_int_equal(inbox_batch_unfenced(b), 12);

    /* Everything fenced: nothing to insert, an empty array. */
    inbox_batch_fence(b, "t", 0, 1000);
    inbox_batch_fence(b, "t", 1, 1000);
    assert_int_equal(inbox_batch_encode(b, cols), 0);
    assert_int_equal(decode_array(&cols[INBOX_COL_KEY], PGARRAY_OID_BYTEA, ids, lens, 16), 0);
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);
    inbox_batch_destroy(b);
}

/* The writer's bisection of a batch PostgreSQL refuses: ranges of the unfenced messages. */
static void test_batch_encode_range(void **state) {
    (void)state;
    inbox_batch_t *b = inbox_batch_new();
    add(b, "t", 0, 10, "a");
    add(b, "t", 1, 20, "b");
    add(b, "t", 0, 11, "c");
    add(b, "t", 1, 21, "d");
    add(b, "t", 0, 12, "e");
    inbox_batch_fence(b, "t", 0, 11); /* "a" is recorded */
    pgarray_t cols[INBOX_NCOLS];
    const char *v[8];
    int32_t l[8];
    assert_int_equal(inbox_batch_encode_range(b, 1, 3, cols), 2); /* unfenced: b c d e -> c d */
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], PGARRAY_OID_TEXT, v, l, 8), 2);
    assert_memory_equal(v[0], "c", 1);
    assert_memory_equal(v[1], "d", 1);
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);
    assert_int_equal(inbox_batch_encode_range(b, 3, 100, cols), 1);
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], PGARRAY_OID_TEXT, v, l, 8), 1);
    assert_memory_equal(v[0], "e", 1);
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);
    assert_int_equal(inbox_batch_encode_range(b, 4, 5, cols), 0);
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);

    inbox_row_ref_t r;
    assert_true(inbox_batch_unfenced_row(b, 0, &r));
    assert_string_equal(r.msgid, "b");
    assert_true(inbox_batch_unfenced_row(b, 1, &r));
    assert_string_equal(r.topic, "t");
    assert_int_equal(r.partition, 0);
    assert_int_equal(r.offset, 11);
    assert_string_equal(r.msgid, "c");
    assert_false(inbox_batch_unfenced_row(b, 4, &r));
    inbox_batch_destroy(b);
}

static void test_batch_drop_partition(void **state) {
    (void)state;
    inbox_batch_t *b = inbox_batch_new();
    add(b, "t", 0, 1, "a");
    add(b, "t", 1, 1, "b");
    add(b, "t", 0, 2, "c");
    add(b, "u", 0, 1, "d");
    size_t bytes = inbox_batch_bytes(b);
    inbox_batch_fence(b, "t", 0, 2); /* "a" */
    assert_int_equal(inbox_batch_drop_partition(b, "t", 0), 2);
    assert_int_equal(inbox_batch_drop_partition(b, "t", 0), 0);
    assert_int_equal(inbox_batch_count(b), 2);
    assert_int_equal(inbox_batch_unfenced(b), 2);
    assert_true(inbox_batch_bytes(b) < bytes);
    inbox_row_ref_t r;
    assert_true(inbox_batch_unfenced_row(b, 0, &r));
    assert_string_equal(r.msgid, "b");
    assert_true(inbox_batch_unfenced_row(b, 1, &r));
    assert_string_equal(r.msgid, "d");
    size_t n;
    const inbox_span_t *s = inbox_batch_spans(b, &n);
    assert_int_equal(n, 2);
    assert_string_equal(s[0].topic, "t");
    assert_int_equal(s[0].partition, 1);
    inbox_batch_destroy(b);
}

static void test_batch_encode_columns(void **state) {
    (void)state;
    inbox_batch_t *b = inbox_batch_new();
    kmsg_header_t h[] = {{"id", "m1", 2}, {"x", NULL, 0}};
    kmsg_t m = {.topic = "orders",
                .partition = -2 + 3,
                .offset = 0x0102030405LL,
                .key = "\0k",
                .key_len = 2,
                .value = "\x00\xff payload",
                .value_len = 10,
                .headers = h,
                .nheaders = 2};
    assert_int_equal(inbox_batch_add(b, &m, "id"), 0);
    kmsg_t tomb = {.topic = "orders", .partition = 1, .offset = 0x0102030406LL}; /* no key, no value */
    assert_int_equal(inbox_batch_add(b, &tomb, "id"), 0);

    pgarray_t cols[INBOX_NCOLS];
    assert_int_equal(inbox_batch_encode(b, cols), 2);
    const char *v[4];
    int32_t l[4];
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], PGARRAY_OID_TEXT, v, l, 4), 2);
    assert_int_equal(l[1], (int32_t)strlen("orders/1/4328719366"));
    assert_memory_equal(v[1], "orders/1/4328719366", l[1]);
    assert_int_equal(decode_array(&cols[INBOX_COL_TOPIC], PGARRAY_OID_TEXT, v, l, 4), 2);
    assert_memory_equal(v[0], "orders", 6);
    assert_int_equal(decode_array(&cols[INBOX_COL_PARTITION], PGARRAY_OID_INT4, v, l, 4), 2);
    assert_int_equal(l[0], 4);
    assert_int_equal(get32(v[0]), 1);
    assert_int_equal(decode_array(&cols[INBOX_COL_OFFSET], PGARRAY_OID_INT8, v, l, 4), 2);
    assert_int_equal(get32(v[0]), 0x01);
    assert_int_equal(get32(v[0] + 4), 0x02030405);
    /* Keys and payloads byte for byte; a missing one is NULL. */
    assert_int_equal(decode_array(&cols[INBOX_COL_KEY], PGARRAY_OID_BYTEA, v, l, 4), 2);
    assert_int_equal(l[0], 2);
    assert_memory_equal(v[0], "\0k", 2);
    assert_int_equal(l[1], -1);
    assert_int_equal(decode_array(&cols[INBOX_COL_PAYLOAD], PGARRAY_OID_BYTEA, v, l, 4), 2);
    assert_int_equal(l[0], 10);
    assert_memory_equal(v[0], "\x00\xff payload", 10);
    assert_int_equal(l[1], -1);
    /* jsonb: version byte 1, then the text. */
    assert_int_equal(decode_array(&cols[INBOX_COL_HEADERS], PGARRAY_OID_JSONB, v, l, 4), 2);
    assert_int_equal(v[0][0], 1);
    assert_int_equal(l[0], 1 + (int32_t)strlen("{\"id\":\"m1\",\"x\":null}"));
    assert_memory_equal(v[0] + 1, "{\"id\":\"m1\",\"x\":null}", l[0] - 1);
    assert_memory_equal(v[1] + 1, "{}", 2);
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_free(&cols[c]);
    inbox_batch_destroy(b);
}

typedef struct seen {
    char topics[8][16];
    int64_t us[8];
    size_t n;
} seen_t;

static void collect(void *arg, const char *topic, int64_t commit_us) {
    seen_t *s = arg;
    snprintf(s->topics[s->n], sizeof(s->topics[0]), "%s", topic);
    s->us[s->n++] = commit_us;
}

/* outboxd's commit time header: decimal microseconds; fenced messages (recorded before) and
 * messages without a valid header are left out; the last header of the name counts. */
static void test_batch_commit_times(void **state) {
    (void)state;
    assert_int_equal(inbox_batch_parse_commit_time("1795414925190386", 16), 1795414925190386LL);
    assert_int_equal(inbox_batch_parse_commit_time("17954x", 6), 0);
    assert_int_equal(inbox_batch_parse_commit_time("-1", 2), 0);
    assert_int_equal(inbox_batch_parse_commit_time("", 0), 0);
    assert_int_equal(inbox_batch_parse_commit_time(NULL, 3), 0);
    assert_int_equal(inbox_batch_parse_commit_time("1234567890123456789", 19), 0); /* beyond 18 digits */
    inbox_batch_t *b = inbox_batch_new();
    kmsg_header_t h1[] = {{"id", "m1", 2}, {"outboxd.commit_time_us", "1000", 4}};
    kmsg_header_t h2[] = {{"outboxd.commit_time_us", "5", 1}, {"outboxd.commit_time_us", "2000", 4}};
    kmsg_header_t h3[] = {{"outboxd.commit_time_us", "soon", 4}};
    kmsg_header_t h4[] = {{"outboxd.commit_time_us", "3000", 4}};
    kmsg_t m1 = msg("t", 0, 1, h1, 2), m2 = msg("u", 0, 1, h2, 2), m3 = msg("t", 0, 2, h3, 1),
           m4 = msg("t", 1, 7, h4, 1), m5 = msg("t", 0, 3, NULL, 0);
    assert_int_equal(inbox_batch_add(b, &m1, "id"), 0);
    assert_int_equal(inbox_batch_add(b, &m2, "id"), 0);
    assert_int_equal(inbox_batch_add(b, &m3, "id"), 0);
    assert_int_equal(inbox_batch_add(b, &m4, "id"), 0);
    assert_int_equal(inbox_batch_add(b, &m5, "id"), 0);
    assert_int_equal(inbox_batch_fence(b, "t", 1, 8), 1); /* m4 was recorded before */
    seen_t s = {0};
    inbox_batch_commit_times(b, collect, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.topics[0], "t");
    assert_int_equal(s.us[0], 1000);
    assert_string_equal(s.topics[1], "u");
    assert_int_equal(s.us[1], 2000);
    inbox_batch_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_spans),          cmocka_unit_test(test_batch_fence_and_duplicates),
        cmocka_unit_test(test_batch_encode_range),   cmocka_unit_test(test_batch_drop_partition),
        cmocka_unit_test(test_batch_encode_columns), cmocka_unit_test(test_batch_commit_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
