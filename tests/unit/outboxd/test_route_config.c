/* test_route_config.c - unit tests of route_config.c: table lists (SQL identifiers, quoting,
 * case folding) and wal2json's add-tables escaping, defaults, column and header names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route_config.h"

static route_config_t *mk(const router_options_t *o) {
    char err[256] = "";
    route_config_t *c = route_config_new(o, err, sizeof(err));

    if (c == NULL)
        fail_msg("route_config_new: %s", err);
    return c;
}

static void expect_error(const router_options_t *o, const char *expect) {
    char err[512] = "";
    route_config_t *c = route_config_new(o, err, sizeof(err));

    if (c != NULL)
        fail_msg("route_config_new accepted it (expected \"%s\")", expect);
    if (strstr(err, expect) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, expect);
}

/* NULL options: every default, no headers column, no messages, an event type header. */
static void test_defaults(void **state) {
    route_config_t *c = mk(NULL);

    (void)state;
    assert_int_equal(c->ntables, 1);
    assert_string_equal(c->tables[0].schema, "public");
    assert_string_equal(c->tables[0].table, "outbox");
    assert_string_equal(c->add_tables, "public.outbox");
    assert_string_equal(topic_template_text(c->topic), "outbox.event.${aggregate_type}");
    assert_string_equal(c->col_id, "id");
    assert_string_equal(c->col_aggregate_type, "aggregate_type");
    assert_string_equal(c->col_aggregate_id, "aggregate_id");
    assert_string_equal(c->col_event_type, "event_type");
    assert_string_equal(c->col_payload, "payload");
    assert_null(c->col_headers);
    assert_null(c->message_prefix);
    assert_string_equal(c->id_header, "id");
    assert_string_equal(c->type_header, "event_type");
    assert_int_equal(c->nheader_columns, 0);
    route_config_destroy(c);
    route_config_destroy(NULL);
}

/* Every name lands in its place; "" means "none" where the option allows it. */
static void test_names(void **state) {
    router_options_t o = {0};
    route_config_t *c;

    (void)state;
    o.topic_template = "t.${event_type}";
    o.columns.id = "event_id";
    o.columns.aggregate_type = "kind";
    o.columns.aggregate_id = "entity";
    o.columns.event_type = "what";
    o.columns.payload = "body";
    o.columns.headers = "meta";
    o.message_prefix = "ob";
    o.id_header = "ce_id";
    o.type_header = "ce_type";
    c = mk(&o);
    assert_string_equal(topic_template_text(c->topic), "t.${event_type}");
    assert_string_equal(c->col_id, "event_id");
    assert_string_equal(c->col_aggregate_type, "kind");
    assert_string_equal(c->col_aggregate_id, "entity");
    assert_string_equal(c->col_event_type, "what");
    assert_string_equal(c->col_payload, "body");
    assert_string_equal(c->col_headers, "meta");
    assert_string_equal(c->message_prefix, "ob");
    assert_string_equal(c->id_header, "ce_id");
    assert_string_equal(c->type_header, "ce_type");
    route_config_destroy(c);

    o.columns.headers = "";
    o.message_prefix = "";
    o.type_header = "";
    c = mk(&o);
    assert_null(c->col_headers);
    assert_null(c->message_prefix);
    assert_null(c->type_header);
    route_config_destroy(c);
}

/* Names that must not be empty say which option is wrong. */
static void test_empty_names(void **state) {
    static const char *const keys[] = {"outbox.column.id", "outbox.column.aggregate_type", "outbox.column.aggregate_id",
                                       "outbox.column.event_type", "outbox.column.payload"};

    (void)state;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        router_options_t o = {0};
        const char **col[] = {&o.columns.id, &o.columns.aggregate_type, &o.columns.aggregate_id, &o.columns.event_type,
                              &o.columns.payload};
        char want[100];

        *col[i] = "";
        snprintf(want, sizeof(want), "%s must not be empty", keys[i]);
        expect_error(&o, want);
    }
    {
        router_options_t o = {0};

        o.id_header = "";
        expect_error(&o, "outbox.header.id must not be empty");
        o.id_header = NULL;
        o.topic_template = "";
        expect_error(&o, "outbox.topic must not be empty");
        o.topic_template = "x.${nope}"; /* the template's own errors */
        expect_error(&o, "topic template \"x.${nope}\": unknown placeholder");
    }
}

