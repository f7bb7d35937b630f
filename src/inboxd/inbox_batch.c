/* inbox_batch.c - message ids (SHA-256 for long ones), headers JSON, partition positions, the batch of consumed
 * messages and its PostgreSQL binary-array encoding for inboxd. Pure: no I/O. */
#include "inbox_batch.h"

#include <openssl/evp.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

/* ---- text and ids ------------------------------------------------------------------------- */

bool inbox_is_text(const void *data, size_t len) {
    const unsigned char *p = data, *end = p + len;
    if (len > 0 && !data)
        return false;
    while (p < end) {
        unsigned c = *p;
        if (c == 0)
            return false;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead (C0, C1) or beyond U+10FFFF */
        }
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

char *inbox_hex_text(const void *data, size_t len) {
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    char *s = malloc(2 * len + 3);
    if (!s)
        return NULL;
    s[0] = '\\';
    s[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        s[2 + 2 * i] = digits[p[i] >> 4];
        s[3 + 2 * i] = digits[p[i] & 15];
    }
    s[2 + 2 * len] = '\0';
    return s;
}

static char *dup_bytes(const void *p, size_t len) {
    char *s = malloc(len + 1);
    if (s) {
        if (len)
            memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* SHA-256 with libcrypto (OpenSSL), for ids too long for the unique index. */
int inbox_sha256(const void *data, size_t len, unsigned char out[32]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

/* "sha256:" and the hex digest of data: the id of a header value too long to index. */
static char *hashed_id(const void *data, size_t len) {
    static const char digits[] = "0123456789abcdef";
    unsigned char d[32];
    char *s = inbox_sha256(data, len, d) == 0 ? malloc(7 + 64 + 1) : NULL;
    if (!s)
        return NULL;
    memcpy(s, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        s[7 + 2 * i] = digits[d[i] >> 4];
        s[8 + 2 * i] = digits[d[i] & 15];
    }
    s[71] = '\0';
    return s;
}

char *inbox_msgid(const kmsg_t *m, const char *id_header) {
    const kmsg_header_t *found = NULL;
    if (id_header && *id_header)
        for (size_t i = 0; i < m->nheaders; i++)
            if (m->headers[i].name && !strcmp(m->headers[i].name, id_header) && m->headers[i].value &&
                m->headers[i].len > 0)
                found = &m->headers[i];
    if (found) {
        bool text = inbox_is_text(found->value, found->len);
        size_t idlen = text ? found->len : 2 + 2 * found->len;
        if (idlen > INBOX_MSGID_MAX)
            return hashed_id(found->value, found->len);
        return text ? dup_bytes(found->value, found->len) : inbox_hex_text(found->value, found->len);
    }
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "/%" PRId32 "/%" PRId64, m->partition, m->offset);
    size_t tl = m->topic ? strlen(m->topic) : 0;
    char *s = malloc(tl + (size_t)n + 1);
    if (!s)
        return NULL;
    if (tl)
        memcpy(s, m->topic, tl);
    memcpy(s + tl, buf, (size_t)n + 1);
    return s;
}

char *inbox_headers_json(const kmsg_header_t *h, size_t n) {
    json_t *obj = json_object();
    char *out = NULL;
    if (!obj)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name ? h[i].name : "";
        size_t nlen = strlen(name);
        char *hexname = NULL;
        json_t *v;
        if (!inbox_is_text(name, nlen) && !(hexname = inbox_hex_text(name, nlen)))
            goto out;
        if (!h[i].value)
            v = json_null();
        else if (inbox_is_text(h[i].value, h[i].len))
            v = json_stringn(h[i].value, h[i].len);
        else {
            char *hx = inbox_hex_text(h[i].value, h[i].len);
            v = hx ? json_string(hx) : NULL;
            free(hx);
        }
        int rc = v ? json_object_set_new(obj, hexname ? hexname : name, v) : -1;
        free(hexname);
        if (rc != 0)
            goto out;
    }
    out = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(obj);
    return out;
}

/* ---- partition positions ------------------------------------------------------------------ */

struct inbox_parts {
    inbox_part_t *v;
    size_t n, cap;
};

inbox_parts_t *inbox_parts_new(void) { return calloc(1, sizeof(inbox_parts_t)); }

void inbox_parts_destroy(inbox_parts_t *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].topic);
    free(p->v);
    free(p);
}

inbox_part_t *inbox_parts_find(inbox_parts_t *p, const char *topic, int32_t partition) {
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].partition == partition && !strcmp(p->v[i].topic, topic))
            return &p->v[i];
    return NULL;
}

