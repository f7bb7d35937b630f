/* checkpoint_reader.c - a read_committed consumer that finds the last committed exactly-once
 * checkpoint of a transactional.id, and creates the checkpoint topic (see checkpoint_reader.h). */
#include "checkpoint_reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "kconf.h"
#include "log.h"

#define FIRST_WINDOW 64 /* records read back from the end first; each further window is 8 times larger */
#define POLL_MS 100

struct checkpoint_reader {
    rd_kafka_t *rk;    /* read_committed: reads the records */
    rd_kafka_t *rk_hw; /* read_uncommitted: its ListOffsets answers the high watermark, where a
                          read_committed client gets the last stable offset */
    char *topic;
    char bootstrap[256];
};

/* The user's properties a consumer that only reads needs: where and how to connect. Producer
 * properties would make librdkafka warn about every one of them. */
static bool connection_property(const char *k) {
    static const char *const prefixes[] = {
        "bootstrap.servers", "metadata.broker.list", "security.protocol", "ssl.",    "sasl.", "socket.",   "broker.",
        "reconnect.backoff", "api.version",          "enable.ssl.",       "client.", "debug", "log_level", NULL};
    for (int i = 0; prefixes[i]; i++)
        if (!strncmp(k, prefixes[i], strlen(prefixes[i])))
            return true;
    return false;
}

/* One consumer handle with the connection properties props (kafka.* pairs already filtered). */
static rd_kafka_t *new_consumer(const char *const *props, const char *isolation, char *bootstrap, size_t bootstrap_size,
                                err_t *e) {
    /* clang-format off */
    static const char *const defaults[] = {"client.id", "outboxd-checkpoint",
                                           "group.id", "outboxd-checkpoint-reader", /* never joined: assign only */
                                           "enable.auto.commit", "false",
                                           "enable.auto.offset.store", "false",
                                           "enable.partition.eof", "true",
                                           "auto.offset.reset", "earliest",
                                           "fetch.wait.max.ms", "100",
                                           NULL};
    /* clang-format on */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return NULL;
    }
    if (kconf_apply(conf, defaults, props, bootstrap, bootstrap_size, "OUTBOXD_", e) ||
        kconf_set(conf, "isolation.level", isolation, e)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        err_set(e, ERR_PERMANENT, "", "fix the kafka.* settings", "cannot create the checkpoint reader: %s", why);
    }
    return rk;
}

checkpoint_reader_t *checkpoint_reader_new(const char *const *props, const char *topic, err_t *e) {
    checkpoint_reader_t *r = calloc(1, sizeof(*r));
    size_t n = 0;
    while (props && props[n])
        n += 2;
    const char **mine = calloc(n + 1, sizeof(char *));
    if (!r || !mine || !(r->topic = strdup(topic))) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        goto fail;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i += 2)
        if (connection_property(props[i])) {
            mine[m++] = props[i];
            mine[m++] = props[i + 1];
        }
    if (!(r->rk = new_consumer(mine, "read_committed", r->bootstrap, sizeof(r->bootstrap), e)) ||
        !(r->rk_hw = new_consumer(mine, "read_uncommitted", r->bootstrap, sizeof(r->bootstrap), e)))
        goto fail;
    free(mine);
    return r;
fail:
    free(mine);
    checkpoint_reader_destroy(r);
    return NULL;
}

