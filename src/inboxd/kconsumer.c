/* kconsumer.c - librdkafka high-level consumer for inboxd: manual offset commits, rebalance
 * callbacks that set start offsets, messages and events signalled on a pipe fd. */
#include "kconsumer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "array.h"
#include "kconf.h"
#include "log.h"

struct kconsumer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* the consumer queue (the main queue is forwarded to it) */
    int pipefd[2];           /* librdkafka writes a byte when the queue becomes non-empty */
    char **topics;
    size_t ntopics;
    kconsumer_assign_cb_t assign_cb;
    kconsumer_revoke_cb_t revoke_cb;
    void *opaque;
    char group[256];
    char bootstrap[256];

    rd_kafka_message_t *cur; /* the message handed out last */
    kmsg_t msg;
    kmsg_header_t *hdrs;
    size_t hcap;
    kconsumer_tp_t *tps; /* scratch for the callbacks */
    size_t tpcap;

    bool fatal;
    char fatal_err[1024];
    kconf_sec_t sec;      /* TLS verification and SASL failures */
    bool sec_ready;       /* sec was initialised */
    bool checking;        /* inside kconsumer_check_connect: its caller reports the failure */
    err_t sec_err;        /* the last security failure (kind ERR_NONE: none yet) */
    time_t sec_logged_at; /* when it was last logged, to keep repeats quiet */
    char last_err[512];   /* last consumer error logged, to keep repeats quiet */
    time_t last_err_at;
};

/* Fills k->tps from a librdkafka list. Returns false when out of memory. */
static bool tps_from(kconsumer_t *k, const rd_kafka_topic_partition_list_t *l) {
    kconsumer_tp_t *v = array_grow(k->tps, &k->tpcap, (size_t)l->cnt, sizeof(*v), (size_t)l->cnt);
    if (!v)
        return false;
    k->tps = v;
    for (int i = 0; i < l->cnt; i++)
        k->tps[i] = (kconsumer_tp_t){
            .topic = l->elems[i].topic, .partition = l->elems[i].partition, .offset = KCONSUMER_OFFSET_STORED};
    return true;
}

static void set_fatal(kconsumer_t *k, const char *what) {
    if (k->fatal)
        return;
    k->fatal = true;
    snprintf(k->fatal_err, sizeof(k->fatal_err), "%s", what);
}

/* Runs inside rd_kafka_consumer_poll / rd_kafka_consumer_close, in inboxd's thread. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    kconsumer_t *k = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        bool pause = false;
        if (!tps_from(k, parts)) {
            set_fatal(k, "out of memory in the rebalance callback");
            return;
        }
        if (k->assign_cb && parts->cnt > 0)
            pause = k->assign_cb(k->opaque, k->tps, (size_t)parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset =
                k->tps[i].offset == KCONSUMER_OFFSET_STORED ? RD_KAFKA_OFFSET_INVALID : k->tps[i].offset;
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
        if (!e && !aerr && pause && parts->cnt > 0)
            rd_kafka_pause_partitions(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        bool lost = rd_kafka_assignment_lost(rk);
        if (!tps_from(k, parts)) {
            set_fatal(k, "out of memory in the rebalance callback");
            return;
        }
        if (k->revoke_cb && parts->cnt > 0)
            k->revoke_cb(k->opaque, k->tps, (size_t)parts->cnt, lost);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
    } else {
        log_warn("kafka rebalance error: %s", rd_kafka_err2str(err));
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
    }
    if (e) {
        log_warn("kafka: cannot apply the rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (aerr) {
        log_warn("kafka: cannot apply the rebalance: %s", rd_kafka_err2str(aerr));
    }
}

/* A refused SASL login or broker certificate: kept for kconsumer_check_connect (startup stops
 * on it) and logged as an error, at most once a minute while it repeats (librdkafka retries: a
 * fix on the broker's side, such as a renewed certificate, takes effect without a restart). */
static void security_error(kconsumer_t *k, int code) {
    err_t e;
    if (!kconf_sec_classify(&k->sec, code, &e))
        return;
    time_t now = time(NULL);
    bool repeat = !strcmp(e.msg, k->sec_err.msg) && now - k->sec_logged_at < 60;
    k->sec_err = e;
    if (repeat || k->checking)
        return;
    k->sec_logged_at = now;
    char line[sizeof(e.msg) + sizeof(e.fix) + 4];
    log_error("%s", err_line(&e, line, sizeof(line)));
}

