/* test_pgo_decode.c - unit tests of the pgoutput decoder over a real capture
 * (tests/data/pgoutput/stream.pgo) and the wal2json capture of the same WAL (stream.jsonl):
 * the router makes the same Kafka records of both, commits carry the same LSNs and times,
 * column values match wal2json's; and malformed, truncated or unsupported messages fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decoder.h"
#include "hex.h"
#include "lsn.h"
#include "pgo_decode.h"
#include "relay_ops.h"
#include "router.h"

#define PGO_DIR TEST_DATA_DIR "/pgoutput/"

/* ---- captures ------------------------------------------------------------------------- */

typedef struct msg {
    lsn_t lsn;
    char *data;
    size_t len;
} msg_t;

typedef struct capture {
    msg_t m[512];
    size_t n;
} capture_t;

/* stream.pgo: "LSN<TAB>hex" lines; stream.jsonl: one JSON record a line (lsn 0). */
static capture_t *load(const char *path, bool hexlines) {
    capture_t *c = calloc(1, sizeof(*c));
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    assert_non_null(c);
    if (!f)
        fail_msg("cannot open %s", path);
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0)
            continue;
        assert_true(c->n < 512);
        msg_t *m = &c->m[c->n++];
        if (!hexlines) {
            m->data = strdup(line);
            m->len = (size_t)n;
            continue;
        }
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        assert_int_equal(lsn_parse(line, &m->lsn), 0);
        size_t hl = strlen(tab + 1);
        m->data = malloc(hl / 2 + 1);
        for (size_t i = 0; i < hl; i += 2)
            m->data[i / 2] = (char)(hex_digit_value(tab[1 + i]) << 4 | hex_digit_value(tab[2 + i]));
        m->len = hl / 2;
    }
    free(line);
    fclose(f);
    return c;
}

static void unload(capture_t *c) {
    for (size_t i = 0; i < c->n; i++)
        free(c->m[i].data);
    free(c);
}

/* ---- what the router makes of a stream -------------------------------------------------- */

typedef struct rec_copy {
    router_result_t res;
    char action;
    char *id, *topic, *key, *value, *headers; /* headers: "name=value;" each */
    size_t key_len, value_len;
    uint32_t xid;
    char *timestamp;
    lsn_t commit_end; /* the end LSN of its transaction's commit; 0 for a non-transactional message */
} rec_copy_t;

typedef struct routed {
    rec_copy_t r[128];
    size_t n;
    size_t ncommits; /* commits of transactions with records */
} routed_t;

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (s)
        memcpy(d, s, n);
    d[s ? n : 0] = '\0';
    return d;
}

static char *headers_text(const outbox_event_t *ev) {
    size_t cap = 64;
    for (size_t i = 0; i < ev->nheaders; i++)
        cap += strlen(ev->headers[i].name) + ev->headers[i].value_len + 8;
    char *t = calloc(1, cap);
    for (size_t i = 0; i < ev->nheaders; i++) {
        strcat(t, ev->headers[i].name);
        strcat(t, ev->headers[i].value ? "=" : "=(null)");
        if (ev->headers[i].value)
            strncat(t, ev->headers[i].value, ev->headers[i].value_len);
        strcat(t, ";");
    }
    return t;
}

/* Decodes and routes every message of c with d and r. */
static void route_all(const capture_t *c, decoder_t *d, router_t *r, routed_t *out) {
    size_t txn_start = 0;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < c->n; i++) {
        w2j_record_t rec;
        outbox_event_t ev;
        char err[512] = "";
        int rc = decoder_decode(d, c->m[i].data, c->m[i].len, c->m[i].lsn, &rec, err, sizeof(err));
        if (rc < 0)
            fail_msg("message %zu: %s", i + 1, err);
        if (rc == 0)
            continue;
        if (rec.action == W2J_BEGIN) {
            txn_start = out->n;
            continue;
        }
        if (rec.action == W2J_COMMIT) {
            if (out->n > txn_start)
                out->ncommits++;
            for (size_t k = txn_start; k < out->n; k++)
                out->r[k].commit_end = rec.nextlsn;
            txn_start = out->n;
            continue;
        }
        router_result_t res = router_route(r, &rec, &ev, err, sizeof(err));
        if (res == ROUTER_SKIP)
            continue;
        assert_true(out->n < 128);
        rec_copy_t *x = &out->r[out->n++];
        x->res = res;
        x->action = (char)rec.action;
        x->xid = rec.xid;
        x->timestamp = rec.timestamp ? strdup(rec.timestamp) : NULL;
        if (!rec.transactional && rec.action == W2J_MESSAGE)
            txn_start = out->n; /* not part of a transaction */
        if (res == ROUTER_INVALID) {
            x->value = strdup(err);
            continue;
        }
        x->id = strdup(ev.id);
        x->topic = strdup(ev.topic);
        x->key = dupn(ev.key, ev.key_len);
        x->key_len = ev.key_len;
        x->value = dupn(ev.value, ev.value_len);
        x->value_len = ev.value_len;
        x->headers = headers_text(&ev);
    }
}

