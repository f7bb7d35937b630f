/* router.c - maps decoded outbox rows and outbox logical messages to Kafka records (topic
 * from the template, key, value, headers) with the configured column mapping. */
#include "router.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "jsonw.h"
#include "strbuf.h"

/* A leaf partition of a configured (partitioned) table. */
typedef struct router_part {
    char *schema, *table;
    size_t of; /* index of the configured table */
} router_part_t;

struct router {
    route_config_t *cfg;
    router_payload_type_t *payload_types; /* per table of cfg */
    router_part_t *parts;                 /* router_set_partitions */
    size_t nparts;
    strbuf_t add_tables; /* router_add_tables_option's value */

    /* Reused across router_route calls. */
    json_t *root; /* parsed headers column or message envelope */
    strbuf_t topic;
    strbuf_t text; /* compact JSON of payloads and header values */
    strbuf_t bin;  /* decoded bytea payloads */
    strbuf_t key;  /* the key in outbox.key.format = json */
    strbuf_t raw;  /* compact JSON of a message payload, before outbox.value.format = json */
    router_header_t *hdrs;
    size_t hdrs_cap;
    size_t *hdr_off; /* per header: offset of its value in text, or SIZE_MAX */
    size_t hdr_off_cap;
    char id_num[32]; /* envelope "id" / "aggregate_id" given as JSON integers */
    char key_num[32];
};

/* ---- the router ----------------------------------------------------------------------- */

router_t *router_new(const router_options_t *opts, char *errstr, size_t errstr_size) {
    router_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->cfg = route_config_new(opts, errstr, errstr_size);
    if (r->cfg == NULL)
        goto fail;
    r->payload_types = calloc(r->cfg->ntables, sizeof(*r->payload_types)); /* ROUTER_PAYLOAD_TEXT */
    if (r->payload_types == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    return r;
fail:
    router_destroy(r);
    return NULL;
}

void router_destroy(router_t *r) {
    if (r == NULL)
        return;
    route_config_destroy(r->cfg);
    free(r->payload_types);
    for (size_t i = 0; i < r->nparts; i++) {
        free(r->parts[i].schema);
        free(r->parts[i].table);
    }
    free(r->parts);
    strbuf_free(&r->add_tables);
    json_decref(r->root);
    strbuf_free(&r->topic);
    strbuf_free(&r->text);
    strbuf_free(&r->bin);
    strbuf_free(&r->key);
    strbuf_free(&r->raw);
    free(r->hdrs);
    free(r->hdr_off);
    free(r);
}

size_t router_table_count(const router_t *r) { return r->cfg->ntables; }

void router_table_get(const router_t *r, size_t i, const char **schema, const char **table) {
    *schema = i < r->cfg->ntables ? r->cfg->tables[i].schema : NULL;
    *table = i < r->cfg->ntables ? r->cfg->tables[i].table : NULL;
}

const char *router_add_tables_option(router_t *r) {
    if (r->nparts == 0)
        return r->cfg->add_tables;
    r->add_tables.len = 0;
    if (strbuf_add(&r->add_tables, r->cfg->add_tables, strlen(r->cfg->add_tables)) != 0)
        return NULL;
    for (size_t i = 0; i < r->nparts; i++)
        if (route_config_add_table_item(&r->add_tables, r->parts[i].schema, r->parts[i].table) != 0)
            return NULL;
    return r->add_tables.p;
}

int router_set_partitions(router_t *r, size_t i, size_t n, const char *const *schemas, const char *const *tables) {
    size_t keep = 0;
    for (size_t k = 0; k < r->nparts; k++)
        if (r->parts[k].of != i)
            keep++;
    router_part_t *v = calloc(keep + n + 1, sizeof(*v));
    if (!v)
        return -1;
    size_t m = 0;
    for (size_t k = 0; k < n; k++, m++) {
        v[m] = (router_part_t){strdup(schemas[k]), strdup(tables[k]), i};
        if (!v[m].schema || !v[m].table) {
            for (size_t j = 0; j <= m; j++) {
                free(v[j].schema);
                free(v[j].table);
            }
            free(v);
            return -1;
        }
    }
    for (size_t k = 0; k < r->nparts; k++) {
        if (r->parts[k].of != i) {
            v[m++] = r->parts[k];
        } else {
            free(r->parts[k].schema);
            free(r->parts[k].table);
        }
    }
    free(r->parts);
    r->parts = v;
    r->nparts = m;
    return 0;
}

void router_set_payload_type(router_t *r, size_t i, router_payload_type_t type) {
    if (i < r->cfg->ntables)
        r->payload_types[i] = type;
}

router_payload_type_t router_get_payload_type(const router_t *r, size_t i) {
    return i < r->cfg->ntables ? r->payload_types[i] : ROUTER_PAYLOAD_TEXT;
}

router_payload_type_t router_payload_type_for(const char *pg_type) {
    return pg_type != NULL && strcmp(pg_type, "bytea") == 0 ? ROUTER_PAYLOAD_BYTEA : ROUTER_PAYLOAD_TEXT;
}

const char *router_id_header(const router_t *r) { return r->cfg->id_header; }

const char *router_topic_template(const router_t *r) { return topic_template_text(r->cfg->topic); }

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
    const char *value; /* NULL: compact JSON of value_json, or a NULL payload (value_null) */
    size_t value_len;
    const json_t *value_json;
    bool value_null;       /* a NULL payload that outbox.payload.null lets through */
    bool binary;           /* value holds the bytes of a bytea payload */
    const json_t *headers; /* JSON object or NULL */
} parts_t;

