/* test_inbox_batch.c - unit tests for inbox_batch.c: message ids (SHA-256 of long ids), headers
 * JSON, partition positions (take/drop/hold/offset regressions), the batch (spans, fences,
 * duplicates, drops, ranges), PostgreSQL binary arrays, durations and lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbox_batch.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static kmsg_t msg(const char *topic, int32_t partition, int64_t offset, const kmsg_header_t *h, size_t nh) {
    return (kmsg_t){.topic = topic,
                         .partition = partition,
                         .offset = offset,
                         .key = "k",
                         .key_len = 1,
                         .value = "v",
                         .value_len = 1,
                         .headers = h,
                         .nheaders = nh};
}

static uint32_t get32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Decodes a one-dimensional binary array: checks the header, returns element pointers and
 * lengths (-1 = NULL) in out/lens (up to max), and the count. */
static int decode_array(const inbox_pgarray_t *a, uint32_t oid, const char **out, int32_t *lens, int max) {
    assert_true(a->len >= 12);
    uint32_t ndim = get32(a->data);
    assert_int_equal(get32(a->data + 8), oid);
    if (ndim == 0) {
        assert_int_equal(a->len, 12);
        return 0;
    }
    assert_int_equal(ndim, 1);
    int n = (int)get32(a->data + 12);
    assert_int_equal(get32(a->data + 16), 1); /* lower bound */
    bool has_null = false;
    size_t pos = 20;
    for (int i = 0; i < n; i++) {
        int32_t len = (int32_t)get32(a->data + pos);
        pos += 4;
        if (i < max) {
            out[i] = len < 0 ? NULL : a->data + pos;
            lens[i] = len;
        }
        if (len < 0)
            has_null = true;
        else
            pos += (size_t)len;
    }
    assert_int_equal(pos, a->len);
    assert_int_equal(get32(a->data + 4), has_null ? 1 : 0);
    return n;
}

/* ---- text and ids ------------------------------------------------------------------------- */

