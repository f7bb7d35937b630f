/* dead_letter.c - dead-letter records for every path (router, producer, delivery report),
 * with the headers docs/guarantees.md promises built in one place. */
#include "dead_letter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define REASON_SIZE 1280
#define OUR_HEADERS 5 /* outboxd.error, outboxd.reason, outboxd.lsn, outboxd.topic, outboxd.value.size */

static const char *const reason_names[DEAD_LETTER_REASON_COUNT] = {"unroutable", "refused", "unknown-topic",
                                                                   "not-authorized", "too-large"};

const char *dead_letter_reason_name(dead_letter_reason_t r) {
    return r < DEAD_LETTER_REASON_COUNT ? reason_names[r] : "refused";
}

int dead_letter_reason_parse(const char *name, dead_letter_reason_t *out) {
    for (int i = 0; i < DEAD_LETTER_REASON_COUNT; i++)
        if (name && !strcmp(name, reason_names[i])) {
            *out = (dead_letter_reason_t)i;
            return 0;
        }
    return -1;
}

dead_letter_reason_t dead_letter_reason_of_result(kproducer_result_t res) {
    return res == KPRODUCER_TOO_LARGE       ? DEAD_LETTER_TOO_LARGE
           : res == KPRODUCER_UNKNOWN_TOPIC ? DEAD_LETTER_UNKNOWN_TOPIC
                                            : DEAD_LETTER_REFUSED;
}

dead_letter_reason_t dead_letter_reason_of_refusal(kproducer_refusal_t refusal) {
    switch (refusal) {
    case KPRODUCER_REFUSED_UNKNOWN_TOPIC:
        return DEAD_LETTER_UNKNOWN_TOPIC;
    case KPRODUCER_REFUSED_NOT_AUTHORIZED:
        return DEAD_LETTER_NOT_AUTHORIZED;
    case KPRODUCER_REFUSED_TOO_LARGE:
        return DEAD_LETTER_TOO_LARGE;
    case KPRODUCER_REFUSED:
        break;
    }
    return DEAD_LETTER_REFUSED;
}

/* The text our headers point to. */
typedef struct our_values {
    char reason[REASON_SIZE];
    char lsn[LSN_FMT_SIZE];
    char topic[256];
    char value_size[32];
} our_values_t;

struct dead_letter {
    char *topic;
    char *id_header;
    router_header_t *hdrs; /* the stream-path record's headers: the event's, then ours */
    size_t hdrs_cap;
    our_values_t v; /* what hdrs point to; the delivery-report path uses its own */
};

dead_letter_t *dead_letter_new(const char *topic, const char *id_header) {
    dead_letter_t *dl = calloc(1, sizeof(*dl));
    if (!dl)
        return NULL;
    dl->topic = strdup(topic ? topic : "");
    dl->id_header = strdup(id_header ? id_header : "id");
    if (!dl->topic || !dl->id_header) {
        dead_letter_destroy(dl);
        return NULL;
    }
    return dl;
}

void dead_letter_destroy(dead_letter_t *dl) {
    if (!dl)
        return;
    free(dl->topic);
    free(dl->id_header);
    free(dl->hdrs);
    free(dl);
}

/* Our headers for the event of the WAL record at lsn, written to out (room for OUR_HEADERS),
 * pointing into v: outboxd.error, outboxd.reason and outboxd.lsn always, outboxd.topic when
 * the record had one (topic not NULL), outboxd.value.size = value_len when the value is
 * dropped (why DEAD_LETTER_TOO_LARGE). Returns how many. */
