/* test_router.c - unit tests of the outbox router: captured rows and messages to Kafka
 * records, payload types, headers, every INVALID reason. The options alone are tested in
 * test_route_config, the topic template in test_topic_template. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"
#include "w2j_decode.h"

#define W2J_DIR TEST_DATA_DIR "/wal2json/"

/* ---- helpers -------------------------------------------------------------------------- */

static router_t *mk(const router_options_t *o) {
    char err[256] = "";
    router_t *r = router_new(o, err, sizeof(err));

    if (r == NULL)
        fail_msg("router_new: %s", err);
    return r;
}

/* Options as outboxd's configuration fills them by default. */
static router_options_t defaults(void) {
    router_options_t o = {0};

    o.tables = "outbox";
    o.columns.headers = "headers";
    o.message_prefix = "outbox";
    return o;
}

static void expect_new_error(const router_options_t *o, const char *expect) {
    char err[512] = "";
    router_t *r = router_new(o, err, sizeof(err));

    if (r != NULL)
        fail_msg("router_new accepted it (expected \"%s\")", expect);
    if (strstr(err, expect) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, expect);
}

static void assert_mem_str(const char *p, size_t len, const char *s) {
    if (p == NULL || len != strlen(s) || memcmp(p, s, len) != 0)
        fail_msg("got \"%.*s\" (%zu bytes), expected \"%s\"", p ? (int)len : 6, p ? p : "(null)", len, s);
    assert_int_equal(p[len], '\0');
}

static void assert_header(const outbox_event_t *ev, size_t i, const char *name, const char *value) {
    assert_true(i < ev->nheaders);
    assert_string_equal(ev->headers[i].name, name);
    if (value == NULL) {
        assert_null(ev->headers[i].value);
        assert_int_equal(ev->headers[i].value_len, 0);
    } else {
        assert_mem_str(ev->headers[i].value, ev->headers[i].value_len, value);
    }
}

/* Decoded records of a capture, with a router run over them. */
typedef struct run {
    char *data;
    size_t nlines;
    size_t nevents, nskips, ninvalid;
} run_t;

typedef void (*on_event_fn)(const w2j_record_t *rec, router_result_t res, const outbox_event_t *ev, const char *err,
                            void *arg);

static void route_file(const char *path, router_t *r, on_event_fn fn, void *arg, run_t *out) {
    FILE *f = fopen(path, "rb");
    w2j_decoder_t *dec = w2j_decoder_new();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    memset(out, 0, sizeof(*out));
    while ((n = getline(&line, &cap, f)) > 0) {
        w2j_record_t rec;
        outbox_event_t ev;
        char err[512] = "";
        router_result_t res;

        if (line[n - 1] == '\n')
            n--;
        if (w2j_decode(dec, line, (size_t)n, &rec, err, sizeof(err)) != 0)
            fail_msg("%s:%zu: %s", path, out->nlines + 1, err);
        out->nlines++;
        res = router_route(r, &rec, &ev, err, sizeof(err));
        if (res == ROUTER_EVENT)
            out->nevents++;
        else if (res == ROUTER_SKIP)
            out->nskips++;
        else
            out->ninvalid++;
        if (fn != NULL)
            fn(&rec, res, &ev, err, arg);
    }
    free(line);
    fclose(f);
    w2j_decoder_destroy(dec);
}

/* ---- captured outbox rows and messages ------------------------------------------------ */

static void check_outbox_event(const w2j_record_t *rec, router_result_t res, const outbox_event_t *ev, const char *err,
                               void *arg) {
    size_t *seen = arg;
    static const char *const order[] = {
        "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004",
        "00000000-0000-4000-8000-000000000005", "00000000-0000-4000-8000-000000000006",
        "00000000-0000-4000-8000-000000000007", "00000000-0000-4000-8000-000000000008",
        "00000000-0000-4000-8000-000000000009", "00000000-0000-4000-8000-00000000000a",
        "00000000-0000-4000-8000-00000000000c", NULL /* default gen_random_uuid() id */};

    if (res == ROUTER_INVALID) {
        /* only the captured non-transactional message: never silently skipped */
        assert_true(rec->action == W2J_MESSAGE && !rec->transactional);
        assert_non_null(strstr(err, "non-transactional outbox message"));
        return;
    }
    if (res == ROUTER_SKIP) {
        assert_true(rec->action == W2J_BEGIN || rec->action == W2J_COMMIT);
        return;
    }
    assert_true(*seen < sizeof(order) / sizeof(order[0]));
    if (order[*seen] != NULL)
        assert_string_equal(ev->id, order[*seen]);
    (*seen)++;

    /* common to every event */
    assert_true(ev->nheaders >= 2);
    assert_header(ev, 0, "id", ev->id);
    assert_string_equal(ev->headers[1].name, "event_type");
    assert_mem_str(ev->headers[1].value, ev->headers[1].value_len, ev->event_type);

    if (strcmp(ev->id, "00000000-0000-4000-8000-000000000001") == 0) {
        assert_string_equal(ev->topic, "outbox.event.order");
        assert_mem_str(ev->key, ev->key_len, "o-1");
        assert_mem_str(ev->value, ev->value_len, "{\"items\": [1, 2, 3], \"total\": 12.50}");
        assert_string_equal(ev->event_type, "OrderCreated");
        assert_int_equal(ev->nheaders, 2);
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000002") == 0) {
        assert_string_equal(ev->topic, "outbox.event.order");
        assert_mem_str(ev->key, ev->key_len, "q\"uo\\te\nnl\ttab\001ctl");
        assert_mem_str(ev->value, ev->value_len, "{\"s\": \"q\\\"uo\\\\te\\nnl\\ttab\\u0001ctl\", \"slash\": \"a/b\"}");
        assert_header(ev, 1, "event_type", "Esc\"aped\\");
        assert_int_equal(ev->nheaders, 2);
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000003") == 0) {
        assert_string_equal(ev->topic, "outbox.event.customer");
        assert_mem_str(ev->key, ev->key_len, "caf\xc3\xa9-\xf0\x9f\x98\x80-\xe6\x9d\xb1\xe4\xba\xac");
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000004") == 0) {
        assert_mem_str(ev->value, ev->value_len, "{\"paid\": true, \"notes\": [null, \"x\"], \"coupon\": null}");
        /* headers in jsonb's order; strings as-is, other values compact JSON, null NULL */
        assert_int_equal(ev->nheaders, 9);
        assert_header(ev, 2, "empty", "");
        assert_header(ev, 3, "ratio", "0.25");
        assert_header(ev, 4, "absent", NULL);
        assert_header(ev, 5, "nested", "{\"a\":[1,\"two\",null]}");
        assert_header(ev, 6, "urgent", "true");
        assert_header(ev, 7, "retries", "3");
        assert_header(ev, 8, "traceparent", "00-abc-def-01");
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000005") == 0) {
        assert_string_equal(ev->topic, "outbox.event.report");
        assert_int_equal(ev->value_len, 303796);
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000006") == 0) {
        assert_int_equal(ev->nheaders, 3);
        assert_header(ev, 2, "k", "v");
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000008") == 0) {
        /* transactional message: envelope fields, payload as compact JSON */
        assert_int_equal(rec->action, W2J_MESSAGE);
        assert_string_equal(ev->topic, "outbox.event.order");
        assert_mem_str(ev->key, ev->key_len, "o-6");
        assert_mem_str(ev->value, ev->value_len, "{\"carrier\":\"UPS\",\"eta\":null}");
        assert_string_equal(ev->event_type, "OrderShipped");
        assert_int_equal(ev->nheaders, 4);
        assert_header(ev, 1, "event_type", "OrderShipped");
        assert_header(ev, 2, "h", "1");
        assert_header(ev, 3, "n", "2");
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000007") == 0) {
        assert_mem_str(ev->key, ev->key_len, "o-6");
        assert_mem_str(ev->value, ev->value_len, "{\"n\": 2}");
        assert_string_equal(ev->event_type, "OrderConfirmed");
        assert_int_equal(ev->nheaders, 2);
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-000000000009") == 0) {
        assert_mem_str(ev->value, ev->value_len, "[]");
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-00000000000a") == 0) {
        /* a string payload is sent as the string's content */
        assert_string_equal(ev->topic, "outbox.event.invoice");
        assert_mem_str(ev->key, ev->key_len, "i-10");
        assert_mem_str(ev->value, ev->value_len, "plain \"text\" \xc3\xa9");
        assert_int_equal(ev->nheaders, 2);
    } else if (strcmp(ev->id, "00000000-0000-4000-8000-00000000000c") == 0) {
        /* inserted and deleted in the same transaction: still an event */
        assert_string_equal(ev->event_type, "Transient");
    } else {
        /* default id, a JSON string payload, empty headers object */
        assert_int_equal(strlen(ev->id), 36);
        assert_mem_str(ev->key, ev->key_len, "o-13");
        assert_mem_str(ev->value, ev->value_len, "\"just a json string\"");
        assert_int_equal(ev->nheaders, 2);
    }
}