/* librdkafka's certificate verify callback; opaque is the consumer. */
static int verify_cb(rd_kafka_t *rk, const char *broker_name, int32_t broker_id, int *x509_error, int depth,
                     const char *buf, size_t size, char *errstr, size_t errstr_size, void *opaque) {
    (void)rk;
    (void)broker_id;
    kconsumer_t *k = opaque;
    return kconf_sec_verify(&k->sec, broker_name, x509_error, depth, buf, size, errstr, errstr_size);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    kconsumer_t *k = opaque;
    security_error(k, err);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fe[512];
        rd_kafka_fatal_error(rk, fe, sizeof(fe));
        char msg[600];
        snprintf(msg, sizeof(msg), "fatal Kafka consumer error: %s", fe);
        set_fatal(k, msg);
        return;
    }
    log_debug("kafka error event: %s: %s", rd_kafka_err2name(err), reason); /* the log callback said it */
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    if (err) {
        log_warn("kafka offset commit failed (harmless: the inbox offsets table is authoritative): %s",
                 rd_kafka_err2str(err));
        return;
    }
    for (int i = 0; offsets && i < offsets->cnt; i++)
        if (offsets->elems[i].err)
            log_debug("kafka offset commit of %s [%d] failed: %s", offsets->elems[i].topic,
                      (int)offsets->elems[i].partition, rd_kafka_err2str(offsets->elems[i].err));
}

/* The consumer's configuration: inboxd's defaults, the user's props, the enforced settings;
 * bootstrap and group (may be NULL) get bootstrap.servers and group.id. NULL with *e. */
