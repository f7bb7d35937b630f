/* pgo_decode.c - pgoutput (logical replication protocol version 1) messages to the decoded
 * record the router takes; the relations announced on the stream; timestamps as PostgreSQL
 * prints them. Hand-written: PostgreSQL ships the protocol's parser only inside the server
 * (src/backend/replication/logical/proto.c, not a client library), and no C library for it
 * is packaged; the protocol is small, documented and versioned ("Logical Replication Message
 * Formats" in the PostgreSQL manual). */
#include "pgo_decode.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "array.h"
#include "strbuf.h"

/*
 * The messages, as the walsender sends them with proto_version '1' (all integers big-endian;
 * String = bytes up to and including a NUL). No streaming and no two-phase options are asked
 * for, so no message carries a leading xid and none of the stream or prepare messages come.
 *
 *   Begin     'B' Int64 final_lsn (commit record start) Int64 commit_time Int32 xid
 *   Commit    'C' Int8 flags (0) Int64 commit_lsn Int64 end_lsn Int64 commit_time
 *   Origin    'O' Int64 origin_lsn String origin_name
 *   Relation  'R' Int32 oid String namespace String name Int8 replica_identity Int16 ncols,
 *                 then per column: Int8 flags (1 = part of the key) String name Int32 type_oid
 *                 Int32 typmod
 *   Type      'Y' Int32 oid String namespace String name
 *   Insert    'I' Int32 rel_oid 'N' TupleData
 *   Update    'U' Int32 rel_oid ['K' TupleData | 'O' TupleData] 'N' TupleData
 *   Delete    'D' Int32 rel_oid ('K' | 'O') TupleData
 *   Truncate  'T' Int32 nrels Int8 options Int32 rel_oid * nrels
 *   Message   'M' Int8 flags (1 = transactional) Int64 lsn String prefix Int32 len Byte[len]
 *   TupleData Int16 ncols, then per column: 'n' (NULL) | 'u' (unchanged TOAST, not sent) |
 *             't' Int32 len Byte[len] (text form) | 'b' Int32 len Byte[len] (binary form)
 *
 * Commit times are microseconds since 2000-01-01 00:00 UTC. PostgreSQL 15 and later send no
 * Begin/Commit for a transaction without published changes (keepalives carry its position).
 * A Relation message precedes a relation's first change on every connection and follows any
 * change to its definition.
 */

#define TYPE_BOOL 16
#define TYPE_BYTEA 17
#define PG_EPOCH_UNIX 946684800LL /* 2000-01-01 00:00:00 UTC in Unix time */

typedef struct pgo_rel {
    uint32_t oid;
    char *schema; /* "" is pg_catalog in the protocol: stored as "pg_catalog" */
    char *name;
    size_t ncols;
    char **colnames;
    uint32_t *typoids;
} pgo_rel_t;

struct pgo_decoder {
    pgo_rel_t *rels;
    size_t nrels, rels_cap;
    size_t last; /* index of the relation found last (usually the only one) */

    bool in_txn;
    uint32_t xid;
    char ts[40];   /* the open transaction's commit time, or "" */
    int64_t ts_us; /* the same, microseconds since 1970 UTC */

    w2j_column_t *cols;
    size_t cols_cap;
    size_t *off; /* per column: offset of its value in text, or SIZE_MAX for NULL */
    size_t off_cap;
    strbuf_t text; /* values, prefix and content of the last record, each NUL-terminated */
};

/* ---- reading the wire format ---------------------------------------------------------- */

typedef struct rd {
    const unsigned char *p, *end;
    bool bad; /* read past the end, or a string without its NUL */
} rd_t;

