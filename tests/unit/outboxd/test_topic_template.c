/* test_topic_template.c - unit tests of topic_template.c: parsing a template (placeholders,
 * bad characters), rendering topics and Kafka's topic name rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic_template.h"

static topic_template_t *mk(const char *text) {
    char err[512] = "";
    topic_template_t *t = topic_template_new(text, err, sizeof(err));

    if (t == NULL)
        fail_msg("topic_template_new(\"%s\"): %s", text, err);
    return t;
}

static topic_fields_t fields(const char *aggregate_type, const char *aggregate_id, const char *event_type) {
    topic_fields_t f = {aggregate_type, aggregate_id, aggregate_id ? strlen(aggregate_id) : 0, event_type,
                        event_type ? strlen(event_type) : 0};
    return f;
}

/* Renders f with t and expects topic, or (topic NULL) an error containing err. */
static void expect_render(const topic_template_t *t, topic_fields_t f, const char *topic, const char *err) {
    strbuf_t out = {0};
    char got[512] = "";
    int rc = topic_template_render(t, &f, &out, got, sizeof(got));

    if (topic != NULL) {
        if (rc != 0)
            fail_msg("\"%s\": %s", topic_template_text(t), got);
        assert_string_equal(out.p, topic);
        assert_int_equal(out.len, strlen(topic));
    } else {
        if (rc == 0)
            fail_msg("\"%s\" rendered \"%s\", expected an error", topic_template_text(t), out.p);
        if (strstr(got, err) == NULL)
            fail_msg("error \"%s\" lacks \"%s\"", got, err);
    }
    strbuf_free(&out);
}

static void test_bad_templates(void **state) {
    static const struct {
        const char *tpl;
        const char *error;
    } bad[] = {
        {"outbox.${aggregate_typ}", "unknown placeholder \"${aggregate_typ}\""},
        {"outbox.${}", "unknown placeholder \"${}\""},
        {"outbox.${AGGREGATE_TYPE}", "unknown placeholder"},
        {"outbox.${aggregate_type", "unterminated \"${\""},
        {"${", "unterminated"},
        {"outbox event", "character ' ' is not allowed"},
        {"outbox/$x", "character '/' is not allowed"},
        {"a$b", "character '$' is not allowed"},
        {"", "topic template is empty"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[512] = "";

        if (topic_template_new(bad[i].tpl, err, sizeof(err)) != NULL)
            fail_msg("\"%s\" accepted (expected \"%s\")", bad[i].tpl, bad[i].error);
        if (strstr(err, bad[i].error) == NULL)
            fail_msg("error \"%s\" lacks \"%s\"", err, bad[i].error);
    }
    topic_template_destroy(NULL);
}

static void test_render(void **state) {
    topic_template_t *t;

    (void)state;
    t = mk("outbox.event.${aggregate_type}");
    assert_string_equal(topic_template_text(t), "outbox.event.${aggregate_type}");
    expect_render(t, fields("order", "o-1", "Created"), "outbox.event.order", NULL);
    expect_render(t, fields("order", NULL, NULL), "outbox.event.order", NULL); /* unused fields may be NULL */
    expect_render(t, fields(NULL, "o-1", "Created"), NULL,
                  "aggregate_type is NULL but the topic template \"outbox.event.${aggregate_type}\" uses it");
    expect_render(t, fields("bad type", "o-1", NULL), NULL,
                  "topic \"outbox.event.bad type\" is not a valid Kafka topic name (only a-z A-Z 0-9 . _ -)");
    topic_template_destroy(t);

    t = mk("t-${routedByValue}-${event_type}-${aggregate_id}");
    expect_render(t, fields("box", "42", "Moved"), "t-box-Moved-42", NULL);
    expect_render(t, fields("box", "42", NULL), NULL, "event_type is NULL but the topic template");
    expect_render(t, fields("box", NULL, "Moved"), NULL, "aggregate_id is NULL but the topic template");
    topic_template_destroy(t);

    t = mk("events"); /* no placeholder at all */
    expect_render(t, fields(NULL, NULL, NULL), "events", NULL);
    topic_template_destroy(t);
}

/* Kafka's rules: 1 to 249 characters of a-z A-Z 0-9 . _ -, not "." or "..". */
static void test_topic_names(void **state) {
    topic_template_t *t = mk("${aggregate_id}");
    char big[TOPIC_NAME_MAX + 2];
    topic_fields_t f;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    f = fields(NULL, big, NULL);
    expect_render(t, f, NULL, "is not a valid Kafka topic name (1 to 249 characters, not \".\" or \"..\")");
    f.aggregate_id_len = TOPIC_NAME_MAX;
    big[TOPIC_NAME_MAX] = '\0';
    expect_render(t, f, big, NULL);
    expect_render(t, fields(NULL, "..", NULL), NULL, "is not a valid Kafka topic name (1 to 249");
    expect_render(t, fields(NULL, ".", NULL), NULL, "is not a valid Kafka topic name (1 to 249");
    expect_render(t, fields(NULL, "", NULL), NULL, "topic \"\" is not a valid Kafka topic name (1 to 249");
    expect_render(t, fields(NULL, "...", NULL), "...", NULL);
    f = fields(NULL, "a\0b", NULL);
    f.aggregate_id_len = 3; /* an embedded NUL is not a topic character */
    expect_render(t, f, NULL, "(only a-z A-Z 0-9 . _ -)");
    topic_template_destroy(t);
}

/* One buffer serves many renders: each replaces the last. */
static void test_reuse(void **state) {
    topic_template_t *t = mk("a.${aggregate_type}");
    strbuf_t out = {0};
    char err[256];
    topic_fields_t f = fields("long-aggregate-type", NULL, NULL);

    (void)state;
    assert_int_equal(topic_template_render(t, &f, &out, err, sizeof(err)), 0);
    assert_string_equal(out.p, "a.long-aggregate-type");
    f = fields("b", NULL, NULL);
    assert_int_equal(topic_template_render(t, &f, &out, err, sizeof(err)), 0);
    assert_string_equal(out.p, "a.b");
    assert_int_equal(out.len, 3);
    strbuf_free(&out);
    topic_template_destroy(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_templates),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
