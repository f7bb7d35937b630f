/* inbox_http.c - pure rules of the HTTP push: status classification, Kafka header -> HTTP
 * header mapping, static headers, last_error text, PostgreSQL error classification. */
#include "inbox_http.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "pgtext.h"
#include "record_headers.h"
#include "strlist.h"

inbox_http_verdict_t inbox_http_classify(long status) {
    if (status >= 200 && status <= 299)
        return INBOX_HTTP_DONE;
    if (status <= 0 || status == 408 || status == 429 || (status >= 500 && status <= 599))
        return INBOX_HTTP_RETRY;
    return INBOX_HTTP_DEAD;
}

bool inbox_http_reserved(const char *name) {
    static const char *const reserved[] = {"host",
                                           "content-length",
                                           "transfer-encoding",
                                           "connection",
                                           "keep-alive",
                                           "upgrade",
                                           "te",
                                           "trailer",
                                           "expect",
                                           "authorization",
                                           "cookie",
                                           "idempotency-key",
                                           "kafka-topic",
                                           "kafka-partition",
                                           "kafka-offset",
                                           "kafka-key",
                                           "kafka-tombstone",
                                           "inbox-attempt",
                                           NULL};
    if (!strncasecmp(name, "proxy-", 6))
        return true;
    for (int i = 0; reserved[i]; i++)
        if (!strcasecmp(name, reserved[i]))
            return true;
    return false;
}

static bool is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool inbox_http_is_token(const char *s) {
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

char *inbox_http_value(const void *v, size_t len) {
    const unsigned char *p = v;
    bool plain = pgtext_is_text(v, len);
    for (size_t i = 0; plain && i < len; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            plain = false;
    if (plain && len > 0 && (p[0] == ' ' || p[len - 1] == ' '))
        plain = false;
    if (plain) {
        char *s = malloc(len + 1);
        if (s) {
            memcpy(s, v, len);
            s[len] = '\0';
        }
        return s;
    }
    return pgtext_hex(v, len);
}

/* Percent-encoding writes upper-case digits (RFC 3986 2.1). */
static char upper_hex_digit(unsigned v) { return (char)toupper((unsigned char)hex_digit_char(v)); }

char *inbox_http_name(const char *prefix, const char *kname) {
    size_t pl = strlen(prefix), nl = strlen(kname);
    char *s = malloc(pl + 3 * nl + 1);
    if (!s)
        return NULL;
    memcpy(s, prefix, pl);
    char *o = s + pl;
    for (const unsigned char *p = (const unsigned char *)kname; *p; p++) {
        if (is_tchar(*p) && *p != '%') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = upper_hex_digit(*p >> 4);
            *o++ = upper_hex_digit(*p);
        }
    }
    *o = '\0';
    return s;
}

/* "name: value" or "name;" (new string). */
static char *line(const char *name, const char *value) {
    size_t nl = strlen(name), vl = strlen(value);
    char *s = malloc(nl + vl + 3);
    if (!s)
        return NULL;
    if (vl == 0)
        snprintf(s, nl + 2, "%s;", name);
    else
        snprintf(s, nl + vl + 3, "%s: %s", name, value);
    return s;
}

char **inbox_http_kafka_headers(const char *json, const char *prefix, const char *const *skip, size_t nskip, size_t *n,
                                bool *has_content_type) {
    *n = 0;
    *has_content_type = false;
    json_t *obj = NULL;
    if (json && *json) {
        obj = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!json_is_object(obj)) {
            json_decref(obj);
            return NULL;
        }
    }
    size_t cap = (obj ? json_object_size(obj) : 0) + 1;
    char **lines = calloc(cap, sizeof(char *));
    if (!lines)
        goto fail;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (!*k)
            continue;
        /* W3C Trace Context keeps its names: OpenTelemetry's HTTP instrumentation reads them. */
        bool trace = !strcmp(k, RECORD_HEADER_TRACEPARENT) || !strcmp(k, RECORD_HEADER_TRACESTATE);
        char *name = inbox_http_name(trace ? "" : prefix, k);
        if (!name)
            goto fail;
        bool skipped = inbox_http_reserved(name);
        for (size_t i = 0; !skipped && i < nskip; i++)
            skipped = !strcasecmp(name, skip[i]);
        if (skipped) {
            free(name);
            continue;
        }
        char *value = json_is_string(v) ? inbox_http_value(json_string_value(v), json_string_length(v)) : strdup("");
        char *l = value ? line(name, value) : NULL;
        if (l && !strcasecmp(name, "content-type"))
            *has_content_type = true;
        free(name);
        free(value);
        if (!l)
            goto fail;
        lines[(*n)++] = l;
    }
    json_decref(obj);
    return lines;