static void test_captured_outbox(void **state) {
    router_options_t o = defaults();
    router_t *r = mk(&o);
    run_t run;
    size_t seen = 0;

    (void)state;
    route_file(W2J_DIR "outbox.jsonl", r, check_outbox_event, &seen, &run);
    assert_int_equal(run.nlines, 45);
    assert_int_equal(run.nevents, 12); /* 10 rows + 2 transactional messages */
    assert_int_equal(run.ninvalid, 1); /* the non-transactional message */
    assert_int_equal(run.nskips, 32);
    assert_int_equal(seen, 12);
    router_destroy(r);
}

/* The same capture with a router that has no headers column and no message prefix. */
static void count_headers(const w2j_record_t *rec, router_result_t res, const outbox_event_t *ev, const char *err,
                          void *arg) {
    (void)err;
    (void)arg;
    if (rec->action == W2J_MESSAGE)
        assert_int_equal(res, ROUTER_SKIP);
    if (res == ROUTER_EVENT)
        assert_int_equal(ev->nheaders, 2);
}

static void test_captured_no_headers_no_messages(void **state) {
    router_options_t o = {0}; /* all NULL: defaults, no headers column, no messages */
    router_t *r = mk(&o);
    run_t run;

    (void)state;
    route_file(W2J_DIR "outbox.jsonl", r, count_headers, NULL, &run);
    assert_int_equal(run.nevents, 10);
    assert_int_equal(run.ninvalid, 0);
    router_destroy(r);
}

static void check_invalid(const w2j_record_t *rec, router_result_t res, const outbox_event_t *ev, const char *err,
                          void *arg) {
    size_t *i = arg;
    static const struct {
        const char *id;
        const char *err;
    } expect[] = {
        {"00000000-0000-4000-8000-0000000000e1",
         "event 00000000-0000-4000-8000-0000000000e1 (public.outbox row): headers (column "
         "'headers') is not a JSON object"},
        {"00000000-0000-4000-8000-0000000000e2",
         "event 00000000-0000-4000-8000-0000000000e2 (public.outbox row): headers (column "
         "'headers') is not a JSON object"},
        {NULL, "unparsable outbox message envelope at LSN 0/1724BB8: invalid token near 'this' at "
               "line 1 column 4"},
        {"00000000-0000-4000-8000-0000000000e3",
         "unparsable outbox message envelope at LSN 0/1724C90: event "
         "00000000-0000-4000-8000-0000000000e3: \"aggregate_id\" missing or not a string"},
        {NULL, "unparsable outbox message envelope at LSN 0/1724D00: not a JSON object"},
    };

    if (rec->action == W2J_BEGIN || rec->action == W2J_COMMIT) {
        assert_int_equal(res, ROUTER_SKIP);
        return;
    }
    assert_int_equal(res, ROUTER_INVALID);
    assert_true(*i < 5);
    assert_string_equal(err, expect[*i].err);
    if (expect[*i].id == NULL)
        assert_null(ev->id);
    else
        assert_string_equal(ev->id, expect[*i].id);
    (*i)++;
}

static void test_captured_invalid(void **state) {
    router_options_t o = defaults();
    router_t *r = mk(&o);
    run_t run;
    size_t i = 0;

    (void)state;
    route_file(W2J_DIR "outbox_invalid.jsonl", r, check_invalid, &i, &run);
    assert_int_equal(run.ninvalid, 5);
    assert_int_equal(i, 5);
    router_destroy(r);
}

/* Tables whose names need quoting, with a custom column mapping and header names. */
static void check_weird(const w2j_record_t *rec, router_result_t res, const outbox_event_t *ev, const char *err,
                        void *arg) {
    (void)arg;
    (void)err;
    if (rec->action != W2J_INSERT) {
        assert_int_equal(res, ROUTER_SKIP);
        return;
    }
    assert_int_equal(res, ROUTER_EVENT);
    assert_string_equal(ev->id, "1"); /* an int column arrives as a JSON number */
    assert_mem_str(ev->key, ev->key_len, "1");
    assert_header(ev, 0, "ce_id", "1");
    if (strcmp(rec->table, "Out.box") == 0) {
        assert_string_equal(ev->topic, "weird.in-my-schema.1");
        assert_mem_str(ev->value, ev->value_len, "in My Schema.Out.box");
        assert_header(ev, 1, "ce_type", "in My Schema.Out.box");
    } else {
        assert_string_equal(rec->table, "a,b");
        assert_mem_str(ev->value, ev->value_len, "in public.a,b");
    }
}