inbox_part_t *inbox_parts_add(inbox_parts_t *p, const char *topic, int32_t partition, inbox_part_state_t state,
                              int64_t next) {
    inbox_part_t *e = inbox_parts_find(p, topic, partition);
    if (!e) {
        if (p->n == p->cap) {
            size_t cap = p->cap ? 2 * p->cap : 16;
            inbox_part_t *v = realloc(p->v, cap * sizeof(*v));
            if (!v)
                return NULL;
            p->v = v;
            p->cap = cap;
        }
        char *t = strdup(topic);
        if (!t)
            return NULL;
        e = &p->v[p->n++];
        e->topic = t;
        e->partition = partition;
    }
    e->state = state;
    e->next = next;
    e->recorded = next;
    e->committed = -1;
    e->need_seek = false;
    return e;
}

void inbox_parts_remove(inbox_parts_t *p, const char *topic, int32_t partition) {
    inbox_part_t *e = inbox_parts_find(p, topic, partition);
    if (!e)
        return;
    free(e->topic);
    size_t i = (size_t)(e - p->v);
    memmove(&p->v[i], &p->v[i + 1], (p->n - i - 1) * sizeof(*e));
    p->n--;
}

size_t inbox_parts_count(const inbox_parts_t *p) { return p->n; }
inbox_part_t *inbox_parts_at(inbox_parts_t *p, size_t i) { return i < p->n ? &p->v[i] : NULL; }

inbox_verdict_t inbox_parts_offer(inbox_parts_t *p, const char *topic, int32_t partition, int64_t offset, bool hold) {
    inbox_part_t *e = inbox_parts_find(p, topic, partition);
    if (!e)
        return INBOX_DROP_UNASSIGNED;
    if (e->next >= 0 && offset < e->next) {
        if (e->state != INBOX_PART_READY || e->need_seek)
            return INBOX_DROP_SEEN; /* fetched from before the seek to the stored position */
        if (hold) {
            e->need_seek = true; /* after the seek to next, the check runs again */
            return INBOX_DROP_HELD;
        }
        return INBOX_REGRESSED;
    }
    if (hold || e->state != INBOX_PART_READY || e->need_seek) {
        /* Not taken: consumption has to come back here. */
        if (e->next < 0)
            e->next = offset;
        e->need_seek = true;
        return INBOX_DROP_HELD;
    }
    e->next = offset + 1;
    return INBOX_TAKE;
}

/* ---- the batch ---------------------------------------------------------------------------- */

typedef struct row {
    char *msgid;
    const char *topic; /* interned in the batch */
    int32_t partition;
    int64_t offset;
    char *key; /* NULL: no key */
    size_t key_len;
    char *payload; /* NULL: tombstone */
    size_t payload_len;
    char *headers; /* JSON text */
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
    if (b->ntopics == b->topics_cap) {
        size_t cap = b->topics_cap ? 2 * b->topics_cap : 8;
        char **v = realloc(b->topics, cap * sizeof(*v));
        if (!v)
            return NULL;
        b->topics = v;
        b->topics_cap = cap;
    }
    char *t = strdup(topic);
    if (!t)
        return NULL;
    b->topics[b->ntopics++] = t;
    return t;
}

int inbox_batch_add(inbox_batch_t *b, const kmsg_t *m, const char *id_header) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        row_t *v = realloc(b->rows, cap * sizeof(*v));
        if (!v)
            return -1;
        b->rows = v;
        b->cap = cap;
    }
    row_t r = {0};
    r.topic = intern(b, m->topic ? m->topic : "");
    r.partition = m->partition;
    r.offset = m->offset;
    r.msgid = inbox_msgid(m, id_header);
    r.headers = inbox_headers_json(m->headers, m->nheaders);
    if (m->key && !(r.key = dup_bytes(m->key, m->key_len)))
        goto oom;
    r.key_len = m->key ? m->key_len : 0;
    if (m->value && !(r.payload = dup_bytes(m->value, m->value_len)))
        goto oom;
    r.payload_len = m->value ? m->value_len : 0;
    if (!r.topic || !r.msgid || !r.headers)
        goto oom;
    b->bytes += strlen(r.msgid) + strlen(r.headers) + r.key_len + r.payload_len + 64;
    b->rows[b->n++] = r;
    b->spans_ok = false;
    return 0;
oom:
    row_free(&r);
    return -1;
}

size_t inbox_batch_count(const inbox_batch_t *b) { return b->n; }
size_t inbox_batch_bytes(const inbox_batch_t *b) { return b->bytes; }
const char *inbox_batch_msgid(const inbox_batch_t *b, size_t i) { return i < b->n ? b->rows[i].msgid : NULL; }

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
                if (b->nspans == b->spans_cap) {
                    size_t cap = b->spans_cap ? 2 * b->spans_cap : 16;
                    inbox_span_t *v = realloc(b->spans, cap * sizeof(*v));
                    if (!v)
                        return NULL;
                    b->spans = v;
                    b->spans_cap = cap;
                }
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
            b->bytes -= strlen(r->msgid) + strlen(r->headers) + r->key_len + r->payload_len + 64;
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

