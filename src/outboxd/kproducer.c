/* kproducer.c - idempotent acks=all librdkafka producer with delivery reports on a pipe fd
 * for the relay's poll() loop. */
#include "kproducer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kconf.h"
#include "log.h"
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
    ticket_t *tickets;
    size_t ntickets, free_ticket; /* free_ticket: number of the first free one, 0 = none */
    topic_warm_t *warm;           /* auto-created topics usable at once; NULL: not (out of memory) */
};

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

kproducer_t *kproducer_new(const char *const *props, const char *id_header, kproducer_dr_cb_t cb, void *opaque,
                           err_t *e) {
    kproducer_t *p = calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!p || !conf)
        goto fail_oom;
    p->pipefd[0] = p->pipefd[1] = -1;
    p->cb = cb;
    p->opaque = opaque;
    p->id_header = strdup(id_header ? id_header : "id");
    if (!p->id_header)
        goto fail_oom;

    /* Defaults the user may override. */
    /* clang-format off */
    static const char *const defaults[] = {"partitioner", "murmur2_random",
                                           "message.timeout.ms", "0",
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
        if ((!strcmp(k, "acks") || !strcmp(k, "request.required.acks")) && strcmp(v, "all") != 0 &&
            strcmp(v, "-1") != 0) {
            err_set(e, ERR_PERMANENT, "", "remove the setting",
                    "kafka.%s=%s is not allowed: outboxd confirms the slot only after acks=all", k, v);
            goto fail;
        }
    }
    if (kconf_apply(conf, defaults, props, p->bootstrap, sizeof(p->bootstrap), "OUTBOXD_", e))
        goto fail;
    if (kconf_set(conf, "enable.idempotence", "true", e) || kconf_set(conf, "acks", "all", e))
        goto fail;
    char part[64];
    if (strcmp(kconf_get(conf, "partitioner", part, sizeof(part)), "murmur2_random") != 0)
        log_warn("kafka.partitioner=%s: records will not land on the partitions a Java producer picks for the "
                 "same key",
                 part);
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR);

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
    free(p->id_header);
    free(p->tickets);
    free(p);
}

int kproducer_fd(const kproducer_t *p) { return p->pipefd[0]; }

int kproducer_check_connect(kproducer_t *p, int timeout_ms, err_t *e) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, NULL, &md, timeout_ms);
    if (err) {
        err_set(e, ERR_TRANSIENT, "", "start the broker or fix kafka.bootstrap.servers",
                "Kafka is not reachable at bootstrap.servers=%s (%s%s%s)", p->bootstrap, rd_kafka_err2str(err),
                p->last_error[0] ? "; " : "", p->last_error);
        return -1;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

static void add_headers(rd_kafka_headers_t *hdrs, const router_header_t *h, size_t n) {
    for (size_t i = 0; i < n; i++)
        rd_kafka_header_add(hdrs, h[i].name, -1, h[i].value, h[i].value ? (ssize_t)h[i].value_len : 0);
}

kproducer_result_t kproducer_produce(kproducer_t *p, const outbox_event_t *ev, uint64_t seq, lsn_t lsn, char *errstr,
                                     size_t errstr_size) {
    size_t ticket = ticket_take(p, seq, lsn);
    if (!ticket)
        return KPRODUCER_QUEUE_FULL; /* delivery reports free tickets */
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(ev->nheaders);
    add_headers(hdrs, ev->headers, ev->nheaders);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(ev->topic), RD_KAFKA_V_KEY(ev->key, ev->key_len),
                          RD_KAFKA_V_VALUE((void *)ev->value, ev->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ticket), RD_KAFKA_V_END);
    if (!err) {
        topic_warm_seen(p->warm, ev->topic);
        return KPRODUCER_OK; /* headers owned by librdkafka now */
    }
    rd_kafka_headers_destroy(hdrs);
    ticket_put(p, ticket);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return KPRODUCER_QUEUE_FULL;
    snprintf(errstr, errstr_size, "Kafka refused the record for topic %s (%zu bytes): %s", ev->topic, ev->value_len,
             rd_kafka_err2str(err));
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? KPRODUCER_TOO_LARGE : KPRODUCER_INVALID;
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
        size_t ticket = (size_t)(uintptr_t)m->_private;
        bool known = ticket >= 1 && ticket <= p->ntickets;
        kproducer_delivery_t d = {
            .seq = known ? p->tickets[ticket - 1].seq : 0,
            .lsn = known ? p->tickets[ticket - 1].lsn : 0,
            .err = m->err,
            .too_large = m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                         m->err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
                         m->err == RD_KAFKA_RESP_ERR_INVALID_RECORD,
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
    if (!err)
        return KPRODUCER_OK;
    rd_kafka_headers_destroy(hdrs);
    ticket_put(p, ticket);
    snprintf(errstr, errstr_size, "Kafka refused the dead-letter record for topic %s: %s", topic,
             rd_kafka_err2str(err));
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? KPRODUCER_QUEUE_FULL : KPRODUCER_INVALID;
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