static void test_captured_weird_names(void **state) {
    router_options_t o = {0};
    router_t *r;
    run_t run;
    const char *s, *t;

    (void)state;
    o.tables = " \"My Schema\".\"Out.box\" , public.\"a,b\"";
    o.topic_template = "weird.${aggregate_type}.${aggregate_id}";
    o.columns.id = "id";
    o.columns.aggregate_id = "id";
    o.columns.aggregate_type = "kind";
    o.columns.event_type = "note";
    o.columns.payload = "note";
    o.id_header = "ce_id";
    o.type_header = "ce_type";
    r = mk(&o);
    assert_int_equal(router_table_count(r), 2);
    router_table_get(r, 0, &s, &t);
    assert_string_equal(s, "My Schema");
    assert_string_equal(t, "Out.box");
    router_table_get(r, 1, &s, &t);
    assert_string_equal(s, "public");
    assert_string_equal(t, "a,b");
    /* exactly what tests/data/wal2json/capture.sh gave wal2json for weird_names.jsonl */
    assert_string_equal(router_add_tables_option(r), "My\\ Schema.Out\\.box,public.a\\,b");
    /* the rows have no "kind" column: INVALID, naming the column and the table */
    route_file(W2J_DIR "weird_names.jsonl", r, NULL, NULL, &run);
    assert_int_equal(run.ninvalid, 2);
    router_destroy(r);

    o.columns.aggregate_type = "note"; /* "in My Schema.Out.box": not a topic name */
    r = mk(&o);
    route_file(W2J_DIR "weird_names.jsonl", r, NULL, NULL, &run);
    assert_int_equal(run.ninvalid, 2);
    router_destroy(r);

    o.topic_template = "weird.in-my-schema.${aggregate_id}";
    r = mk(&o);
    route_file(W2J_DIR "weird_names.jsonl", r, check_weird, NULL, &run);
    assert_int_equal(run.nevents, 2);
    assert_int_equal(run.ninvalid, 0);
    router_destroy(r);
}

/* ---- options -------------------------------------------------------------------------- */

static void test_defaults(void **state) {
    router_t *r = mk(NULL);
    router_options_t o = {0};
    const char *s, *t;

    (void)state;
    assert_int_equal(router_table_count(r), 1);
    router_table_get(r, 0, &s, &t);
    assert_string_equal(s, "public");
    assert_string_equal(t, "outbox");
    router_table_get(r, 1, &s, &t);
    assert_null(s);
    assert_null(t);
    assert_string_equal(router_add_tables_option(r), "public.outbox");
    router_destroy(r);
    router_destroy(NULL);

    /* empty strings where a name is required */
    o.id_header = "";
    expect_new_error(&o, "outbox.header.id must not be empty");
    o.id_header = NULL;
    o.columns.payload = "";
    expect_new_error(&o, "outbox.column.payload must not be empty");
    o.columns.payload = NULL;
    o.topic_template = "";
    expect_new_error(&o, "outbox.topic must not be empty");
    /* every option error of route_config_new (test_route_config) reaches router_new */
    o.topic_template = "outbox.${nope}";
    expect_new_error(&o, "unknown placeholder \"${nope}\"");
    o.topic_template = NULL;
    o.tables = "a.b.c";
    expect_new_error(&o, "tables \"a.b.c\": unexpected '.'");
}

/* ---- synthetic records ---------------------------------------------------------------- */

enum { C_ID, C_TYPE, C_AGG, C_EVT, C_PAY, C_HDR, C_N };

typedef struct row {
    w2j_column_t cols[C_N + 1];
    w2j_record_t rec;
} row_t;

static void set_col(row_t *row, int i, const char *name, const char *value) {
    row->cols[i].name = name;
    row->cols[i].value = value;
    row->cols[i].value_len = value ? strlen(value) : 0;
}

/* A valid default-mapped outbox row. */
static void mkrow(row_t *row) {
    memset(row, 0, sizeof(*row));
    set_col(row, C_ID, "id", "e-1");
    set_col(row, C_TYPE, "aggregate_type", "order");
    set_col(row, C_AGG, "aggregate_id", "o-1");
    set_col(row, C_EVT, "event_type", "Created");
    set_col(row, C_PAY, "payload", "{\"a\": 1}");
    set_col(row, C_HDR, "headers", NULL);
    row->rec.action = W2J_INSERT;
    row->rec.lsn = 0x16B1A0;
    row->rec.schema = "public";
    row->rec.table = "outbox";
    row->rec.columns = row->cols;
    row->rec.ncolumns = C_N;
}

/* Removes column i from the row. */
static void drop_col(row_t *row, int i) {
    memmove(&row->cols[i], &row->cols[i + 1], (size_t)(C_N - i) * sizeof(w2j_column_t));
    row->rec.ncolumns--;
}

static router_result_t route(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *err, size_t errsz) {
    err[0] = '\0';
    return router_route(r, rec, ev, err, errsz);
}

static void expect_invalid(router_t *r, const w2j_record_t *rec, const char *id, const char *err) {
    outbox_event_t ev;
    char got[512];

    assert_int_equal(route(r, rec, &ev, got, sizeof(got)), ROUTER_INVALID);
    if (strcmp(got, err) != 0)
        fail_msg("error \"%s\", expected \"%s\"", got, err);
    if (id == NULL)
        assert_null(ev.id);
    else
        assert_string_equal(ev.id, id);
}

