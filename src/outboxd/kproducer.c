/* kproducer.c - idempotent acks=all librdkafka producer with delivery reports on a pipe fd
 * for the relay's poll() loop. */
#include "kproducer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "clock.h"
#include "kconf.h"
#include "log.h"
#include "topic_template.h" /* TOPIC_NAME_MAX */

#define TOPICS_TRACKED 32
#define MISSING_PROBE_AFTER_MS 2000 /* no delivery report for this long: ask whether a topic is missing */
#define MISSING_PROBE_EVERY_MS 5000
#define MISSING_PROBE_TIMEOUT_MS 500
#include "record_headers.h"
#include "topic_warm.h"

/* What a record's delivery report must bring back. librdkafka keeps one pointer-sized opaque
 * per message: it holds the number of the record's ticket (index + 1) in a pool that grows to
 * the most records ever in flight at once and recycles freed tickets through a list. */
typedef struct ticket {
    uint64_t seq;
    lsn_t lsn;
    size_t next_free; /* number of the next free ticket, 0 = none */
} ticket_t;

struct kproducer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* main queue: delivery reports and errors */
    int pipefd[2];           /* librdkafka writes a byte when the queue becomes non-empty */
    kproducer_dr_cb_t cb;
    void *opaque;
    char *id_header;
    char bootstrap[256];
    char last_error[512];
    kconf_sec_t sec;       /* TLS verification and SASL failures */
    bool sec_ready;        /* sec was initialised */
    bool checking;         /* inside kproducer_check_connect: its caller reports the failure */
    err_t sec_err;         /* the last security failure (kind ERR_NONE: none yet) */
    int64_t sec_logged_at; /* when it was last logged (time(NULL)), to keep repeats quiet */
    ticket_t *tickets;
    size_t ntickets, free_ticket; /* free_ticket: number of the first free one, 0 = none */
    /* Records in flight per topic (the first TOPICS_TRACKED topics), for kproducer_missing_topic. */
    struct {
        char name[TOPIC_NAME_MAX + 1];
        size_t n;
        bool reported; /* kproducer_missing_topic named it (once while its records are in flight) */
    } topics[TOPICS_TRACKED];
    int64_t last_report_ms; /* the last delivery report, or the first record after none was in flight */
    int64_t next_probe_ms;
    topic_warm_t *warm; /* auto-created topics usable at once; NULL: not (out of memory) */
};

/* One more (delta 1) or one less (-1) record in flight for topic. */
static void topic_count(kproducer_t *p, const char *topic, int delta) {
    size_t total = 0, free_slot = TOPICS_TRACKED, hit = TOPICS_TRACKED;
    for (size_t i = 0; i < TOPICS_TRACKED; i++) {
        total += p->topics[i].n;
        if (p->topics[i].n && !strcmp(p->topics[i].name, topic))
            hit = i;
        else if (!p->topics[i].n && free_slot == TOPICS_TRACKED)
            free_slot = i;
    }
    if (delta > 0 && total == 0)
        p->last_report_ms = clock_now_ms(); /* the wait for an answer starts now */
    if (hit == TOPICS_TRACKED && delta > 0 && free_slot < TOPICS_TRACKED) {
        hit = free_slot;
        snprintf(p->topics[hit].name, sizeof(p->topics[hit].name), "%s", topic);
        p->topics[hit].reported = false;
    }
    if (hit < TOPICS_TRACKED && (delta > 0 || p->topics[hit].n > 0))
        p->topics[hit].n += (size_t)delta;
}

int kproducer_missing_topic(kproducer_t *p, int64_t now_ms, char *topic, size_t size) {
    if (now_ms - p->last_report_ms < MISSING_PROBE_AFTER_MS || now_ms < p->next_probe_ms || p->last_error[0])
        return 0; /* answers arrive, or a probe ran lately, or the brokers are away (not a topic's fault) */
    p->next_probe_ms = now_ms + MISSING_PROBE_EVERY_MS;
    for (size_t i = 0; i < TOPICS_TRACKED; i++) {
        if (!p->topics[i].n || p->topics[i].reported)
            continue;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, p->topics[i].name, NULL);
        const struct rd_kafka_metadata *md = NULL;
        bool missing = rkt && rd_kafka_metadata(p->rk, 0, rkt, &md, MISSING_PROBE_TIMEOUT_MS) == 0 && md &&
                       md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        if (missing) {
            p->topics[i].reported = true;
            snprintf(topic, size, "%s", p->topics[i].name);
            return 1;
        }
    }
    return 0;
}