fail:
    json_decref(obj);
    strlist_free(lines);
    *n = 0;
    return NULL;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t l = strlen(s);
    while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t'))
        s[--l] = '\0';
    return s;
}

char **inbox_http_static_headers(const char *spec, size_t *n, char *errstr, size_t errstr_size) {
    *n = 0;
    char *copy = strdup(spec ? spec : "");
    size_t cap = 1;
    for (const char *p = spec ? spec : ""; *p; p++)
        cap += *p == ';';
    char **lines = calloc(cap + 1, sizeof(char *));
    if (!copy || !lines) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    char *save = NULL;
    for (char *item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        char *colon = strchr(item, ':');
        if (!colon) {
            if (!*trim(item))
                continue; /* "A: b;" - an empty item */
            snprintf(errstr, errstr_size,
                     "invalid deliver.headers entry '%s': expected 'Name: value', entries separated by ';'",
                     trim(item));
            goto fail;
        }
        *colon = '\0';
        char *name = trim(item), *value = trim(colon + 1);
        if (!inbox_http_is_token(name)) {
            snprintf(errstr, errstr_size,
                     "invalid header name '%s' in deliver.headers: use letters, digits and !#$%%&'*+-.^_`|~", name);
            goto fail;
        }
        if (inbox_http_reserved(name) && strcasecmp(name, "authorization") != 0 && strcasecmp(name, "cookie") != 0) {
            snprintf(errstr, errstr_size,
                     "deliver.headers cannot set %s: inboxd or the HTTP transport sets it (docs/inboxd.md)", name);
            goto fail;
        }
        for (const unsigned char *c = (const unsigned char *)value; *c; c++)
            if (*c < 0x20 || *c == 0x7f) {
                snprintf(errstr, errstr_size, "the value of %s in deliver.headers has a control character", name);
                goto fail;
            }
        if (!(lines[*n] = line(name, value))) {
            snprintf(errstr, errstr_size, "out of memory");
            goto fail;
        }
        (*n)++;
    }
    free(copy);
    return lines;
fail:
    free(copy);
    strlist_free(lines);
    *n = 0;
    return NULL;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    size_t l = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (l == 0 || l > n)
        return 0;
    return pgtext_is_text(p, l) || (l == 1 && p[0] == 0) ? l : 0;
}

void inbox_http_error_text(long status, const char *body, size_t body_len, size_t max_snippet, char *out,
                           size_t out_size) {
    if (out_size == 0)
        return;
    int w = snprintf(out, out_size, "HTTP %ld", status);
    if (w < 0 || (size_t)w + 2 >= out_size || body_len == 0 || max_snippet == 0)
        return;
    size_t o = (size_t)w;
    out[o++] = ':';
    out[o++] = ' ';
    const unsigned char *p = (const unsigned char *)body;
    size_t i = 0, budget = max_snippet;
    while (i < body_len) {
        size_t l = utf8_len(p + i, body_len - i);
        size_t outl = l ? l : 1;
        if (outl > budget || o + outl + 4 > out_size)
            break;
        if (l == 0)
            out[o++] = '?';
        else if (l == 1)
            out[o++] = (p[i] < 0x20 || p[i] == 0x7f) ? ' ' : (char)p[i];
        else
            memcpy(out + o, p + i, l), o += l;
        i += l ? l : 1;
        budget -= outl;
    }
    if (i < body_len && o + 3 < out_size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

long long inbox_http_retry_after_secs(long long retry_after, int backoff_max_ms) {
    if (retry_after <= 0)
        return 0;
    /* Not retry_after * 1000 > cap: a service may send any number of seconds (libFuzzer found
     * the overflow: Retry-After: 720575940379279360). */
    long long cap = backoff_max_ms > 0 ? backoff_max_ms / 1000 : 0;
    return retry_after > cap ? cap : retry_after;
}

inbox_pg_verdict_t inbox_http_pg_classify(const char *sqlstate) {
    if (!sqlstate || strlen(sqlstate) != 5)
        return INBOX_PG_RETRY;
    /* Class 42 (syntax error or access rule violation: 42501 insufficient privilege, 42703
     * undefined column, 42883 undefined function, 42P01 undefined table, 42804 datatype
     * mismatch, ...) and 3F000 (invalid schema name) describe the statement and the schema,
     * not the moment: retrying cannot help. Everything else - class 08 (connection), 57P0x
     * (shutdown), 40001/40P01 (serialization, deadlock), 25006 (read-only: a standby during a
     * failover), 53 (resources), 55P03 (lock), 57014 (cancelled) and errors with no known fix
     * - is retried. */
    if (!strncmp(sqlstate, "42", 2) || !strcmp(sqlstate, "3F000"))
        return INBOX_PG_FATAL;
    return INBOX_PG_RETRY;
}
