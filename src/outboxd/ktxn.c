/* ktxn.c - the producer's transactional calls and what their errors mean (see ktxn.h). */
#include "ktxn.h"

#include <stdio.h>

#include <librdkafka/rdkafka.h>

bool ktxn_code_is_fencing(int code) {
    return code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED || code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH ||
           code == RD_KAFKA_RESP_ERR__FENCED;
}

ktxn_result_t ktxn_classify(int code, bool fatal, bool requires_abort, bool retriable) {
    if (fatal)
        return ktxn_code_is_fencing(code) ? KTXN_FENCED : KTXN_FATAL;
    if (requires_abort)
        return KTXN_ABORT;
    if (retriable)
        return KTXN_RETRY;
    return ktxn_code_is_fencing(code) ? KTXN_FENCED : KTXN_FATAL;
}

/* Not INVALID_RECORD: brokers with KIP-890's partition verification answer a produce outside
 * the transaction with it (to older clients), which is the transaction's trouble, not the
 * record's; a replay is the safe answer (a record that is really invalid is then replayed and
 * logged each time, never dead-lettered by mistake). */
bool ktxn_record_refused(int err) {
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return true;
    default:
        return false;
    }
}

static const char *fix_for(ktxn_result_t r) {
    switch (r) {
    case KTXN_RETRY:
        return ""; /* wait for Kafka */
    case KTXN_ABORT:
        return "the transaction is aborted and replayed from the last checkpoint";
    case KTXN_FENCED:
        return "another outboxd with the same delivery.transactional.id took over (or this instance's transaction "
               "outlived transaction.timeout.ms): this instance stops; nothing it sent since its last commit "
               "becomes visible";
    default:
        return "check the Kafka ACLs for the transactional.id and the broker's transaction settings "
               "(transaction.state.log.*, transaction.max.timeout.ms)";
    }
}

/* Turns librdkafka's error object (destroyed here) into a result and *e. */
static ktxn_result_t outcome(kproducer_t *p, rd_kafka_error_t *err, const char *call, err_t *e) {
    if (!err)
        return KTXN_OK;
    int code = rd_kafka_error_code(err);
    char fatal_str[512] = "";
    bool fatal = rd_kafka_error_is_fatal(err);
    if (fatal)
        code = rd_kafka_fatal_error(kproducer_handle(p), fatal_str, sizeof(fatal_str));
    ktxn_result_t r =
        ktxn_classify(code, fatal, rd_kafka_error_txn_requires_abort(err), rd_kafka_error_is_retriable(err));
    err_set(e, r == KTXN_RETRY ? ERR_TRANSIENT : ERR_PERMANENT, "", fix_for(r), "Kafka %s failed: %s%s%s", call,
            rd_kafka_error_string(err), fatal_str[0] ? "; fatal: " : "", fatal_str);
    rd_kafka_error_destroy(err);
    return r;
}

ktxn_result_t ktxn_init(kproducer_t *p, int timeout_ms, err_t *e) {
    return outcome(p, rd_kafka_init_transactions(kproducer_handle(p), timeout_ms), "init_transactions", e);
}

ktxn_result_t ktxn_begin(kproducer_t *p, err_t *e) {
    return outcome(p, rd_kafka_begin_transaction(kproducer_handle(p)), "begin_transaction", e);
}

ktxn_result_t ktxn_commit(kproducer_t *p, int timeout_ms, err_t *e) {
    return outcome(p, rd_kafka_commit_transaction(kproducer_handle(p), timeout_ms), "commit_transaction", e);
}

ktxn_result_t ktxn_abort(kproducer_t *p, int timeout_ms, err_t *e) {
    return outcome(p, rd_kafka_abort_transaction(kproducer_handle(p), timeout_ms), "abort_transaction", e);
}

ktxn_result_t ktxn_fatal(kproducer_t *p, err_t *e) {
    char why[512];
    int code = rd_kafka_fatal_error(kproducer_handle(p), why, sizeof(why));
    if (!code)
        return KTXN_OK;
    ktxn_result_t r = ktxn_code_is_fencing(code) ? KTXN_FENCED : KTXN_FATAL;
    err_set(e, ERR_PERMANENT, "", fix_for(r), "fatal Kafka producer error: %s", why);
    return r;
}