static bool has_nul(const char *s, size_t n) { return s != NULL && memchr(s, '\0', n) != NULL; }

/* Room for n headers (and their offsets). */
static int hdrs_reserve(router_t *r, size_t n) {
    router_header_t *h = array_grow(r->hdrs, &r->hdrs_cap, n, sizeof(*h), 8);
    size_t *o;

    if (h == NULL)
        return -1;
    r->hdrs = h;
    o = array_grow(r->hdr_off, &r->hdr_off_cap, n, sizeof(*o), 8);
    if (o == NULL)
        return -1;
    r->hdr_off = o;
    return 0;
}

/* Puts "event <id> (<where>): " before the message in errstr, exactly as one snprintf of
 * the whole would have (the same text, cut at the same length). */
static void name_event(char *errstr, size_t errstr_size, const char *id, const char *where) {
    char *msg = strdup(errstr);

    if (msg != NULL)
        snprintf(errstr, errstr_size, "event %s (%s): %s", id, where, msg);
    free(msg);
}

/* The record value in outbox.value.format, with outbox.payload.null applied: ev->value NULL
 * for no value (a tombstone); otherwise borrowed from p, or written to r->text at *off (the
 * caller resolves the pointer once r->text stops growing). Returns 0 or -1 (out of memory). */
static int encode_value(router_t *r, const parts_t *p, outbox_event_t *ev, size_t *off) {
    const route_config_t *cfg = r->cfg;
    bool json = cfg->value_format == ROUTE_FORMAT_JSON;
    const char *text = p->value;
    size_t len = p->value_len;
    int rc;

    ev->value = NULL;
    ev->value_len = 0;
    if (p->value_null) {
        if (cfg->payload_null == ROUTE_NULL_NULL && json) { /* JsonConverter's null */
            ev->value = "null";
            ev->value_len = 4;
        }
        return 0;
    }
    if (!json && text != NULL) {
        ev->value = text;
        ev->value_len = len;
        return 0;
    }
    if (text == NULL) { /* a message's JSON payload: compact JSON first */
        strbuf_t *dst = json ? &r->raw : &r->text;
        size_t from = dst->len;

        if (json)
            r->raw.len = from = 0;
        if (jsonw_value(dst, p->value_json) != 0)
            return -1;
        if (!json) {
            *off = from;
            ev->value_len = r->text.len - from;
            return strbuf_addc(&r->text, '\0');
        }
        text = r->raw.p;
        len = r->raw.len;
    }
    *off = r->text.len;
    rc = p->binary ? jsonw_base64_string(&r->text, (const unsigned char *)text, len)
                   : jsonw_java_string(&r->text, text, len);
    if (rc != 0)
        return -1;
    ev->value_len = r->text.len - *off;
    return strbuf_addc(&r->text, '\0');
}