/* A ticket for a record about to be produced: its number, or 0 when out of memory. */
static size_t ticket_take(kproducer_t *p, uint64_t seq, lsn_t lsn) {
    if (!p->free_ticket) {
        size_t n = p->ntickets ? p->ntickets * 2 : 1024;
        ticket_t *t = realloc(p->tickets, n * sizeof(*t));
        if (!t)
            return 0;
        for (size_t i = p->ntickets; i < n; i++)
            t[i].next_free = i + 1 < n ? i + 2 : 0;
        p->tickets = t;
        p->free_ticket = p->ntickets + 1;
        p->ntickets = n;
    }
    size_t id = p->free_ticket;
    ticket_t *t = &p->tickets[id - 1];
    p->free_ticket = t->next_free;
    *t = (ticket_t){.seq = seq, .lsn = lsn};
    return id;
}

static void ticket_put(kproducer_t *p, size_t id) {
    if (id < 1 || id > p->ntickets)
        return;
    p->tickets[id - 1].next_free = p->free_ticket;
    p->free_ticket = id;
}

/* librdkafka's certificate verify callback; opaque is the producer. */
static int verify_cb(rd_kafka_t *rk, const char *broker_name, int32_t broker_id, int *x509_error, int depth,
                     const char *buf, size_t size, char *errstr, size_t errstr_size, void *opaque) {
    (void)rk;
    (void)broker_id;
    kproducer_t *p = opaque;
    return kconf_sec_verify(&p->sec, broker_name, x509_error, depth, buf, size, errstr, errstr_size);
}

/* The producer's configuration: outboxd's defaults, the user's props, the enforced settings,
 * transactional.id when transactional_id is set; bootstrap (may be NULL) gets
 * bootstrap.servers. warn: log the partitioner warning. NULL with *e. */
static rd_kafka_conf_t *producer_conf(const char *const *props, const char *transactional_id, char *bootstrap,
                                      size_t bootstrap_size, bool warn, err_t *e) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char bbuf[256];
    if (!conf) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return NULL;
    }
    if (!bootstrap) {
        bootstrap = bbuf;
        bootstrap_size = sizeof(bbuf);
    }
    /* Defaults the user may override. A transactional producer keeps librdkafka's message
     * timeout (it must not exceed transaction.timeout.ms): skip the first pair. */
    /* clang-format off */
    static const char *const defaults[] = {"message.timeout.ms", "0",
                                           "partitioner", "murmur2_random",
                                           "queue.buffering.max.kbytes", "16384",
                                           "linger.ms", "5",
                                           "client.id", "outboxd",
                                           NULL};
    /* clang-format on */
    for (int i = 0; props && props[i]; i += 2) {
        const char *k = props[i], *v = props[i + 1];
        if (!strcmp(k, "enable.idempotence") && !kconf_is_true(v)) {
            err_set(e, ERR_PERMANENT, "", "remove the setting",
                    "kafka.enable.idempotence=%s is not allowed: outboxd needs the idempotent producer for per-key "
                    "order and no duplicates on retry",
                    v);
            goto fail;
        }
        if (!strcmp(k, "transactional.id")) {
            err_set(e, ERR_PERMANENT, "",
                    "remove it; set delivery.guarantee = exactly-once (and delivery.transactional.id)",
                    "kafka.transactional.id is not allowed: outboxd makes its producer transactional itself");
            goto fail;
        }
        if ((!strcmp(k, "acks") || !strcmp(k, "request.required.acks")) && strcmp(v, "all") != 0 &&
            strcmp(v, "-1") != 0) {
            err_set(e, ERR_PERMANENT, "", "remove the setting",
                    "kafka.%s=%s is not allowed: outboxd confirms the slot only after acks=all", k, v);
            goto fail;
        }
    }
    if (kconf_apply(conf, transactional_id ? defaults + 2 : defaults, props, bootstrap, bootstrap_size, "OUTBOXD_", e))
        goto fail;
    if (kconf_set(conf, "enable.idempotence", "true", e) || kconf_set(conf, "acks", "all", e))
        goto fail;
    if (transactional_id && kconf_set(conf, "transactional.id", transactional_id, e))
        goto fail;
    char part[64];
    if (warn && strcmp(kconf_get(conf, "partitioner", part, sizeof(part)), "murmur2_random") != 0)
        log_warn("kafka.partitioner=%s: records will not land on the partitions a Java producer picks for the "
                 "same key",
                 part);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int kproducer_check_props(const char *const *props, err_t *e) {
    rd_kafka_conf_t *conf = producer_conf(props, NULL, NULL, 0, false, e);
    if (!conf)
        return -1;
    rd_kafka_conf_destroy(conf);
    return 0;
}