static rd_kafka_conf_t *consumer_conf(const char *const *props, char *bootstrap, size_t bootstrap_size, char *group,
                                      size_t group_size, err_t *e) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char gbuf[256], bbuf[256];
    if (!conf) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return NULL;
    }
    if (!group) {
        group = gbuf;
        group_size = sizeof(gbuf);
    }
    if (!bootstrap) {
        bootstrap = bbuf;
        bootstrap_size = sizeof(bbuf);
    }
    /* Defaults the user may override. */
    /* clang-format off */
    static const char *const defaults[] = {"group.id", "inboxd",
                                           "auto.offset.reset", "earliest",
                                           "client.id", "inboxd",
                                           "enable.partition.eof", "false",
                                           NULL};
    /* clang-format on */
    for (int i = 0; props && props[i]; i += 2) {
        const char *name = props[i], *v = props[i + 1];
        if ((!strcmp(name, "enable.auto.commit") || !strcmp(name, "enable.auto.offset.store")) && kconf_is_true(v)) {
            err_set(e, ERR_PERMANENT, "", "remove the setting",
                    "kafka.%s=%s is not allowed: inboxd commits offsets itself, only after the messages are in the "
                    "database",
                    name, v);
            goto fail;
        }
        if (!strcmp(name, "isolation.level") && strcmp(v, "read_committed") != 0) {
            err_set(e, ERR_PERMANENT, "", "remove the setting (read_committed is the default)",
                    "kafka.isolation.level=%s is not allowed: inboxd reads only committed Kafka transactions, so "
                    "records of an aborted transaction (a replayed or fenced producer's) never enter the inbox",
                    v);
            goto fail;
        }
    }
    if (kconf_apply(conf, defaults, props, bootstrap, bootstrap_size, "INBOXD_", e))
        goto fail;
    /* read_committed is librdkafka's default too; said here so that it is a decision, not an accident
     * (docs/inboxd.md, "Kafka settings"). */
    if (kconf_set(conf, "enable.auto.commit", "false", e) || kconf_set(conf, "enable.auto.offset.store", "false", e) ||
        kconf_set(conf, "isolation.level", "read_committed", e))
        goto fail;
    size_t gsize = group_size;
    if (rd_kafka_conf_get(conf, "group.id", group, &gsize) != RD_KAFKA_CONF_OK)
        group[0] = '\0';
    if (!group[0]) {
        err_set(e, ERR_PERMANENT, "", "set kafka.group.id (inboxd consumes in a consumer group)",
                "kafka.group.id is empty");
        goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int kconsumer_check_props(const char *const *props, err_t *e) {
    rd_kafka_conf_t *conf = consumer_conf(props, NULL, 0, NULL, 0, e);
    if (!conf)
        return -1;
    rd_kafka_conf_destroy(conf);
    return 0;
}

kconsumer_t *kconsumer_new(const char *const *props, const char *const *topics, size_t ntopics,
                           kconsumer_assign_cb_t assign_cb, kconsumer_revoke_cb_t revoke_cb, void *opaque, err_t *e) {
    kconsumer_t *k = calloc(1, sizeof(*k));
    rd_kafka_conf_t *conf = NULL;
    if (!k)
        goto fail_oom;
    k->pipefd[0] = k->pipefd[1] = -1;
    k->assign_cb = assign_cb;
    k->revoke_cb = revoke_cb;
    k->opaque = opaque;
    k->topics = calloc(ntopics + 1, sizeof(char *));
    if (!k->topics)
        goto fail_oom;
    for (size_t i = 0; i < ntopics; i++)
        if (!(k->topics[k->ntopics++] = strdup(topics[i])))
            goto fail_oom;
    conf = consumer_conf(props, k->bootstrap, sizeof(k->bootstrap), k->group, sizeof(k->group), e);
    if (!conf)
        goto fail;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    kconf_sec_init(&k->sec, conf, verify_cb);
    k->sec_ready = true;

    char why[512];
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!k->rk) {
        err_set(e, ERR_PERMANENT, "", "fix the kafka.* settings", "cannot create the Kafka consumer: %s", why);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(k->rk);
    k->queue = rd_kafka_queue_get_consumer(k->rk);
    if (!k->queue) {
        err_set(e, ERR_TRANSIENT, "", NULL, "cannot get the Kafka consumer queue");
        goto fail;
    }
    if (kconf_queue_watch(k->queue, k->pipefd, e) != 0)
        goto fail;
    return k;

fail_oom:
    err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    kconsumer_destroy(k);
    return NULL;
}

void kconsumer_destroy(kconsumer_t *k) {
    if (!k)
        return;
    if (k->cur)
        rd_kafka_message_destroy(k->cur);
    kconf_queue_unwatch(&k->queue);
    if (k->rk)
        rd_kafka_destroy_flags(k->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    kconf_pipe_close(k->pipefd);
    for (size_t i = 0; k->topics && i < k->ntopics; i++)
        free(k->topics[i]);
    free(k->topics);
    if (k->sec_ready)
        kconf_sec_destroy(&k->sec);
    free(k->hdrs);
    free(k->tps);
    free(k);
}

int kconsumer_fd(const kconsumer_t *k) { return k->pipefd[0]; }
const char *kconsumer_group(const kconsumer_t *k) { return k->group; }
void *kconsumer_handle(kconsumer_t *k) { return k->rk; }

int kconsumer_check_connect(kconsumer_t *k, int timeout_ms, err_t *e) {
    for (int waited = 0;;) {
        /* Slices: a refused password or certificate shows up as an error long before the
         * metadata request times out. */
        int slice = timeout_ms - waited < 500 ? timeout_ms - waited : 500;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(k->rk, 0, NULL, &md, slice > 0 ? slice : 1);
        if (!err) {
            rd_kafka_metadata_destroy(md);
            return 0;
        }
        waited += slice;
        /* Serve the error callback (before the subscription nothing else is waiting). */
        k->checking = true;
        rd_kafka_message_t *m;
        while ((m = rd_kafka_consumer_poll(k->rk, 0)))
            rd_kafka_message_destroy(m);
        k->checking = false;
        if (k->sec_err.kind == ERR_PERMANENT) {
            *e = k->sec_err;
            return -1;
        }
        if (waited >= timeout_ms) {
            err_set(e, ERR_TRANSIENT, "", "start the broker or fix kafka.bootstrap.servers",
                    "Kafka is not reachable at bootstrap.servers=%s (%s)", k->bootstrap, rd_kafka_err2str(err));
            return -1;
        }
    }
}

int kconsumer_subscribe(kconsumer_t *k, char *errstr, size_t errstr_size) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)k->ntopics);
    for (size_t i = 0; i < k->ntopics; i++)
        rd_kafka_topic_partition_list_add(l, k->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errstr, errstr_size, "cannot subscribe to inbox.topics: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* A consumer error that is not fatal (unknown topic, transport, ...): logged, repeats of the
 * same text at most every 30 s. */
static void log_consumer_error(kconsumer_t *k, const rd_kafka_message_t *m) {
    char text[512];
    snprintf(text, sizeof(text), "%s%s%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "", m->rkt ? ": " : "",
             rd_kafka_message_errstr(m));
    time_t now = time(NULL);
    if (!strcmp(text, k->last_err) && now - k->last_err_at < 30)
        return;
    snprintf(k->last_err, sizeof(k->last_err), "%s", text);
    k->last_err_at = now;
    log_warn("kafka consumer: %s", text);
}

const kmsg_t *kconsumer_next(kconsumer_t *k, bool *fatal, char *errstr, size_t errstr_size) {
    char drain[64];
    while (read(k->pipefd[0], drain, sizeof(drain)) > 0)
        ;
    if (k->cur) {
        rd_kafka_message_destroy(k->cur);
        k->cur = NULL;
    }
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 0);
        if (k->fatal) {
            if (m)
                rd_kafka_message_destroy(m);
            *fatal = true;
            snprintf(errstr, errstr_size, "%s", k->fatal_err);
            return NULL;
        }
        if (!m)
            return NULL;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_consumer_error(k, m);
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_headers_t *h = NULL;
        size_t nh = 0;
        if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
            nh = rd_kafka_header_cnt(h);
        kmsg_header_t *v = array_grow(k->hdrs, &k->hcap, nh, sizeof(*v), nh);
        if (!v) {
            rd_kafka_message_destroy(m);
            *fatal = true;
            snprintf(errstr, errstr_size, "out of memory reading message headers");
            return NULL;
        }
        k->hdrs = v;
        for (size_t i = 0; i < nh; i++) {
            const char *name = NULL;
            const void *val = NULL;
            size_t size = 0;
            rd_kafka_header_get_all(h, i, &name, &val, &size);
            k->hdrs[i] = (kmsg_header_t){.name = name, .value = val, .len = size};
        }
        k->cur = m;
        k->msg = (kmsg_t){
            .topic = rd_kafka_topic_name(m->rkt),
            .partition = m->partition,
            .offset = m->offset,
            .key = m->key,
            .key_len = m->key ? m->key_len : 0,
            .value = m->payload,
            .value_len = m->payload ? m->len : 0,
            .headers = k->hdrs,
            .nheaders = nh,
        };
        return &k->msg;
    }
}

