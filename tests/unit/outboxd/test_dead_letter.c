/* test_dead_letter.c - dead-letter records built from an event the producer refused and from
 * one the router could not build carry the documented headers: the event's own, then
 * outboxd.error, outboxd.reason, outboxd.lsn, outboxd.topic (when a record was built) and
 * (value dropped) outboxd.value.size. The delivery-report path
 * is tested against librdkafka's mock cluster in test_kproducer_mock.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dead_letter.h"
#include "log.h"

/* The value of header name in ev, as a NUL-terminated copy in buf; NULL when absent. */
static const char *header(const outbox_event_t *ev, const char *name, char *buf, size_t size) {
    const char *v = NULL;
    for (size_t i = 0; i < ev->nheaders; i++)
        if (!strcmp(ev->headers[i].name, name)) {
            snprintf(buf, size, "%.*s", (int)ev->headers[i].value_len, ev->headers[i].value);
            v = buf;
        }
    return v;
}

static void test_refused_event_keeps_its_record_and_gets_our_headers(void **state) {
    (void)state;
    dead_letter_t *dl = dead_letter_new("outbox.dead", NULL);
    assert_non_null(dl);
    router_header_t h[2] = {{"id", "ev-1", 4}, {"event_type", "Created", 7}};
    outbox_event_t ev = {.id = "ev-1",
                         .topic = "outbox.event.order",
                         .key = "k1",
                         .key_len = 2,
                         .value = "{}",
                         .value_len = 2,
                         .nheaders = 2,
                         .headers = h};
    assert_int_equal(dead_letter_event(dl, &ev, 0x1528DA0, "bad topic name", DEAD_LETTER_REFUSED), 0);
    char buf[64];
    assert_string_equal(ev.topic, "outbox.dead");
    assert_int_equal(ev.key_len, 2);
    assert_memory_equal(ev.value, "{}", 2);
    assert_int_equal(ev.nheaders, 6);
    assert_string_equal(header(&ev, "id", buf, sizeof(buf)), "ev-1");
    assert_string_equal(header(&ev, "outboxd.reason", buf, sizeof(buf)), "refused");
    assert_string_equal(header(&ev, "outboxd.topic", buf, sizeof(buf)), "outbox.event.order");
    assert_string_equal(header(&ev, "event_type", buf, sizeof(buf)), "Created");
    assert_string_equal(header(&ev, "outboxd.error", buf, sizeof(buf)), "bad topic name");
    assert_string_equal(header(&ev, "outboxd.lsn", buf, sizeof(buf)), "0/1528DA0");
    assert_null(header(&ev, "outboxd.value.size", buf, sizeof(buf)));
    dead_letter_destroy(dl);
}

static void test_too_large_event_drops_the_value_and_says_its_size(void **state) {
    (void)state;
    dead_letter_t *dl = dead_letter_new("outbox.dead", "id");
    router_header_t h[1] = {{"id", "ev-2", 4}};
    outbox_event_t ev = {.id = "ev-2",
                         .topic = "t",
                         .key = "k",
                         .key_len = 1,
                         .value = "0123456789",
                         .value_len = 10,
                         .nheaders = 1,
                         .headers = h};
    assert_int_equal(dead_letter_event(dl, &ev, 0x100000001ULL, "Message size too large", DEAD_LETTER_TOO_LARGE), 0);
    char buf[64];
    assert_int_equal(ev.value_len, 0);
    assert_string_equal(header(&ev, "outboxd.value.size", buf, sizeof(buf)), "10");
    assert_string_equal(header(&ev, "outboxd.lsn", buf, sizeof(buf)), "1/1");
    assert_string_equal(header(&ev, "outboxd.error", buf, sizeof(buf)), "Message size too large");
    assert_string_equal(header(&ev, "outboxd.reason", buf, sizeof(buf)), "too-large");
    assert_string_equal(header(&ev, "outboxd.topic", buf, sizeof(buf)), "t");
    dead_letter_destroy(dl);
}

static void test_unroutable_record_gets_the_id_header_when_known(void **state) {
    (void)state;
    dead_letter_t *dl = dead_letter_new("outbox.dead", "event_id");
    const char *wal2json = "{\"action\":\"I\"}";
    outbox_event_t ev = {.id = "ev-3", .topic = "half built", .key = "k", .key_len = 1};
    assert_int_equal(dead_letter_unroutable(dl, &ev, 0xABCDEF, wal2json, strlen(wal2json), "NULL payload"), 0);
    char buf[64];
    assert_string_equal(ev.topic, "outbox.dead");
    assert_null(ev.key);
    assert_ptr_equal(ev.value, wal2json);
    assert_int_equal(ev.nheaders, 4);
    assert_string_equal(header(&ev, "event_id", buf, sizeof(buf)), "ev-3");
    assert_string_equal(header(&ev, "outboxd.reason", buf, sizeof(buf)), "unroutable");
    assert_null(header(&ev, "outboxd.topic", buf, sizeof(buf))); /* no record was built */
    assert_string_equal(header(&ev, "outboxd.error", buf, sizeof(buf)), "NULL payload");
    assert_string_equal(header(&ev, "outboxd.lsn", buf, sizeof(buf)), "0/ABCDEF");

    /* A non-transactional message without a readable id: no id header, still the LSN. */
    ev = (outbox_event_t){.id = NULL};
    assert_int_equal(dead_letter_unroutable(dl, &ev, 0x10, "x", 1, "non-transactional outbox message"), 0);
    assert_int_equal(ev.nheaders, 3);
    assert_null(header(&ev, "event_id", buf, sizeof(buf)));
    assert_string_equal(header(&ev, "outboxd.lsn", buf, sizeof(buf)), "0/10");
    dead_letter_destroy(dl);
    dead_letter_destroy(NULL);
}

static void test_reason_names(void **state) {
    (void)state;
    dead_letter_reason_t r;
    for (int i = 0; i < DEAD_LETTER_REASON_COUNT; i++) {
        assert_int_equal(dead_letter_reason_parse(dead_letter_reason_name((dead_letter_reason_t)i), &r), 0);
        assert_int_equal(r, i);
    }
    assert_int_equal(dead_letter_reason_parse("nope", &r), -1);
    assert_int_equal(dead_letter_reason_of_result(KPRODUCER_UNKNOWN_TOPIC), DEAD_LETTER_UNKNOWN_TOPIC);
    assert_int_equal(dead_letter_reason_of_result(KPRODUCER_TOO_LARGE), DEAD_LETTER_TOO_LARGE);
    assert_int_equal(dead_letter_reason_of_result(KPRODUCER_INVALID), DEAD_LETTER_REFUSED);
    assert_int_equal(dead_letter_reason_of_refusal(KPRODUCER_REFUSED_NOT_AUTHORIZED), DEAD_LETTER_NOT_AUTHORIZED);
}

int main(void) {
    log_init("test", LOG_ERROR, LOG_FORMAT_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_event_keeps_its_record_and_gets_our_headers),
        cmocka_unit_test(test_too_large_event_drops_the_value_and_says_its_size),
        cmocka_unit_test(test_unroutable_record_gets_the_id_header_when_known),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests_name("dead_letter", tests, NULL, NULL);
}