static bool has(rd_t *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t rd_u8(rd_t *r) { return has(r, 1) ? *r->p++ : 0; }

static uint16_t rd_u16(rd_t *r) {
    if (!has(r, 2))
        return 0;
    uint16_t v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return v;
}

static uint32_t rd_u32(rd_t *r) {
    if (!has(r, 4))
        return 0;
    uint32_t v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    return v;
}

static uint64_t rd_u64(rd_t *r) {
    uint64_t hi = rd_u32(r);
    return hi << 32 | rd_u32(r);
}

/* A NUL-terminated string in place: *len excludes the NUL. */
static const char *rd_str(rd_t *r, size_t *len) {
    *len = 0;
    if (r->bad)
        return NULL;
    const unsigned char *nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
    if (!nul) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    *len = (size_t)(nul - r->p);
    r->p = nul + 1;
    return s;
}

static const char *rd_bytes(rd_t *r, size_t n) {
    if (!has(r, n))
        return NULL;
    const char *s = (const char *)r->p;
    r->p += n;
    return s;
}

/* ---- the decoder ------------------------------------------------------------------------ */

pgo_decoder_t *pgo_decoder_new(void) { return calloc(1, sizeof(pgo_decoder_t)); }

static void rel_free(pgo_rel_t *rel) {
    free(rel->schema);
    free(rel->name);
    for (size_t i = 0; i < rel->ncols; i++)
        free(rel->colnames[i]);
    free(rel->colnames);
    free(rel->typoids);
    memset(rel, 0, sizeof(*rel));
}

void pgo_decoder_reset(pgo_decoder_t *dec) {
    for (size_t i = 0; i < dec->nrels; i++)
        rel_free(&dec->rels[i]);
    dec->nrels = 0;
    dec->last = 0;
    dec->in_txn = false;
    dec->xid = 0;
    dec->ts[0] = '\0';
}

void pgo_decoder_destroy(pgo_decoder_t *dec) {
    if (!dec)
        return;
    pgo_decoder_reset(dec);
    free(dec->rels);
    free(dec->cols);
    free(dec->off);
    strbuf_free(&dec->text);
    free(dec);
}

/* n as exactly `width` decimal digits at p. */
static char *digits(char *p, int64_t n, int width) {
    for (int i = width - 1; i >= 0; i--, n /= 10)
        p[i] = (char)('0' + n % 10);
    return p + width;
}

/* The civil date of `days` since 1970-01-01 (Howard Hinnant's civil_from_days). */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d) {
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* |us| beyond this (about 10,000 years from 2000) is no commit time: never formatted, never
 * added to (the sum could overflow). PostgreSQL's own range ends at 294276 AD; commits do not. */
#define PG_TS_LIMIT_US (10000LL * 366 * 86400 * 1000000)

/* Without snprintf and gmtime: one a transaction. */
void pgo_format_timestamp(int64_t us, char *out, size_t out_size) {
    if (us > PG_TS_LIMIT_US || us < -PG_TS_LIMIT_US) {
        if (out_size)
            out[0] = '\0';
        return;
    }
    int64_t unix_us = us + PG_EPOCH_UNIX * 1000000LL, secs = unix_us / 1000000, frac = unix_us % 1000000;
    if (frac < 0) { /* before 1970: floor division */
        frac += 1000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400, y;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (out_size < 40 || y < 0 || y > 9999) {
        if (out_size)
            out[0] = '\0';
        return;
    }
    char *p = digits(out, y, 4);
    *p++ = '-';
    p = digits(p, m, 2);
    *p++ = '-';
    p = digits(p, d, 2);
    *p++ = ' ';
    p = digits(p, sod / 3600, 2);
    *p++ = ':';
    p = digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = digits(p, sod % 60, 2);
    if (frac) { /* ".167436", ".19" - PostgreSQL drops trailing zeros */
        *p++ = '.';
        int width = 6;
        for (; frac % 10 == 0; frac /= 10)
            width--;
        p = digits(p, frac, width);
    }
    memcpy(p, "+00", 4);
}

static pgo_rel_t *rel_find(pgo_decoder_t *dec, uint32_t oid) {
    if (dec->last < dec->nrels && dec->rels[dec->last].oid == oid)
        return &dec->rels[dec->last];
    for (size_t i = 0; i < dec->nrels; i++)
        if (dec->rels[i].oid == oid) {
            dec->last = i;
            return &dec->rels[i];
        }
    return NULL;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* 'R': stores (or replaces) the relation. */
static int decode_relation(pgo_decoder_t *dec, rd_t *r, char *errstr, size_t errstr_size) {
    size_t nlen, slen;
    pgo_rel_t rel = {.oid = rd_u32(r)};
    const char *schema = rd_str(r, &slen), *name = rd_str(r, &nlen);
    rd_u8(r); /* replica identity */
    rel.ncols = rd_u16(r);
    if (r->bad) {
        snprintf(errstr, errstr_size, "truncated Relation message");
        return -1;
    }
    rel.schema = slen ? dup_n(schema, slen) : dup_n("pg_catalog", 10);
    rel.name = dup_n(name, nlen);
    rel.colnames = calloc(rel.ncols ? rel.ncols : 1, sizeof(char *));
    rel.typoids = calloc(rel.ncols ? rel.ncols : 1, sizeof(uint32_t));
    if (!rel.schema || !rel.name || !rel.colnames || !rel.typoids)
        goto oom;
    for (size_t i = 0; i < rel.ncols; i++) {
        size_t clen;
        rd_u8(r); /* flags */
        const char *cname = rd_str(r, &clen);
        rel.typoids[i] = rd_u32(r);
        rd_u32(r); /* typmod */
        if (r->bad) {
            rel_free(&rel);
            snprintf(errstr, errstr_size, "truncated Relation message (column %zu)", i + 1);
            return -1;
        }
        if (!(rel.colnames[i] = dup_n(cname, clen)))
            goto oom;
    }
    pgo_rel_t *old = rel_find(dec, rel.oid);
    if (old) {
        rel_free(old);
        *old = rel;
        return 0;
    }
    pgo_rel_t *v = array_grow(dec->rels, &dec->rels_cap, dec->nrels + 1, sizeof(*v), 4);
    if (!v)
        goto oom;
    dec->rels = v;
    dec->rels[dec->nrels++] = rel;
    return 0;
oom:
    rel_free(&rel);
    snprintf(errstr, errstr_size, "out of memory for a Relation message");
    return -1;
}

/* Appends s[0..n) and a NUL to the text buffer; *off = where it starts. */
static int text_add(pgo_decoder_t *dec, const char *s, size_t n, size_t *off) {
    *off = dec->text.len;
    return strbuf_add(&dec->text, s, n) != 0 || strbuf_addc(&dec->text, '\0') != 0 ? -1 : 0;
}

/* One 't' column value of type typoid, normalised to what wal2json sends (see the header). */
static int add_value(pgo_decoder_t *dec, uint32_t typoid, const char *v, size_t n, size_t *off) {
    if (typoid == TYPE_BOOL && n == 1 && (v[0] == 't' || v[0] == 'f'))
        return v[0] == 't' ? text_add(dec, "true", 4, off) : text_add(dec, "false", 5, off);
    if (typoid == TYPE_BYTEA && n >= 2 && v[0] == '\\' && v[1] == 'x')
        return text_add(dec, v + 2, n - 2, off);
    return text_add(dec, v, n, off);
}

/* TupleData of rel into dec->cols. */
static int decode_tuple(pgo_decoder_t *dec, rd_t *r, const pgo_rel_t *rel, w2j_record_t *out, char *errstr,
                        size_t errstr_size) {
    size_t n = rd_u16(r);
    if (r->bad) {
        snprintf(errstr, errstr_size, "truncated tuple of %s.%s", rel->schema, rel->name);
        return -1;
    }
    if (n > rel->ncols) {
        snprintf(errstr, errstr_size, "tuple of %s.%s has %zu columns, its Relation message %zu", rel->schema,
                 rel->name, n, rel->ncols);
        return -1;
    }
    w2j_column_t *c = array_grow(dec->cols, &dec->cols_cap, n, sizeof(*c), 16);
    if (c)
        dec->cols = c;
    size_t *o = c ? array_grow(dec->off, &dec->off_cap, n, sizeof(*o), 16) : NULL;
    if (!o) {
        snprintf(errstr, errstr_size, "out of memory for %zu columns", n);
        return -1;
    }
    dec->off = o;
    for (size_t i = 0; i < n; i++) {
        char kind = (char)rd_u8(r);
        dec->cols[i] = (w2j_column_t){.name = rel->colnames[i]};
        dec->off[i] = SIZE_MAX;
        if (kind == 'n' || kind == 'u') /* NULL; an unchanged TOAST value is not sent (updates only) */
            continue;
        if (kind != 't') {
            snprintf(errstr, errstr_size, "column \"%s\" of %s.%s: %s 0x%02x", rel->colnames[i], rel->schema, rel->name,
                     kind == 'b' ? "binary value (binary 'true' was not asked for)" : "unknown kind",
                     (unsigned char)kind);
            return -1;
        }
        size_t len = rd_u32(r);
        const char *v = rd_bytes(r, len);
        if (!v) {
            snprintf(errstr, errstr_size, "truncated value of column \"%s\" of %s.%s", rel->colnames[i], rel->schema,
                     rel->name);
            return -1;
        }
        if (add_value(dec, rel->typoids[i], v, len, &dec->off[i]) != 0) {
            snprintf(errstr, errstr_size, "out of memory for column \"%s\"", rel->colnames[i]);
            return -1;
        }
        dec->cols[i].value_len = dec->text.len - dec->off[i] - 1; /* without its NUL */
    }
    /* The buffer may have moved while it grew: point into it only now. */
    for (size_t i = 0; i < n; i++)
        if (dec->off[i] != SIZE_MAX)
            dec->cols[i].value = dec->text.p + dec->off[i];
    out->ncolumns = n;
    out->columns = dec->cols;
    return 0;
}

/* 'I', 'U', 'D': the relation and, for I and U, the new tuple. */
static int decode_change(pgo_decoder_t *dec, rd_t *r, char type, w2j_record_t *out, char *errstr, size_t errstr_size) {
    uint32_t oid = rd_u32(r);
    const pgo_rel_t *rel = rel_find(dec, oid);
    if (r->bad || !rel) {
        snprintf(errstr, errstr_size,
                 r->bad ? "truncated change message" : "change of relation %" PRIu32 " before its Relation message",
                 oid);
        return -1;
    }
    out->action = type == 'I' ? W2J_INSERT : type == 'U' ? W2J_UPDATE : W2J_DELETE;
    out->schema = rel->schema;
    out->table = rel->name;
    char part = (char)rd_u8(r);
    if (type == 'U' && (part == 'K' || part == 'O')) { /* the old key or row: not needed */
        w2j_record_t old = {0};
        if (decode_tuple(dec, r, rel, &old, errstr, errstr_size) != 0)
            return -1;
        dec->text.len = 0;
        part = (char)rd_u8(r);
    }
    if (type == 'D')
        return part == 'K' || part == 'O' ? 0 : (snprintf(errstr, errstr_size, "malformed Delete message"), -1);
    if (part != 'N') {
        snprintf(errstr, errstr_size, "malformed %s message (0x%02x where 'N' belongs)",
                 type == 'I' ? "Insert" : "Update", (unsigned char)part);
        return -1;
    }
    return decode_tuple(dec, r, rel, out, errstr, errstr_size);
}

/* 'M': a logical message. */
static int decode_message(pgo_decoder_t *dec, rd_t *r, w2j_record_t *out, char *errstr, size_t errstr_size) {
    size_t plen, poff, coff;
    out->action = W2J_MESSAGE;
    out->transactional = (rd_u8(r) & 1) != 0;
    out->lsn = rd_u64(r);
    const char *prefix = rd_str(r, &plen);
    size_t clen = rd_u32(r);
    const char *content = rd_bytes(r, clen);
    if (r->bad) {
        snprintf(errstr, errstr_size, "truncated Message message");
        return -1;
    }
    if (text_add(dec, prefix, plen, &poff) != 0 || text_add(dec, content, clen, &coff) != 0) {
        snprintf(errstr, errstr_size, "out of memory for a logical message of %zu bytes", clen);
        return -1;
    }
    out->prefix = dec->text.p + poff;
    out->content = dec->text.p + coff;
    out->content_len = clen;
    if (!out->transactional) {
        out->xid = 0;
        out->timestamp = NULL;
    }
    return 0;
}

int pgo_decode(pgo_decoder_t *dec, const char *buf, size_t len, lsn_t data_start, w2j_record_t *out, char *errstr,
               size_t errstr_size) {
    rd_t r = {(const unsigned char *)buf, (const unsigned char *)buf + len, false};
    memset(out, 0, sizeof(*out));
    dec->text.len = 0;
    char type = (char)rd_u8(&r);
    out->xid = dec->in_txn ? dec->xid : 0;
    out->timestamp = dec->in_txn && dec->ts[0] ? dec->ts : NULL;
    out->lsn = data_start;
    int rc = 0;
    switch (type) {
    case 'B':
        out->action = W2J_BEGIN;
        out->lsn = rd_u64(&r);
        dec->ts_us = (int64_t)rd_u64(&r);
        pgo_format_timestamp(dec->ts_us, dec->ts, sizeof(dec->ts));
        /* A time out of range (a corrupt message) is unknown: no text, 0. */
        dec->ts_us = dec->ts[0] ? dec->ts_us + PG_EPOCH_UNIX * 1000000LL : 0;
        dec->xid = out->xid = rd_u32(&r);
        dec->in_txn = true;
        out->timestamp = dec->ts[0] ? dec->ts : NULL;
        out->commit_time_us = dec->ts_us;
        break;
    case 'C':
        out->action = W2J_COMMIT;
        rd_u8(&r); /* flags */
        out->lsn = rd_u64(&r);
        out->nextlsn = rd_u64(&r);
        rd_u64(&r); /* commit time, as in Begin */
        dec->in_txn = false;
        break;
    case 'O': /* origin: not needed */
        rd_u64(&r);
        rd_str(&r, &(size_t){0});
        return r.bad ? (snprintf(errstr, errstr_size, "truncated Origin message"), -1) : 0;
    case 'Y': /* a type's name: not needed (values are in text form) */
        rd_u32(&r);
        rd_str(&r, &(size_t){0});
        rd_str(&r, &(size_t){0});
        return r.bad ? (snprintf(errstr, errstr_size, "truncated Type message"), -1) : 0;
    case 'R':
        rc = decode_relation(dec, &r, errstr, errstr_size);
        return rc == 0 ? 0 : -1;
    case 'I':
    case 'U':
    case 'D':
        rc = decode_change(dec, &r, type, out, errstr, errstr_size);
        break;
    case 'T':
        out->action = W2J_TRUNCATE; /* publish = 'insert' does not send them; the router skips them */
        break;
    case 'M':
        rc = decode_message(dec, &r, out, errstr, errstr_size);
        break;
    default:
        snprintf(errstr, errstr_size, "unknown pgoutput message type 0x%02x (%zu bytes)", (unsigned char)type, len);
        return -1;
    }
    if (rc != 0)
        return -1;
    if (r.bad) {
        snprintf(errstr, errstr_size, "truncated pgoutput message '%c' (%zu bytes)", type, len);
        return -1;
    }
    return 1;
}