int kconsumer_pause(kconsumer_t *k, bool pause, char *errstr, size_t errstr_size) {
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(k->rk, &l);
    if (!err && l->cnt > 0)
        err = pause ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l);
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errstr, errstr_size, "cannot %s consumption: %s", pause ? "pause" : "resume", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int kconsumer_seek(kconsumer_t *k, const char *topic, int32_t partition, int64_t offset, int timeout_ms, char *errstr,
                   size_t errstr_size) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(k->rk, l, timeout_ms);
    int rc = 0;
    if (e) {
        snprintf(errstr, errstr_size, "cannot seek %s [%d] to offset %lld: %s", topic, (int)partition,
                 (long long)offset, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = -1;
    } else if (l->elems[0].err) {
        snprintf(errstr, errstr_size, "cannot seek %s [%d] to offset %lld: %s", topic, (int)partition,
                 (long long)offset, rd_kafka_err2str(l->elems[0].err));
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int kconsumer_commit(kconsumer_t *k, const kconsumer_tp_t *tps, size_t n, bool async, char *errstr,
                     size_t errstr_size) {
    if (n == 0)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset = tps[i].offset;
    rd_kafka_resp_err_t err = rd_kafka_commit(k->rk, l, async ? 1 : 0);
    rd_kafka_topic_partition_list_destroy(l);
    if (err && !async) {
        snprintf(errstr, errstr_size, "Kafka offset commit failed: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int kconsumer_close(kconsumer_t *k, char *errstr, size_t errstr_size) {
    if (k->cur) {
        rd_kafka_message_destroy(k->cur);
        k->cur = NULL;
    }
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(k->rk);
    if (err) {
        snprintf(errstr, errstr_size, "leaving the consumer group failed: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}
