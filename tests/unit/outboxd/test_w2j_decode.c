/* test_w2j_decode.c - unit tests of the wal2json v2 decoder over real captures (every line
 * of tests/data/wal2json/) and over malformed or unusual records, and of bytea values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lsn.h"
#include "w2j_decode.h"

#define W2J_DIR TEST_DATA_DIR "/wal2json/"

/* ---- helpers -------------------------------------------------------------------------- */

typedef struct lines {
    char *data;
    size_t n;
    const char *line[256];
    size_t len[256];
} lines_t;

static lines_t *load(const char *path) {
    lines_t *l = calloc(1, sizeof(*l));
    FILE *f = fopen(path, "rb");
    long size;
    char *p, *end;

    assert_non_null(l);
    if (f == NULL)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    l->data = malloc((size_t)size);
    assert_non_null(l->data);
    assert_int_equal(fread(l->data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    for (p = l->data, end = l->data + size; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

        if (n > 0) {
            assert_true(l->n < 256);
            l->line[l->n] = p;
            l->len[l->n++] = n;
        }
        p += n + 1;
    }
    return l;
}

static void unload(lines_t *l) {
    free(l->data);
    free(l);
}

static int decode_str(w2j_decoder_t *dec, const char *json, w2j_record_t *rec, char *err, size_t errsz) {
    return w2j_decode(dec, json, strlen(json), rec, err, errsz);
}

/* Decodes the I record of `path` whose "id" column is `id` into *rec (valid until the next
 * decode on dec). */
static void find_row(w2j_decoder_t *dec, const char *path, const char *id, w2j_record_t *rec) {
    lines_t *l = load(path);
    char err[256];

    for (size_t i = 0; i < l->n; i++) {
        const w2j_column_t *c;

        if (w2j_decode(dec, l->line[i], l->len[i], rec, err, sizeof(err)) != 0)
            fail_msg("%s:%zu: %s", path, i + 1, err);
        if (rec->action != W2J_INSERT)
            continue;
        c = w2j_column_find(rec, "id");
        if (c != NULL && c->value != NULL && strcmp(c->value, id) == 0) {
            /* rec points into the decoder, not into l: safe to unload */
            unload(l);
            return;
        }
    }
    unload(l);
    fail_msg("no row %s in %s", id, path);
}

static void assert_col(const w2j_record_t *rec, const char *name, const char *value, size_t len) {
    const w2j_column_t *c = w2j_column_find(rec, name);

    if (c == NULL)
        fail_msg("column %s missing", name);
    if (value == NULL) {
        assert_null(c->value);
        assert_int_equal(c->value_len, 0);
        return;
    }
    assert_non_null(c->value);
    assert_int_equal(c->value_len, len);
    assert_memory_equal(c->value, value, len);
    assert_int_equal(c->value[len], '\0');
}

#define ASSERT_COL(rec, name, lit) assert_col(rec, name, lit, sizeof(lit) - 1)
#define ASSERT_COL_NULL(rec, name) assert_col(rec, name, NULL, 0)

/* The text of "key":"..." in a raw line (LSN strings have no escapes). */
static int raw_field(const char *line, size_t len, const char *key, char *out, size_t outsz) {
    char pat[32];
    const char *p, *q;

    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    p = memmem(line, len, pat, strlen(pat));
    if (p == NULL)
        return -1;
    p += strlen(pat);
    q = memchr(p, '"', len - (size_t)(p - line));
    assert_non_null(q);
    assert_true((size_t)(q - p) < outsz);
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 0;
}

/* ---- every captured line -------------------------------------------------------------- */

static void check_file(const char *path, size_t expect_lines) {
    lines_t *l = load(path);
    w2j_decoder_t *dec = w2j_decoder_new();
    uint32_t open_xid = 0;
    lsn_t open_lsn = 0, open_next = 0;
    char err[256];

    assert_non_null(dec);
    assert_int_equal(l->n, expect_lines);
    for (size_t i = 0; i < l->n; i++) {
        w2j_record_t rec;
        char raw[64], fmt[LSN_FMT_SIZE];

        if (w2j_decode(dec, l->line[i], l->len[i], &rec, err, sizeof(err)) != 0)
            fail_msg("%s:%zu: %s", path, i + 1, err);
        /* every record carries an lsn that round-trips to its text */
        assert_int_equal(raw_field(l->line[i], l->len[i], "lsn", raw, sizeof(raw)), 0);
        assert_string_equal(lsn_format(rec.lsn, fmt), raw);
        assert_true(rec.lsn != 0);
        switch (rec.action) {
        case W2J_BEGIN:
            assert_int_equal(open_xid, 0);
            assert_int_equal(raw_field(l->line[i], l->len[i], "nextlsn", raw, sizeof(raw)), 0);
            assert_string_equal(lsn_format(rec.nextlsn, fmt), raw);
            assert_true(rec.nextlsn > rec.lsn);
            assert_true(rec.xid != 0);
            assert_non_null(rec.timestamp);
            open_xid = rec.xid;
            open_lsn = rec.lsn;
            open_next = rec.nextlsn;
            break;
        case W2J_COMMIT:
            /* B announces the commit record's start and end: C repeats them */
            assert_int_equal(rec.xid, open_xid);
            assert_int_equal(rec.lsn, open_lsn);
            assert_int_equal(rec.nextlsn, open_next);
            open_xid = 0;
            break;
        case W2J_INSERT:
            assert_int_equal(rec.xid, open_xid);
            assert_true(rec.lsn < open_lsn);
            assert_int_equal(rec.nextlsn, 0);
            assert_non_null(rec.schema);
            assert_non_null(rec.table);
            assert_true(rec.ncolumns >= 2);
            for (size_t c = 0; c < rec.ncolumns; c++) {
                assert_non_null(rec.columns[c].name);
                if (rec.columns[c].value != NULL)
                    assert_int_equal(rec.columns[c].value[rec.columns[c].value_len], '\0');
            }
            break;
        case W2J_MESSAGE:
            assert_string_equal(rec.prefix, "outbox"); /* add-msg-prefixes=outbox */
            assert_non_null(rec.content);
            if (rec.transactional) {
                assert_int_equal(rec.xid, open_xid);
                assert_non_null(rec.timestamp);
            } else {
                assert_int_equal(open_xid, 0);
                assert_int_equal(rec.xid, 0);
                assert_null(rec.timestamp);
            }
            break;
        default:
            fail_msg("%s:%zu: unexpected action %c", path, i + 1, rec.action);
        }
    }
    assert_int_equal(open_xid, 0);
    w2j_decoder_destroy(dec);
    unload(l);
}

static void test_every_captured_line(void **state) {
    (void)state;
    check_file(W2J_DIR "outbox.jsonl", 45);
    check_file(W2J_DIR "outbox_invalid.jsonl", 15);
    check_file(W2J_DIR "types_num.jsonl", 51);
    check_file(W2J_DIR "weird_names.jsonl", 50);
    check_file(W2J_DIR "v2.6/types_str.jsonl", 51);
}

/* ---- exact values of chosen captured records ------------------------------------------ */

static void test_begin_commit_lsns(void **state) {
    lines_t *l = load(W2J_DIR "outbox.jsonl");
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;
    char err[256];

    (void)state;
    assert_int_equal(w2j_decode(dec, l->line[0], l->len[0], &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_BEGIN);
    assert_int_equal(rec.xid, 860);
    assert_int_equal(rec.lsn, 0x17136D0);
    assert_int_equal(rec.nextlsn, 0x1713700);
    assert_string_equal(rec.timestamp, "2026-11-23 06:32:19.352699+00");
    assert_null(rec.schema);
    assert_int_equal(rec.ncolumns, 0);

    assert_int_equal(w2j_decode(dec, l->line[1], l->len[1], &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_INSERT);
    assert_int_equal(rec.xid, 860);
    assert_int_equal(rec.lsn, 0x1713568);
    assert_int_equal(rec.nextlsn, 0);
    assert_string_equal(rec.schema, "public");
    assert_string_equal(rec.table, "outbox");
    assert_int_equal(rec.ncolumns, 7);
    assert_string_equal(rec.columns[0].name, "id");
    assert_string_equal(rec.columns[6].name, "created_at");
    ASSERT_COL(&rec, "id", "00000000-0000-4000-8000-000000000001");
    ASSERT_COL(&rec, "aggregate_type", "order");
    ASSERT_COL(&rec, "aggregate_id", "o-1");
    ASSERT_COL(&rec, "event_type", "OrderCreated");
    /* jsonb arrives as PostgreSQL's text form: keys reordered, 12.50 kept */
    ASSERT_COL(&rec, "payload", "{\"items\": [1, 2, 3], \"total\": 12.50}");
    ASSERT_COL_NULL(&rec, "headers");

    assert_int_equal(w2j_decode(dec, l->line[2], l->len[2], &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_COMMIT);
    assert_int_equal(rec.xid, 860);
    assert_int_equal(rec.lsn, 0x17136D0);
    assert_int_equal(rec.nextlsn, 0x1713700);

    /* a transaction on another table only: B then C, nothing between */
    assert_int_equal(w2j_decode(dec, l->line[21], l->len[21], &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_BEGIN);
    assert_int_equal(rec.xid, 866);
    assert_int_equal(w2j_decode(dec, l->line[22], l->len[22], &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_COMMIT);
    assert_int_equal(rec.xid, 866);
    assert_int_equal(rec.lsn, 0x1723C90);
    assert_int_equal(rec.nextlsn, 0x1723CC0);

    w2j_decoder_destroy(dec);
    unload(l);
}

static void test_string_escapes(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;

    (void)state;
    find_row(dec, W2J_DIR "outbox.jsonl", "00000000-0000-4000-8000-000000000002", &rec);
    /* E'q"uo\\te\nnl\ttab\x01ctl' decodes to the exact bytes */
    ASSERT_COL(&rec, "aggregate_id", "q\"uo\\te\nnl\ttab\001ctl");
    ASSERT_COL(&rec, "event_type", "Esc\"aped\\");
    /* inside jsonb text the JSON escapes stay escaped (one level removed by wal2json's) */
    ASSERT_COL(&rec, "payload", "{\"s\": \"q\\\"uo\\\\te\\nnl\\ttab\\u0001ctl\", \"slash\": \"a/b\"}");
    ASSERT_COL_NULL(&rec, "headers");
    w2j_decoder_destroy(dec);
}

static void test_unicode(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;

    (void)state;
    find_row(dec, W2J_DIR "outbox.jsonl", "00000000-0000-4000-8000-000000000003", &rec);
    ASSERT_COL(&rec, "aggregate_id", "caf\xc3\xa9-\xf0\x9f\x98\x80-\xe6\x9d\xb1\xe4\xba\xac"); /* café-😀-東京 */
    ASSERT_COL(&rec, "payload",
               "{\"name\": \"\xc3\xa9 \xf0\x9f\x98\x80 \xe6\x9d\xb1\xe4\xba\xac\", "
               "\"escaped\": \"\xc3\xa9\"}"); /* "\u00e9" in jsonb input comes out as é */
    w2j_decoder_destroy(dec);
}

static void test_nulls_and_headers(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;

    (void)state;
    find_row(dec, W2J_DIR "outbox.jsonl", "00000000-0000-4000-8000-000000000004", &rec);
    ASSERT_COL(&rec, "payload", "{\"paid\": true, \"notes\": [null, \"x\"], \"coupon\": null}");
    ASSERT_COL(&rec, "headers",
               "{\"empty\": \"\", \"ratio\": 0.25, \"absent\": null, \"nested\": {\"a\": [1, "
               "\"two\", null]}, \"urgent\": true, \"retries\": 3, \"traceparent\": "
               "\"00-abc-def-01\"}");
    find_row(dec, W2J_DIR "outbox.jsonl", "00000000-0000-4000-8000-000000000009", &rec);
    ASSERT_COL(&rec, "payload", "[]");
    ASSERT_COL_NULL(&rec, "headers");
    w2j_decoder_destroy(dec);
}

static void test_big_payload(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;
    const w2j_column_t *c;
    static const char head[] = "{\"rows\": [{\"i\": 1, \"name\": \"item 1\"}, {\"i\": 2,";
    static const char tail[] = "{\"i\": 9000, \"name\": \"item 9000\"}]}";

    (void)state;
    find_row(dec, W2J_DIR "outbox.jsonl", "00000000-0000-4000-8000-000000000005", &rec);
    c = w2j_column_find(&rec, "payload");
    assert_non_null(c);
    assert_int_equal(c->value_len, 303796);
    assert_int_equal(strlen(c->value), 303796);
    assert_memory_equal(c->value, head, sizeof(head) - 1);
    assert_memory_equal(c->value + c->value_len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    w2j_decoder_destroy(dec);
}

static void test_messages(void **state) {
    lines_t *l = load(W2J_DIR "outbox.jsonl");
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;
    char err[256];
    static const char content[] = "{\"id\":\"00000000-0000-4000-8000-000000000008\",\"aggregate_type\":\"order\","
                                  "\"aggregate_id\":\"o-6\",\"event_type\":\"OrderShipped\",\"payload\":{\"carrier\":"
                                  "\"UPS\",\"eta\":null},\"headers\":{\"h\":\"1\",\"n\":2}}";

    (void)state;
    /* transactional message between two inserts of transaction 865 */
    assert_int_equal(w2j_decode(dec, l->line[18], l->len[18], &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_MESSAGE);
    assert_int_equal(rec.xid, 865);
    assert_int_equal(rec.lsn, 0x1723B20);
    assert_true(rec.transactional);
    assert_string_equal(rec.prefix, "outbox");
    assert_int_equal(rec.content_len, sizeof(content) - 1);
    assert_string_equal(rec.content, content);
    assert_string_equal(rec.timestamp, "2026-11-23 06:32:19.383917+00");
    assert_null(rec.schema);
    assert_int_equal(rec.ncolumns, 0);

    /* non-transactional: "xid":null, "timestamp":null */
    assert_int_equal(w2j_decode(dec, l->line[26], l->len[26], &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_MESSAGE);
    assert_false(rec.transactional);
    assert_int_equal(rec.xid, 0);
    assert_null(rec.timestamp);
    assert_int_equal(rec.lsn, 0x1723F68);
    assert_string_equal(rec.prefix, "outbox");

    /* string payload with escapes and UTF-8 inside the content */
    assert_int_equal(w2j_decode(dec, l->line[24], l->len[24], &rec, err, sizeof(err)), 0);
    assert_true(rec.transactional);
    assert_non_null(strstr(rec.content, "\"payload\":\"plain \\\"text\\\" \xc3\xa9\""));

    w2j_decoder_destroy(dec);
    unload(l);
}

/* wal2json 2.5 without numeric-data-types-as-string: numbers and booleans are JSON. */
static void test_types_as_json_numbers(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;

    (void)state;
    find_row(dec, W2J_DIR "types_num.jsonl", "1", &rec);
    assert_string_equal(rec.table, "typed_values");
    ASSERT_COL(&rec, "id", "1");
    ASSERT_COL(&rec, "t", "text with \"quotes\", \\ and\nnewline");
    ASSERT_COL(&rec, "b", "00ff10"); /* bytea: hex without the \x prefix */
    ASSERT_COL(&rec, "i2", "-32768");
    ASSERT_COL(&rec, "i8", "9223372036854775807");
    ASSERT_COL(&rec, "f4", "3.14159");
    ASSERT_COL(&rec, "f8", "2.718281828459045");
    ASSERT_COL(&rec, "n", "1234567890.1234");
    ASSERT_COL(&rec, "n_free", "1e-21"); /* sent as 0.000000000000000000001 */
    ASSERT_COL(&rec, "flag", "true");
    ASSERT_COL(&rec, "js", "{\"a\": 1, \"b\": [true, null]}");
    ASSERT_COL(&rec, "ts", "2024-02-29 12:34:56.789+00");
    ASSERT_COL(&rec, "arr", "{1,2,NULL}");
    ASSERT_COL(&rec, "u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    ASSERT_COL_NULL(&rec, "nothing");

    find_row(dec, W2J_DIR "types_num.jsonl", "2", &rec);
    ASSERT_COL(&rec, "t", "");
    ASSERT_COL(&rec, "b", "");
    ASSERT_COL(&rec, "i8", "-1");
    ASSERT_COL_NULL(&rec, "f4");     /* real 'NaN' arrives as JSON null */
    ASSERT_COL_NULL(&rec, "f8");     /* 'Infinity' too */
    ASSERT_COL(&rec, "n", "-0.5");   /* sent as -0.5000: the scale is lost */
    ASSERT_COL_NULL(&rec, "n_free"); /* numeric 'NaN' */
    ASSERT_COL(&rec, "flag", "false");
    ASSERT_COL(&rec, "js", "null"); /* jsonb null is the string "null", not SQL NULL */

    find_row(dec, W2J_DIR "types_num.jsonl", "3", &rec);
    ASSERT_COL(&rec, "b", "68c3a96c6c6f");
    ASSERT_COL(&rec, "i8", "12345678901");
    ASSERT_COL(&rec, "f4", "1e-07");
    ASSERT_COL(&rec, "f8", "-1e+300");
    ASSERT_COL(&rec, "n", "0"); /* sent as 0.0000 */
    ASSERT_COL(&rec, "n_free", "100");
    ASSERT_COL_NULL(&rec, "flag");
    ASSERT_COL(&rec, "js", "\"str\"");
    w2j_decoder_destroy(dec);
}

/* wal2json 2.6 with numeric-data-types-as-string=1: exact PostgreSQL text. */
static void test_types_as_strings(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;

    (void)state;
    find_row(dec, W2J_DIR "v2.6/types_str.jsonl", "1", &rec);
    ASSERT_COL(&rec, "i8", "9223372036854775807");
    ASSERT_COL(&rec, "n", "1234567890.1234");
    ASSERT_COL(&rec, "n_free", "0.000000000000000000001");
    ASSERT_COL(&rec, "flag", "true"); /* booleans stay JSON true/false */
    ASSERT_COL(&rec, "b", "00ff10");
    find_row(dec, W2J_DIR "v2.6/types_str.jsonl", "2", &rec);
    ASSERT_COL(&rec, "f4", "NaN");
    ASSERT_COL(&rec, "f8", "Infinity");
    ASSERT_COL(&rec, "n", "-0.5000");
    ASSERT_COL(&rec, "n_free", "NaN");
    find_row(dec, W2J_DIR "v2.6/types_str.jsonl", "3", &rec);
    ASSERT_COL(&rec, "n", "0.0000");
    ASSERT_COL(&rec, "f8", "-1e+300");
    w2j_decoder_destroy(dec);
}

static void test_weird_names(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;

    (void)state;
    find_row(dec, W2J_DIR "weird_names.jsonl", "1", &rec);
    assert_string_equal(rec.schema, "My Schema");
    assert_string_equal(rec.table, "Out.box");
    ASSERT_COL(&rec, "note", "in My Schema.Out.box");
    w2j_decoder_destroy(dec);
}

/* ---- synthetic records ---------------------------------------------------------------- */

static void test_value_kinds(void **state) {
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;
    char err[256];
    static const char nul_json[] = "{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
                                   "[{\"name\":\"z\",\"value\":\"a\\u0000b\"}]}";

    (void)state;
    assert_int_equal(decode_str(dec,
                                "{\"action\":\"U\",\"xid\":4294967295,\"lsn\":\"FFFFFFFF/FFFFFFFF\","
                                "\"schema\":\"s\",\"table\":\"t\",\"origin\":7,\"columns\":["
                                "{\"name\":\"r\",\"value\":0.1},{\"name\":\"r2\",\"value\":1e300},"
                                "{\"name\":\"r3\",\"value\":-2.5E-3},{\"name\":\"i\",\"value\":-42},"
                                "{\"name\":\"o\",\"value\":{\"b\":[1,2.5,\"x\",null,true]}},"
                                "{\"name\":\"a\",\"value\":[]},{\"name\":\"s\",\"value\":\"\"},"
                                "{\"name\":\"\",\"value\":false}],"
                                "\"identity\":[{\"name\":\"i\",\"value\":1}]}",
                                &rec, err, sizeof(err)),
                     0);
    assert_int_equal(rec.action, W2J_UPDATE);
    assert_int_equal(rec.xid, UINT32_MAX);
    assert_int_equal(rec.lsn, UINT64_MAX);
    assert_null(rec.timestamp);
    assert_int_equal(rec.ncolumns, 8);
    ASSERT_COL(&rec, "r", "0.1");
    ASSERT_COL(&rec, "r2", "1e+300");
    ASSERT_COL(&rec, "r3", "-0.0025");
    ASSERT_COL(&rec, "i", "-42");
    ASSERT_COL(&rec, "o", "{\"b\":[1,2.5,\"x\",null,true]}");
    ASSERT_COL(&rec, "a", "[]");
    ASSERT_COL(&rec, "s", "");
    ASSERT_COL(&rec, "", "false");
    assert_null(w2j_column_find(&rec, "missing"));

    /* escaped NUL inside a value: kept, value_len counts it */
    assert_int_equal(w2j_decode(dec, nul_json, sizeof(nul_json) - 1, &rec, err, sizeof(err)), 0);
    ASSERT_COL(&rec, "z", "a\0b");

    /* D: identity ignored, no columns */
    assert_int_equal(decode_str(dec,
                                "{\"action\":\"D\",\"lsn\":\"0/10\",\"schema\":\"s\",\"table\":"
                                "\"t\",\"identity\":[{\"name\":\"id\",\"value\":1}]}",
                                &rec, err, sizeof(err)),
                     0);
    assert_int_equal(rec.action, W2J_DELETE);
    assert_int_equal(rec.ncolumns, 0);
    assert_int_equal(rec.lsn, 0x10);

    /* T */
    assert_int_equal(decode_str(dec, "{\"action\":\"T\",\"schema\":\"s\",\"table\":\"t\"}", &rec, err, sizeof(err)), 0);
    assert_int_equal(rec.action, W2J_TRUNCATE);
    assert_string_equal(rec.table, "t");

    /* I with no columns at all (a table without columns) */
    assert_int_equal(
        decode_str(dec, "{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[]}", &rec, err, sizeof(err)),
        0);
    assert_int_equal(rec.ncolumns, 0);

    /* message content may be empty */
    assert_int_equal(decode_str(dec,
                                "{\"action\":\"M\",\"xid\":null,\"lsn\":\"0/1\",\"transactional\":"
                                "false,\"prefix\":\"\",\"content\":\"\"}",
                                &rec, err, sizeof(err)),
                     0);
    assert_string_equal(rec.prefix, "");
    assert_int_equal(rec.content_len, 0);
    assert_string_equal(rec.content, "");

    w2j_decoder_destroy(dec);
    w2j_decoder_destroy(NULL);
}

typedef struct bad_case {
    const char *json;
    const char *expect; /* substring of errstr */
} bad_case_t;

static void test_malformed(void **state) {
    static const bad_case_t cases[] = {
        {"", "malformed JSON"},
        {"{\"action\":\"B\",\"xid\":1", "malformed JSON at line 1 column"},
        {"{\"action\":\"B\",\"xid\":1,}", "malformed JSON"},
        {"{\"action\":\"C\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"} x", "malformed JSON"},
        {"{\"action\":\"C\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}\n{}", "malformed JSON"},
        {"[1]", "not a JSON object"},
        {"\"B\"", "'[' or '{' expected"},
        {"{}", "without \"action\""},
        {"{\"action\":\"X\"}", "unknown action \"X\""},
        {"{\"action\":\"\"}", "unknown action"},
        {"{\"action\":\"BB\"}", "unknown action \"BB\""},
        {"{\"action\":\"\\u0000\"}", "unknown action"},
        {"{\"action\":66}", "unknown action"},
        {"{\"action\":\"B\",\"xid\":1}", "without \"lsn\" (is wal2json's include-lsn on?)"},
        {"{\"action\":\"B\",\"lsn\":\"0/1\"}", "without \"nextlsn\""},
        {"{\"action\":\"C\",\"lsn\":\"0/1\",\"nextlsn\":null}", "without \"nextlsn\""},
        {"{\"action\":\"C\",\"lsn\":\"zz\",\"nextlsn\":\"0/2\"}", "field \"lsn\" is not an LSN"},
        {"{\"action\":\"C\",\"lsn\":1,\"nextlsn\":\"0/2\"}", "field \"lsn\" is not a string"},
        {"{\"action\":\"B\",\"xid\":\"1\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
         "field \"xid\" is not a transaction id"},
        {"{\"action\":\"B\",\"xid\":-1,\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}", "\"xid\""},
        {"{\"action\":\"B\",\"xid\":4294967296,\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}", "\"xid\""},
        {"{\"action\":\"B\",\"timestamp\":5,\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
         "field \"timestamp\" is not a string"},
        {"{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\"}", "action 'I' record without \"columns\""},
        {"{\"action\":\"U\",\"schema\":\"s\",\"table\":\"t\",\"columns\":{}}", "non-array \"columns\""},
        {"{\"action\":\"I\",\"table\":\"t\",\"columns\":[]}", "without \"schema\""},
        {"{\"action\":\"I\",\"schema\":\"s\",\"columns\":[]}", "without \"table\""},
        {"{\"action\":\"D\",\"schema\":\"s\"}", "without \"table\""},
        {"{\"action\":\"T\",\"schema\":\"s\",\"table\":7}", "field \"table\" is not a string"},
        {"{\"action\":\"I\",\"schema\":\"s\\u0000x\",\"table\":\"t\",\"columns\":[]}",
         "field \"schema\" contains a NUL"},
        {"{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[1]}", "columns[0] is not an object"},
        {"{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[{\"value\":1}]}", "columns[0].name missing"},
        {"{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[{\"name\":1,\"value\":1}]}",
         "columns[0].name is not a string"},
        {"{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[{\"name\":\"a\",\"value\":1},"
         "{\"name\":\"b\"}]}",
         "columns[1] (\"b\") without \"value\""},
        {"{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[{\"name\":\"n\",\"value\":"
         "123456789012345678901234567890}]}",
         "number out of range"},
        {"{\"action\":\"M\",\"prefix\":\"p\",\"content\":\"c\"}", "without \"transactional\""},
        {"{\"action\":\"M\",\"transactional\":1,\"prefix\":\"p\",\"content\":\"c\"}", "non-boolean \"transactional\""},
        {"{\"action\":\"M\",\"transactional\":true,\"content\":\"c\"}", "without \"prefix\""},
        {"{\"action\":\"M\",\"transactional\":true,\"prefix\":\"p\"}", "without \"content\""},
        {"{\"action\":\"M\",\"transactional\":true,\"prefix\":\"p\",\"content\":{}}", "non-string \"content\""},
    };
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        if (decode_str(dec, cases[i].json, &rec, err, sizeof(err)) != -1)
            fail_msg("case %zu (%s) decoded", i, cases[i].json);
        if (strstr(err, cases[i].expect) == NULL)
            fail_msg("case %zu (%s): error \"%s\" lacks \"%s\"", i, cases[i].json, err, cases[i].expect);
    }
    /* jansson's position in the message */
    assert_int_equal(decode_str(dec, "{\"action\":\"B\",,}", &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 1 column 15 (position 15)"));
    /* a record that is not NUL-terminated: only len bytes are read */
    assert_int_equal(
        w2j_decode(dec, "{\"action\":\"T\",\"schema\":\"s\",\"table\":\"t\"}GARBAGE", 39, &rec, err, sizeof(err)), 0);
    /* a tiny errstr is truncated, not overflowed */
    assert_int_equal(decode_str(dec, "{\"action\":\"X\"}", &rec, err, 8), -1);
    assert_int_equal(strlen(err), 7);
    w2j_decoder_destroy(dec);
}

/* ---- the fast paths (B, C and I records) ---------------------------------------------- */

/* A deep copy of a decoded record, to compare two decodes made with one decoder. */
typedef struct snap {
    w2j_record_t r;
    char *str[8 + 2 * 64];
    size_t nstr;
} snap_t;

static const char *keep(snap_t *s, const char *p, size_t len) {
    if (p == NULL)
        return NULL;
    assert_true(s->nstr < sizeof(s->str) / sizeof(s->str[0]));
    s->str[s->nstr] = malloc(len + 1);
    assert_non_null(s->str[s->nstr]);
    memcpy(s->str[s->nstr], p, len + 1);
    return s->str[s->nstr++];
}

static void snap_take(snap_t *s, const w2j_record_t *r) {
    static w2j_column_t cols[64];
    memset(s, 0, sizeof(*s));
    s->r = *r;
    s->r.timestamp = keep(s, r->timestamp, r->timestamp ? strlen(r->timestamp) : 0);
    s->r.schema = keep(s, r->schema, r->schema ? strlen(r->schema) : 0);
    s->r.table = keep(s, r->table, r->table ? strlen(r->table) : 0);
    s->r.prefix = keep(s, r->prefix, r->prefix ? strlen(r->prefix) : 0);
    s->r.content = keep(s, r->content, r->content_len);
    assert_true(r->ncolumns <= 64);
    for (size_t i = 0; i < r->ncolumns; i++) {
        cols[i].name = keep(s, r->columns[i].name, strlen(r->columns[i].name));
        cols[i].value = keep(s, r->columns[i].value, r->columns[i].value_len);
        cols[i].value_len = r->columns[i].value_len;
    }
    s->r.columns = cols;
}

static void snap_free(snap_t *s) {
    for (size_t i = 0; i < s->nstr; i++)
        free(s->str[i]);
}

static void assert_str_same(const char *a, const char *b) {
    assert_int_equal(a == NULL, b == NULL);
    if (a != NULL)
        assert_string_equal(a, b);
}

/* Decodes json as given (records in wal2json's exact spelling take a fast path) and with a
 * space after the opening brace (always parsed by jansson); both must agree. */
static void assert_same_as_jansson(w2j_decoder_t *dec, const char *json, size_t len) {
    char *spaced = malloc(len + 2), err1[256], err2[256];
    w2j_record_t a, b;
    snap_t sa;
    int rc1, rc2;

    assert_non_null(spaced);
    assert_true(len > 0 && json[0] == '{');
    spaced[0] = '{';
    spaced[1] = ' ';
    memcpy(spaced + 2, json + 1, len - 1);
    rc1 = w2j_decode(dec, json, len, &a, err1, sizeof(err1));
    if (rc1 == 0)
        snap_take(&sa, &a); /* a's pointers die with the next decode */
    rc2 = w2j_decode(dec, spaced, len + 1, &b, err2, sizeof(err2));
    if (rc1 != rc2)
        fail_msg("%.*s: fast path %d (%s), jansson %d (%s)", (int)len, json, rc1, rc1 ? err1 : "", rc2,
                 rc2 ? err2 : "");
    if (rc1 == 0) {
        assert_int_equal(sa.r.action, b.action);
        assert_int_equal(sa.r.xid, b.xid);
        assert_int_equal(sa.r.lsn, b.lsn);
        assert_int_equal(sa.r.nextlsn, b.nextlsn);
        assert_str_same(sa.r.timestamp, b.timestamp);
        assert_str_same(sa.r.schema, b.schema);
        assert_str_same(sa.r.table, b.table);
        assert_str_same(sa.r.prefix, b.prefix);
        assert_int_equal(sa.r.content_len, b.content_len);
        assert_int_equal(sa.r.transactional, b.transactional);
        assert_int_equal(sa.r.ncolumns, b.ncolumns);
        for (size_t i = 0; i < b.ncolumns; i++) {
            assert_string_equal(sa.r.columns[i].name, b.columns[i].name);
            assert_int_equal(sa.r.columns[i].value_len, b.columns[i].value_len);
            assert_int_equal(sa.r.columns[i].value == NULL, b.columns[i].value == NULL);
            if (b.columns[i].value != NULL) {
                assert_memory_equal(sa.r.columns[i].value, b.columns[i].value, b.columns[i].value_len);
                assert_int_equal(b.columns[i].value[b.columns[i].value_len], '\0');
                assert_int_equal(sa.r.columns[i].value[b.columns[i].value_len], '\0');
            }
        }
        snap_free(&sa);
    }
    free(spaced);
}

static void test_fast_paths(void **state) {
    static const char *const files[] = {"outbox.jsonl", "outbox_invalid.jsonl", "types_num.jsonl", "weird_names.jsonl",
                                        "v2.6/types_str.jsonl"};
    /* Near misses: the fast paths must leave each to jansson, which decides as before, or
     * decode it exactly as jansson does. */
    static const char *const odd[] = {
        "{\"action\":\"B\",\"xid\":4294967295,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"B\",\"xid\":4294967296,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"B\",\"xid\":99999999999,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":0,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":07,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":-7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7.0,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":null,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":null,\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"\\u0032026-01-01\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"a\\\"b\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"caf\xc3\xa9\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"caf\xc3\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"zz\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"1/2/3\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"FFFFFFFF/FFFFFFFF\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"100000000/0\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\",\"origin\":\"x\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}x",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}\n",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"nextlsn\":\"0/2\",\"lsn\":\"0/1\"}",
        "{\"action\":\"C\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\"}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"nextlsn\":\"0/2\"}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"x\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":null},{\"name\":\"b\",\"value\":\"\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"q\\\"b\\\\s\\/n\\n\\r\\t\\b\\f\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\\\"b\",\"value\":\"x\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"\\u00e9\\u0000z\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"\\x\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"caf\xc3\xa9\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"bad\xc3\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"tab\there\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":42}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":true}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"x\"},]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"x\"}]",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"x\"}]}}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"x}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"value\":\"x\",\"name\":\"a\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"x\",\"type\":\"text\"}]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"0/1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
        "[{\"name\":\"a\",\"value\":\"x\"}],\"pk\":[]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"lsn\":\"zz\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[]"
        "}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":\"t\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[]}",
        "{\"action\":\"I\",\"xid\":7,\"timestamp\":null,\"lsn\":\"0/"
        "1\",\"schema\":\"s\",\"table\":\"t\",\"columns\":[]}",
    };
    w2j_decoder_t *dec = w2j_decoder_new();
    size_t seen = 0;
    char path[256];

    (void)state;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        snprintf(path, sizeof(path), "%s%s", W2J_DIR, files[f]);
        lines_t *l = load(path);
        for (size_t i = 0; i < l->n; i++) {
            assert_same_as_jansson(dec, l->line[i], l->len[i]);
            seen++;
        }
        unload(l);
    }
    assert_true(seen >= 200);
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        assert_same_as_jansson(dec, odd[i], strlen(odd[i]));
    w2j_decoder_destroy(dec);
}

/* The decoder keeps working after errors and big records; pointers stay valid until the
 * next call. */
static void test_reuse(void **state) {
    lines_t *l = load(W2J_DIR "outbox.jsonl");
    w2j_decoder_t *dec = w2j_decoder_new();
    w2j_record_t rec;
    char err[256];

    (void)state;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < l->n; i++) {
            assert_int_equal(w2j_decode(dec, l->line[i], l->len[i], &rec, err, sizeof(err)), 0);
            assert_int_equal(decode_str(dec, "{\"action\":", &rec, err, sizeof(err)), -1);
        }
        assert_int_equal(decode_str(dec,
                                    "{\"action\":\"I\",\"schema\":\"s\",\"table\":\"t\",\"columns\":"
                                    "[{\"name\":\"n\",\"value\":7}]}",
                                    &rec, err, sizeof(err)),
                         0);
        ASSERT_COL(&rec, "n", "7");
    }
    w2j_decoder_destroy(dec);
    unload(l);
}

/* ---- bytea values --------------------------------------------------------------------- */

static void expect_hex(const char *hex, const void *bytes, size_t n) {
    unsigned char out[64];
    size_t len = 999, bad = 999;

    memset(out, 0xAA, sizeof(out));
    if (w2j_bytea_decode(hex, strlen(hex), out, &len, &bad) != 0)
        fail_msg("\"%s\" refused at %zu", hex, bad);
    assert_int_equal(len, n);
    assert_memory_equal(out, bytes, n);
    assert_int_equal(out[n], 0xAA); /* nothing written past n */
}

static void expect_bad_hex(const char *hex, size_t n, size_t bad_pos) {
    unsigned char out[64];
    size_t len = 999, bad = 999;

    assert_int_equal(w2j_bytea_decode(hex, n, out, &len, &bad), -1);
    assert_int_equal(bad, bad_pos);
    assert_int_equal(len, 999);
}

static void test_bytea_decode(void **state) {
    (void)state;
    expect_hex("", "", 0);
    expect_hex("\\x", "", 0);
    expect_hex("00", "\0", 1);
    expect_hex("000000", "\0\0\0", 3);
    expect_hex("00ff00410a", "\x00\xff\x00\x41\x0a", 5);
    expect_hex("\\x00ff", "\x00\xff", 2);
    expect_hex("DEADbeef", "\xde\xad\xbe\xef", 4);
    expect_hex("0123456789abcdefABCDEF", "\x01\x23\x45\x67\x89\xab\xcd\xef\xab\xcd\xef", 11);

    expect_bad_hex("0", 1, 1); /* odd: offset = length */
    expect_bad_hex("abc", 3, 3);
    expect_bad_hex("\\x0", 3, 3);
    expect_bad_hex("0g", 2, 1);
    expect_bad_hex("g0", 2, 0);
    expect_bad_hex("00 1", 4, 2);
    expect_bad_hex("\\x\\x00", 6, 2); /* one prefix only */
    expect_bad_hex("x0", 2, 0);
    expect_bad_hex("00\\377A", 7, 7); /* bytea_output = escape, as wal2json garbles it */
    expect_bad_hex("0\0", 2, 1);      /* an embedded NUL is not a digit */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_captured_line),
        cmocka_unit_test(test_begin_commit_lsns),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_nulls_and_headers),
        cmocka_unit_test(test_big_payload),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_types_as_json_numbers),
        cmocka_unit_test(test_types_as_strings),
        cmocka_unit_test(test_weird_names),
        cmocka_unit_test(test_value_kinds),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_fast_paths),
        cmocka_unit_test(test_bytea_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