/* The record key in outbox.key.format. Returns 0 or -1 (out of memory). */
static int encode_key(router_t *r, const parts_t *p, outbox_event_t *ev) {
    ev->key = p->aggregate_id;
    ev->key_len = p->aggregate_id_len;
    if (r->cfg->key_format != ROUTE_FORMAT_JSON)
        return 0;
    r->key.len = 0;
    if (jsonw_java_string(&r->key, p->aggregate_id, p->aggregate_id_len) != 0 || strbuf_addc(&r->key, '\0') != 0)
        return -1;
    ev->key = r->key.p;
    ev->key_len = r->key.len - 1;
    return 0;
}

/* Fills *ev from p: topic, key, value, headers. `where` names the source for errors
 * ("public.outbox row", "message at LSN 0/1"). */
static router_result_t build_event(router_t *r, const parts_t *p, const char *where, outbox_event_t *ev, char *errstr,
                                   size_t errstr_size) {
    const route_config_t *cfg = r->cfg;
    const topic_fields_t fields = {.aggregate_type = p->aggregate_type,
                                   .aggregate_id = p->aggregate_id,
                                   .aggregate_id_len = p->aggregate_id_len,
                                   .event_type = p->event_type,
                                   .event_type_len = p->event_type_len};
    size_t value_off = SIZE_MAX;
    size_t nh = 0;

    if (topic_template_render(cfg->topic, &fields, &r->topic, errstr, errstr_size) != 0) {
        name_event(errstr, errstr_size, p->id, where);
        return ROUTER_INVALID;
    }

    r->text.len = 0;
    if (encode_value(r, p, ev, &value_off) != 0 || encode_key(r, p, ev) != 0)
        goto oom;

    /* headers: id, event type, extra columns, then the members of the headers object */
    if (hdrs_reserve(r, 2 + cfg->nheader_columns + (p->headers ? json_object_size(p->headers) : 0)) != 0)
        goto oom;
    r->hdrs[nh] = (router_header_t){cfg->id_header, p->id, strlen(p->id)};
    r->hdr_off[nh++] = SIZE_MAX;
    if (cfg->type_header != NULL) {
        r->hdrs[nh] = (router_header_t){cfg->type_header, p->event_type, p->event_type_len};
        r->hdr_off[nh++] = SIZE_MAX;
    }
    for (size_t i = 0; p->row && i < cfg->nheader_columns; i++) {
        const route_header_column_t *hc = &cfg->header_columns[i];
        const w2j_column_t *col = w2j_column_find(p->row, hc->column);
        if (col == NULL) {
            snprintf(errstr, errstr_size, "event %s (%s): column '%s' (outbox.header.columns) missing in the row",
                     p->id, where, hc->column);
            return ROUTER_INVALID;
        }
        r->hdrs[nh] = (router_header_t){hc->header, col->value, col->value ? col->value_len : 0};
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
                if (jsonw_value(&r->text, v) != 0)
                    goto oom;
                h->value_len = r->text.len - r->hdr_off[nh];
                if (strbuf_addc(&r->text, '\0') != 0)
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
    ev->event_type = p->event_type;
    ev->nheaders = nh;
    ev->headers = r->hdrs;
    return ROUTER_EVENT;
oom:
    snprintf(errstr, errstr_size, "event %s (%s): out of memory", p->id, where);
    return ROUTER_INVALID;
}

/* ---- outbox rows ---------------------------------------------------------------------- */

size_t router_table_index(const router_t *r, const char *schema, const char *table) {
    if (schema == NULL || table == NULL)
        return SIZE_MAX;
    for (size_t i = 0; i < r->cfg->ntables; i++)
        if (strcmp(r->cfg->tables[i].table, table) == 0 && strcmp(r->cfg->tables[i].schema, schema) == 0)
            return i;
    for (size_t i = 0; i < r->nparts; i++)
        if (strcmp(r->parts[i].table, table) == 0 && strcmp(r->parts[i].schema, schema) == 0)
            return r->parts[i].of;
    return SIZE_MAX;
}

/* jansson cannot hold integers beyond 64 bits (json_error_numeric_overflow), which PostgreSQL's jsonb
 * accepts. Copies the JSON text s into out with every integer of more than 18 digits
 * written as a string, so a header value 12345678901234567890 keeps its exact digits.
 * Returns 0 or -1 (out of memory). */
static int quote_big_ints(const char *s, size_t n, strbuf_t *out) {
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
            if (strbuf_addc(out, ch) != 0)
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
            if ((quote && strbuf_addc(out, '"') != 0) || strbuf_add(out, s + i, j - i) != 0 ||
                (quote && strbuf_addc(out, '"') != 0))
                return -1;
            i = j;
            continue;
        }
        if (strbuf_addc(out, ch) != 0)
            return -1;
        i++;
    }
    return 0;
}