kproducer_t *kproducer_new(const char *const *props, const char *id_header, kproducer_dr_cb_t cb, void *opaque,
                           err_t *e) {
    return kproducer_new_txn(props, id_header, NULL, cb, opaque, e);
}

kproducer_t *kproducer_new_txn(const char *const *props, const char *id_header, const char *transactional_id,
                               kproducer_dr_cb_t cb, void *opaque, err_t *e) {
    kproducer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = NULL;
    if (!p)
        goto fail_oom;
    p->pipefd[0] = p->pipefd[1] = -1;
    p->cb = cb;
    p->opaque = opaque;
    p->id_header = strdup(id_header ? id_header : "id");
    if (!p->id_header)
        goto fail_oom;
    conf = producer_conf(props, transactional_id, p->bootstrap, sizeof(p->bootstrap), true, e);
    if (!conf)
        goto fail;
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);
    rd_kafka_conf_set_opaque(conf, p);
    kconf_sec_init(&p->sec, conf, verify_cb);
    p->sec_ready = true;

    char why[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!p->rk) {
        err_set(e, ERR_PERMANENT, "", "fix the kafka.* settings", "cannot create the Kafka producer: %s", why);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    p->warm = topic_warm_new(p->rk);
    p->queue = rd_kafka_queue_get_main(p->rk);
    if (kconf_queue_watch(p->queue, p->pipefd, e) != 0)
        goto fail;
    return p;

fail_oom:
    err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    kproducer_destroy(p);
    return NULL;
}

