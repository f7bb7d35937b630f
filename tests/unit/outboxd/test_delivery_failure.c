/* test_delivery_failure.c - unit tests for delivery_failure.c and kproducer_refusal_of: a
 * missing topic or a refused ACL is recognised by librdkafka's code, named with the topic and
 * the fix, and stops the relay as a configuration error (exit 2); other refusals stay runtime
 * failures (exit 1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <librdkafka/rdkafka.h>

#include "delivery_failure.h"
#include "relay.h"

static void test_refusal_by_code(void **state) {
    (void)state;
    assert_int_equal(kproducer_refusal_of(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART), KPRODUCER_REFUSED_UNKNOWN_TOPIC);
    assert_int_equal(kproducer_refusal_of(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC), KPRODUCER_REFUSED_UNKNOWN_TOPIC);
    assert_int_equal(kproducer_refusal_of(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED),
                     KPRODUCER_REFUSED_NOT_AUTHORIZED);
    assert_int_equal(kproducer_refusal_of(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), KPRODUCER_REFUSED_TOO_LARGE);
    assert_int_equal(kproducer_refusal_of(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), KPRODUCER_REFUSED);
}

static void test_unknown_topic_line(void **state) {
    (void)state;
    char buf[2048];
    kproducer_delivery_t d = {.err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                              .refusal = KPRODUCER_REFUSED_UNKNOWN_TOPIC,
                              .errstr = "Broker: Unknown topic or partition",
                              .event_id = "ev-1",
                              .topic = "outbox.event.invoice"};
    assert_int_equal(delivery_failure_report(&d, 0x1528DA0, false, buf, sizeof(buf)), RELAY_EXIT_CONFIG);
    assert_non_null(strstr(buf, "event ev-1 for topic outbox.event.invoice was not acknowledged by Kafka: the topic "
                                "does not exist and is not created automatically: Broker: Unknown topic or partition "
                                "(transaction commit end 0/1528DA0); the slot stays before it: create topic "
                                "outbox.event.invoice (kafka-topics.sh"));
    assert_non_null(strstr(buf, "outbox.on_invalid = dead-letter"));
    assert_null(strchr(buf, '\n'));
    /* The dead-letter topic itself is missing: no advice to dead-letter. */
    d.topic = "outbox.dead_letter";
    assert_int_equal(delivery_failure_report(&d, 0x1528DA0, true, buf, sizeof(buf)), RELAY_EXIT_CONFIG);
    assert_non_null(strstr(buf, "event ev-1 (its dead-letter record) for topic outbox.dead_letter"));
    assert_null(strstr(buf, "on_invalid"));

    assert_int_equal(delivery_failure_produce("ev-2", "t.x", 0x10, KPRODUCER_UNKNOWN_TOPIC,
                                              "Kafka refused the record for topic t.x (2 bytes): Local: Unknown topic",
                                              buf, sizeof(buf)),
                     RELAY_EXIT_CONFIG);
    assert_non_null(strstr(buf, "event ev-2 at LSN 0/10 cannot be published: the topic does not exist"));
    assert_non_null(strstr(buf, "create topic t.x"));
}

static void test_other_refusals_stay_runtime(void **state) {
    (void)state;
    char buf[2048];
    kproducer_delivery_t d = {.err = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, .errstr = "Local: Message timed out"};
    assert_int_equal(delivery_failure_report(&d, 0, false, buf, sizeof(buf)), RELAY_EXIT_RUNTIME);
    assert_string_equal(buf, "event (no id) for topic ? was not acknowledged by Kafka: Local: Message timed out "
                             "(transaction still open); the slot stays before it: fix the cause and restart outboxd");
    d = (kproducer_delivery_t){.refusal = KPRODUCER_REFUSED_NOT_AUTHORIZED, .errstr = "denied", .topic = "t"};
    assert_int_equal(delivery_failure_report(&d, 0, false, buf, sizeof(buf)), RELAY_EXIT_CONFIG);
    assert_non_null(strstr(buf, "WRITE and DESCRIBE on topic t"));
    assert_int_equal(delivery_failure_produce("e", "t", 1, KPRODUCER_INVALID, "bad", buf, sizeof(buf)),
                     RELAY_EXIT_RUNTIME);
    assert_string_equal(buf, "event e at LSN 0/1 cannot be published: bad; the slot stays before it");
}

static void test_missing_topic_line(void **state) {
    (void)state;
    char buf[2048];
    assert_int_equal(delivery_failure_missing_topic("t.invoice", 3, false, buf, sizeof(buf)), RELAY_EXIT_CONFIG);
    assert_non_null(strstr(buf, "topic t.invoice does not exist and is not created automatically"));
    assert_non_null(strstr(buf, "3 events in flight cannot be published"));
    assert_non_null(strstr(buf, "--create --topic t.invoice"));
    delivery_failure_missing_topic("t.invoice", 1, true, buf, sizeof(buf));
    assert_non_null(strstr(buf, "go to the dead-letter topic"));
    assert_non_null(strstr(buf, "outboxd replay --reason unknown-topic"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusal_by_code),
        cmocka_unit_test(test_unknown_topic_line),
        cmocka_unit_test(test_other_refusals_stay_runtime),
        cmocka_unit_test(test_missing_topic_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