void checkpoint_reader_destroy(checkpoint_reader_t *r) {
    if (!r)
        return;
    if (r->rk)
        rd_kafka_destroy_flags(r->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (r->rk_hw)
        rd_kafka_destroy_flags(r->rk_hw, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(r->topic);
    free(r);
}

void *checkpoint_reader_handle(checkpoint_reader_t *r) { return r->rk; }

int checkpoint_reader_check_connect(checkpoint_reader_t *r, int timeout_ms, err_t *e) {
    char why[256];
    if (kconf_probe(r->rk, timeout_ms, why, sizeof(why)))
        return 0;
    err_set(e, ERR_TRANSIENT, "", "start the broker or fix kafka.bootstrap.servers",
            "Kafka is not reachable at bootstrap.servers=%s (%s)", r->bootstrap, why);
    return -1;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Creates the topic: one partition, compacted (only the newest record per key matters), the
 * broker's default replication factor. Returns 0 (created, or created meanwhile by someone else)
 * or -1 with *e. */
static int create_topic(checkpoint_reader_t *r, int timeout_ms, err_t *e) {
    char why[512];
    const char *fix_fmt = "create it: kafka-topics.sh --create --topic %s --partitions 1 --config "
                          "cleanup.policy=compact (or let outboxd's principal create topics)";
    char fix[512];
    snprintf(fix, sizeof(fix), fix_fmt, r->topic);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(r->topic, 1, -1, why, sizeof(why));
    if (!nt) {
        err_set(e, ERR_PERMANENT, "", fix, "cannot create the checkpoint topic %s: %s", r->topic, why);
        return -1;
    }
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_NewTopic_set_config(nt, "segment.ms", "3600000"); /* compacted within hours, not a week */
    rd_kafka_queue_t *q = rd_kafka_queue_new(r->rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(r->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, timeout_ms, why, sizeof(why));
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, why, sizeof(why));
    rd_kafka_CreateTopics(r->rk, &nt, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    int rc = -1;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    const char *errstr = "no answer";
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (ev && rd_kafka_event_error(ev)) {
        err = rd_kafka_event_error(ev);
        errstr = rd_kafka_event_error_string(ev);
    } else if (res) {
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        err = n == 1 ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR__FAIL;
        errstr = n == 1 && rd_kafka_topic_result_error_string(tr[0]) ? rd_kafka_topic_result_error_string(tr[0])
                                                                     : rd_kafka_err2str(err);
    }
    if (!err || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        if (!err)
            log_info("created the exactly-once checkpoint topic %s (1 partition, cleanup.policy=compact)", r->topic);
        rc = 0;
    } else {
        bool denied = err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                      err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
                      err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION || err == RD_KAFKA_RESP_ERR_INVALID_CONFIG ||
                      err == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR;
        err_set(e, denied ? ERR_PERMANENT : ERR_TRANSIENT, "", denied ? fix : "",
                "cannot create the exactly-once checkpoint topic %s: %s", r->topic, errstr);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

int checkpoint_reader_partitions(checkpoint_reader_t *r, int timeout_ms, err_t *e) {
    bool created = false;
    for (int64_t until = mono_ms() + timeout_ms;;) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, r->topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rkt ? rd_kafka_metadata(r->rk, 0, rkt, &md, timeout_ms) : rd_kafka_last_error();
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        if (err) {
            err_set(e, ERR_TRANSIENT, "", "", "cannot read the metadata of the checkpoint topic %s: %s", r->topic,
                    rd_kafka_err2str(err));
            return -1;
        }
        rd_kafka_resp_err_t terr = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        int n = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
        rd_kafka_metadata_destroy(md);
        if (!terr && n > 0)
            return n;
        if (terr != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && terr != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC && terr) {
            err_set(e, terr == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ? ERR_PERMANENT : ERR_TRANSIENT, "",
                    "grant outboxd's principal Describe, Read and Write on the topic", "the checkpoint topic %s: %s",
                    r->topic, rd_kafka_err2str(terr));
            return -1;
        }
        if (!created && create_topic(r, timeout_ms, e) != 0)
            return -1;
        if (created && mono_ms() >= until) {
            err_set(e, ERR_TRANSIENT, "", "", "the checkpoint topic %s was created but has no partitions yet",
                    r->topic);
            return -1;
        }
        if (created) { /* the new topic's metadata takes a moment to reach the broker we ask */
            struct timespec ts = {0, 200 * 1000000};
            nanosleep(&ts, NULL);
        }
        created = true;
    }
}

typedef struct window {
    const char *key;
    int64_t start, end; /* offsets [start, end) */
    int64_t found;      /* offset of the newest record with key, -1 = none */
    checkpoint_t ck;
    bool readable; /* the newest record with key decoded (not a tombstone, not garbage) */
} window_t;

static void take(window_t *w, const rd_kafka_message_t *m) {
    if (m->key_len != strlen(w->key) || memcmp(m->key, w->key, m->key_len) != 0 || m->offset < w->found)
        return;
    char why[256];
    w->found = m->offset;
    w->readable = m->payload && checkpoint_decode(m->payload, m->len, &w->ck, why, sizeof(why)) == 0;
    if (!w->readable)
        log_warn("the checkpoint record at offset %" PRId64 " is %s: ignored", m->offset,
                 m->payload ? why : "a tombstone");
}

/* Reads [w->start, w->end) of partition: until a record at or past end, or the end of the
 * partition as read_committed sees it (its last stable offset) at or past end. Returns 0, or -1
 * with *e. */
static int read_window(checkpoint_reader_t *r, int32_t partition, window_t *w, int64_t deadline,
                       bool (*cancelled)(void *), void *arg, err_t *e) {
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, r->topic, partition)->offset = w->start;
    rd_kafka_resp_err_t err = rd_kafka_assign(r->rk, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    if (err) {
        err_set(e, ERR_TRANSIENT, "", "", "cannot read the checkpoint topic %s: %s", r->topic, rd_kafka_err2str(err));
        return -1;
    }
    int64_t eof_at = -1;
    int rc = -1;
    for (;;) {
        if ((cancelled && cancelled(arg)) || mono_ms() >= deadline) {
            err_set(e, ERR_TRANSIENT, "",
                    "a transaction that stays open on that partition holds read_committed readers back: see "
                    "\"Exactly-once\" in docs/operations.md",
                    "cannot read the checkpoint topic %s partition %d up to offset %" PRId64
                    " in time (read up to %" PRId64 ")",
                    r->topic, (int)partition, w->end, eof_at);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, POLL_MS);
        if (!m)
            continue;
        bool done = false;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof_at = m->offset;
            done = eof_at >= w->end;
        } else if (!m->err) {
            done = m->offset >= w->end;
            if (!done)
                take(w, m);
        } else {
            log_debug("checkpoint reader: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        if (done) {
            rc = 0;
            break;
        }
    }
    rd_kafka_assign(r->rk, NULL);
    return rc;
}

int checkpoint_reader_read(checkpoint_reader_t *r, const char *key, int32_t partition, int timeout_ms,
                           bool (*cancelled)(void *), void *arg, checkpoint_t *out, int64_t *offset, err_t *e) {
    int64_t lo = 0, hi = 0, deadline = mono_ms() + timeout_ms;
    /* The high watermark, not the last stable offset: the newest checkpoint of this transactional.id
     * may sit behind another producer's open transaction; wait for it to end rather than read a
     * stale checkpoint (which would only cause duplicates, but still). */
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(r->rk_hw, r->topic, partition, &lo, &hi, timeout_ms);
    if (err) {
        err_set(e, ERR_TRANSIENT, "", "", "cannot read the offsets of the checkpoint topic %s partition %d: %s",
                r->topic, (int)partition, rd_kafka_err2str(err));
        return -1;
    }
    window_t w = {.key = key, .end = hi, .found = -1};
    for (int64_t size = FIRST_WINDOW; w.end > lo; size *= 8) {
        w.start = w.end - size > lo ? w.end - size : lo;
        if (read_window(r, partition, &w, deadline, cancelled, arg, e) != 0)
            return -1;
        if (w.found >= 0)
            break;
        w.end = w.start;
    }
    if (w.found < 0 || !w.readable)
        return 0;
    *out = w.ck;
    *offset = w.found;
    return 1;
}