void kproducer_destroy(kproducer_t *p) {
    if (!p)
        return;
    kconf_queue_unwatch(&p->queue);
    topic_warm_destroy(p->warm); /* before the handle it uses */
    if (p->rk) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy_flags(p->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    kconf_pipe_close(p->pipefd);
    if (p->sec_ready)
        kconf_sec_destroy(&p->sec);
    free(p->id_header);
    free(p->tickets);
    free(p);
}

int kproducer_fd(const kproducer_t *p) { return p->pipefd[0]; }

int kproducer_check_connect(kproducer_t *p, int timeout_ms, err_t *e) {
    char err[512];
    for (int waited = 0;;) {
        /* Slices: a refused password or certificate shows up as an error event long before the
         * metadata request times out. */
        int slice = timeout_ms - waited < 500 ? timeout_ms - waited : 500;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t merr = rd_kafka_metadata(p->rk, 0, NULL, &md, slice > 0 ? slice : 1);
        if (!merr) {
            rd_kafka_metadata_destroy(md);
            return 0;
        }
        waited += slice;
        p->checking = true;
        int prc = kproducer_poll(p, err, sizeof(err));
        p->checking = false;
        if (prc != 0) {
            err_set(e, ERR_TRANSIENT, "", NULL, "%s", err);
            return -1;
        }
        if (p->sec_err.kind == ERR_PERMANENT) {
            *e = p->sec_err;
            return -1;
        }
        if (waited >= timeout_ms) {
            err_set(e, ERR_TRANSIENT, "", "start the broker or fix kafka.bootstrap.servers",
                    "Kafka is not reachable at bootstrap.servers=%s (%s%s%s)", p->bootstrap, rd_kafka_err2str(merr),
                    p->last_error[0] ? "; " : "", p->last_error);
            return -1;
        }
    }
}

static void add_headers(rd_kafka_headers_t *hdrs, const router_header_t *h, size_t n) {
    for (size_t i = 0; i < n; i++)
        rd_kafka_header_add(hdrs, h[i].name, -1, h[i].value, h[i].value ? (ssize_t)h[i].value_len : 0);
}

/* The commit time header, unless the event's own headers already carry one (a relay in front
 * of this one, or the writer's choice: theirs wins). */
static void add_commit_time(rd_kafka_headers_t *hdrs, const outbox_event_t *ev) {
    if (ev->commit_us <= 0)
        return;
    for (size_t i = 0; i < ev->nheaders; i++)
        if (!strcmp(ev->headers[i].name, RECORD_HEADER_COMMIT_TIME))
            return;
    char v[24];
    int n = snprintf(v, sizeof(v), "%" PRId64, ev->commit_us);
    rd_kafka_header_add(hdrs, RECORD_HEADER_COMMIT_TIME, -1, v, n);
}

kproducer_result_t kproducer_produce(kproducer_t *p, const outbox_event_t *ev, uint64_t seq, lsn_t lsn, char *errstr,
                                     size_t errstr_size) {
    size_t ticket = ticket_take(p, seq, lsn);
    if (!ticket)
        return KPRODUCER_QUEUE_FULL; /* delivery reports free tickets */
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(ev->nheaders + 1);
    add_headers(hdrs, ev->headers, ev->nheaders);
    add_commit_time(hdrs, ev);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(ev->topic), RD_KAFKA_V_KEY(ev->key, ev->key_len),
                          RD_KAFKA_V_VALUE((void *)ev->value, ev->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ticket), RD_KAFKA_V_END);
    if (!err) {
        topic_count(p, ev->topic, 1);
        topic_warm_seen(p->warm, ev->topic);
        return KPRODUCER_OK; /* headers owned by librdkafka now */
    }
    rd_kafka_headers_destroy(hdrs);
    ticket_put(p, ticket);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KPRODUCER_QUEUE_FULL;
    snprintf(errstr, errstr_size, "Kafka refused the record for topic %s (%zu bytes): %s", ev->topic, ev->value_len,
             rd_kafka_err2str(err));
    switch (kproducer_refusal_of(err)) {
    case KPRODUCER_REFUSED_TOO_LARGE:
        return KPRODUCER_TOO_LARGE;
    case KPRODUCER_REFUSED_UNKNOWN_TOPIC:
        return KPRODUCER_UNKNOWN_TOPIC;
    default:
        return KPRODUCER_INVALID;
    }
}

kproducer_refusal_t kproducer_refusal_of(int err) {
    switch ((rd_kafka_resp_err_t)err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: /* the broker: no such topic, auto-creation off */
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:        /* librdkafka: the metadata says it does not exist */
        return KPRODUCER_REFUSED_UNKNOWN_TOPIC;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        return KPRODUCER_REFUSED_NOT_AUTHORIZED;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        return KPRODUCER_REFUSED_TOO_LARGE;
    default:
        return KPRODUCER_REFUSED;
    }
}

kproducer_result_t kproducer_produce_to(kproducer_t *p, const char *topic, int32_t partition, const void *key,
                                        size_t key_len, const void *value, size_t value_len, uint64_t seq, char *errstr,
                                        size_t errstr_size) {
    size_t ticket = ticket_take(p, seq, 0);
    if (!ticket)
        return KPRODUCER_QUEUE_FULL;
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, key_len),
                          RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ticket), RD_KAFKA_V_END);
    if (!err)
        return KPRODUCER_OK;
    ticket_put(p, ticket);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KPRODUCER_QUEUE_FULL;
    snprintf(errstr, errstr_size, "Kafka refused the record for topic %s partition %d: %s", topic, (int)partition,
             rd_kafka_err2str(err));
    return KPRODUCER_INVALID;
}