static void test_row_invalid_reasons(void **state) {
    router_options_t o = defaults();
    router_t *r = mk(&o);
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    mkrow(&row);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);

    mkrow(&row);
    drop_col(&row, C_PAY);
    expect_invalid(r, &row.rec, "e-1", "column 'payload' missing in public.outbox row");
    mkrow(&row);
    drop_col(&row, C_ID);
    expect_invalid(r, &row.rec, NULL, "column 'id' missing in public.outbox row");
    mkrow(&row);
    drop_col(&row, C_TYPE);
    expect_invalid(r, &row.rec, "e-1", "column 'aggregate_type' missing in public.outbox row");
    mkrow(&row);
    drop_col(&row, C_EVT);
    expect_invalid(r, &row.rec, "e-1", "column 'event_type' missing in public.outbox row");

    mkrow(&row);
    set_col(&row, C_ID, "id", NULL);
    expect_invalid(r, &row.rec, NULL, "outbox event in public.outbox row (LSN 0/16B1A0) has a NULL id (column 'id')");
    mkrow(&row);
    row.cols[C_ID].value = "e\0x";
    row.cols[C_ID].value_len = 3;
    expect_invalid(r, &row.rec, NULL,
                   "outbox event in public.outbox row (LSN 0/16B1A0) has a NUL-containing id "
                   "(column 'id')");
    mkrow(&row);
    set_col(&row, C_AGG, "aggregate_id", NULL);
    expect_invalid(r, &row.rec, "e-1", "event e-1 (public.outbox row): aggregate id (column 'aggregate_id') is NULL");
    mkrow(&row);
    set_col(&row, C_PAY, "payload", NULL);
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): payload (column 'payload') is NULL (outbox.payload.null = "
                   "invalid; null or tombstone publish it without a value)");
    mkrow(&row);
    set_col(&row, C_TYPE, "aggregate_type", NULL);
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): aggregate_type is NULL but the topic template "
                   "\"outbox.event.${aggregate_type}\" uses it");
    mkrow(&row);
    set_col(&row, C_TYPE, "aggregate_type", "bad type");
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): topic \"outbox.event.bad type\" is not a valid "
                   "Kafka topic name (only a-z A-Z 0-9 . _ -)");
    mkrow(&row);
    row.cols[C_TYPE].value = "a\0b";
    row.cols[C_TYPE].value_len = 3;
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): aggregate type or event type contains a NUL "
                   "character");
    mkrow(&row);
    set_col(&row, C_HDR, "headers", "[1]");
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): headers (column 'headers') is not a JSON object");
    mkrow(&row);
    set_col(&row, C_HDR, "headers", "{\"a\":");
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): headers (column 'headers') is not valid JSON: "
                   "unexpected token near end of file at position 5");
    router_destroy(r);

    /* topic longer than Kafka's 249 characters */
    {
        char big[300];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        o.topic_template = "${aggregate_id}";
        r = mk(&o);
        mkrow(&row);
        set_col(&row, C_AGG, "aggregate_id", big);
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_INVALID);
        assert_non_null(strstr(err, "is not a valid Kafka topic name (1 to 249 characters"));
        big[249] = '\0';
        set_col(&row, C_AGG, "aggregate_id", big);
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
        set_col(&row, C_AGG, "aggregate_id", "..");
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_INVALID);
        set_col(&row, C_AGG, "aggregate_id", "");
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_INVALID);
        router_destroy(r);
    }
}

/* The names other modules ask the router for, defaults applied: the id header and the topic
 * template. */
static void test_name_api(void **state) {
    router_options_t o = {0};
    router_t *r = mk(&o);

    (void)state;
    assert_string_equal(router_id_header(r), "id");
    assert_string_equal(router_topic_template(r), "outbox.event.${aggregate_type}");
    router_destroy(r);

    o.id_header = "ce_id";
    o.topic_template = "events";
    r = mk(&o);
    assert_string_equal(router_id_header(r), "ce_id");
    assert_string_equal(router_topic_template(r), "events");
    router_destroy(r);
}

static void test_row_nullable_fields(void **state) {
    router_options_t o = defaults();
    router_t *r;
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    /* a template without aggregate_type: NULL aggregate_type and event_type are fine */
    o.topic_template = "events";
    r = mk(&o);
    mkrow(&row);
    set_col(&row, C_TYPE, "aggregate_type", NULL);
    set_col(&row, C_EVT, "event_type", NULL);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_string_equal(ev.topic, "events");
    assert_null(ev.event_type);
    assert_int_equal(ev.nheaders, 2);
    assert_header(&ev, 0, "id", "e-1");
    assert_header(&ev, 1, "event_type", NULL);
    /* no headers column in the table at all */
    drop_col(&row, C_HDR);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.nheaders, 2);
    /* empty payload and key are published as they are */
    set_col(&row, C_PAY, "payload", "");
    set_col(&row, C_AGG, "aggregate_id", "");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.value_len, 0);
    assert_int_equal(ev.key_len, 0);
    router_destroy(r);

    /* ${event_type} used: NULL event type is INVALID */
    o.topic_template = "${routedByValue}.${event_type}";
    r = mk(&o);
    mkrow(&row);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_string_equal(ev.topic, "order.Created");
    set_col(&row, C_EVT, "event_type", NULL);
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): event_type is NULL but the topic template "
                   "\"${routedByValue}.${event_type}\" uses it");
    router_destroy(r);
}

static void test_custom_mapping(void **state) {
    router_options_t o = {0};
    router_t *r;
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    o.tables = "app.Events";
    o.topic_template = "t-${aggregate_type}-${event_type}-${aggregate_id}";
    o.columns.id = "event_id";
    o.columns.aggregate_type = "kind";
    o.columns.aggregate_id = "entity";
    o.columns.event_type = "what";
    o.columns.payload = "body";
    o.columns.headers = "meta";
    o.id_header = "ce_id";
    o.type_header = "ce_type";
    r = mk(&o);

    memset(&row, 0, sizeof(row));
    set_col(&row, 0, "entity", "42");
    set_col(&row, 1, "what", "Moved");
    set_col(&row, 2, "body", "hello");
    set_col(&row, 3, "meta", "{\"x\": 1.5, \"y\": {\"z\": \"\\u00e9\\n\"}, \"w\": 0.1}");
    set_col(&row, 4, "kind", "box");
    set_col(&row, 5, "event_id", "7");
    row.rec.action = W2J_INSERT;
    row.rec.schema = "app";
    row.rec.table = "events"; /* "app.Events" unquoted = app.events */
    row.rec.columns = row.cols;
    row.rec.ncolumns = 6;
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_string_equal(ev.id, "7");
    assert_string_equal(ev.topic, "t-box-Moved-42");
    assert_mem_str(ev.key, ev.key_len, "42");
    assert_mem_str(ev.value, ev.value_len, "hello");
    assert_int_equal(ev.nheaders, 5);
    assert_header(&ev, 0, "ce_id", "7");
    assert_header(&ev, 1, "ce_type", "Moved");
    assert_header(&ev, 2, "x", "1.5");
    assert_header(&ev, 3, "y", "{\"z\":\"\xc3\xa9\\n\"}");
    assert_header(&ev, 4, "w", "0.1");

    /* default column names are not looked at */
    set_col(&row, 5, "id", "7");
    expect_invalid(r, &row.rec, NULL, "column 'event_id' missing in app.events row");

    /* other table, other schema: skipped */
    set_col(&row, 5, "event_id", "7");
    row.rec.schema = "public";
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_SKIP);
    row.rec.schema = "app";
    row.rec.table = "Events";
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_SKIP);
    router_destroy(r);
}