static void test_is_text(void **state) {
    (void)state;
    assert_true(inbox_is_text("", 0));
    assert_true(inbox_is_text("abc", 3));
    assert_true(inbox_is_text("\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", 8)); /* ключ */
    assert_true(inbox_is_text("\xe2\x82\xac", 3));                     /* € */
    assert_true(inbox_is_text("\xf0\x9f\x98\x80", 4));                 /* U+1F600 */
    assert_true(inbox_is_text("\xf4\x8f\xbf\xbf", 4));                 /* U+10FFFF */
    assert_false(inbox_is_text("a\0b", 3));                            /* NUL */
    assert_false(inbox_is_text("\xff", 1));
    assert_false(inbox_is_text("\x80", 1));             /* lone continuation */
    assert_false(inbox_is_text("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(inbox_is_text("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(inbox_is_text("\xf0\x80\x80\xaf", 4)); /* overlong */
    assert_false(inbox_is_text("\xed\xa0\x80", 3));     /* surrogate D800 */
    assert_false(inbox_is_text("\xf4\x90\x80\x80", 4)); /* U+110000 */
    assert_false(inbox_is_text("\xe2\x82", 2));         /* truncated */
    assert_false(inbox_is_text("\xe2\x28\xa1", 3));     /* bad continuation */
}

static void test_msgid_header(void **state) {
    (void)state;
    kmsg_header_t h[] = {{"event_type", "X", 1}, {"id", "abc-1", 5}};
    kmsg_t m = msg("orders", 2, 1234, h, 2);
    char *id = inbox_msgid(&m, "id");
    assert_string_equal(id, "abc-1");
    free(id);

    /* The last non-empty header of that name wins (Kafka's lastHeader). */
    kmsg_header_t h2[] = {{"id", "first", 5}, {"id", "second", 6}, {"id", "", 0}, {"id", NULL, 0}};
    m = msg("orders", 2, 1234, h2, 4);
    id = inbox_msgid(&m, "id");
    assert_string_equal(id, "second");
    free(id);

    /* A custom header name. */
    kmsg_header_t h3[] = {{"id", "a", 1}, {"message-id", "b", 1}};
    m = msg("orders", 2, 1234, h3, 2);
    id = inbox_msgid(&m, "message-id");
    assert_string_equal(id, "b");
    free(id);
}

static void test_msgid_fallback(void **state) {
    (void)state;
    kmsg_t m = msg("orders.events", 7, 9000000000LL, NULL, 0);
    char *id = inbox_msgid(&m, "id");
    assert_string_equal(id, "orders.events/7/9000000000");
    free(id);

    /* Empty and null id headers do not count. */
    kmsg_header_t h[] = {{"id", "", 0}, {"id", NULL, 0}};
    m = msg("t", 0, 0, h, 2);
    id = inbox_msgid(&m, "id");
    assert_string_equal(id, "t/0/0");
    free(id);

    /* No id header configured: always topic/partition/offset. */
    kmsg_header_t h2[] = {{"id", "x", 1}};
    m = msg("t", 1, 5, h2, 1);
    id = inbox_msgid(&m, "");
    assert_string_equal(id, "t/1/5");
    free(id);
    id = inbox_msgid(&m, NULL);
    assert_string_equal(id, "t/1/5");
    free(id);
}

static void test_msgid_binary(void **state) {
    (void)state;
    kmsg_header_t h[] = {{"id", "\x01\xff\x00z", 4}};
    kmsg_t m = msg("t", 0, 0, h, 1);
    char *id = inbox_msgid(&m, "id");
    assert_string_equal(id, "\\x01ff007a");
    free(id);
    /* Deterministic: the same bytes give the same id. */
    id = inbox_msgid(&m, "id");
    assert_string_equal(id, "\\x01ff007a");
    free(id);
}

static void hex(const unsigned char *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha256(void **state) {
    (void)state;
    static const struct {
        size_t len;
        char fill; /* 0: use text */
        const char *text;
        const char *digest;
    } v[] = {
        {0, 0, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {3, 0, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {56, 0, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        /* the padding boundaries: 55 bytes fit one block, 56 need two, 64 a whole one */
        {55, 'a', NULL, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, 'a', NULL, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {64, 'a', NULL, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {1000000, 'a', NULL, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char *buf = NULL;
        const char *data = v[i].text;
        if (v[i].fill) {
            buf = malloc(v[i].len);
            assert_non_null(buf);
            memset(buf, v[i].fill, v[i].len);
            data = buf;
        }
        unsigned char d[32];
        char h[65];
        assert_int_equal(inbox_sha256(data, v[i].len, d), 0);
        hex(d, 32, h);
        assert_string_equal(h, v[i].digest);
        free(buf);
    }
}

/* Ids longer than INBOX_MSGID_MAX would break the unique index: they become sha256:<hex> of
 * the header's bytes, the same for every copy. */
static void test_msgid_long(void **state) {
    (void)state;
    char *text = malloc(INBOX_MSGID_MAX + 1);
    assert_non_null(text);
    memset(text, 'x', INBOX_MSGID_MAX + 1);
    kmsg_header_t h[] = {{"id", text, INBOX_MSGID_MAX}};
    kmsg_t m = msg("t", 0, 1, h, 1);
    char *id = inbox_msgid(&m, "id");
    assert_int_equal(strlen(id), INBOX_MSGID_MAX); /* at the limit: as it is */
    free(id);
    h[0].len = INBOX_MSGID_MAX + 1;
    id = inbox_msgid(&m, "id");
    assert_string_equal(id, "sha256:c6d8e9905300876046729949cc95c2385221270d389176f7234fe7ac00c4e430");
    free(id);
    /* Binary ids count in their \x-hex form: 511 bytes -> 1024 characters, 512 -> hashed. */
    unsigned char bin[512];
    memset(bin, 0xff, sizeof(bin));
    kmsg_header_t hb[] = {{"id", bin, 511}};
    m = msg("t", 0, 1, hb, 1);
    id = inbox_msgid(&m, "id");
    assert_int_equal(strlen(id), 2 + 2 * 511);
    assert_memory_equal(id, "\\xffff", 6);
    free(id);
    hb[0].len = 512;
    id = inbox_msgid(&m, "id");
    assert_string_equal(id, "sha256:9f56cda75fefeab90f6fa5d5ddc9601544b121732c5ecccab32e631060453a5d");
    free(id);
    free(text);
}

static void test_headers_json(void **state) {
    (void)state;
    char *j = inbox_headers_json(NULL, 0);
    assert_string_equal(j, "{}");
    free(j);

    kmsg_header_t h[] = {{"id", "e1", 2},        {"event_type", "OrderPlaced", 11}, {"n", NULL, 0},
                          {"bin", "\xff\x00", 2}, {"quote", "a\"b\\c\n", 6},         {"id", "e2", 2}};
    j = inbox_headers_json(h, 6);
    assert_string_equal(j, "{\"id\":\"e2\",\"event_type\":\"OrderPlaced\",\"n\":null,\"bin\":\"\\\\xff00\","
                           "\"quote\":\"a\\\"b\\\\c\\n\"}");
    free(j);

    kmsg_header_t h2[] = {{"\xff", "v", 1}, {"", "empty name", 10}};
    j = inbox_headers_json(h2, 2);
    assert_string_equal(j, "{\"\\\\xff\":\"v\",\"\":\"empty name\"}");
    free(j);
}

/* ---- partition positions ------------------------------------------------------------------ */

static void test_parts_take_and_drop(void **state) {
    (void)state;
    inbox_parts_t *p = inbox_parts_new();
    assert_non_null(inbox_parts_add(p, "t", 0, INBOX_PART_READY, -1));
    assert_non_null(inbox_parts_add(p, "t", 1, INBOX_PART_READY, 100));
    assert_int_equal(inbox_parts_count(p), 2);

    assert_int_equal(inbox_parts_offer(p, "u", 0, 5, false), INBOX_DROP_UNASSIGNED);
    assert_int_equal(inbox_parts_offer(p, "t", 2, 5, false), INBOX_DROP_UNASSIGNED);
    /* No position yet: the first message sets it. */
    assert_int_equal(inbox_parts_offer(p, "t", 0, 7, false), INBOX_TAKE);
    assert_int_equal(inbox_parts_find(p, "t", 0)->next, 8);
    /* Consuming from next: an older offset means the log went back. */
    assert_int_equal(inbox_parts_offer(p, "t", 0, 7, false), INBOX_REGRESSED);
    assert_int_equal(inbox_parts_find(p, "t", 0)->next, 8); /* unchanged */
    /* Gaps (compaction, transaction markers) are fine. */
    assert_int_equal(inbox_parts_offer(p, "t", 0, 10, false), INBOX_TAKE);
    assert_int_equal(inbox_parts_find(p, "t", 0)->next, 11);
    /* Stored position 100, assigned there: an older message is a regression, not a redelivery. */
    assert_int_equal(inbox_parts_offer(p, "t", 1, 99, false), INBOX_REGRESSED);
    assert_int_equal(inbox_parts_offer(p, "t", 1, 100, false), INBOX_TAKE);

    inbox_parts_remove(p, "t", 0);
    assert_int_equal(inbox_parts_count(p), 1);
    assert_int_equal(inbox_parts_offer(p, "t", 0, 11, false), INBOX_DROP_UNASSIGNED);
    assert_int_equal(inbox_parts_at(p, 0)->partition, 1);
    inbox_parts_destroy(p);
}

static void test_parts_hold(void **state) {
    (void)state;
    inbox_parts_t *p = inbox_parts_new();
    inbox_part_t *a = inbox_parts_add(p, "t", 0, INBOX_PART_READY, 50);
    assert_int_equal(inbox_parts_offer(p, "t", 0, 50, false), INBOX_TAKE);
    /* Database down: what still arrives is dropped; the position stays at 51. */
    assert_int_equal(inbox_parts_offer(p, "t", 0, 51, true), INBOX_DROP_HELD);
    assert_int_equal(inbox_parts_offer(p, "t", 0, 52, true), INBOX_DROP_HELD);
    a = inbox_parts_find(p, "t", 0);
    assert_int_equal(a->next, 51);
    assert_true(a->need_seek);
    /* Back, but the seek has not happened: still held (never a gap). */
    assert_int_equal(inbox_parts_offer(p, "t", 0, 53, false), INBOX_DROP_HELD);
    assert_int_equal(a->next, 51);
    a->need_seek = false; /* the seek to 51 succeeded */
    assert_int_equal(inbox_parts_offer(p, "t", 0, 51, false), INBOX_TAKE);

    /* Unknown position (assigned while the database was down): held; the first dropped
     * offset becomes the position to come back to. */
    inbox_part_t *b = inbox_parts_add(p, "t", 1, INBOX_PART_UNKNOWN, -1);
    assert_int_equal(inbox_parts_offer(p, "t", 1, 300, false), INBOX_DROP_HELD);
    b = inbox_parts_find(p, "t", 1);
    assert_int_equal(b->next, 300);
    assert_true(b->need_seek);
    assert_int_equal(inbox_parts_offer(p, "t", 1, 301, false), INBOX_DROP_HELD);
    assert_int_equal(b->next, 300);
    assert_int_equal(inbox_parts_offer(p, "t", 1, 299, false), INBOX_DROP_SEEN);

    /* Re-adding resets the entry. */
    b = inbox_parts_add(p, "t", 1, INBOX_PART_READY, 10);
    assert_false(b->need_seek);
    assert_int_equal(b->next, 10);
    assert_int_equal(b->recorded, 10);
    assert_int_equal(b->committed, -1);
    assert_int_equal(inbox_parts_count(p), 2);
    inbox_parts_destroy(p);
    inbox_parts_destroy(NULL);
}

/* Redeliveries below the stored position (Kafka's committed offset lags the table) happen
 * only before the seek to it; after the seek an older offset is an offset regression (topic
 * recreated, log truncated, out-of-range reset): never a silent drop. */
static void test_parts_regression(void **state) {
    (void)state;
    inbox_parts_t *p = inbox_parts_new();
    /* Assigned while PostgreSQL was down: started at Kafka's committed offset 40. */
    inbox_part_t *a = inbox_parts_add(p, "t", 0, INBOX_PART_UNKNOWN, -1);
    assert_int_equal(inbox_parts_offer(p, "t", 0, 40, false), INBOX_DROP_HELD);
    /* The table says 100: the partition seeks there; until then older ones are redeliveries. */
    a = inbox_parts_find(p, "t", 0);
    a->state = INBOX_PART_READY;
    a->next = 100;
    a->need_seek = true;
    assert_int_equal(inbox_parts_offer(p, "t", 0, 41, false), INBOX_DROP_SEEN);
    assert_int_equal(inbox_parts_offer(p, "t", 0, 42, true), INBOX_DROP_SEEN);
    /* Seeked to 100, and Kafka hands out 0: the log went back. Reported, nothing changed. */
    a->need_seek = false;
    assert_int_equal(inbox_parts_offer(p, "t", 0, 0, false), INBOX_REGRESSED);
    assert_int_equal(inbox_parts_offer(p, "t", 0, 0, false), INBOX_REGRESSED);
    assert_int_equal(a->next, 100);
    assert_false(a->need_seek);
    /* The same while holding: dropped, and the partition seeks back to 100 later (where the
     * check runs again). */
    assert_int_equal(inbox_parts_offer(p, "t", 0, 1, true), INBOX_DROP_HELD);
    assert_true(a->need_seek);
    assert_int_equal(a->next, 100);
    a->need_seek = false;
    /* Adopting the new offsets (inbox.on_offset_regression = reset): position 0, then taken. */
    a->next = 0;
    assert_int_equal(inbox_parts_offer(p, "t", 0, 0, false), INBOX_TAKE);
    assert_int_equal(inbox_parts_offer(p, "t", 0, 1, false), INBOX_TAKE);
    assert_int_equal(a->next, 2);

    /* Assigned without a stored position: whatever comes first is taken. */
    assert_non_null(inbox_parts_add(p, "t", 1, INBOX_PART_READY, -1));
    assert_int_equal(inbox_parts_offer(p, "t", 1, 0, false), INBOX_TAKE);
    inbox_parts_destroy(p);
}

/* ---- the batch ---------------------------------------------------------------------------- */

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
    assert_string_equal(inbox_batch_msgid(b, 3), "a/0/7");
    assert_null(inbox_batch_msgid(b, 6));
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

    inbox_pgarray_t cols[INBOX_NCOLS];
    long rows = inbox_batch_encode(b, cols);
    assert_int_equal(rows, 8);
    const char *ids[16];
    int32_t lens[16];
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], INBOX_OID_TEXT, ids, lens, 16), 8);
    /* Batch order, fenced ones left out: m4 m5 m6 m0 m1 m2, p5 p6. */
    assert_int_equal(lens[0], 2);
    assert_memory_equal(ids[0], "m4", 2);
    assert_memory_equal(ids[3], "m0", 2);
    assert_memory_equal(ids[6], "p5", 2);
    const char *offs[16];
    assert_int_equal(decode_array(&cols[INBOX_COL_OFFSET], INBOX_OID_INT8, offs, lens, 16), 8);
    assert_int_equal(lens[0], 8);
    assert_int_equal(get32(offs[0] + 4), 104);
    for (int c = 0; c < INBOX_NCOLS; c++)
        inbox_pgarray_free(&cols[c]);
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
    assert_int_equal(decode_array(&cols[INBOX_COL_KEY], INBOX_OID_BYTEA, ids, lens, 16), 0);
    for (int c = 0; c < INBOX_NCOLS; c++)
        inbox_pgarray_free(&cols[c]);
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
    inbox_pgarray_t cols[INBOX_NCOLS];
    const char *v[8];
    int32_t l[8];
    assert_int_equal(inbox_batch_encode_range(b, 1, 3, cols), 2); /* unfenced: b c d e -> c d */
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], INBOX_OID_TEXT, v, l, 8), 2);
    assert_memory_equal(v[0], "c", 1);
    assert_memory_equal(v[1], "d", 1);
    for (int c = 0; c < INBOX_NCOLS; c++)
        inbox_pgarray_free(&cols[c]);
    assert_int_equal(inbox_batch_encode_range(b, 3, 100, cols), 1);
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], INBOX_OID_TEXT, v, l, 8), 1);
    assert_memory_equal(v[0], "e", 1);
    for (int c = 0; c < INBOX_NCOLS; c++)
        inbox_pgarray_free(&cols[c]);
    assert_int_equal(inbox_batch_encode_range(b, 4, 5, cols), 0);
    for (int c = 0; c < INBOX_NCOLS; c++)
        inbox_pgarray_free(&cols[c]);

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
    assert_string_equal(inbox_batch_msgid(b, 0), "b");
    assert_string_equal(inbox_batch_msgid(b, 1), "d");
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

    inbox_pgarray_t cols[INBOX_NCOLS];
    assert_int_equal(inbox_batch_encode(b, cols), 2);
    const char *v[4];
    int32_t l[4];
    assert_int_equal(decode_array(&cols[INBOX_COL_MSGID], INBOX_OID_TEXT, v, l, 4), 2);
    assert_int_equal(l[1], (int32_t)strlen("orders/1/4328719366"));
    assert_memory_equal(v[1], "orders/1/4328719366", l[1]);
    assert_int_equal(decode_array(&cols[INBOX_COL_TOPIC], INBOX_OID_TEXT, v, l, 4), 2);
    assert_memory_equal(v[0], "orders", 6);
    assert_int_equal(decode_array(&cols[INBOX_COL_PARTITION], INBOX_OID_INT4, v, l, 4), 2);
    assert_int_equal(l[0], 4);
    assert_int_equal(get32(v[0]), 1);
    assert_int_equal(decode_array(&cols[INBOX_COL_OFFSET], INBOX_OID_INT8, v, l, 4), 2);
    assert_int_equal(get32(v[0]), 0x01);
    assert_int_equal(get32(v[0] + 4), 0x02030405);
    /* Keys and payloads byte for byte; a missing one is NULL. */
    assert_int_equal(decode_array(&cols[INBOX_COL_KEY], INBOX_OID_BYTEA, v, l, 4), 2);
    assert_int_equal(l[0], 2);
    assert_memory_equal(v[0], "\0k", 2);
    assert_int_equal(l[1], -1);
    assert_int_equal(decode_array(&cols[INBOX_COL_PAYLOAD], INBOX_OID_BYTEA, v, l, 4), 2);
    assert_int_equal(l[0], 10);
    assert_memory_equal(v[0], "\x00\xff payload", 10);
    assert_int_equal(l[1], -1);
    /* jsonb: version byte 1, then the text. */
    assert_int_equal(decode_array(&cols[INBOX_COL_HEADERS], INBOX_OID_JSONB, v, l, 4), 2);
    assert_int_equal(v[0][0], 1);
    assert_int_equal(l[0], 1 + (int32_t)strlen("{\"id\":\"m1\",\"x\":null}"));
    assert_memory_equal(v[0] + 1, "{\"id\":\"m1\",\"x\":null}", l[0] - 1);
    assert_memory_equal(v[1] + 1, "{}", 2);
    for (int c = 0; c < INBOX_NCOLS; c++)
        inbox_pgarray_free(&cols[c]);
    inbox_batch_destroy(b);
}

