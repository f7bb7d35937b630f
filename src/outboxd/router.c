/* router.c - maps decoded outbox rows and outbox logical messages to Kafka records (topic
 * from a template, key, value, headers) with a configurable column mapping. */
#include "router.h"
#include "hex.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TABLES "public.outbox"
#define DEFAULT_TEMPLATE "outbox.event.${aggregate_type}"
#define KAFKA_TOPIC_MAX 249

typedef struct rt_table {
    char *schema;
    char *table;
    router_payload_type_t payload_type;
} rt_table_t;

typedef enum { SEG_LITERAL, SEG_AGGREGATE_TYPE, SEG_AGGREGATE_ID, SEG_EVENT_TYPE } seg_kind_t;

typedef struct seg {
    seg_kind_t kind;
    const char *lit; /* SEG_LITERAL: points into router->template */
    size_t lit_len;
} seg_t;

typedef struct buf {
    char *p;
    size_t len;
    size_t cap;
} buf_t;

struct router {
    rt_table_t *tables;
    size_t ntables;
    char *add_tables;

    char *template;
    seg_t *segs;
    size_t nsegs;
    bool uses_aggregate_type;
    bool uses_event_type;

    char *col_id, *col_aggregate_type, *col_aggregate_id, *col_event_type, *col_payload;
    char *col_headers;    /* NULL: no headers column */
    char *message_prefix; /* NULL: messages are not outbox events */
    char *id_header;
    char *type_header; /* NULL: no event type header */
    char **xcol, **xhdr; /* outbox.header.columns: column i goes to header xhdr[i] */
    size_t nx;

    /* Reused across router_route calls. */
    json_t *root; /* parsed headers column or message envelope */
    buf_t topic;
    buf_t text; /* compact JSON of payloads and header values */
    buf_t bin;  /* decoded bytea payloads */
    router_header_t *hdrs;
    size_t *hdr_off; /* per header: offset of its value in text, or SIZE_MAX */
    size_t hdrs_cap;
    char id_num[32]; /* envelope "id" / "aggregate_id" given as JSON integers */
    char key_num[32];
};

/* ---- small growable buffer ------------------------------------------------------------ */

static int buf_reserve(buf_t *b, size_t more) {
    size_t need, cap;
    char *p;

    if (more > SIZE_MAX - b->len - 1)
        return -1;
    need = b->len + more + 1; /* room for a NUL */
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(buf_t *b, const char *s, size_t n) {
    if (buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_addc(buf_t *b, char c) { return buf_add(b, &c, 1); }

/* jansson cannot hold integers beyond 64 bits ("too big integer"), which PostgreSQL's jsonb
 * accepts. Copies the JSON text s into out with every integer of more than 18 digits
 * written as a string, so a header value 12345678901234567890 keeps its exact digits.
 * Returns 0 or -1 (out of memory). */
static int quote_big_ints(const char *s, size_t n, buf_t *out) {
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n;) {
        char ch = s[i];
        if (in_str || ch == '"') {
            if (!in_str)
                in_str = true;
            else if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            if (buf_addc(out, ch) != 0)
                return -1;
            i++;
            continue;
        }
        if (ch == '-' || (ch >= '0' && ch <= '9')) { /* one whole number token */
            size_t j = i + (ch == '-'), d0 = j;
            while (j < n && s[j] >= '0' && s[j] <= '9')
                j++;
            bool integer = true;
            size_t digits = j - d0;
            if (j < n && s[j] == '.') {
                integer = false;
                for (j++; j < n && s[j] >= '0' && s[j] <= '9'; j++)
                    ;
            }
            if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                integer = false;
                j++;
                if (j < n && (s[j] == '+' || s[j] == '-'))
                    j++;
                while (j < n && s[j] >= '0' && s[j] <= '9')
                    j++;
            }
            bool quote = integer && digits > 18;
            if ((quote && buf_addc(out, '"') != 0) || buf_add(out, s + i, j - i) != 0 ||
                (quote && buf_addc(out, '"') != 0))
                return -1;
            i = j;
            continue;
        }
        if (buf_addc(out, ch) != 0)
            return -1;
        i++;
    }
    return 0;
}

/* ---- compact JSON --------------------------------------------------------------------- */

/* Shortest text that reads back as the same double, in PostgreSQL's float8 style: plain
 * decimals for exponents -4..14, else "1e+300"/"1e-07" (0.1 -> "0.1", where jansson's own
 * dumper prints 0.10000000000000001). Assumes the "C" LC_NUMERIC locale. */
static int add_real(buf_t *b, double v) {
    char num[48];
    int n = 0, prec, exp10, decimals;

    for (prec = 1; prec <= 17; prec++) {
        n = snprintf(num, sizeof(num), "%.*e", prec - 1, v);
        if (n < 0 || (size_t)n >= sizeof(num))
            return -1;
        if (strtod(num, NULL) == v)
            break;
    }
    if (prec > 17)
        prec = 17;
    exp10 = atoi(strchr(num, 'e') + 1);
    if (exp10 >= -4 && exp10 < 15) {
        decimals = prec - 1 - exp10;
        n = snprintf(num, sizeof(num), "%.*f", decimals > 0 ? decimals : 0, v);
        if (n < 0 || (size_t)n >= sizeof(num))
            return -1;
    }
    return buf_add(b, num, (size_t)n);
}

static int add_json_string(buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";

    if (buf_addc(b, '"') != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 2;

        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            if (c >= 0x20) {
                if (buf_addc(b, (char)c) != 0)
                    return -1;
                continue;
            }
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (buf_add(b, esc, elen) != 0)
            return -1;
    }
    return buf_addc(b, '"');
}

/*
 * Appends v as compact JSON (no spaces, object members in the order parsed, strings in
 * UTF-8, shortest reals). This is NOT PostgreSQL's jsonb text ('{"a": 1, "b": [1, 2]}',
 * keys sorted by length): an envelope payload {"b":1,"a":2} is sent as {"b":1,"a":2}, while
 * the same object in a jsonb column is sent as PostgreSQL prints it ({"a": 2, "b": 1}).
 * Recursion depth is bounded by jansson's parser (2048 levels).
 */
static int add_json(buf_t *b, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        bool first = true;
        void *it;

        if (buf_addc(b, '{') != 0)
            return -1;
        for (it = json_object_iter((json_t *)v); it != NULL; it = json_object_iter_next((json_t *)v, it)) {
            key = json_object_iter_key(it);
            member = json_object_iter_value(it);
            if ((!first && buf_addc(b, ',') != 0) || add_json_string(b, key, json_object_iter_key_len(it)) != 0 ||
                buf_addc(b, ':') != 0 || add_json(b, member) != 0)
                return -1;
            first = false;
        }
        return buf_addc(b, '}');
    }
    case JSON_ARRAY:
        if (buf_addc(b, '[') != 0)
            return -1;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i > 0 && buf_addc(b, ',') != 0) || add_json(b, json_array_get(v, i)) != 0)
                return -1;
        return buf_addc(b, ']');
    case JSON_STRING:
        return add_json_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        char num[32];
        int n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));

        return n < 0 ? -1 : buf_add(b, num, (size_t)n);
    }
    case JSON_REAL:
        return add_real(b, json_real_value(v));
    case JSON_TRUE:
        return buf_add(b, "true", 4);
    case JSON_FALSE:
        return buf_add(b, "false", 5);
    default:
        return buf_add(b, "null", 4);
    }
}