/* Parses the headers column text into r->root (a JSON object). Returns 0, or -1 with errstr
 * (after "event <id> (<where>): "). */
static int load_headers(router_t *r, const w2j_column_t *col, const parts_t *p, const char *where, char *errstr,
                        size_t errstr_size) {
    const char *name = r->cfg->col_headers;
    json_error_t jerr;

    json_decref(r->root);
    r->root = json_loadb(col->value, col->value_len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (r->root == NULL && json_error_code(&jerr) == json_error_numeric_overflow) {
        strbuf_t q = {0};
        if (quote_big_ints(col->value, col->value_len, &q) == 0)
            r->root = json_loadb(q.p, q.len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
        strbuf_free(&q);
    }
    if (r->root == NULL) {
        snprintf(errstr, errstr_size,
                 "event %s (%s): headers (column '%s') is not valid "
                 "JSON: %s at position %d",
                 p->id, where, name, jerr.text, jerr.position);
        return -1;
    }
    if (!json_is_object(r->root)) {
        snprintf(errstr, errstr_size,
                 "event %s (%s): headers (column '%s') is not a JSON "
                 "object",
                 p->id, where, name);
        return -1;
    }
    return 0;
}

/* Decodes a bytea payload (hex text) into r->bin and points p->value at it. Returns 0, or
 * -1 with errstr. */
static int decode_bytea(router_t *r, parts_t *p, const char *where, char *errstr, size_t errstr_size) {
    const char *name = r->cfg->col_payload;
    size_t bad = 0;

    r->bin.len = 0;
    if (strbuf_reserve(&r->bin, p->value_len / 2) != 0) {
        snprintf(errstr, errstr_size, "event %s (%s): out of memory", p->id, where);
        return -1;
    }
    if (w2j_bytea_decode(p->value, p->value_len, (unsigned char *)r->bin.p, &r->bin.len, &bad) != 0) {
        if (bad >= p->value_len)
            snprintf(errstr, errstr_size,
                     "event %s (%s): bytea payload (column '%s') is not hex text: odd number of "
                     "digits (%zu characters)",
                     p->id, where, name, p->value_len);
        else
            snprintf(errstr, errstr_size,
                     "event %s (%s): bytea payload (column '%s') is not hex text: character 0x%02x "
                     "at offset %zu",
                     p->id, where, name, (unsigned char)p->value[bad], bad);
        return -1;
    }
    r->bin.p[r->bin.len] = '\0';
    p->value = r->bin.p;
    p->value_len = r->bin.len;
    p->binary = true;
    return 0;
}

static router_result_t route_row(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *errstr,
                                 size_t errstr_size) {
    const route_config_t *cfg = r->cfg;
    size_t t = router_table_index(r, rec->schema, rec->table);
    const w2j_column_t *id, *aggregate_type, *aggregate_id, *event_type, *payload, *headers = NULL;
    const struct {
        const char *name;
        const w2j_column_t **col;
    } required[] = {{cfg->col_id, &id},
                    {cfg->col_aggregate_type, &aggregate_type},
                    {cfg->col_aggregate_id, &aggregate_id},
                    {cfg->col_event_type, &event_type},
                    {cfg->col_payload, &payload}};
    char where[300];
    parts_t p = {.row = rec};

    if (t == SIZE_MAX)
        return ROUTER_SKIP;
    snprintf(where, sizeof(where), "%s.%s row", cfg->tables[t].schema, cfg->tables[t].table);

    /* The id first, so that later errors can name the event. */
    id = w2j_column_find(rec, cfg->col_id);
    if (id != NULL && id->value != NULL && !has_nul(id->value, id->value_len))
        ev->id = p.id = id->value;
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        *required[i].col = w2j_column_find(rec, required[i].name);
        if (*required[i].col == NULL) {
            snprintf(errstr, errstr_size, "column '%s' missing in %s", required[i].name, where);
            return ROUTER_INVALID;
        }
    }
    /* A table without the headers column is fine: only the id and type headers. */
    if (cfg->col_headers != NULL)
        headers = w2j_column_find(rec, cfg->col_headers);
    if (p.id == NULL) {
        snprintf(errstr, errstr_size, "outbox event in %s (LSN %s) has a %s id (column '%s')", where,
                 lsn_format(rec->lsn, (char[LSN_FMT_SIZE]){0}), id->value == NULL ? "NULL" : "NUL-containing",
                 cfg->col_id);
        return ROUTER_INVALID;
    }
    if (aggregate_id->value == NULL) {
        snprintf(errstr, errstr_size, "event %s (%s): aggregate id (column '%s') is NULL", p.id, where,
                 cfg->col_aggregate_id);
        return ROUTER_INVALID;
    }
    if (payload->value == NULL && cfg->payload_null == ROUTE_NULL_INVALID) {
        snprintf(errstr, errstr_size,
                 "event %s (%s): payload (column '%s') is NULL (outbox.payload.null = invalid; null or tombstone "
                 "publish it without a value)",
                 p.id, where, cfg->col_payload);
        return ROUTER_INVALID;
    }
    if (has_nul(aggregate_type->value, aggregate_type->value_len) ||
        has_nul(event_type->value, event_type->value_len)) {
        snprintf(errstr, errstr_size,
                 "event %s (%s): aggregate type or event type contains "
                 "a NUL character",
                 p.id, where);
        return ROUTER_INVALID;
    }
    p.aggregate_type = aggregate_type->value;
    p.aggregate_id = aggregate_id->value;
    p.aggregate_id_len = aggregate_id->value_len;
    p.event_type = event_type->value;
    p.event_type_len = event_type->value_len;
    p.value = payload->value;
    p.value_len = payload->value_len;
    p.value_null = payload->value == NULL;
    if (!p.value_null && r->payload_types[t] == ROUTER_PAYLOAD_BYTEA &&
        decode_bytea(r, &p, where, errstr, errstr_size) != 0)
        return ROUTER_INVALID;
    if (headers != NULL && headers->value != NULL) {
        if (load_headers(r, headers, &p, where, errstr, errstr_size) != 0)
            return ROUTER_INVALID;
        p.headers = r->root;
    }
    return build_event(r, &p, where, ev, errstr, errstr_size);
}

/* ---- outbox messages ------------------------------------------------------------------ */

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
 * work); any other payload as compact JSON (see jsonw_value: not PostgreSQL's jsonb text, and
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

    if (r->cfg->message_prefix == NULL || rec->prefix == NULL || strcmp(rec->prefix, r->cfg->message_prefix) != 0)
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
    else if ((payload = json_object_get(r->root, "payload")) == NULL)
        bad = "\"payload\" missing";
    else if (json_is_null(payload) && r->cfg->payload_null == ROUTE_NULL_INVALID)
        bad = "\"payload\" is null (outbox.payload.null = invalid)";
    else if ((headers = json_object_get(r->root, "headers")) != NULL && !json_is_null(headers) &&
             !json_is_object(headers))
        bad = "\"headers\" is not a JSON object";
    if (bad != NULL) {
        snprintf(errstr, errstr_size, "unparsable outbox message envelope at LSN %s: event %s: %s", lsn, p.id, bad);
        return ROUTER_INVALID;
    }
    if (json_is_null(payload)) {
        p.value_null = true;
    } else if (json_is_string(payload)) {
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