static void test_skips(void **state) {
    router_options_t o = defaults();
    router_t *r = mk(&o);
    row_t row;
    outbox_event_t ev;
    char err[512];
    static const w2j_action_t others[] = {W2J_BEGIN, W2J_COMMIT, W2J_UPDATE, W2J_DELETE, W2J_TRUNCATE};
    w2j_record_t m = {0};

    (void)state;
    mkrow(&row);
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        row.rec.action = others[i];
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_SKIP);
    }
    row.rec.action = W2J_INSERT;
    row.rec.table = "orders";
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_SKIP);
    row.rec.table = "outbox";
    row.rec.schema = NULL;
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_SKIP);

    m.action = W2J_MESSAGE;
    m.transactional = false;
    m.prefix = "outbox";
    m.content = "{}";
    m.content_len = 2;
    assert_int_equal(route(r, &m, &ev, err, sizeof(err)), ROUTER_INVALID);
    assert_non_null(strstr(err, "pg_logical_emit_message(true"));
    m.transactional = true;
    m.prefix = "outbox2";
    assert_int_equal(route(r, &m, &ev, err, sizeof(err)), ROUTER_SKIP);
    m.prefix = "Outbox";
    assert_int_equal(route(r, &m, &ev, err, sizeof(err)), ROUTER_SKIP);
    m.prefix = "outbox";
    assert_int_equal(route(r, &m, &ev, err, sizeof(err)), ROUTER_INVALID); /* {} */
    router_destroy(r);

    o.message_prefix = ""; /* no messages */
    r = mk(&o);
    assert_int_equal(route(r, &m, &ev, err, sizeof(err)), ROUTER_SKIP);
    router_destroy(r);
}

/* ---- message envelopes ---------------------------------------------------------------- */

static router_result_t route_msg(router_t *r, const char *content, outbox_event_t *ev, char *err, size_t errsz) {
    w2j_record_t m = {0};

    m.action = W2J_MESSAGE;
    m.transactional = true;
    m.prefix = "outbox";
    m.lsn = 0xA0000001ULL << 4;
    m.content = content;
    m.content_len = strlen(content);
    return route(r, &m, ev, err, errsz);
}