static void test_pgarray(void **state) {
    (void)state;
    inbox_pgarray_t a;
    inbox_pgarray_init(&a, INBOX_OID_INT4);
    assert_int_equal(inbox_pgarray_finish(&a), 0);
    assert_int_equal(a.len, 12);
    assert_int_equal(get32(a.data), 0);
    assert_int_equal(get32(a.data + 8), INBOX_OID_INT4);
    inbox_pgarray_free(&a);

    inbox_pgarray_init(&a, INBOX_OID_INT4);
    inbox_pgarray_add_int4(&a, -1);
    inbox_pgarray_add(&a, NULL, 0);
    inbox_pgarray_add_int4(&a, 0x7fffffff);
    assert_int_equal(inbox_pgarray_finish(&a), 0);
    const char *v[3];
    int32_t l[3];
    assert_int_equal(decode_array(&a, INBOX_OID_INT4, v, l, 3), 3);
    assert_int_equal(get32(v[0]), 0xffffffffu);
    assert_null(v[1]);
    assert_int_equal(get32(v[2]), 0x7fffffff);
    inbox_pgarray_free(&a);
    inbox_pgarray_free(&a); /* twice is fine */

    inbox_pgarray_init(&a, INBOX_OID_INT8);
    inbox_pgarray_add_int8(&a, -2);
    assert_int_equal(inbox_pgarray_finish(&a), 0);
    assert_int_equal(decode_array(&a, INBOX_OID_INT8, v, l, 3), 1);
    assert_int_equal(get32(v[0]), 0xffffffffu);
    assert_int_equal(get32(v[0] + 4), 0xfffffffeu);
    inbox_pgarray_free(&a);

    /* Large arrays grow. */
    inbox_pgarray_init(&a, INBOX_OID_TEXT);
    for (int i = 0; i < 10000; i++)
        inbox_pgarray_add(&a, "0123456789", 10);
    assert_int_equal(inbox_pgarray_finish(&a), 0);
    assert_int_equal(a.len, 20 + 10000 * 14);
    inbox_pgarray_free(&a);
}