static size_t our_headers(our_values_t *v, const char *reason, dead_letter_reason_t why, lsn_t lsn, const char *topic,
                          size_t value_len, router_header_t *out) {
    size_t n = 0;
    const char *name = dead_letter_reason_name(why);
    snprintf(v->reason, sizeof(v->reason), "%s", reason);
    lsn_format(lsn, v->lsn);
    out[n++] = (router_header_t){"outboxd.error", v->reason, strlen(v->reason)};
    out[n++] = (router_header_t){"outboxd.reason", name, strlen(name)};
    out[n++] = (router_header_t){"outboxd.lsn", v->lsn, strlen(v->lsn)};
    if (topic) {
        snprintf(v->topic, sizeof(v->topic), "%s", topic);
        out[n++] = (router_header_t){"outboxd.topic", v->topic, strlen(v->topic)};
    }
    if (why == DEAD_LETTER_TOO_LARGE) {
        snprintf(v->value_size, sizeof(v->value_size), "%zu", value_len);
        out[n++] = (router_header_t){"outboxd.value.size", v->value_size, strlen(v->value_size)};
    }
    return n;
}

/* dead_letter_event without the warning; topic: the record's own (NULL: none). */
static int rewrite(dead_letter_t *dl, outbox_event_t *ev, lsn_t lsn, const char *reason, dead_letter_reason_t why,
                   const char *topic) {
    bool drop_value = why == DEAD_LETTER_TOO_LARGE;
    size_t need = ev->nheaders + OUR_HEADERS;
    if (need > dl->hdrs_cap) {
        router_header_t *h = realloc(dl->hdrs, need * sizeof(*h));
        if (!h)
            return -1;
        dl->hdrs = h;
        dl->hdrs_cap = need;
    }
    size_t n = 0;
    for (size_t i = 0; i < ev->nheaders; i++)
        dl->hdrs[n++] = ev->headers[i];
    n += our_headers(&dl->v, reason, why, lsn, topic, ev->value_len, dl->hdrs + n);
    if (drop_value) {
        ev->value = "";
        ev->value_len = 0;
    }
    ev->headers = dl->hdrs;
    ev->nheaders = n;
    ev->topic = dl->topic;
    return 0;
}

int dead_letter_event(dead_letter_t *dl, outbox_event_t *ev, lsn_t lsn, const char *reason, dead_letter_reason_t why) {
    if (rewrite(dl, ev, lsn, reason, why, ev->topic) != 0)
        return -1;
    log_warn("event %s sent to dead-letter topic %s: %s", ev->id ? ev->id : "(no id)", dl->topic, dl->v.reason);
    return 0;
}

int dead_letter_unroutable(dead_letter_t *dl, outbox_event_t *ev, lsn_t lsn, const char *value, size_t len,
                           const char *reason) {
    const char *id = ev->id;
    router_header_t idh = {dl->id_header, id, id ? strlen(id) : 0};
    *ev = (outbox_event_t){.id = id, .value = value, .value_len = len, .headers = &idh, .nheaders = id ? 1 : 0};
    if (rewrite(dl, ev, lsn, reason, DEAD_LETTER_UNROUTABLE, NULL) != 0) /* copies idh */
        return -1;
    char lb[LSN_FMT_SIZE];
    log_warn("event %s at LSN %s sent to dead-letter topic %s: %s", id ? id : "(no id)", lsn_format(lsn, lb), dl->topic,
             dl->v.reason);
    return 0;
}

kproducer_result_t dead_letter_redirect(dead_letter_t *dl, kproducer_t *kp, const kproducer_delivery_t *d, uint64_t seq,
                                        char *errstr, size_t errstr_size) {
    /* Own buffers: dl->v may belong to a stream-path record waiting to be produced again. */
    our_values_t v;
    router_header_t ours[OUR_HEADERS];
    char reason[REASON_SIZE];
    snprintf(reason, sizeof(reason), "Kafka refused it for topic %s: %s", d->topic ? d->topic : "?",
             d->errstr ? d->errstr : "error");
    size_t n = our_headers(&v, reason, dead_letter_reason_of_refusal(d->refusal), d->lsn, d->topic, d->value_len, ours);
    kproducer_result_t res = kproducer_redirect(kp, d, dl->topic, ours, n, d->too_large, seq, errstr, errstr_size);
    if (res == KPRODUCER_OK)
        log_warn("event %s sent to dead-letter topic %s: %s", d->event_id ? d->event_id : "(no id)", dl->topic, reason);
    return res;
}