static void test_envelopes(void **state) {
    router_options_t o = defaults();
    router_t *r = mk(&o);
    outbox_event_t ev;
    char err[512];

    (void)state;
    /* integer id and aggregate id; numeric payload */
    assert_int_equal(route_msg(r,
                               "{\"id\":7,\"aggregate_type\":\"a\",\"aggregate_id\":-12,"
                               "\"event_type\":\"E\",\"payload\":42}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_string_equal(ev.id, "7");
    assert_mem_str(ev.key, ev.key_len, "-12");
    assert_mem_str(ev.value, ev.value_len, "42");
    assert_string_equal(ev.topic, "outbox.event.a");
    assert_int_equal(ev.nheaders, 2);

    /* compact JSON: member order kept, shortest reals, escapes, raw UTF-8 */
    assert_int_equal(route_msg(r,
                               "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\","
                               "\"payload\":{\"z\":[0.1, 19.99, 1e3, -0.0, true, false, null],"
                               " \"a\" : \"q\\\"\\\\\\n\\t\\u0001\\u00e9/\", \"e\":{}},"
                               "\"headers\":{\"s\":\"x\",\"n\":null,\"arr\":[1, 2],"
                               "\"i\":123456789012345}}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len,
                   "{\"z\":[0.1,19.99,1000,-0,true,false,null],\"a\":\"q\\\"\\\\\\n\\t\\u0001\xc3\xa9/\","
                   "\"e\":{}}");
    assert_null(ev.event_type); /* absent event_type */
    assert_int_equal(ev.nheaders, 6);
    assert_header(&ev, 1, "event_type", NULL);
    assert_header(&ev, 2, "s", "x");
    assert_header(&ev, 3, "n", NULL);
    assert_header(&ev, 4, "arr", "[1,2]");
    assert_header(&ev, 5, "i", "123456789012345");

    /* string payload: its content, escapes decoded; NUL kept with its length */
    assert_int_equal(route_msg(r,
                               "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\","
                               "\"payload\":\"a\\u0000b\",\"headers\":null}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_int_equal(ev.value_len, 3);
    assert_memory_equal(ev.value, "a\0b", 3);
    assert_int_equal(ev.nheaders, 2);

    /* array payload, boolean payload */
    assert_int_equal(route_msg(r,
                               "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\","
                               "\"payload\":[]}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "[]");
    assert_int_equal(route_msg(r,
                               "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\","
                               "\"payload\":false}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "false");
    router_destroy(r);
}

static void test_envelope_errors(void **state) {
    static const struct {
        const char *content;
        const char *id;
        const char *err;
    } cases[] = {
        {"", NULL,
         "unparsable outbox message envelope at LSN A/10: unexpected token near end of "
         "file at line 1 column 0"},
        {"{\"id\":\"x\",", NULL, "unparsable outbox message envelope at LSN A/10:"},
        {"{\"id\":\"x\"} trailing", NULL, "end of file expected"},
        {"\"str\"", NULL, "unparsable outbox message envelope at LSN A/10: not a JSON object"},
        {"42", NULL, "not a JSON object"},
        {"[]", NULL, "unparsable outbox message envelope at LSN A/10: not a JSON object"},
        {"{}", NULL,
         "unparsable outbox message envelope at LSN A/10: \"id\" missing or not a "
         "string"},
        {"{\"id\":null}", NULL, "\"id\" missing or not a string"},
        {"{\"id\":1.5}", NULL, "\"id\" missing or not a string"},
        {"{\"id\":\"a\\u0000b\"}", NULL, "\"id\" missing or not a string"},
        {"{\"id\":\"e\",\"payload\":1}", "e",
         "unparsable outbox message envelope at LSN A/10: event e: \"aggregate_id\" missing or "
         "not a string"},
        {"{\"id\":\"e\",\"aggregate_id\":{},\"payload\":1}", "e", "\"aggregate_id\" missing"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":1,\"payload\":1}", "e",
         "event e: \"aggregate_type\" is not a string"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t\",\"event_type\":[],"
         "\"payload\":1}",
         "e", "event e: \"event_type\" is not a string"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t\"}", "e", "event e: \"payload\" missing"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t\",\"payload\":null}", "e",
         "event e: \"payload\" is null (outbox.payload.null = invalid)"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t\",\"payload\":1,"
         "\"headers\":[]}",
         "e", "event e: \"headers\" is not a JSON object"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t\",\"payload\":1,"
         "\"headers\":\"h\"}",
         "e", "\"headers\" is not a JSON object"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"payload\":1}", "e",
         "event e (message at LSN A/10): aggregate_type is NULL but the topic template "
         "\"outbox.event.${aggregate_type}\" uses it"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t t\",\"payload\":1}", "e",
         "event e (message at LSN A/10): topic \"outbox.event.t t\" is not a valid Kafka topic"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t\",\"payload\":"
         "123456789012345678901234567890}",
         NULL, "too big integer"},
        {"{\"id\":\"e\",\"aggregate_id\":\"k\",\"aggregate_type\":\"t\",\"payload\":1,"
         "\"headers\":{\"a\\u0000\":\"v\"}}",
         NULL, "NUL byte in object key not supported"}, /* jansson refuses it */
    };
    router_options_t o = defaults();
    router_t *r = mk(&o);
    outbox_event_t ev;
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (route_msg(r, cases[i].content, &ev, err, sizeof(err)) != ROUTER_INVALID)
            fail_msg("case %zu (%s) not INVALID", i, cases[i].content);
        if (strstr(err, cases[i].err) == NULL)
            fail_msg("case %zu (%s): error \"%s\" lacks \"%s\"", i, cases[i].content, err, cases[i].err);
        if (cases[i].id == NULL)
            assert_null(ev.id);
        else
            assert_string_equal(ev.id, cases[i].id);
    }
    router_destroy(r);
}

/* Buffers are reused: a big event then small ones, alternating rows and messages. */
static void test_reuse(void **state) {
    router_options_t o = defaults();
    router_t *r = mk(&o);
    row_t row;
    outbox_event_t ev;
    char err[512];
    char *big = malloc(1 << 20);
    char *hdr = malloc(1 << 16);
    size_t n = 0;

    (void)state;
    assert_non_null(big);
    assert_non_null(hdr);
    n += (size_t)sprintf(hdr, "{");
    for (int i = 0; i < 500; i++)
        n += (size_t)sprintf(hdr + n, "%s\"h%d\": [%d, 0.5]", i ? ", " : "", i, i);
    sprintf(hdr + n, "}");
    memset(big, 'p', (1 << 20) - 1);
    big[(1 << 20) - 1] = '\0';
    for (int round = 0; round < 3; round++) {
        mkrow(&row);
        set_col(&row, C_PAY, "payload", big);
        set_col(&row, C_HDR, "headers", hdr);
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
        assert_int_equal(ev.value_len, (1 << 20) - 1);
        assert_int_equal(ev.nheaders, 502);
        assert_header(&ev, 2, "h0", "[0,0.5]");
        assert_header(&ev, 501, "h499", "[499,0.5]");
        assert_int_equal(route_msg(r,
                                   "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":"
                                   "\"k\",\"payload\":{\"x\":1},\"headers\":{\"a\":[true]}}",
                                   &ev, err, sizeof(err)),
                         ROUTER_EVENT);
        assert_mem_str(ev.value, ev.value_len, "{\"x\":1}");
        assert_header(&ev, 2, "a", "[true]");
        assert_int_equal(route_msg(r, "nope", &ev, err, sizeof(err)), ROUTER_INVALID);
        mkrow(&row);
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
        assert_int_equal(ev.nheaders, 2);
        assert_string_equal(ev.topic, "outbox.event.order");
    }
    free(big);
    free(hdr);
    router_destroy(r);
}

/* ---- payload types ------------------------------------------------------------------- */

static void test_payload_type_api(void **state) {
    router_options_t o = defaults();
    router_t *r;

    (void)state;
    assert_int_equal(router_payload_type_for("bytea"), ROUTER_PAYLOAD_BYTEA);
    assert_int_equal(router_payload_type_for("jsonb"), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_payload_type_for("json"), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_payload_type_for("text"), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_payload_type_for("character varying"), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_payload_type_for("bytea[]"), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_payload_type_for(""), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_payload_type_for(NULL), ROUTER_PAYLOAD_TEXT);

    o.tables = "a, b";
    r = mk(&o);
    assert_int_equal(router_get_payload_type(r, 0), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_get_payload_type(r, 1), ROUTER_PAYLOAD_TEXT);
    router_set_payload_type(r, 1, ROUTER_PAYLOAD_BYTEA);
    router_set_payload_type(r, 2, ROUTER_PAYLOAD_BYTEA); /* out of range: ignored */
    assert_int_equal(router_get_payload_type(r, 0), ROUTER_PAYLOAD_TEXT);
    assert_int_equal(router_get_payload_type(r, 1), ROUTER_PAYLOAD_BYTEA);
    assert_int_equal(router_get_payload_type(r, 2), ROUTER_PAYLOAD_TEXT);
    router_set_payload_type(r, 1, ROUTER_PAYLOAD_TEXT); /* a reconnect may change it back */
    assert_int_equal(router_get_payload_type(r, 1), ROUTER_PAYLOAD_TEXT);
    router_destroy(r);
}

typedef struct payload_seen {
    size_t n;
} payload_seen_t;

/* payload_types.jsonl, captured from wal2json 2.5 (see payload_types.sql). */
static void check_payload_types(const w2j_record_t *rec, router_result_t res, const outbox_event_t *ev, const char *err,
                                void *arg) {
    payload_seen_t *seen = arg;

    if (rec->action != W2J_INSERT) {
        assert_int_equal(res, ROUTER_SKIP);
        return;
    }
    if (res != ROUTER_EVENT)
        fail_msg("%s.%s: %s", rec->schema, rec->table, err);
    seen->n++;
    assert_non_null(ev->value);
    assert_int_equal(ev->value[ev->value_len], '\0');
    if (strcmp(ev->id, "b-1") == 0) {
        assert_int_equal(ev->value_len, 5);
        assert_memory_equal(ev->value, "\x00\xff\x00\x41\x0a", 5);
    } else if (strcmp(ev->id, "b-2") == 0) {
        assert_int_equal(ev->value_len, 0);
    } else if (strcmp(ev->id, "d-1") == 0) {
        assert_int_equal(ev->value_len, 2);
        assert_memory_equal(ev->value, "\x00\xff", 2);
    } else if (strcmp(ev->id, "j-1") == 0) {
        /* json keeps its text as written */
        assert_mem_str(ev->value, ev->value_len, "{\"b\": 1,  \"a\": [1, 2], \"s\": \"\xc3\xa9\"}");
    } else if (strcmp(ev->id, "t-1") == 0) {
        assert_mem_str(ev->value, ev->value_len, "h\xc3\xa9llo \xf0\x9f\x98\x80 \"q\"\n\\");
    } else if (strcmp(ev->id, "i-1") == 0) {
        assert_mem_str(ev->value, ev->value_len, "-42");
    } else {
        fail_msg("unexpected event %s", ev->id);
    }
}

static void test_captured_payload_types(void **state) {
    router_options_t o = defaults();
    router_t *r;
    run_t run;
    payload_seen_t seen = {0};

    (void)state;
    o.tables = "ob_bytea, ob_blob, ob_json, ob_text, ob_int";
    r = mk(&o);
    router_set_payload_type(r, 0, router_payload_type_for("bytea"));
    router_set_payload_type(r, 1, router_payload_type_for("bytea")); /* domain, resolved by preflight */
    router_set_payload_type(r, 2, router_payload_type_for("json"));
    router_set_payload_type(r, 3, router_payload_type_for("text"));
    router_set_payload_type(r, 4, router_payload_type_for("integer"));
    route_file(W2J_DIR "payload_types.jsonl", r, check_payload_types, &seen, &run);
    assert_int_equal(run.nevents, 6);
    assert_int_equal(run.ninvalid, 0);
    assert_int_equal(seen.n, 6);
    router_destroy(r);
}

static void test_bytea_rows(void **state) {
    router_options_t o = defaults();
    router_t *r;
    row_t row;
    outbox_event_t ev;
    char err[512];
    char *big = malloc(2 * 100000 + 1);

    (void)state;
    assert_non_null(big);
    r = mk(&o);
    router_set_payload_type(r, 0, ROUTER_PAYLOAD_BYTEA);

    mkrow(&row);
    set_col(&row, C_PAY, "payload", "00ff0041");
    set_col(&row, C_HDR, "headers", "{\"h\": 1}");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.value_len, 4);
    assert_memory_equal(ev.value, "\x00\xff\x00\x41", 4);
    assert_int_equal(ev.value[4], '\0');
    assert_int_equal(ev.nheaders, 3); /* headers are unaffected */
    assert_header(&ev, 2, "h", "1");

    /* a big payload, then a small one: the buffer is reused */
    for (size_t i = 0; i < 100000; i++)
        memcpy(big + 2 * i, i % 2 ? "ff" : "00", 2);
    big[200000] = '\0';
    mkrow(&row);
    set_col(&row, C_PAY, "payload", big);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.value_len, 100000);
    assert_int_equal((unsigned char)ev.value[0], 0x00);
    assert_int_equal((unsigned char)ev.value[99999], 0xff);
    set_col(&row, C_PAY, "payload", "");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_non_null(ev.value);
    assert_int_equal(ev.value_len, 0);

    /* invalid hex names the event */
    set_col(&row, C_PAY, "payload", "abc");
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): bytea payload (column 'payload') is not hex text: odd "
                   "number of digits (3 characters)");
    set_col(&row, C_PAY, "payload", "00zz");
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): bytea payload (column 'payload') is not hex text: "
                   "character 0x7a at offset 2");
    set_col(&row, C_PAY, "payload", NULL);
    expect_invalid(r, &row.rec, "e-1",
                   "event e-1 (public.outbox row): payload (column 'payload') is NULL (outbox.payload.null = "
                   "invalid; null or tombstone publish it without a value)");

    /* back to text: the hex is published as is */
    router_set_payload_type(r, 0, ROUTER_PAYLOAD_TEXT);
    set_col(&row, C_PAY, "payload", "00ff");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "00ff");

    /* messages are not affected by a table's payload type */
    router_set_payload_type(r, 0, ROUTER_PAYLOAD_BYTEA);
    assert_int_equal(route_msg(r, "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\",\"payload\":\"00ff\"}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "00ff");
    free(big);
    router_destroy(r);
}

/* outbox.header.event_type = "": no event type header (Debezium's router sends only "id"). */
/* Integers beyond 64 bits (valid jsonb) keep their digits; numbers in strings, reals and
 * exponents are untouched. */
static void test_big_integer_headers(void **state) {
    router_options_t o = defaults();
    router_t *r;
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    r = mk(&o);
    mkrow(&row);
    set_col(&row, C_HDR, "headers",
            "{\"big\": 12345678901234567890, \"neg\": -98765432109876543210, \"s\": \"123456789012345678901\", "
            "\"r\": 1.5e300, \"small\": 42}");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.nheaders, 7);
    assert_header(&ev, 2, "big", "12345678901234567890");
    assert_header(&ev, 3, "neg", "-98765432109876543210");
    assert_header(&ev, 4, "s", "123456789012345678901");
    assert_header(&ev, 5, "r", "1.5e+300");
    assert_header(&ev, 6, "small", "42");
    /* a negative one alone (jansson: "too big negative integer") */
    set_col(&row, C_HDR, "headers", "{\"neg\": -98765432109876543210}");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_header(&ev, 2, "neg", "-98765432109876543210");
    /* a real beyond a double is refused as before */
    set_col(&row, C_HDR, "headers", "{\"r\": 1e400}");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_INVALID);
    assert_non_null(strstr(err, "real number overflow"));
    set_col(&row, C_HDR, "headers", "{\"big\": 12345678901234567890");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_INVALID); /* still invalid JSON */
    router_destroy(r);
}

