/* test_ktxn.c - unit tests for ktxn.c: what librdkafka's transactional errors mean (by flags
 * and codes) and which refused records are the record's fault. (librdkafka 2.0.2's mock cluster
 * commits for a fenced producer, so fencing is tested against the real broker:
 * tests/integration/test_exactly_once.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "ktxn.h"

static void test_classify(void **state) {
    (void)state;
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR_PRODUCER_FENCED, true, false, false), KTXN_FENCED);
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR__FENCED, true, false, false), KTXN_FENCED);
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, true, false, false), KTXN_FENCED);
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, true, false, false),
                     KTXN_FATAL);
    /* Fatal wins over the other flags; abort over retry. */
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR__TIMED_OUT, true, true, true), KTXN_FATAL);
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR__TIMED_OUT, false, true, true), KTXN_ABORT);
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR__TIMED_OUT, false, false, true), KTXN_RETRY);
    /* No flag: fatal, as librdkafka recommends; a fencing code still says fenced. */
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR__STATE, false, false, false), KTXN_FATAL);
    assert_int_equal(ktxn_classify(RD_KAFKA_RESP_ERR_PRODUCER_FENCED, false, false, false), KTXN_FENCED);
    assert_true(ktxn_code_is_fencing(RD_KAFKA_RESP_ERR_PRODUCER_FENCED));
    assert_false(ktxn_code_is_fencing(RD_KAFKA_RESP_ERR__TIMED_OUT));
}

static void test_record_refused(void **state) {
    (void)state;
    assert_true(ktxn_record_refused(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
    assert_true(ktxn_record_refused(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED));
    assert_true(ktxn_record_refused(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    /* The transaction's trouble, not the record's: replayed, never dead-lettered. */
    assert_false(ktxn_record_refused(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
    assert_false(ktxn_record_refused(RD_KAFKA_RESP_ERR__PURGE_QUEUE));
    assert_false(ktxn_record_refused(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT));
    assert_false(ktxn_record_refused(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH));
    assert_false(ktxn_record_refused(RD_KAFKA_RESP_ERR_INVALID_RECORD)); /* KIP-890 verification */
    assert_false(ktxn_record_refused(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_record_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