/* ---- binary arrays ------------------------------------------------------------------------ */

#define PGARRAY_HEADER 20 /* ndim, flags, oid, dim size, lower bound */

static void put32(char *p, uint32_t v) {
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static bool reserve(inbox_pgarray_t *a, size_t more) {
    if (a->oom)
        return false;
    if (a->len + more <= a->cap)
        return true;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + more)
        cap *= 2;
    char *d = realloc(a->data, cap);
    if (!d) {
        a->oom = true;
        return false;
    }
    a->data = d;
    a->cap = cap;
    return true;
}

void inbox_pgarray_init(inbox_pgarray_t *a, uint32_t oid) {
    *a = (inbox_pgarray_t){.oid = oid};
    if (reserve(a, PGARRAY_HEADER))
        a->len = PGARRAY_HEADER;
}

void inbox_pgarray_free(inbox_pgarray_t *a) {
    free(a->data);
    a->data = NULL;
    a->len = a->cap = 0;
}

void inbox_pgarray_add(inbox_pgarray_t *a, const void *data, size_t len) {
    bool jsonb = a->oid == INBOX_OID_JSONB && data;
    size_t size = data ? len + (jsonb ? 1 : 0) : 0;
    if (size > INT32_MAX - 1) {
        a->oom = true;
        return;
    }
    if (!reserve(a, 4 + size))
        return;
    put32(a->data + a->len, data ? (uint32_t)size : 0xFFFFFFFFu);
    a->len += 4;
    if (jsonb)
        a->data[a->len++] = 1;
    if (data && len) {
        memcpy(a->data + a->len, data, len);
        a->len += len;
    }
    if (!data)
        a->has_null = true;
    a->n++;
}

void inbox_pgarray_add_int4(inbox_pgarray_t *a, int32_t v) {
    char b[4];
    put32(b, (uint32_t)v);
    inbox_pgarray_add(a, b, 4);
}

void inbox_pgarray_add_int8(inbox_pgarray_t *a, int64_t v) {
    char b[8];
    put32(b, (uint32_t)((uint64_t)v >> 32));
    put32(b + 4, (uint32_t)v);
    inbox_pgarray_add(a, b, 8);
}

int inbox_pgarray_finish(inbox_pgarray_t *a) {
    if (a->oom || !a->data)
        return -1;
    if (a->n == 0) {
        put32(a->data, 0);
        put32(a->data + 4, 0);
        put32(a->data + 8, a->oid);
        a->len = 12;
        return 0;
    }
    put32(a->data, 1);
    put32(a->data + 4, a->has_null ? 1 : 0);
    put32(a->data + 8, a->oid);
    put32(a->data + 12, (uint32_t)a->n);
    put32(a->data + 16, 1);
    return 0;
}

bool inbox_batch_unfenced_row(const inbox_batch_t *b, size_t k, inbox_row_ref_t *out) {
    for (size_t i = 0; i < b->n; i++) {
        const row_t *r = &b->rows[i];
        if (r->fenced)
            continue;
        if (k-- == 0) {
            *out = (inbox_row_ref_t){
                .topic = r->topic, .partition = r->partition, .offset = r->offset, .msgid = r->msgid};
            return true;
        }
    }
    return false;
}

long inbox_batch_encode(const inbox_batch_t *b, inbox_pgarray_t cols[INBOX_NCOLS]) {
    return inbox_batch_encode_range(b, 0, SIZE_MAX, cols);
}

long inbox_batch_encode_range(const inbox_batch_t *b, size_t from, size_t to, inbox_pgarray_t cols[INBOX_NCOLS]) {
    static const uint32_t oids[INBOX_NCOLS] = {INBOX_OID_TEXT,  INBOX_OID_TEXT,  INBOX_OID_INT4, INBOX_OID_INT8,
                                               INBOX_OID_BYTEA, INBOX_OID_JSONB, INBOX_OID_BYTEA};
    for (int c = 0; c < INBOX_NCOLS; c++)
        inbox_pgarray_init(&cols[c], oids[c]);
    long n = 0;
    size_t k = 0; /* unfenced rows seen */
    for (size_t i = 0; i < b->n && k < to; i++) {
        const row_t *r = &b->rows[i];
        if (r->fenced)
            continue;
        if (k++ < from)
            continue;
        inbox_pgarray_add(&cols[INBOX_COL_MSGID], r->msgid, strlen(r->msgid));
        inbox_pgarray_add(&cols[INBOX_COL_TOPIC], r->topic, strlen(r->topic));
        inbox_pgarray_add_int4(&cols[INBOX_COL_PARTITION], r->partition);
        inbox_pgarray_add_int8(&cols[INBOX_COL_OFFSET], r->offset);
        inbox_pgarray_add(&cols[INBOX_COL_KEY], r->key, r->key_len);
        inbox_pgarray_add(&cols[INBOX_COL_HEADERS], r->headers, strlen(r->headers));
        inbox_pgarray_add(&cols[INBOX_COL_PAYLOAD], r->payload, r->payload_len);
        n++;
    }
    int bad = 0;
    for (int c = 0; c < INBOX_NCOLS; c++)
        bad |= inbox_pgarray_finish(&cols[c]);
    return bad ? -1 : n;
}