/* ---- durations and lists ------------------------------------------------------------------ */

static void test_position_sql(void **state) {
    (void)state;
    char buf[256];
    inbox_position_sql(buf, sizeof(buf), "public.inbox_offsets", "it's", "orders", 3, 1200);
    assert_string_equal(buf, "UPDATE public.inbox_offsets SET next_offset = 1200 WHERE consumer_group = 'it''s' "
                             "AND topic = 'orders' AND partition = 3;");
    char small[20];
    inbox_position_sql(small, sizeof(small), "public.inbox_offsets", "g", "t", 0, 0);
    assert_int_equal(strlen(small), sizeof(small) - 1); /* cut, terminated */
}

static void test_duration(void **state) {
    (void)state;
    static const struct {
        const char *s;
        long long v;
    } ok[] = {
        {"0", 0},           {"3600", 3600},    {"7d", 604800},     {"12h", 43200},       {"90m", 5400},
        {"90 min", 5400},   {"1d12h", 129600}, {"1d 12h", 129600}, {"2 weeks", 1209600}, {"1w", 604800},
        {"30s", 30},        {"1 second", 1},   {"5 Minutes", 300}, {" 7d ", 604800},     {"0d", 0},
        {"1h30m15s", 5415},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        long long v = -1;
        if (inbox_duration_parse(ok[i].s, &v) != 0)
            fail_msg("'%s' refused", ok[i].s);
        if (v != ok[i].v)
            fail_msg("'%s' = %lld, expected %lld", ok[i].s, v, ok[i].v);
    }
    static const char *const bad[] = {"",
                                      " ",
                                      "d",
                                      "7x",
                                      "-1d",
                                      "1.5h",
                                      "7d x",
                                      "10 20",
                                      "1d 5",
                                      "99999999999999999999",
                                      "9223372036854775807w",
                                      "7 days ago"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long long v = -1;
        if (inbox_duration_parse(bad[i], &v) == 0)
            fail_msg("'%s' accepted (%lld)", bad[i], v);
    }
    long long v;
    assert_int_equal(inbox_duration_parse(NULL, &v), -1);
}