static void free_routed(routed_t *o) {
    for (size_t i = 0; i < o->n; i++) {
        rec_copy_t *x = &o->r[i];
        free(x->id);
        free(x->topic);
        free(x->key);
        free(x->value);
        free(x->headers);
        free(x->timestamp);
    }
}

static router_t *outbox_router(void) {
    router_options_t o = {.tables = "public.outbox, public.outbox_part", .message_prefix = "outbox"};
    o.columns.headers = "headers";
    o.header_columns = "created_at";
    char err[256];
    router_t *r = router_new(&o, err, sizeof(err));
    if (!r)
        fail_msg("router_new: %s", err);
    return r;
}

static void str_eq(const char *what, size_t i, const char *a, const char *b) {
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        fail_msg("record %zu: %s differs:\n  pgoutput: %s\n  wal2json: %s", i, what, a ? a : "(null)",
                 b ? b : "(null)");
}

/* The router makes the same records of both streams: same ids, topics, keys, values, headers
 * (created_at as a header: a timestamptz column), xids, commit times and commit end LSNs. */
static void test_same_records_as_wal2json(void **state) {
    (void)state;
    capture_t *pc = load(PGO_DIR "stream.pgo", true), *wc = load(PGO_DIR "stream.jsonl", false);
    decoder_t *pd = decoder_new(PLUGIN_PGOUTPUT), *wd = decoder_new(PLUGIN_WAL2JSON);
    router_t *pr = outbox_router(), *wr = outbox_router();
    /* wal2json reports partitioned rows under their partitions */
    const char *schemas[] = {"public", "public", "public"};
    const char *parts[] = {"outbox_part_2026_01", "outbox_part_2026_02", "outbox_part_2026_03"};
    assert_int_equal(router_set_partitions(wr, 1, 3, schemas, parts), 0);
    routed_t *p = calloc(1, sizeof(*p)), *w = calloc(1, sizeof(*w));
    route_all(pc, pd, pr, p);
    route_all(wc, wd, wr, w);

    assert_int_equal(p->n, w->n);
    assert_int_equal(p->n, 17); /* 12 rows and messages, the default-id row, 4 partitioned rows */
    assert_int_equal(p->ncommits, w->ncommits);
    size_t invalid = 0, parted = 0;
    for (size_t i = 0; i < p->n; i++) {
        rec_copy_t *a = &p->r[i], *b = &w->r[i];
        assert_int_equal(a->res, b->res);
        assert_int_equal(a->action, b->action);
        str_eq("timestamp", i, a->timestamp, b->timestamp);
        assert_int_equal(a->xid, b->xid);
        assert_true(a->commit_end == b->commit_end);
        str_eq("value", i, a->value, b->value);
        if (a->res == ROUTER_INVALID) { /* the non-transactional message */
            invalid++;
            continue;
        }
        str_eq("id", i, a->id, b->id);
        str_eq("topic", i, a->topic, b->topic);
        assert_int_equal(a->key_len, b->key_len);
        assert_memory_equal(a->key, b->key, a->key_len);
        assert_int_equal(a->value_len, b->value_len);
        str_eq("headers", i, a->headers, b->headers);
        if (!strncmp(a->id, "00000000-0000-4000-8000-0000000001", 34))
            parted++;
    }
    assert_int_equal(invalid, 1);
    assert_int_equal(parted, 4); /* including the row of the partition created after the slot */
    free_routed(p);
    free_routed(w);
    free(p);
    free(w);
    router_destroy(pr);
    router_destroy(wr);
    decoder_destroy(pd);
    decoder_destroy(wd);
    unload(pc);
    unload(wc);
}