/* outbox.header.columns: "col[:header], ...", spaces trimmed, header defaults to the column. */
static void test_header_columns(void **state) {
    router_options_t o = {0};
    route_config_t *c;

    (void)state;
    o.header_columns = " aggregate_type : aggType , payload";
    c = mk(&o);
    assert_int_equal(c->nheader_columns, 2);
    assert_string_equal(c->header_columns[0].column, "aggregate_type");
    assert_string_equal(c->header_columns[0].header, "aggType");
    assert_string_equal(c->header_columns[1].column, "payload");
    assert_string_equal(c->header_columns[1].header, "payload");
    route_config_destroy(c);

    o.header_columns = "";
    c = mk(&o);
    assert_int_equal(c->nheader_columns, 0);
    route_config_destroy(c);

    o.header_columns = "a,,b";
    expect_error(&o, "outbox.header.columns \"a,,b\": empty column or header name");
    o.header_columns = "a:";
    expect_error(&o, "outbox.header.columns");
    o.header_columns = ":h";
    expect_error(&o, "outbox.header.columns");
}

static void test_table_lists(void **state) {
    static const struct {
        const char *list;
        const char *add_tables; /* NULL: error */
        const char *error;
    } cases[] = {
        {"outbox", "public.outbox", NULL},
        {"Outbox", "public.outbox", NULL}, /* unquoted: folded as in SQL */
        {"\"Outbox\"", "public.Outbox", NULL},
        {"app.events", "app.events", NULL},
        {" app . events ,\tother.t2 ", "app.events,other.t2", NULL},
        {"\"My Schema\".\"T\"", "My\\ Schema.T", NULL},
        {"\"a\"\"b\".c", "a\"b.c", NULL},
        {"\"x.y\".\"z,w\"", "x\\.y.z\\,w", NULL},
        {"\"back\\slash\".\"st*r\"", "back\\\\slash.st\\*r", NULL},
        {"\"it's\".\"tab\there\"", "it\\'s.tab\\\there", NULL},
        {"\"*\".\"*\"", "\\*.\\*", NULL},
        {"caf\xc3\xa9.t", "caf\xc3\xa9.t", NULL},
        {"", NULL, "empty table name"},
        {"  ", NULL, "empty table name"},
        {",outbox", NULL, "empty table name at position 0"},
        {"outbox,", NULL, "empty table name"},
        {"a.", NULL, "empty table name"},
        {".a", NULL, "empty table name"},
        {"a.b.c", NULL, "unexpected '.'"},
        {"a b", NULL, "unexpected 'b'"},
        {"\"unterminated", NULL, "unterminated quoted identifier"},
        {"\"\".t", NULL, "empty quoted identifier"},
        {"ab\"c\"", NULL, "unexpected '\"' inside an identifier"},
        {"\"a\"b", NULL, "unexpected 'b'"},
        {"outbox, public.outbox", NULL, "public.outbox listed twice"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        router_options_t o = {0};
        char err[512] = "";
        route_config_t *c;

        o.tables = cases[i].list;
        c = route_config_new(&o, err, sizeof(err));
        if (cases[i].add_tables == NULL) {
            if (c != NULL)
                fail_msg("case %zu: \"%s\" accepted", i, cases[i].list);
            if (strstr(err, cases[i].error) == NULL || strncmp(err, "tables \"", 8) != 0)
                fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].error);
            continue;
        }
        if (c == NULL)
            fail_msg("case %zu: \"%s\": %s", i, cases[i].list, err);
        if (strcmp(c->add_tables, cases[i].add_tables) != 0)
            fail_msg("case %zu: add-tables \"%s\", expected \"%s\"", i, c->add_tables, cases[i].add_tables);
        route_config_destroy(c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),       cmocka_unit_test(test_names),       cmocka_unit_test(test_empty_names),
        cmocka_unit_test(test_header_columns), cmocka_unit_test(test_table_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