static void test_list_split(void **state) {
    (void)state;
    size_t n = 99;
    char **l = inbox_list_split(" a, b.c ,,^re.*,  ", &n);
    assert_int_equal(n, 3);
    assert_string_equal(l[0], "a");
    assert_string_equal(l[1], "b.c");
    assert_string_equal(l[2], "^re.*");
    assert_null(l[3]);
    inbox_list_free(l);
    l = inbox_list_split("", &n);
    assert_int_equal(n, 0);
    assert_null(l[0]);
    inbox_list_free(l);
    inbox_list_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_text),
        cmocka_unit_test(test_msgid_header),
        cmocka_unit_test(test_msgid_fallback),
        cmocka_unit_test(test_msgid_binary),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_msgid_long),
        cmocka_unit_test(test_headers_json),
        cmocka_unit_test(test_parts_take_and_drop),
        cmocka_unit_test(test_parts_hold),
        cmocka_unit_test(test_parts_regression),
        cmocka_unit_test(test_batch_spans),
        cmocka_unit_test(test_batch_fence_and_duplicates),
        cmocka_unit_test(test_batch_encode_range),
        cmocka_unit_test(test_batch_drop_partition),
        cmocka_unit_test(test_batch_encode_columns),
        cmocka_unit_test(test_pgarray),
        cmocka_unit_test(test_position_sql),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_list_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
