/* route_config.c - parses and validates the outbox.* routing options: the table list (SQL
 * identifiers), wal2json's add-tables value, the topic template, column and header names. */
#include "route_config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

#define DEFAULT_TABLES "public.outbox"
#define DEFAULT_TEMPLATE "outbox.event.${aggregate_type}"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* ---- table list ----------------------------------------------------------------------- */

/* One identifier of a table list: "quoted" (as written, "" for a quote) or unquoted
 * (folded to lower case, as PostgreSQL does). Returns a new string or NULL with errstr. */
static char *parse_ident(const char **sp, char *errstr, size_t errstr_size) {
    const char *p = *sp;
    strbuf_t b = {0};

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
            if (strbuf_addc(&b, *p) != 0)
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
            if (strbuf_addc(&b, c) != 0)
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
    strbuf_free(&b);
    return NULL;
}

static int parse_tables(route_config_t *c, const char *list, char *errstr, size_t errstr_size) {
    const char *p = list;
    char why[200];

    for (;;) {
        char *a, *b = NULL;
        route_table_t *t;

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
        t = realloc(c->tables, (c->ntables + 1) * sizeof(*t));
        if (t == NULL) {
            free(a);
            free(b);
            snprintf(why, sizeof(why), "out of memory");
            goto bad;
        }
        c->tables = t;
        t = &c->tables[c->ntables];
        if (b == NULL) {
            t->table = a;
            t->schema = strdup("public");
        } else {
            t->schema = a;
            t->table = b;
        }
        c->ntables++;
        if (t->schema == NULL) {
            snprintf(why, sizeof(why), "out of memory");
            goto bad;
        }
        for (size_t i = 0; i + 1 < c->ntables; i++)
            if (strcmp(c->tables[i].schema, t->schema) == 0 && strcmp(c->tables[i].table, t->table) == 0) {
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
static int add_escaped(strbuf_t *b, const char *name) {
    for (const char *p = name; *p != '\0'; p++) {
        if ((strchr(".,\\*'", *p) != NULL || is_space(*p)) && strbuf_addc(b, '\\') != 0)
            return -1;
        if (strbuf_addc(b, *p) != 0)
            return -1;
    }
    return 0;
}

int route_config_add_table_item(strbuf_t *b, const char *schema, const char *table) {
    return (b->len > 0 && strbuf_addc(b, ',') != 0) || add_escaped(b, schema) != 0 || strbuf_addc(b, '.') != 0 ||
                   add_escaped(b, table) != 0
               ? -1
               : 0;
}

static int build_add_tables(route_config_t *c) {
    strbuf_t b = {0};

    for (size_t i = 0; i < c->ntables; i++)
        if (route_config_add_table_item(&b, c->tables[i].schema, c->tables[i].table) != 0) {
            strbuf_free(&b);
            return -1;
        }
    c->add_tables = b.p;
    return 0;
}

/* ---- names ---------------------------------------------------------------------------- */

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

/* The column names, defaults applied; "" only for the headers column (= none). */
static int copy_columns(route_config_t *c, const router_columns_t *cols, char *errstr, size_t errstr_size) {
    if (copy_opt(&c->col_id, cols->id, "id", false, "outbox.column.id", errstr, errstr_size) != 0 ||
        copy_opt(&c->col_aggregate_type, cols->aggregate_type, "aggregate_type", false, "outbox.column.aggregate_type",
                 errstr, errstr_size) != 0 ||
        copy_opt(&c->col_aggregate_id, cols->aggregate_id, "aggregate_id", false, "outbox.column.aggregate_id", errstr,
                 errstr_size) != 0 ||
        copy_opt(&c->col_event_type, cols->event_type, "event_type", false, "outbox.column.event_type", errstr,
                 errstr_size) != 0 ||
        copy_opt(&c->col_payload, cols->payload, "payload", false, "outbox.column.payload", errstr, errstr_size) != 0)
        return -1;
    /* As router_options_t says: NULL or "" = no headers column. */
    return copy_opt(&c->col_headers, cols->headers, NULL, true, "outbox.column.headers", errstr, errstr_size);
}

/* "col[:header], ..." -> c->header_columns (header defaults to the column name). */
static int parse_header_columns(route_config_t *c, const char *spec, char *errstr, size_t errstr_size) {
    if (spec == NULL || *spec == '\0')
        return 0;
    size_t max = 1;
    for (const char *s = spec; *s; s++)
        max += *s == ',';
    c->header_columns = calloc(max, sizeof(*c->header_columns));
    if (!c->header_columns)
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
        route_header_column_t *hc = &c->header_columns[c->nheader_columns++];
        hc->column = strndup(cb, (size_t)(ce - cb));
        hc->header = strndup(hb, (size_t)(he - hb));
        if (!hc->column || !hc->header)
            goto oom;
        s = *end ? end + 1 : end;
    }
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

/* Index of v (NULL = the first) in the NULL-terminated names, or -1 with errstr. */
static int parse_choice(const char *v, const char *const *names, const char *what, char *errstr, size_t errstr_size) {
    if (v == NULL)
        return 0;
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    strbuf_t all = {0};
    for (int i = 0; names[i] != NULL; i++)
        if ((i > 0 && strbuf_add(&all, ", ", 2) != 0) || strbuf_add(&all, names[i], strlen(names[i])) != 0)
            break;
    snprintf(errstr, errstr_size, "%s \"%s\": expected one of %s", what, v, all.p ? all.p : "?");
    strbuf_free(&all);
    return -1;
}

/* outbox.key.format, outbox.value.format, outbox.payload.null. */
static int parse_encodings(route_config_t *c, const router_options_t *o, char *errstr, size_t errstr_size) {
    static const char *const formats[] = {"raw", "json", NULL};
    static const char *const nulls[] = {"invalid", "null", "tombstone", NULL};
    int k = parse_choice(o->key_format, formats, "outbox.key.format", errstr, errstr_size);
    int v = k < 0 ? -1 : parse_choice(o->value_format, formats, "outbox.value.format", errstr, errstr_size);
    int n = v < 0 ? -1 : parse_choice(o->payload_null, nulls, "outbox.payload.null", errstr, errstr_size);

    if (n < 0)
        return -1;
    c->key_format = (route_format_t)k;
    c->value_format = (route_format_t)v;
    c->payload_null = (route_null_t)n;
    return 0;
}

/* ---- the config ----------------------------------------------------------------------- */

route_config_t *route_config_new(const router_options_t *opts, char *errstr, size_t errstr_size) {
    router_options_t none = {0};
    route_config_t *c = calloc(1, sizeof(*c));

    if (opts == NULL)
        opts = &none;
    if (c == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    const char *tpl = opts->topic_template != NULL ? opts->topic_template : DEFAULT_TEMPLATE;
    if (*tpl == '\0') {
        snprintf(errstr, errstr_size, "outbox.topic must not be empty");
        goto fail;
    }
    if ((c->topic = topic_template_new(tpl, errstr, errstr_size)) == NULL)
        goto fail;
    if (parse_tables(c, opts->tables != NULL ? opts->tables : DEFAULT_TABLES, errstr, errstr_size) != 0)
        goto fail;
    if (build_add_tables(c) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    if (copy_columns(c, &opts->columns, errstr, errstr_size) != 0 ||
        /* NULL or "" = no outbox messages. */
        copy_opt(&c->message_prefix, opts->message_prefix, NULL, true, "outbox.message.prefix", errstr, errstr_size) !=
            0 ||
        copy_opt(&c->id_header, opts->id_header, "id", false, "outbox.header.id", errstr, errstr_size) != 0 ||
        /* "" = no event type header (Debezium's router sends only the id header). */
        copy_opt(&c->type_header, opts->type_header, "event_type", true, "outbox.header.event_type", errstr,
                 errstr_size) != 0 ||
        parse_header_columns(c, opts->header_columns, errstr, errstr_size) != 0 ||
        parse_encodings(c, opts, errstr, errstr_size) != 0)
        goto fail;
    return c;
fail:
    route_config_destroy(c);
    return NULL;
}

void route_config_destroy(route_config_t *c) {
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nheader_columns; i++) {
        free(c->header_columns[i].column);
        free(c->header_columns[i].header);
    }
    free(c->header_columns);
    for (size_t i = 0; i < c->ntables; i++) {
        free(c->tables[i].schema);
        free(c->tables[i].table);
    }
    free(c->tables);
    free(c->add_tables);
    topic_template_destroy(c->topic);
    free(c->col_id);
    free(c->col_aggregate_type);
    free(c->col_aggregate_id);
    free(c->col_event_type);
    free(c->col_payload);
    free(c->col_headers);
    free(c->message_prefix);
    free(c->id_header);
    free(c->type_header);
    free(c);
}