/* The I record of table typed_values with id `id` from capture c decoded with d (borrowed). */
static const w2j_record_t *typed_row(const capture_t *c, decoder_t *d, const char *id, w2j_record_t *rec) {
    for (size_t i = 0; i < c->n; i++) {
        char err[256];
        int rc = decoder_decode(d, c->m[i].data, c->m[i].len, c->m[i].lsn, rec, err, sizeof(err));
        assert_true(rc >= 0);
        if (rc == 1 && rec->action == W2J_INSERT && !strcmp(rec->table, "typed_values")) {
            const w2j_column_t *col = w2j_column_find(rec, "id");
            if (col && col->value && !strcmp(col->value, id))
                return rec;
        }
    }
    fail_msg("typed_values row %s not found", id);
    return NULL;
}

/* Column by column, pgoutput's values are wal2json's (bool as true/false, bytea without \x, a
 * domain over bytea with it), except numeric and float8: PostgreSQL's exact text here. */
static void test_values_as_wal2json(void **state) {
    (void)state;
    capture_t *pc = load(PGO_DIR "stream.pgo", true), *wc = load(PGO_DIR "stream.jsonl", false);
    static const char *const ids[] = {"1", "2"};
    for (size_t k = 0; k < 2; k++) {
        decoder_t *pd = decoder_new(PLUGIN_PGOUTPUT), *wd = decoder_new(PLUGIN_WAL2JSON);
        w2j_record_t prec, wrec;
        const w2j_record_t *p = typed_row(pc, pd, ids[k], &prec), *w = typed_row(wc, wd, ids[k], &wrec);
        assert_int_equal(p->ncolumns, w->ncolumns);
        for (size_t i = 0; i < p->ncolumns; i++) {
            const w2j_column_t *a = &p->columns[i], *b = &w->columns[i];
            assert_string_equal(a->name, b->name);
            if (!strcmp(a->name, "n") || !strcmp(a->name, "f8"))
                continue;
            if ((a->value == NULL) != (b->value == NULL) ||
                (a->value && (a->value_len != b->value_len || memcmp(a->value, b->value, a->value_len) != 0)))
                fail_msg("row %s column %s: pgoutput \"%s\", wal2json \"%s\"", ids[k], a->name,
                         a->value ? a->value : "NULL", b->value ? b->value : "NULL");
        }
        const w2j_column_t *flag = w2j_column_find(p, "flag"), *b = w2j_column_find(p, "b"),
                           *d = w2j_column_find(p, "d"), *n = w2j_column_find(p, "n");
        assert_string_equal(flag->value, k == 0 ? "true" : "false");
        assert_string_equal(b->value, k == 0 ? "00ff10" : "");
        assert_string_equal(d->value, k == 0 ? "\\x0a0b" : "\\x");
        assert_string_equal(n->value, k == 0 ? "1234567890.1234" : "0.0000");
        assert_null(w2j_column_find(p, "nothing")->value);
        decoder_destroy(pd);
        decoder_destroy(wd);
    }
    unload(pc);
    unload(wc);
}

/* Messages: prefix, content, transactional flag; a non-transactional one has no xid. */
static void test_messages(void **state) {
    (void)state;
    capture_t *c = load(PGO_DIR "stream.pgo", true);
    pgo_decoder_t *d = pgo_decoder_new();
    size_t tx = 0, nontx = 0, other = 0;
    for (size_t i = 0; i < c->n; i++) {
        w2j_record_t rec;
        char err[256];
        assert_true(pgo_decode(d, c->m[i].data, c->m[i].len, c->m[i].lsn, &rec, err, sizeof(err)) >= 0);
        if (rec.action != W2J_MESSAGE)
            continue;
        assert_int_equal(rec.content[rec.content_len], '\0');
        assert_true(rec.lsn != 0);
        if (!strcmp(rec.prefix, "other")) {
            other++;
            assert_string_equal(rec.content, "not for us");
        } else if (rec.transactional) {
            tx++;
            assert_true(rec.xid != 0);
            assert_non_null(rec.timestamp);
        } else {
            nontx++;
            assert_int_equal(rec.xid, 0);
            assert_null(rec.timestamp);
            assert_non_null(strstr(rec.content, "NonTx"));
        }
    }
    assert_int_equal(tx, 2);
    assert_int_equal(nontx, 1);
    assert_int_equal(other, 1); /* pgoutput does not filter by prefix: the router does */
    pgo_decoder_destroy(d);
    unload(c);
}