/* ---- options -------------------------------------------------------------------------- */

static bool is_topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Parses a topic template into literal and placeholder segments. */
static int parse_template(router_t *r, char *errstr, size_t errstr_size) {
    static const struct {
        const char *name;
        seg_kind_t kind;
    } placeholders[] = {
        {"aggregate_type", SEG_AGGREGATE_TYPE},
        {"routedByValue", SEG_AGGREGATE_TYPE},
        {"aggregate_id", SEG_AGGREGATE_ID},
        {"event_type", SEG_EVENT_TYPE},
    };
    const char *p = r->template;
    size_t max = strlen(p) + 1; /* more than enough segments */

    if (*p == '\0') {
        snprintf(errstr, errstr_size, "topic template is empty");
        return -1;
    }
    r->segs = calloc(max, sizeof(seg_t));
    if (r->segs == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    while (*p != '\0') {
        seg_t *s = &r->segs[r->nsegs];

        if (p[0] == '$' && p[1] == '{') {
            const char *name = p + 2;
            const char *end = strchr(name, '}');
            size_t i, n;

            if (end == NULL) {
                snprintf(errstr, errstr_size, "topic template \"%s\": unterminated \"${\"", r->template);
                return -1;
            }
            n = (size_t)(end - name);
            for (i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
                if (strlen(placeholders[i].name) == n && memcmp(placeholders[i].name, name, n) == 0)
                    break;
            if (i == sizeof(placeholders) / sizeof(placeholders[0])) {
                snprintf(errstr, errstr_size,
                         "topic template \"%s\": unknown placeholder \"${%.*s}\" (known: "
                         "${aggregate_type}, ${aggregate_id}, ${event_type}, ${routedByValue})",
                         r->template, (int)n, name);
                return -1;
            }
            s->kind = placeholders[i].kind;
            if (s->kind == SEG_AGGREGATE_TYPE)
                r->uses_aggregate_type = true;
            if (s->kind == SEG_EVENT_TYPE)
                r->uses_event_type = true;
            p = end + 1;
        } else {
            s->kind = SEG_LITERAL;
            s->lit = p;
            while (*p != '\0' && !(p[0] == '$' && p[1] == '{')) {
                if (!is_topic_char(*p)) {
                    snprintf(errstr, errstr_size,
                             "topic template \"%s\": character '%c' is not allowed in a Kafka "
                             "topic name (only a-z A-Z 0-9 . _ -)",
                             r->template, *p);
                    return -1;
                }
                p++;
            }
            s->lit_len = (size_t)(p - s->lit);
        }
        r->nsegs++;
    }
    return 0;
}

/* One identifier of a table list: "quoted" (as written, "" for a quote) or unquoted
 * (folded to lower case, as PostgreSQL does). Returns a new string or NULL with errstr. */
static char *parse_ident(const char **sp, char *errstr, size_t errstr_size) {
    const char *p = *sp;
    buf_t b = {0};

    if (*p == '"') {
        p++;
        for (;;) {
            if (*p == '\0') {
                snprintf(errstr, errstr_size, "unterminated quoted identifier");
                goto fail;
            }
            if (*p == '"') {
                if (p[1] != '"')
                    break;
                p++;
            }
            if (buf_addc(&b, *p) != 0)
                goto oom;
            p++;
        }
        p++; /* closing quote */
        if (b.len == 0) {
            snprintf(errstr, errstr_size, "empty quoted identifier");
            goto fail;
        }
    } else {
        while (*p != '\0' && *p != '.' && *p != ',' && !is_space(*p)) {
            char c = *p;

            if (c == '"') {
                snprintf(errstr, errstr_size, "unexpected '\"' inside an identifier");
                goto fail;
            }
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (buf_addc(&b, c) != 0)
                goto oom;
            p++;
        }
        if (b.len == 0) {
            snprintf(errstr, errstr_size, "empty table name");
            goto fail;
        }
    }
    *sp = p;
    return b.p;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    free(b.p);
    return NULL;
}

static int parse_tables(router_t *r, const char *list, char *errstr, size_t errstr_size) {
    const char *p = list;
    char why[200];

    for (;;) {
        char *a, *b = NULL;
        rt_table_t *t;

        while (is_space(*p))
            p++;
        a = parse_ident(&p, why, sizeof(why));
        if (a == NULL)
            goto bad;
        while (is_space(*p))
            p++;
        if (*p == '.') {
            p++;
            while (is_space(*p))
                p++;
            b = parse_ident(&p, why, sizeof(why));
            if (b == NULL) {
                free(a);
                goto bad;
            }
            while (is_space(*p))
                p++;
        }
        if (*p != ',' && *p != '\0') {
            snprintf(why, sizeof(why), "unexpected '%c'", *p);
            free(a);
            free(b);
            goto bad;
        }
        t = realloc(r->tables, (r->ntables + 1) * sizeof(*t));
        if (t == NULL) {
            free(a);
            free(b);
            snprintf(why, sizeof(why), "out of memory");
            goto bad;
        }
        r->tables = t;
        t = &r->tables[r->ntables];
        t->payload_type = ROUTER_PAYLOAD_TEXT;
        if (b == NULL) {
            t->table = a;
            t->schema = strdup("public");
        } else {
            t->schema = a;
            t->table = b;
        }
        r->ntables++;
        if (t->schema == NULL) {
            snprintf(why, sizeof(why), "out of memory");
            goto bad;
        }
        for (size_t i = 0; i + 1 < r->ntables; i++)
            if (strcmp(r->tables[i].schema, t->schema) == 0 && strcmp(r->tables[i].table, t->table) == 0) {
                snprintf(why, sizeof(why), "%s.%s listed twice", t->schema, t->table);
                goto bad;
            }
        if (*p == '\0')
            return 0;
        p++; /* ',' */
    }
bad:
    snprintf(errstr, errstr_size, "tables \"%s\": %s at position %zu", list, why, (size_t)(p - list));
    return -1;
}

/* wal2json's add-tables syntax: "schema.table" items separated by ',', whitespace around
 * items ignored, "*" as schema or table a wildcard, '\' escapes the next character. So '.',
 * ',', '\', '*', whitespace and (per its README) '\'' inside names are escaped. */
static int add_escaped(buf_t *b, const char *name) {
    for (const char *p = name; *p != '\0'; p++) {
        if ((strchr(".,\\*'", *p) != NULL || is_space(*p)) && buf_addc(b, '\\') != 0)
            return -1;
        if (buf_addc(b, *p) != 0)
            return -1;
    }
    return 0;
}

static int build_add_tables(router_t *r) {
    buf_t b = {0};

    for (size_t i = 0; i < r->ntables; i++)
        if ((i > 0 && buf_addc(&b, ',') != 0) || add_escaped(&b, r->tables[i].schema) != 0 || buf_addc(&b, '.') != 0 ||
            add_escaped(&b, r->tables[i].table) != 0) {
            free(b.p);
            return -1;
        }
    r->add_tables = b.p;
    return 0;
}

/* Copies opt (or def when opt is NULL) into *dst; "" is rejected unless allow_empty (then
 * *dst stays NULL). */
static int copy_opt(char **dst, const char *opt, const char *def, bool allow_empty, const char *what, char *errstr,
                    size_t errstr_size) {
    const char *v = opt != NULL ? opt : def;

    *dst = NULL;
    if (v == NULL || (*v == '\0' && allow_empty))
        return 0;
    if (*v == '\0') {
        snprintf(errstr, errstr_size, "%s must not be empty", what);
        return -1;
    }
    *dst = strdup(v);
    if (*dst == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

/* "col[:header], ..." -> r->xcol/xhdr (header defaults to the column name). */
static int parse_header_columns(router_t *r, const char *spec, char *errstr, size_t errstr_size) {
    if (spec == NULL || *spec == '\0')
        return 0;
    size_t max = 1;
    for (const char *s = spec; *s; s++)
        max += *s == ',';
    r->xcol = calloc(max, sizeof(char *));
    r->xhdr = calloc(max, sizeof(char *));
    if (!r->xcol || !r->xhdr)
        goto oom;
    for (const char *s = spec; *s;) {
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        const char *colon = memchr(s, ':', (size_t)(end - s));
        const char *cb = s, *ce = colon ? colon : end, *hb = colon ? colon + 1 : s, *he = end;
        while (cb < ce && isspace((unsigned char)*cb))
            cb++;
        while (ce > cb && isspace((unsigned char)ce[-1]))
            ce--;
        while (hb < he && isspace((unsigned char)*hb))
            hb++;
        while (he > hb && isspace((unsigned char)he[-1]))
            he--;
        if (!colon) {
            hb = cb;
            he = ce;
        }
        if (cb == ce || hb == he) {
            snprintf(errstr, errstr_size,
                     "outbox.header.columns \"%s\": empty column or header name (expected \"column[:header], ...\")",
                     spec);
            return -1;
        }
        r->xcol[r->nx] = strndup(cb, (size_t)(ce - cb));
        r->xhdr[r->nx] = strndup(hb, (size_t)(he - hb));
        if (!r->xcol[r->nx] || !r->xhdr[r->nx++])
            goto oom;
        s = *end ? end + 1 : end;
    }
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

router_t *router_new(const router_options_t *opts, char *errstr, size_t errstr_size) {
    router_options_t none = {0};
    router_t *r = calloc(1, sizeof(*r));

    if (opts == NULL)
        opts = &none;
    if (r == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (copy_opt(&r->template, opts->topic_template, DEFAULT_TEMPLATE, false, "outbox.topic", errstr, errstr_size) !=
            0 ||
        parse_template(r, errstr, errstr_size) != 0)
        goto fail;
    if (parse_tables(r, opts->tables != NULL ? opts->tables : DEFAULT_TABLES, errstr, errstr_size) != 0)
        goto fail;
    if (build_add_tables(r) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (copy_opt(&r->col_id, opts->columns.id, "id", false, "outbox.column.id", errstr, errstr_size) != 0 ||
        copy_opt(&r->col_aggregate_type, opts->columns.aggregate_type, "aggregate_type", false,
                 "outbox.column.aggregate_type", errstr, errstr_size) != 0 ||
        copy_opt(&r->col_aggregate_id, opts->columns.aggregate_id, "aggregate_id", false, "outbox.column.aggregate_id",
                 errstr, errstr_size) != 0 ||
        copy_opt(&r->col_event_type, opts->columns.event_type, "event_type", false, "outbox.column.event_type", errstr,
                 errstr_size) != 0 ||
        copy_opt(&r->col_payload, opts->columns.payload, "payload", false, "outbox.column.payload", errstr, errstr_size) !=
            0 ||
        /* As router.h says: NULL or "" = no headers column, no outbox messages. */
        copy_opt(&r->col_headers, opts->columns.headers, NULL, true, "outbox.column.headers", errstr, errstr_size) != 0 ||
        copy_opt(&r->message_prefix, opts->message_prefix, NULL, true, "outbox.message.prefix", errstr, errstr_size) != 0 ||
        copy_opt(&r->id_header, opts->id_header, "id", false, "outbox.header.id", errstr, errstr_size) != 0 ||
        /* "" = no event type header (Debezium's router sends only the id header). */
        copy_opt(&r->type_header, opts->type_header, "event_type", true, "outbox.header.event_type", errstr, errstr_size) != 0 ||
        parse_header_columns(r, opts->header_columns, errstr, errstr_size) != 0)
        goto fail;
    return r;
fail:
    router_destroy(r);
    return NULL;
}

void router_destroy(router_t *r) {
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nx; i++) {
        free(r->xcol[i]);
        free(r->xhdr[i]);
    }
    free(r->xcol);
    free(r->xhdr);
    for (size_t i = 0; i < r->ntables; i++) {
        free(r->tables[i].schema);
        free(r->tables[i].table);
    }
    free(r->tables);
    free(r->add_tables);
    free(r->template);
    free(r->segs);
    free(r->col_id);
    free(r->col_aggregate_type);
    free(r->col_aggregate_id);
    free(r->col_event_type);
    free(r->col_payload);
    free(r->col_headers);
    free(r->message_prefix);
    free(r->id_header);
    free(r->type_header);
    json_decref(r->root);
    free(r->topic.p);
    free(r->text.p);
    free(r->bin.p);
    free(r->hdrs);
    free(r->hdr_off);
    free(r);
}

size_t router_table_count(const router_t *r) { return r->ntables; }

void router_table_get(const router_t *r, size_t i, const char **schema, const char **table) {
    *schema = i < r->ntables ? r->tables[i].schema : NULL;
    *table = i < r->ntables ? r->tables[i].table : NULL;
}

const char *router_add_tables_option(const router_t *r) { return r->add_tables; }

void router_set_payload_type(router_t *r, size_t i, router_payload_type_t type) {
    if (i < r->ntables)
        r->tables[i].payload_type = type;
}

router_payload_type_t router_get_payload_type(const router_t *r, size_t i) {
    return i < r->ntables ? r->tables[i].payload_type : ROUTER_PAYLOAD_TEXT;
}

router_payload_type_t router_payload_type_for(const char *pg_type) {
    return pg_type != NULL && strcmp(pg_type, "bytea") == 0 ? ROUTER_PAYLOAD_BYTEA : ROUTER_PAYLOAD_TEXT;
}

/*
 * wal2json (include-types=0) prints a bytea value with bytea's output function and drops
 * its first two characters, expecting "\x": 0x00 0xff 0x41 arrives as "00ff41". A column
 * whose type is a domain over bytea keeps the "\x" (seen with wal2json 2.5: only the bytea
 * type itself is stripped), so a leading "\x" is skipped too; hex digits never contain '\',
 * so this is unambiguous. The escape format (bytea_output = escape) is not accepted:
 * pg_preflight_server sets bytea_output = hex on the replication session.
 */
int router_hex_decode(const char *hex, size_t n, unsigned char *out, size_t *out_len, size_t *bad_pos) {
    size_t i = 0, o = 0;

    if (n >= 2 && hex[0] == '\\' && hex[1] == 'x')
        i = 2;
    if ((n - i) % 2 != 0) {
        *bad_pos = n;
        return -1;
    }
    for (; i < n; i += 2) {
        int hi = hex_digit_value(hex[i]), lo = hex_digit_value(hex[i + 1]);

        if (hi < 0 || lo < 0) {
            *bad_pos = hi < 0 ? i : i + 1;
            return -1;
        }
        out[o++] = (unsigned char)(hi << 4 | lo);
    }
    *out_len = o;
    return 0;
}

/* ---- routing -------------------------------------------------------------------------- */

/* What an event is made of, before it becomes an outbox_event_t. Strings are borrowed from
 * the decoded record or r->root. */
typedef struct parts {
    const w2j_record_t *row; /* the row (for outbox.header.columns); NULL for messages */
    const char *id;
    const char *aggregate_type; /* may be NULL */
    const char *aggregate_id;
    size_t aggregate_id_len;
    const char *event_type; /* may be NULL */
    size_t event_type_len;
    const char *value; /* NULL: compact JSON of value_json */
    size_t value_len;
    const json_t *value_json;
    const json_t *headers; /* JSON object or NULL */
} parts_t;

static bool has_nul(const char *s, size_t n) { return s != NULL && memchr(s, '\0', n) != NULL; }

static int hdrs_reserve(router_t *r, size_t n) {
    router_header_t *h;
    size_t *o;
    size_t cap;

    if (n <= r->hdrs_cap)
        return 0;
    cap = r->hdrs_cap ? r->hdrs_cap : 8;
    while (cap < n)
        cap *= 2;
    h = realloc(r->hdrs, cap * sizeof(*h));
    if (h == NULL)
        return -1;
    r->hdrs = h;
    o = realloc(r->hdr_off, cap * sizeof(*o));
    if (o == NULL)
        return -1;
    r->hdr_off = o;
    r->hdrs_cap = cap;
    return 0;
}

/* Fills *ev from p: topic, key, value, headers. `where` names the source for errors
 * ("public.outbox row", "message at LSN 0/1"). */
static router_result_t build_event(router_t *r, const parts_t *p, const char *where, outbox_event_t *ev, char *errstr,
                                   size_t errstr_size) {
    size_t value_off = SIZE_MAX;
    size_t nh = 0;

    /* topic */
    r->topic.len = 0;
    for (size_t i = 0; i < r->nsegs; i++) {
        const seg_t *s = &r->segs[i];
        const char *v = s->lit;
        size_t n = s->lit_len;
        const char *what = NULL;

        if (s->kind == SEG_AGGREGATE_TYPE) {
            v = p->aggregate_type;
            n = v ? strlen(v) : 0;
            what = "aggregate_type";
        } else if (s->kind == SEG_AGGREGATE_ID) {
            v = p->aggregate_id;
            n = p->aggregate_id_len;
            what = "aggregate_id";
        } else if (s->kind == SEG_EVENT_TYPE) {
            v = p->event_type;
            n = p->event_type_len;
            what = "event_type";
        }
        if (v == NULL) {
            snprintf(errstr, errstr_size, "event %s (%s): %s is NULL but the topic template \"%s\" uses it", p->id,
                     where, what, r->template);
            return ROUTER_INVALID;
        }
        if (buf_add(&r->topic, v, n) != 0)
            goto oom;
    }
    if (r->topic.len == 0 || r->topic.len > KAFKA_TOPIC_MAX || strcmp(r->topic.p, ".") == 0 ||
        strcmp(r->topic.p, "..") == 0) {
        snprintf(errstr, errstr_size,
                 "event %s (%s): topic \"%.300s\" is not a valid Kafka "
                 "topic name (1 to %d characters, not \".\" or \"..\")",
                 p->id, where, r->topic.p, KAFKA_TOPIC_MAX);
        return ROUTER_INVALID;
    }
    for (size_t i = 0; i < r->topic.len; i++)
        if (!is_topic_char(r->topic.p[i])) {
            snprintf(errstr, errstr_size,
                     "event %s (%s): topic \"%.300s\" is not a valid Kafka topic name "
                     "(only a-z A-Z 0-9 . _ -)",
                     p->id, where, r->topic.p);
            return ROUTER_INVALID;
        }

    /* value */
    r->text.len = 0;
    ev->value = p->value;
    ev->value_len = p->value_len;
    if (p->value == NULL) {
        value_off = r->text.len;
        if (add_json(&r->text, p->value_json) != 0)
            goto oom;
        ev->value_len = r->text.len - value_off;
        if (buf_addc(&r->text, '\0') != 0)
            goto oom;
    }

    /* headers: id, event type, extra columns, then the members of the headers object */
    if (hdrs_reserve(r, 2 + r->nx + (p->headers ? json_object_size(p->headers) : 0)) != 0)
        goto oom;
    r->hdrs[nh] = (router_header_t){r->id_header, p->id, strlen(p->id)};
    r->hdr_off[nh++] = SIZE_MAX;
    if (r->type_header != NULL) {
        r->hdrs[nh] = (router_header_t){r->type_header, p->event_type, p->event_type_len};
        r->hdr_off[nh++] = SIZE_MAX;
    }
    for (size_t i = 0; p->row && i < r->nx; i++) {
        const w2j_column_t *col = w2j_column_find(p->row, r->xcol[i]);
        if (col == NULL) {
            snprintf(errstr, errstr_size, "event %s (%s): column '%s' (outbox.header.columns) missing in the row",
                     p->id, where, r->xcol[i]);
            return ROUTER_INVALID;
        }
        r->hdrs[nh] = (router_header_t){r->xhdr[i], col->value, col->value ? col->value_len : 0};
        r->hdr_off[nh++] = SIZE_MAX;
    }
    if (p->headers != NULL) {
        for (void *it = json_object_iter((json_t *)p->headers); it != NULL;
             it = json_object_iter_next((json_t *)p->headers, it)) {
            const char *name = json_object_iter_key(it);
            const json_t *v = json_object_iter_value(it);
            router_header_t *h = &r->hdrs[nh];

            if (strlen(name) != json_object_iter_key_len(it)) {
                snprintf(errstr, errstr_size,
                         "event %s (%s): a header name contains a NUL "
                         "character",
                         p->id, where);
                return ROUTER_INVALID;
            }
            h->name = name;
            h->value = NULL;
            h->value_len = 0;
            r->hdr_off[nh] = SIZE_MAX;
            if (json_is_string(v)) {
                h->value = json_string_value(v);
                h->value_len = json_string_length(v);
            } else if (!json_is_null(v)) {
                r->hdr_off[nh] = r->text.len;
                if (add_json(&r->text, v) != 0)
                    goto oom;
                h->value_len = r->text.len - r->hdr_off[nh];
                if (buf_addc(&r->text, '\0') != 0)
                    goto oom;
            }
            nh++;
        }
    }
    /* r->text may have moved while growing: resolve offsets last. */
    if (value_off != SIZE_MAX)
        ev->value = r->text.p + value_off;
    for (size_t i = 0; i < nh; i++)
        if (r->hdr_off[i] != SIZE_MAX)
            r->hdrs[i].value = r->text.p + r->hdr_off[i];

    ev->topic = r->topic.p;
    ev->key = p->aggregate_id;
    ev->key_len = p->aggregate_id_len;
    ev->event_type = p->event_type;
    ev->nheaders = nh;
    ev->headers = r->hdrs;
    return ROUTER_EVENT;
oom:
    snprintf(errstr, errstr_size, "event %s (%s): out of memory", p->id, where);
    return ROUTER_INVALID;
}

static const rt_table_t *find_table(const router_t *r, const char *schema, const char *table) {
    if (schema == NULL || table == NULL)
        return NULL;
    for (size_t i = 0; i < r->ntables; i++)
        if (strcmp(r->tables[i].table, table) == 0 && strcmp(r->tables[i].schema, schema) == 0)
            return &r->tables[i];
    return NULL;
}

static router_result_t route_row(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *errstr,
                                 size_t errstr_size) {
    const rt_table_t *t = find_table(r, rec->schema, rec->table);
    const char *names[6] = {r->col_id,         r->col_aggregate_type, r->col_aggregate_id,
                            r->col_event_type, r->col_payload,        r->col_headers};
    const w2j_column_t *c[6] = {NULL};
    char where[300];
    parts_t p = {.row = rec};

    if (t == NULL)
        return ROUTER_SKIP;
    snprintf(where, sizeof(where), "%s.%s row", t->schema, t->table);

    /* The id first, so that later errors can name the event. */
    c[0] = w2j_column_find(rec, names[0]);
    if (c[0] != NULL && c[0]->value != NULL && !has_nul(c[0]->value, c[0]->value_len))
        ev->id = p.id = c[0]->value;
    for (size_t i = 0; i < 6; i++) {
        if (names[i] == NULL)
            continue;
        c[i] = w2j_column_find(rec, names[i]);
        /* A table without the headers column is fine: only the id and type headers. */
        if (c[i] == NULL && i != 5) {
            snprintf(errstr, errstr_size, "column '%s' missing in %s", names[i], where);
            return ROUTER_INVALID;
        }
    }
    if (p.id == NULL) {
        snprintf(errstr, errstr_size, "outbox event in %s (LSN %s) has a %s id (column '%s')", where,
                 lsn_format(rec->lsn, (char[LSN_FMT_SIZE]){0}), c[0]->value == NULL ? "NULL" : "NUL-containing",
                 names[0]);
        return ROUTER_INVALID;
    }
    if (c[2]->value == NULL) {
        snprintf(errstr, errstr_size, "event %s (%s): aggregate id (column '%s') is NULL", p.id, where, names[2]);
        return ROUTER_INVALID;
    }
    if (c[4]->value == NULL) {
        snprintf(errstr, errstr_size, "event %s (%s): payload (column '%s') is NULL", p.id, where, names[4]);
        return ROUTER_INVALID;
    }
    if (has_nul(c[1]->value, c[1]->value_len) || has_nul(c[3]->value, c[3]->value_len)) {
        snprintf(errstr, errstr_size,
                 "event %s (%s): aggregate type or event type contains "
                 "a NUL character",
                 p.id, where);
        return ROUTER_INVALID;
    }
    p.aggregate_type = c[1]->value;
    p.aggregate_id = c[2]->value;
    p.aggregate_id_len = c[2]->value_len;
    p.event_type = c[3]->value;
    p.event_type_len = c[3]->value_len;
    p.value = c[4]->value;
    p.value_len = c[4]->value_len;
    if (t->payload_type == ROUTER_PAYLOAD_BYTEA) {
        size_t bad = 0;

        r->bin.len = 0;
        if (buf_reserve(&r->bin, p.value_len / 2) != 0) {
            snprintf(errstr, errstr_size, "event %s (%s): out of memory", p.id, where);
            return ROUTER_INVALID;
        }
        if (router_hex_decode(p.value, p.value_len, (unsigned char *)r->bin.p, &r->bin.len, &bad) != 0) {
            if (bad >= p.value_len)
                snprintf(errstr, errstr_size,
                         "event %s (%s): bytea payload (column '%s') is not hex text: odd number of "
                         "digits (%zu characters)",
                         p.id, where, names[4], p.value_len);
            else
                snprintf(errstr, errstr_size,
                         "event %s (%s): bytea payload (column '%s') is not hex text: character 0x%02x "
                         "at offset %zu",
                         p.id, where, names[4], (unsigned char)p.value[bad], bad);
            return ROUTER_INVALID;
        }
        r->bin.p[r->bin.len] = '\0';
        p.value = r->bin.p;
        p.value_len = r->bin.len;
    }

    if (c[5] != NULL && c[5]->value != NULL) {
        json_error_t jerr;

        json_decref(r->root);
        r->root = json_loadb(c[5]->value, c[5]->value_len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
        if (r->root == NULL && strstr(jerr.text, "too big integer")) {
            buf_t q = {0};
            if (quote_big_ints(c[5]->value, c[5]->value_len, &q) == 0)
                r->root = json_loadb(q.p, q.len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
            free(q.p);
        }
        if (r->root == NULL) {
            snprintf(errstr, errstr_size,
                     "event %s (%s): headers (column '%s') is not valid "
                     "JSON: %s at position %d",
                     p.id, where, names[5], jerr.text, jerr.position);
            return ROUTER_INVALID;
        }
        if (!json_is_object(r->root)) {
            snprintf(errstr, errstr_size,
                     "event %s (%s): headers (column '%s') is not a JSON "
                     "object",
                     p.id, where, names[5]);
            return ROUTER_INVALID;
        }
        p.headers = r->root;
    }
    return build_event(r, &p, where, ev, errstr, errstr_size);
}

/* Envelope member as text: JSON string (no NUL) or, when allow_int, JSON integer (written
 * to num). Returns 1 when absent/null, 0 when set, -1 on another type. */
static int envelope_str(const json_t *env, const char *key, bool allow_int, char *num, size_t num_size,
                        const char **out, size_t *len) {
    const json_t *v = json_object_get(env, key);

    *out = NULL;
    *len = 0;
    if (v == NULL || json_is_null(v))
        return 1;
    if (json_is_string(v)) {
        if (has_nul(json_string_value(v), json_string_length(v)))
            return -1;
        *out = json_string_value(v);
        *len = json_string_length(v);
        return 0;
    }
    if (allow_int && json_is_integer(v)) {
        int n = snprintf(num, num_size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));

        if (n < 0 || (size_t)n >= num_size)
            return -1;
        *out = num;
        *len = (size_t)n;
        return 0;
    }
    return -1;
}

/*
 * A transactional logical message with the outbox prefix carries one event as a JSON
 * envelope: {"id": "...", "aggregate_type": "...", "aggregate_id": "...", "event_type":
 * "...", "payload": <any JSON>, "headers": {...} | null}. id and aggregate_id may also be
 * JSON integers; aggregate_type and event_type may be null/absent unless the topic
 * template uses them. A string payload is sent as the string's content (so text payloads
 * work); any other payload as compact JSON (see add_json: not PostgreSQL's jsonb text, and
 * numbers beyond 64-bit integers or doubles make the envelope unparsable - send such
 * payloads as a JSON string).
 */
static router_result_t route_message(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *errstr,
                                     size_t errstr_size) {
    char lsn[LSN_FMT_SIZE];
    char where[64];
    json_error_t jerr;
    const json_t *payload = NULL, *headers = NULL;
    parts_t p = {0};
    size_t len;
    const char *bad = NULL;

    if (r->message_prefix == NULL || rec->prefix == NULL || strcmp(rec->prefix, r->message_prefix) != 0)
        return ROUTER_SKIP;
    lsn_format(rec->lsn, lsn);
    if (!rec->transactional) {
        /* Published even if its transaction rolled back: never what an outbox wants. */
        snprintf(errstr, errstr_size,
                 "non-transactional outbox message at LSN %s: emit outbox events with "
                 "pg_logical_emit_message(true, ...) so they follow their transaction",
                 lsn);
        return ROUTER_INVALID;
    }
    snprintf(where, sizeof(where), "message at LSN %s", lsn);

    json_decref(r->root);
    /* JSON_DECODE_ANY: a scalar is reported as "not a JSON object", not as a syntax error */
    r->root = json_loadb(rec->content ? rec->content : "", rec->content_len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (r->root == NULL) {
        snprintf(errstr, errstr_size, "unparsable outbox message envelope at LSN %s: %s at line %d column %d", lsn,
                 jerr.text, jerr.line, jerr.column);
        return ROUTER_INVALID;
    }
    if (!json_is_object(r->root)) {
        snprintf(errstr, errstr_size, "unparsable outbox message envelope at LSN %s: not a JSON object", lsn);
        return ROUTER_INVALID;
    }
    if (envelope_str(r->root, "id", true, r->id_num, sizeof(r->id_num), &p.id, &len) != 0) {
        snprintf(errstr, errstr_size,
                 "unparsable outbox message envelope at LSN %s: \"id\" missing or not a "
                 "string",
                 lsn);
        return ROUTER_INVALID;
    }
    ev->id = p.id;
    if (envelope_str(r->root, "aggregate_id", true, r->key_num, sizeof(r->key_num), &p.aggregate_id,
                     &p.aggregate_id_len) != 0)
        bad = "\"aggregate_id\" missing or not a string";
    else if (envelope_str(r->root, "aggregate_type", false, NULL, 0, &p.aggregate_type, &len) < 0)
        bad = "\"aggregate_type\" is not a string";
    else if (envelope_str(r->root, "event_type", false, NULL, 0, &p.event_type, &p.event_type_len) < 0)
        bad = "\"event_type\" is not a string";
    else if ((payload = json_object_get(r->root, "payload")) == NULL || json_is_null(payload))
        bad = "\"payload\" missing or null";
    else if ((headers = json_object_get(r->root, "headers")) != NULL && !json_is_null(headers) &&
             !json_is_object(headers))
        bad = "\"headers\" is not a JSON object";
    if (bad != NULL) {
        snprintf(errstr, errstr_size, "unparsable outbox message envelope at LSN %s: event %s: %s", lsn, p.id, bad);
        return ROUTER_INVALID;
    }
    if (json_is_string(payload)) {
        p.value = json_string_value(payload);
        p.value_len = json_string_length(payload);
    } else {
        p.value_json = payload;
    }
    p.headers = json_is_object(headers) ? headers : NULL;
    return build_event(r, &p, where, ev, errstr, errstr_size);
}

router_result_t router_route(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *errstr,
                             size_t errstr_size) {
    memset(ev, 0, sizeof(*ev));
    switch (rec->action) {
    case W2J_INSERT:
        return route_row(r, rec, ev, errstr, errstr_size);
    case W2J_MESSAGE:
        return route_message(r, rec, ev, errstr, errstr_size);
    default:
        return ROUTER_SKIP;
    }
}