/* outbox.header.columns: row columns as headers, renamed or not; a missing one is invalid. */
static void test_header_columns(void **state) {
    router_options_t o = defaults();
    router_t *r;
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    o.header_columns = " aggregate_type : aggType , payload";
    r = mk(&o);
    mkrow(&row);
    set_col(&row, C_HDR, "headers", "{\"h\": \"v\"}");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.nheaders, 5);
    assert_header(&ev, 0, "id", "e-1");
    assert_header(&ev, 1, "event_type", "Created");
    assert_header(&ev, 2, "aggType", "order");
    assert_header(&ev, 3, "payload", "{\"a\": 1}");
    assert_header(&ev, 4, "h", "v");
    router_destroy(r);

    o.header_columns = "nope";
    r = mk(&o);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_INVALID);
    assert_non_null(strstr(err, "column 'nope' (outbox.header.columns) missing"));
    router_destroy(r);
}

static void test_no_type_header(void **state) {
    router_options_t o = defaults();
    router_t *r;
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    o.type_header = "";
    r = mk(&o);
    mkrow(&row);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.nheaders, 1);
    assert_header(&ev, 0, "id", "e-1");
    assert_string_equal(ev.event_type, "Created"); /* still known, e.g. for the topic */
    set_col(&row, C_HDR, "headers", "{\"a\": \"b\"}");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_int_equal(ev.nheaders, 2);
    assert_header(&ev, 0, "id", "e-1");
    assert_header(&ev, 1, "a", "b");
    assert_int_equal(route_msg(r,
                               "{\"id\":\"m\",\"event_type\":\"T\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\","
                               "\"payload\":{}}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_int_equal(ev.nheaders, 1);
    assert_header(&ev, 0, "id", "m");
    router_destroy(r);

    /* NULL still means the default name */
    o.type_header = NULL;
    r = mk(&o);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_header(&ev, 1, "event_type", "Created");
    router_destroy(r);
}

/* ---- outbox.key.format, outbox.value.format, outbox.payload.null (Debezium's converters) -- */

static void expect_record_value(const outbox_event_t *ev, const char *value) {
    if (value == NULL) {
        assert_null(ev->value);
        assert_int_equal(ev->value_len, 0);
    } else {
        assert_mem_str(ev->value, ev->value_len, value);
    }
}

static void test_null_payloads(void **state) {
    static const struct {
        const char *format, *mode, *value; /* value NULL: no value (a tombstone) */
    } cases[] = {
        {"raw", "null", NULL}, {"json", "null", "null"}, {"raw", "tombstone", NULL}, {"json", "tombstone", NULL}};
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        router_options_t o = defaults();
        o.value_format = cases[i].format;
        o.payload_null = cases[i].mode;
        router_t *r = mk(&o);

        mkrow(&row);
        set_col(&row, C_PAY, "payload", NULL);
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
        expect_record_value(&ev, cases[i].value);
        assert_mem_str(ev.key, ev.key_len, "o-1");
        assert_header(&ev, 0, "id", "e-1"); /* key and headers as for any event */
        /* a bytea payload column: the same */
        router_set_payload_type(r, 0, ROUTER_PAYLOAD_BYTEA);
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
        expect_record_value(&ev, cases[i].value);
        /* a message whose payload is JSON null */
        assert_int_equal(route_msg(r, "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\",\"payload\":null}",
                                   &ev, err, sizeof(err)),
                         ROUTER_EVENT);
        expect_record_value(&ev, cases[i].value);
        /* a payload that is there is not affected */
        mkrow(&row);
        router_set_payload_type(r, 0, ROUTER_PAYLOAD_TEXT);
        assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
        assert_non_null(ev.value);
        router_destroy(r);
    }
}