/* Every strict prefix of every captured message is refused (nothing reads past the end),
 * and the decoder still decodes the whole message afterwards. */
static void test_truncated(void **state) {
    (void)state;
    capture_t *c = load(PGO_DIR "stream.pgo", true);
    pgo_decoder_t *d = pgo_decoder_new();
    for (size_t i = 0; i < c->n; i++) {
        w2j_record_t rec;
        char err[256];
        size_t step = c->m[i].len > 4096 ? 997 : 1;
        for (size_t n = 0; n < c->m[i].len; n += step) {
            char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan catches a read past them */
            memcpy(copy, c->m[i].data, n);
            if (pgo_decode(d, copy, n, c->m[i].lsn, &rec, err, sizeof(err)) != -1)
                fail_msg("message %zu ('%c') cut to %zu of %zu bytes was accepted", i + 1, c->m[i].data[0], n,
                         c->m[i].len);
            free(copy);
        }
        if (pgo_decode(d, c->m[i].data, c->m[i].len, c->m[i].lsn, &rec, err, sizeof(err)) < 0)
            fail_msg("message %zu: %s", i + 1, err);
    }
    pgo_decoder_destroy(d);
    unload(c);
}

static int decode_bytes(pgo_decoder_t *d, const char *b, size_t n, w2j_record_t *rec, char *err, size_t errsz) {
    return pgo_decode(d, b, n, 0x100, rec, err, errsz);
}

/* Relation 4711 "s"."t" with columns a (text) and b (bool). */
static const char relation[] = "R\0\0\x12\x67s\0t\0d\0\x02"
                               "\1a\0\0\0\0\x19\xff\xff\xff\xff"
                               "\0b\0\0\0\0\x10\xff\xff\xff\xff";

