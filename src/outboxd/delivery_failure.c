/* delivery_failure.c - the line and exit code for a record Kafka refused (see the header). */
#include "delivery_failure.h"

#include <stdio.h>

#include "relay.h"

const char *delivery_failure_fix(kproducer_refusal_t refusal, const char *topic, bool dead_letter, char *buf,
                                 size_t size) {
    const char *t = topic ? topic : "?";
    switch (refusal) {
    case KPRODUCER_REFUSED_UNKNOWN_TOPIC:
        snprintf(buf, size,
                 "create topic %s (kafka-topics.sh --bootstrap-server ... --create --topic %s --partitions N), or let "
                 "the brokers create topics (auto.create.topics.enable = true, and kafka.allow.auto.create.topics not "
                 "false)%s; then restart outboxd (outboxd check lists the topics the outbox table needs)",
                 t, t,
                 dead_letter ? ""
                             : ", or set outbox.on_invalid = dead-letter to send such events to "
                               "outbox.dead_letter.topic");
        break;
    case KPRODUCER_REFUSED_NOT_AUTHORIZED:
        snprintf(buf, size,
                 "grant outboxd's principal WRITE and DESCRIBE on topic %s and IDEMPOTENT_WRITE on the cluster "
                 "(kafka-acls.sh), then restart outboxd",
                 t);
        break;
    default:
        snprintf(buf, size, "%s", "");
        break;
    }
    return buf;
}

/* The words for what is wrong with the topic, before librdkafka's own ("" when nothing
 * particular). */
static const char *what_of(kproducer_refusal_t refusal) {
    switch (refusal) {
    case KPRODUCER_REFUSED_UNKNOWN_TOPIC:
        return "the topic does not exist and is not created automatically: ";
    case KPRODUCER_REFUSED_NOT_AUTHORIZED:
        return "the producer may not write to the topic: ";
    default:
        return "";
    }
}

static int code_of(kproducer_refusal_t refusal) {
    return refusal == KPRODUCER_REFUSED_UNKNOWN_TOPIC || refusal == KPRODUCER_REFUSED_NOT_AUTHORIZED
               ? RELAY_EXIT_CONFIG
               : RELAY_EXIT_RUNTIME;
}

int delivery_failure_report(const kproducer_delivery_t *d, lsn_t commit_end, bool dead_letter, char *buf, size_t size) {
    char lb[LSN_FMT_SIZE], fix[1024];
    kproducer_refusal_t refusal = d->refusal;
    delivery_failure_fix(refusal, d->topic, dead_letter, fix, sizeof(fix));
    snprintf(buf, size,
             "event %s%s for topic %s was not acknowledged by Kafka: %s%s (transaction %s%s); the slot stays before "
             "it: %s",
             d->event_id ? d->event_id : "(no id)", dead_letter ? " (its dead-letter record)" : "",
             d->topic ? d->topic : "?", what_of(refusal), d->errstr ? d->errstr : "error",
             commit_end ? "commit end " : "still open", commit_end ? lsn_format(commit_end, lb) : "",
             fix[0] ? fix : "fix the cause and restart outboxd");
    return code_of(refusal);
}

int delivery_failure_produce(const char *event_id, const char *topic, lsn_t lsn, kproducer_result_t res,
                             const char *err, char *buf, size_t size) {
    char lb[LSN_FMT_SIZE], fix[1024];
    kproducer_refusal_t refusal = res == KPRODUCER_UNKNOWN_TOPIC ? KPRODUCER_REFUSED_UNKNOWN_TOPIC : KPRODUCER_REFUSED;
    delivery_failure_fix(refusal, topic, false, fix, sizeof(fix));
    snprintf(buf, size, "event %s at LSN %s cannot be published: %s%s; the slot stays before it%s%s",
             event_id ? event_id : "(no id)", lsn_format(lsn, lb), what_of(refusal), err, fix[0] ? ": " : "", fix);
    return code_of(refusal);
}

int delivery_failure_missing_topic(const char *topic, size_t n, bool dead_letter, char *buf, size_t size) {
    char fix[1024];
    delivery_failure_fix(KPRODUCER_REFUSED_UNKNOWN_TOPIC, topic, false, fix, sizeof(fix));
    if (dead_letter)
        snprintf(buf, size,
                 "topic %s does not exist and is not created automatically (the broker answers "
                 "UNKNOWN_TOPIC_OR_PART): its events in flight go to the dead-letter topic when librdkafka gives up on "
                 "them (kafka.topic.metadata.propagation.max.ms, 30 s by default); create the topic and replay them "
                 "(outboxd replay --reason unknown-topic)",
                 topic);
    else
        snprintf(buf, size,
                 "topic %s does not exist and is not created automatically (the broker answers UNKNOWN_TOPIC_OR_PART): "
                 "%zu event%s in flight cannot be published; the slot stays before them: %s",
                 topic, n, n == 1 ? "" : "s", fix);
    return RELAY_EXIT_CONFIG;
}