static void serve_dr(kproducer_t *p, rd_kafka_event_t *ev) {
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(ev))) {
        char idbuf[256] = "";
        const char *id = NULL;
        rd_kafka_headers_t *h = NULL;
        const void *val;
        size_t size;
        /* The event id is for the error paths only: a successful report costs no lookup. */
        if (m->err && rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get(h, 0, p->id_header, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && val) {
            snprintf(idbuf, sizeof(idbuf), "%.*s", (int)size, (const char *)val);
            id = idbuf;
        }
        if (!m->err)
            p->last_error[0] = '\0';
        p->last_report_ms = clock_now_ms();
        topic_count(p, rd_kafka_topic_name(m->rkt), -1);
        size_t ticket = (size_t)(uintptr_t)m->_private;
        bool known = ticket >= 1 && ticket <= p->ntickets;
        kproducer_delivery_t d = {
            .seq = known ? p->tickets[ticket - 1].seq : 0,
            .lsn = known ? p->tickets[ticket - 1].lsn : 0,
            .err = m->err,
            .too_large = kproducer_refusal_of(m->err) == KPRODUCER_REFUSED_TOO_LARGE,
            .refusal = kproducer_refusal_of(m->err),
            .errstr = m->err ? rd_kafka_err2str(m->err) : NULL,
            .event_id = id,
            .topic = rd_kafka_topic_name(m->rkt),
            .partition = m->partition,
            .offset = m->offset,
            .msg = m,
            .bytes = m->len + m->key_len,
            .value_len = m->len,
        };
        p->cb(p->opaque, &d); /* may take tickets (kproducer_redirect): free this one after */
        ticket_put(p, ticket);
    }
}

kproducer_result_t kproducer_redirect(kproducer_t *p, const kproducer_delivery_t *d, const char *topic,
                                      const router_header_t *extra, size_t nextra, bool drop_value, uint64_t seq,
                                      char *errstr, size_t errstr_size) {
    const rd_kafka_message_t *m = d->msg;
    size_t ticket = ticket_take(p, seq, d->lsn);
    if (!ticket) {
        snprintf(errstr, errstr_size, "out of memory");
        return KPRODUCER_QUEUE_FULL;
    }
    rd_kafka_headers_t *orig = NULL, *hdrs;
    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = rd_kafka_headers_copy(orig);
    else
        hdrs = rd_kafka_headers_new(nextra);
    add_headers(hdrs, extra, nextra);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(m->key, m->key_len),
                          RD_KAFKA_V_VALUE(drop_value ? NULL : m->payload, drop_value ? 0 : m->len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                          RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ticket), RD_KAFKA_V_END);
    if (!err) {
        topic_count(p, topic, 1);
        return KPRODUCER_OK;
    }
    rd_kafka_headers_destroy(hdrs);
    ticket_put(p, ticket);
    snprintf(errstr, errstr_size, "Kafka refused the dead-letter record for topic %s: %s", topic,
             rd_kafka_err2str(err));
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? KPRODUCER_QUEUE_FULL : KPRODUCER_INVALID;
}

/* A refused SASL login or broker certificate: kept for kproducer_check_connect (startup stops
 * on it) and logged as an error, at most once a minute while it repeats (librdkafka retries: a
 * fix on the broker's side, such as a renewed certificate, takes effect without a restart). */
static void security_error(kproducer_t *p, rd_kafka_resp_err_t code) {
    err_t e;
    if (!kconf_sec_classify(&p->sec, code, &e))
        return;
    time_t now = time(NULL);
    bool repeat = !strcmp(e.msg, p->sec_err.msg) && now - p->sec_logged_at < 60;
    p->sec_err = e;
    if (repeat || p->checking)
        return;
    p->sec_logged_at = now;
    char line[sizeof(e.msg) + sizeof(e.fix) + 4];
    log_error("%s", err_line(&e, line, sizeof(line)));
}

int kproducer_poll(kproducer_t *p, char *errstr, size_t errstr_size) {
    char drain[64];
    while (read(p->pipefd[0], drain, sizeof(drain)) > 0)
        ;
    rd_kafka_event_t *ev;
    int rc = 0;
    while ((ev = rd_kafka_queue_poll(p->queue, 0))) {
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_DR:
            serve_dr(p, ev);
            break;
        case RD_KAFKA_EVENT_ERROR:
            if (rd_kafka_event_error_is_fatal(ev)) {
                char fe[512];
                rd_kafka_fatal_error(p->rk, fe, sizeof(fe));
                snprintf(errstr, errstr_size, "fatal Kafka producer error: %s", fe);
                rc = -1;
            } else {
                snprintf(p->last_error, sizeof(p->last_error), "%s", rd_kafka_event_error_string(ev));
                log_debug("kafka error event: %s", p->last_error); /* the log callback said it */
                security_error(p, rd_kafka_event_error(ev));
            }
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    return rc;
}

const char *kproducer_last_error(const kproducer_t *p) { return p->last_error; }
void *kproducer_handle(kproducer_t *p) { return p->rk; }