static void test_unsupported_and_malformed(void **state) {
    (void)state;
    pgo_decoder_t *d = pgo_decoder_new();
    w2j_record_t rec;
    char err[256];
    /* an insert of a relation never announced */
    static const char ins[] = "I\0\0\x12\x67N\0\x02t\0\0\0\x01xt\0\0\0\x01t";
    assert_int_equal(decode_bytes(d, ins, sizeof(ins) - 1, &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "before its Relation message"));
    assert_int_equal(decode_bytes(d, relation, sizeof(relation) - 1, &rec, err, sizeof(err)), 0);
    assert_int_equal(decode_bytes(d, ins, sizeof(ins) - 1, &rec, err, sizeof(err)), 1);
    assert_int_equal(rec.action, W2J_INSERT);
    assert_string_equal(rec.schema, "s");
    assert_string_equal(rec.table, "t");
    assert_int_equal(rec.ncolumns, 2);
    assert_string_equal(rec.columns[0].value, "x");
    assert_string_equal(rec.columns[1].value, "true");
    assert_int_equal(rec.columns[1].value_len, 4);
    assert_true(rec.lsn == 0x100);
    assert_int_equal(rec.xid, 0); /* outside a Begin: none */
    /* a binary value (binary 'true' is never asked for) */
    static const char bin[] = "I\0\0\x12\x67N\0\x01"
                              "b\0\0\0\x01x";
    assert_int_equal(decode_bytes(d, bin, sizeof(bin) - 1, &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "binary"));
    /* more columns than the relation has */
    static const char wide[] = "I\0\0\x12\x67N\0\x03nnn";
    assert_int_equal(decode_bytes(d, wide, sizeof(wide) - 1, &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "3 columns"));
    /* neither 'N' nor a key tuple */
    static const char noN[] = "I\0\0\x12\x67X\0\x00";
    assert_int_equal(decode_bytes(d, noN, sizeof(noN) - 1, &rec, err, sizeof(err)), -1);
    /* stream start (proto_version 2, never asked for) and garbage */
    assert_int_equal(decode_bytes(d, "S\0\0\0\1\1", 6, &rec, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown pgoutput message type 0x53"));
    /* NULL and unchanged TOAST values: NULL in the record */
    static const char nul[] = "I\0\0\x12\x67N\0\x02nu";
    assert_int_equal(decode_bytes(d, nul, sizeof(nul) - 1, &rec, err, sizeof(err)), 1);
    assert_null(rec.columns[0].value);
    assert_null(rec.columns[1].value);
    /* an update with the old key first, then the new tuple; a delete */
    static const char upd[] = "U\0\0\x12\x67K\0\x02t\0\0\0\x01kn"
                              "N\0\x02t\0\0\0\x02net\0\0\0\x01w";
    assert_int_equal(decode_bytes(d, upd, sizeof(upd) - 1, &rec, err, sizeof(err)), 1);
    assert_int_equal(rec.action, W2J_UPDATE);
    assert_string_equal(rec.columns[0].value, "ne");
    assert_string_equal(rec.columns[1].value, "w");
    static const char del[] = "D\0\0\x12\x67K\0\x01n";
    assert_int_equal(decode_bytes(d, del, sizeof(del) - 1, &rec, err, sizeof(err)), 1);
    assert_int_equal(rec.action, W2J_DELETE);
    /* a Relation message announcing the relation again (ALTER TABLE) replaces it */
    static const char rel2[] = "R\0\0\x12\x67s\0t2\0d\0\x01"
                               "\1c\0\0\0\0\x19\xff\xff\xff\xff";
    assert_int_equal(decode_bytes(d, rel2, sizeof(rel2) - 1, &rec, err, sizeof(err)), 0);
    static const char ins1[] = "I\0\0\x12\x67N\0\x01t\0\0\0\x01z";
    assert_int_equal(decode_bytes(d, ins1, sizeof(ins1) - 1, &rec, err, sizeof(err)), 1);
    assert_string_equal(rec.table, "t2");
    assert_string_equal(rec.columns[0].name, "c");
    /* reset forgets relations */
    pgo_decoder_reset(d);
    assert_int_equal(decode_bytes(d, ins1, sizeof(ins1) - 1, &rec, err, sizeof(err)), -1);
    pgo_decoder_destroy(d);
    pgo_decoder_destroy(NULL);
}

/* A pgoutput record rendered as wal2json (what a dead-letter record carries, and what
 * `outboxd replay` routes again) decodes back to the same record, and routes the same. */
static void test_as_wal2json_round_trip(void **state) {
    (void)state;
    capture_t *pc = load(PGO_DIR "stream.pgo", true);
    decoder_t *pd = decoder_new(PLUGIN_PGOUTPUT), *wd = decoder_new(PLUGIN_WAL2JSON);
    router_t *r1 = outbox_router(), *r2 = outbox_router();
    size_t checked = 0, messages = 0;
    for (size_t i = 0; i < pc->n; i++) {
        w2j_record_t a, b;
        char err[256];
        if (decoder_decode(pd, pc->m[i].data, pc->m[i].len, pc->m[i].lsn, &a, err, sizeof(err)) != 1 ||
            (a.action != W2J_INSERT && a.action != W2J_MESSAGE))
            continue;
        const char *json;
        size_t len;
        assert_int_equal(decoder_as_wal2json(pd, &a, pc->m[i].data, pc->m[i].len, &json, &len), 0);
        if (decoder_decode(wd, json, len, 0, &b, err, sizeof(err)) != 1)
            fail_msg("record %zu rendered as %s does not decode: %s", i, json, err);
        assert_int_equal(a.action, b.action);
        assert_int_equal(a.xid, b.xid);
        assert_true(a.lsn == b.lsn);
        str_eq("timestamp", i, a.timestamp, b.timestamp);
        if (a.action == W2J_MESSAGE) {
            messages++;
            assert_int_equal(a.transactional, b.transactional);
            str_eq("prefix", i, a.prefix, b.prefix);
            assert_int_equal(a.content_len, b.content_len);
            assert_memory_equal(a.content, b.content, a.content_len);
        } else {
            str_eq("schema", i, a.schema, b.schema);
            str_eq("table", i, a.table, b.table);
            assert_int_equal(a.ncolumns, b.ncolumns);
            for (size_t c = 0; c < a.ncolumns; c++) {
                str_eq("column", i, a.columns[c].name, b.columns[c].name);
                str_eq("value", i, a.columns[c].value, b.columns[c].value);
            }
        }
        outbox_event_t e1, e2;
        char err2[256];
        router_result_t x1 = router_route(r1, &a, &e1, err, sizeof(err));
        router_result_t x2 = router_route(r2, &b, &e2, err2, sizeof(err2));
        assert_int_equal(x1, x2);
        if (x1 == ROUTER_EVENT) {
            str_eq("topic", i, e1.topic, e2.topic);
            assert_int_equal(e1.value_len, e2.value_len);
            assert_memory_equal(e1.value, e2.value, e1.value_len);
        }
        checked++;
    }
    assert_true(checked >= 12 && messages >= 1);
    router_destroy(r1);
    router_destroy(r2);
    decoder_destroy(pd);
    decoder_destroy(wd);
    unload(pc);
}

static void expect_ts(int64_t us, const char *want) {
    char out[48];
    pgo_format_timestamp(us, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_timestamps(void **state) {
    (void)state;
    expect_ts(0, "2000-01-01 00:00:00+00");
    expect_ts(1, "2000-01-01 00:00:00.000001+00");
    expect_ts(190000, "2000-01-01 00:00:00.19+00");
    expect_ts(-1, "1999-12-31 23:59:59.999999+00");
    expect_ts(-1000000, "1999-12-31 23:59:59+00");
    /* 2026-12-04 00:16:30 UTC: Unix 1796343390 */
    expect_ts((1796343390LL - 946684800LL) * 1000000LL + 167436, "2026-12-04 00:16:30.167436+00");
    expect_ts((1796343390LL - 946684800LL) * 1000000LL, "2026-12-04 00:16:30+00");
}

/* Found by fuzz_pgo_decode: a Begin whose commit time is far out of range (INT64_MAX) made
 * the formatter overflow. Now such a time is unknown: no text, 0 microseconds. */
static void test_timestamp_out_of_range(void **state) {
    (void)state;
    expect_ts(INT64_MAX, "");
    expect_ts(INT64_MIN, "");
    expect_ts(9223090583285823488LL, ""); /* the fuzzer's value */
    pgo_decoder_t *d = pgo_decoder_new();
    assert_non_null(d);
    /* 'B', final LSN 0/100, commit time 0x7fff...ff, xid 7 */
    static const char begin[] = "B\0\0\0\0\0\0\x01\0\x7f\xff\xff\xff\xff\xff\xff\xff\0\0\0\x07";
    w2j_record_t rec;
    char err[256];
    assert_int_equal(decode_bytes(d, begin, sizeof(begin) - 1, &rec, err, sizeof(err)), 1);
    assert_int_equal(rec.action, W2J_BEGIN);
    assert_null(rec.timestamp);
    assert_int_equal(rec.commit_time_us, 0);
    assert_int_equal(rec.xid, 7);
    pgo_decoder_destroy(d);
}

/* What pgoutput's Begin gives as text, the relay's timestamp parser reads back to the same
 * microsecond (its fast path and its sscanf path alike), over 50 years of times. */
static void test_timestamps_round_trip(void **state) {
    (void)state;
    int64_t us = -1000000LL * 86400 * 365 * 10; /* 1990 */
    for (int i = 0; i < 20000; i++, us += 78901234567LL + i) {
        char text[48];
        int64_t back = 0;
        pgo_format_timestamp(us, text, sizeof(text));
        assert_int_equal(relay_ops_parse_timestamp(text, &back), 0);
        if (back != us + 946684800LL * 1000000LL)
            fail_msg("%s read back as %lld, not %lld", text, (long long)back, (long long)(us + 946684800000000LL));
    }
    int64_t a, b;
    assert_int_equal(relay_ops_parse_timestamp("2026-12-04 00:16:30.5+00", &a), 0);
    assert_int_equal(relay_ops_parse_timestamp("2026-12-04 01:16:30.5+01", &b), 0); /* the sscanf path */
    assert_true(a == b && a == 1796343390500000LL);
}

static void test_plugin_names(void **state) {
    (void)state;
    plugin_t p;
    assert_int_equal(plugin_parse("wal2json", &p), 0);
    assert_int_equal(p, PLUGIN_WAL2JSON);
    assert_int_equal(plugin_parse("pgoutput", &p), 0);
    assert_int_equal(p, PLUGIN_PGOUTPUT);
    assert_int_equal(plugin_parse("test_decoding", &p), -1);
    assert_string_equal(plugin_name(PLUGIN_PGOUTPUT), "pgoutput");
    assert_string_equal(plugin_name(PLUGIN_WAL2JSON), "wal2json");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_records_as_wal2json),
        cmocka_unit_test(test_values_as_wal2json),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_unsupported_and_malformed),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_timestamps_round_trip),
        cmocka_unit_test(test_timestamp_out_of_range),
        cmocka_unit_test(test_as_wal2json_round_trip),
        cmocka_unit_test(test_plugin_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
