/* inbox_batch.c - the batch of consumed messages written in one transaction: copies with ids
 * and headers JSON, spans, fence marks, and the INSERT's columns as binary arrays. Pure. */
#include "inbox_batch.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "headers_json.h"
#include "message_id.h"
#include "record_headers.h"

/* A copy of p[0..len) (binary: may hold NUL bytes) with a NUL after it; NULL when out of memory. */
static char *dup_bytes(const void *p, size_t len) {
    char *s = malloc(len + 1);
    if (s) {
        if (len)
            memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

typedef struct row {
    char *msgid;
    const char *topic; /* interned in the batch */
    int32_t partition;
    int64_t offset;
    char *key; /* NULL: no key */
    size_t key_len;
    char *payload; /* NULL: tombstone */
    size_t payload_len;
    char *headers;     /* JSON text */
    int64_t commit_us; /* outboxd's commit time header; 0: none */
    bool fenced;
} row_t;

struct inbox_batch {
    row_t *rows;
    size_t n, cap;
    size_t bytes;
    size_t fenced;
    char **topics; /* interned topic names, owned */
    size_t ntopics, topics_cap;
    inbox_span_t *spans; /* cache, valid while spans_ok */
    size_t nspans, spans_cap;
    bool spans_ok;
};

inbox_batch_t *inbox_batch_new(void) { return calloc(1, sizeof(inbox_batch_t)); }

/* What a row counts for in inbox_batch_bytes: its strings and a fixed overhead. */
static size_t row_bytes(const row_t *r) {
    return strlen(r->msgid) + strlen(r->headers) + r->key_len + r->payload_len + 64;
}

static void row_free(row_t *r) {
    free(r->msgid);
    free(r->key);
    free(r->payload);
    free(r->headers);
}

void inbox_batch_clear(inbox_batch_t *b) {
    for (size_t i = 0; i < b->n; i++)
        row_free(&b->rows[i]);
    b->n = 0;
    b->bytes = 0;
    b->fenced = 0;
    b->spans_ok = false;
}

void inbox_batch_destroy(inbox_batch_t *b) {
    if (!b)
        return;
    inbox_batch_clear(b);
    for (size_t i = 0; i < b->ntopics; i++)
        free(b->topics[i]);
    free(b->topics);
    free(b->rows);
    free(b->spans);
    free(b);
}

static const char *intern(inbox_batch_t *b, const char *topic) {
    for (size_t i = 0; i < b->ntopics; i++)
        if (!strcmp(b->topics[i], topic))
            return b->topics[i];
    char **v = array_grow(b->topics, &b->topics_cap, b->ntopics + 1, sizeof(*v), 8);
    if (!v)
        return NULL;
    b->topics = v;
    char *t = strdup(topic);
    if (!t)
        return NULL;
    b->topics[b->ntopics++] = t;
    return t;
}

int64_t inbox_batch_parse_commit_time(const void *v, size_t len) {
    const char *s = v;
    if (!s || len == 0 || len > 18)
        return 0;
    int64_t us = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        us = us * 10 + (s[i] - '0');
    }
    return us;
}

static int64_t commit_time_of(const kmsg_t *m) {
    int64_t us = 0;
    for (size_t i = 0; i < m->nheaders; i++)
        if (m->headers[i].name && !strcmp(m->headers[i].name, RECORD_HEADER_COMMIT_TIME))
            us = inbox_batch_parse_commit_time(m->headers[i].value, m->headers[i].len);
    return us;
}

void inbox_batch_commit_times(const inbox_batch_t *b, void (*fn)(void *arg, const char *topic, int64_t commit_us),
                              void *arg) {
    for (size_t i = 0; i < b->n; i++)
        if (!b->rows[i].fenced && b->rows[i].commit_us > 0)
            fn(arg, b->rows[i].topic, b->rows[i].commit_us);
}

int inbox_batch_add(inbox_batch_t *b, const kmsg_t *m, const char *id_header) {
    row_t *v = array_grow(b->rows, &b->cap, b->n + 1, sizeof(*v), 256);
    if (!v)
        return -1;
    b->rows = v;
    row_t r = {0};
    r.topic = intern(b, m->topic ? m->topic : "");
    r.partition = m->partition;
    r.offset = m->offset;
    r.msgid = message_id_of(m, id_header);
    r.headers = headers_json_encode(m->headers, m->nheaders);
    r.commit_us = commit_time_of(m);
    if (m->key && !(r.key = dup_bytes(m->key, m->key_len)))
        goto oom;
    r.key_len = m->key ? m->key_len : 0;
    if (m->value && !(r.payload = dup_bytes(m->value, m->value_len)))
        goto oom;
    r.payload_len = m->value ? m->value_len : 0;
    if (!r.topic || !r.msgid || !r.headers)
        goto oom;
    b->bytes += row_bytes(&r);
    b->rows[b->n++] = r;
    b->spans_ok = false;
    return 0;
oom:
    row_free(&r);
    return -1;
}

size_t inbox_batch_count(const inbox_batch_t *b) { return b->n; }
size_t inbox_batch_bytes(const inbox_batch_t *b) { return b->bytes; }

static int span_cmp(const void *a, const void *b) {
    const inbox_span_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

const inbox_span_t *inbox_batch_spans(inbox_batch_t *b, size_t *n) {
    *n = 0;
    if (!b->spans_ok) {
        b->nspans = 0;
        for (size_t i = 0; i < b->n; i++) {
            const row_t *r = &b->rows[i];
            inbox_span_t *s = NULL;
            /* Few partitions per batch: a linear search is fine. */
            for (size_t j = 0; j < b->nspans && !s; j++)
                if (b->spans[j].partition == r->partition && b->spans[j].topic == r->topic)
                    s = &b->spans[j];
            if (!s) {
                inbox_span_t *v = array_grow(b->spans, &b->spans_cap, b->nspans + 1, sizeof(*v), 16);
                if (!v)
                    return NULL;
                b->spans = v;
                s = &b->spans[b->nspans++];
                *s = (inbox_span_t){
                    .topic = r->topic, .partition = r->partition, .first = r->offset, .last = r->offset, .count = 0};
            }
            if (r->offset < s->first)
                s->first = r->offset;
            if (r->offset > s->last)
                s->last = r->offset;
            s->count++;
        }
        if (b->nspans > 1)
            qsort(b->spans, b->nspans, sizeof(*b->spans), span_cmp);
        b->spans_ok = true;
    }
    *n = b->nspans;
    return b->nspans ? b->spans : NULL;
}

size_t inbox_batch_fence(inbox_batch_t *b, const char *topic, int32_t partition, int64_t next_offset) {
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        row_t *r = &b->rows[i];
        if (!r->fenced && r->partition == partition && r->offset < next_offset && !strcmp(r->topic, topic)) {
            r->fenced = true;
            k++;
        }
    }
    b->fenced += k;
    return k;
}

size_t inbox_batch_unfenced(const inbox_batch_t *b) { return b->n - b->fenced; }

void inbox_batch_unfence(inbox_batch_t *b) {
    for (size_t i = 0; i < b->n; i++)
        b->rows[i].fenced = false;
    b->fenced = 0;
}

size_t inbox_batch_drop_partition(inbox_batch_t *b, const char *topic, int32_t partition) {
    size_t w = 0, dropped = 0;
    for (size_t i = 0; i < b->n; i++) {
        row_t *r = &b->rows[i];
        if (r->partition == partition && !strcmp(r->topic, topic)) {
            b->bytes -= row_bytes(r);
            if (r->fenced)
                b->fenced--;
            row_free(r);
            dropped++;
        } else {
            b->rows[w++] = *r;
        }
    }
    b->n = w;
    if (dropped)
        b->spans_ok = false;
    return dropped;
}

/* ---- the INSERT's columns ------------------------------------------------------------------ */

bool inbox_batch_unfenced_row(const inbox_batch_t *b, size_t k, inbox_row_ref_t *out) {
    for (size_t i = 0; i < b->n; i++) {
        const row_t *r = &b->rows[i];
        if (r->fenced)
            continue;
        if (k-- == 0) {
            *out =
                (inbox_row_ref_t){.topic = r->topic, .partition = r->partition, .offset = r->offset, .msgid = r->msgid};
            return true;
        }
    }
    return false;
}

long inbox_batch_encode(const inbox_batch_t *b, pgarray_t cols[INBOX_NCOLS]) {
    return inbox_batch_encode_range(b, 0, SIZE_MAX, cols);
}

long inbox_batch_encode_range(const inbox_batch_t *b, size_t from, size_t to, pgarray_t cols[INBOX_NCOLS]) {
    static const uint32_t oids[INBOX_NCOLS] = {PGARRAY_OID_TEXT,  PGARRAY_OID_TEXT,  PGARRAY_OID_INT4, PGARRAY_OID_INT8,
                                               PGARRAY_OID_BYTEA, PGARRAY_OID_JSONB, PGARRAY_OID_BYTEA};
    for (int c = 0; c < INBOX_NCOLS; c++)
        pgarray_init(&cols[c], oids[c]);
    long n = 0;
    size_t k = 0; /* unfenced rows seen */
    for (size_t i = 0; i < b->n && k < to; i++) {
        const row_t *r = &b->rows[i];
        if (r->fenced)
            continue;
        if (k++ < from)
            continue;
        pgarray_add(&cols[INBOX_COL_MSGID], r->msgid, strlen(r->msgid));
        pgarray_add(&cols[INBOX_COL_TOPIC], r->topic, strlen(r->topic));
        pgarray_add_int4(&cols[INBOX_COL_PARTITION], r->partition);
        pgarray_add_int8(&cols[INBOX_COL_OFFSET], r->offset);
        pgarray_add(&cols[INBOX_COL_KEY], r->key, r->key_len);
        pgarray_add(&cols[INBOX_COL_HEADERS], r->headers, strlen(r->headers));
        pgarray_add(&cols[INBOX_COL_PAYLOAD], r->payload, r->payload_len);
        n++;
    }
    int bad = 0;
    for (int c = 0; c < INBOX_NCOLS; c++)
        bad |= pgarray_finish(&cols[c]);
    return bad ? -1 : n;
}