/* ---- operator hints ------------------------------------------------------------------------- */

/* Appends s to buf (holding a string of *n bytes) as an SQL string literal. */
static void append_literal(char *buf, size_t size, size_t *n, const char *s) {
    if (*n + 1 < size)
        buf[(*n)++] = '\'';
    for (; *s && *n + 2 < size; s++) {
        if (*s == '\'')
            buf[(*n)++] = '\'';
        buf[(*n)++] = *s;
    }
    if (*n + 1 < size)
        buf[(*n)++] = '\'';
    buf[*n < size ? *n : size - 1] = '\0';
}

static void append_text(char *buf, size_t size, size_t *n, const char *s) {
    int k = snprintf(buf + *n, size - *n, "%s", s);
    *n = k < 0 || (size_t)k >= size - *n ? size - 1 : *n + (size_t)k;
}

void inbox_position_sql(char *buf, size_t size, const char *table, const char *group, const char *topic,
                        int32_t partition, int64_t next_offset) {
    if (size == 0)
        return;
    buf[0] = '\0';
    size_t n = 0;
    char tmp[96];
    append_text(buf, size, &n, "UPDATE ");
    append_text(buf, size, &n, table);
    snprintf(tmp, sizeof(tmp), " SET next_offset = %" PRId64 " WHERE consumer_group = ", next_offset);
    append_text(buf, size, &n, tmp);
    append_literal(buf, size, &n, group);
    append_text(buf, size, &n, " AND topic = ");
    append_literal(buf, size, &n, topic);
    snprintf(tmp, sizeof(tmp), " AND partition = %" PRId32 ";", partition);
    append_text(buf, size, &n, tmp);
}

/* ---- durations and lists ------------------------------------------------------------------ */

int inbox_duration_parse(const char *s, long long *seconds) {
    static const struct {
        const char *name;
        long long secs;
    } units[] = {
        {"s", 1},        {"sec", 1},     {"secs", 1},      {"second", 1},     {"seconds", 1},
        {"m", 60},       {"min", 60},    {"mins", 60},     {"minute", 60},    {"minutes", 60},
        {"h", 3600},     {"hour", 3600}, {"hours", 3600},  {"d", 86400},      {"day", 86400},
        {"days", 86400}, {"w", 604800},  {"week", 604800}, {"weeks", 604800},
    };
    long long total = 0;
    const char *p = s;
    bool any = false;
    if (!s)
        return -1;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (!isdigit((unsigned char)*p))
            return -1;
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno)
            return -1;
        p = end;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *u = p;
        while (isalpha((unsigned char)*p))
            p++;
        size_t ulen = (size_t)(p - u);
        long long mult = 0;
        if (ulen == 0) {
            /* A bare number is seconds, only as the whole value. */
            if (any)
                return -1;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p)
                return -1;
            mult = 1;
        } else {
            for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && !mult; i++)
                if (strlen(units[i].name) == ulen && !strncasecmp(units[i].name, u, ulen))
                    mult = units[i].secs;
            if (!mult)
                return -1;
        }
        if (v > LLONG_MAX / mult || total > LLONG_MAX - v * mult)
            return -1;
        total += v * mult;
        any = true;
    }
    if (!any)
        return -1;
    *seconds = total;
    return 0;
}

char **inbox_list_split(const char *s, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        if (*p == ',')
            cap++;
    char **v = calloc(cap + 1, sizeof(char *));
    *n = 0;
    if (!v)
        return NULL;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *z = end;
        while (a < z && isspace((unsigned char)*a))
            a++;
        while (z > a && isspace((unsigned char)z[-1]))
            z--;
        if (z > a) {
            if (!(v[*n] = dup_bytes(a, (size_t)(z - a)))) {
                inbox_list_free(v);
                *n = 0;
                return NULL;
            }
            (*n)++;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    return v;
}

void inbox_list_free(char **list) {
    if (!list)
        return;
    for (size_t i = 0; list[i]; i++)
        free(list[i]);
    free(list);
}