static void test_json_formats(void **state) {
    router_options_t o = defaults();
    row_t row;
    outbox_event_t ev;
    char err[512];

    (void)state;
    o.key_format = "json";
    o.value_format = "json";
    router_t *r = mk(&o);

    /* JsonConverter (Jackson): escapes, upper-case \u00XX, surrogate pairs, raw BMP text */
    mkrow(&row);
    set_col(&row, C_AGG, "aggregate_id", "42 \xF0\x9F\x98\x80 \xC3\xA9\x01\x1f\x7f\"\\/\t");
    set_col(&row, C_PAY, "payload", "{\"id\": 1005, \"s\": \"\\u001f\"}");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_mem_str(ev.key, ev.key_len, "\"42 \\uD83D\\uDE00 \xC3\xA9\\u0001\\u001F\x7f\\\"\\\\/\\t\"");
    assert_mem_str(ev.value, ev.value_len, "\"{\\\"id\\\": 1005, \\\"s\\\": \\\"\\\\u001f\\\"}\"");
    assert_header(&ev, 0, "id", "e-1"); /* headers are not converted */
    assert_string_equal(ev.topic, "outbox.event.order");

    /* bytea: base64, as JsonConverter writes BYTES */
    router_set_payload_type(r, 0, ROUTER_PAYLOAD_BYTEA);
    set_col(&row, C_PAY, "payload", "00ff41");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "\"AP9B\"");
    set_col(&row, C_PAY, "payload", "00ff4142");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "\"AP9BQg==\"");
    set_col(&row, C_PAY, "payload", "");
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "\"\"");

    /* messages: a string payload as that string, other JSON as its compact text, in a string */
    assert_int_equal(route_msg(r, "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":7,\"payload\":\"t\\\"\"}",
                               &ev, err, sizeof(err)),
                     ROUTER_EVENT);
    assert_mem_str(ev.key, ev.key_len, "\"7\"");
    assert_mem_str(ev.value, ev.value_len, "\"t\\\"\"");
    assert_int_equal(
        route_msg(r, "{\"id\":\"m\",\"aggregate_type\":\"a\",\"aggregate_id\":\"k\",\"payload\":{\"a\": [1, \"x\"]}}",
                  &ev, err, sizeof(err)),
        ROUTER_EVENT);
    assert_mem_str(ev.value, ev.value_len, "\"{\\\"a\\\":[1,\\\"x\\\"]}\"");
    router_destroy(r);

    /* key and value formats are independent */
    o.key_format = NULL;
    r = mk(&o);
    mkrow(&row);
    assert_int_equal(route(r, &row.rec, &ev, err, sizeof(err)), ROUTER_EVENT);
    assert_mem_str(ev.key, ev.key_len, "o-1");
    assert_int_equal(ev.value[0], '"');
    router_destroy(r);

    o = defaults();
    o.key_format = "JSON";
    expect_new_error(&o, "outbox.key.format \"JSON\": expected one of raw, json");
    o.key_format = NULL;
    o.payload_null = "drop";
    expect_new_error(&o, "outbox.payload.null \"drop\": expected one of invalid, null, tombstone");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_payloads),
        cmocka_unit_test(test_json_formats),
        cmocka_unit_test(test_big_integer_headers),
        cmocka_unit_test(test_header_columns),
        cmocka_unit_test(test_captured_outbox),
        cmocka_unit_test(test_captured_no_headers_no_messages),
        cmocka_unit_test(test_captured_invalid),
        cmocka_unit_test(test_captured_weird_names),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_name_api),
        cmocka_unit_test(test_row_invalid_reasons),
        cmocka_unit_test(test_row_nullable_fields),
        cmocka_unit_test(test_custom_mapping),
        cmocka_unit_test(test_skips),
        cmocka_unit_test(test_envelopes),
        cmocka_unit_test(test_envelope_errors),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_payload_type_api),
        cmocka_unit_test(test_captured_payload_types),
        cmocka_unit_test(test_bytea_rows),
        cmocka_unit_test(test_no_type_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
