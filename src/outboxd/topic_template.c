/* topic_template.c - the outbox.topic template: parsed once into literal text and
 * placeholders, then rendered into a Kafka topic name per event. */
#include "topic_template.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SEG_LITERAL, SEG_AGGREGATE_TYPE, SEG_AGGREGATE_ID, SEG_EVENT_TYPE } seg_kind_t;

typedef struct seg {
    seg_kind_t kind;
    const char *lit; /* SEG_LITERAL: points into the template's text */
    size_t lit_len;
} seg_t;

struct topic_template {
    char *text;
    seg_t *segs;
    size_t nsegs;
};

static bool is_topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/* Splits t->text into literal and placeholder segments. */
static int parse(topic_template_t *t, char *errstr, size_t errstr_size) {
    static const struct {
        const char *name;
        seg_kind_t kind;
    } placeholders[] = {
        {"aggregate_type", SEG_AGGREGATE_TYPE},
        {"routedByValue", SEG_AGGREGATE_TYPE},
        {"aggregate_id", SEG_AGGREGATE_ID},
        {"event_type", SEG_EVENT_TYPE},
    };
    const char *p = t->text;
    size_t max = strlen(p) + 1; /* more than enough segments */

    if (*p == '\0') {
        snprintf(errstr, errstr_size, "topic template is empty");
        return -1;
    }
    t->segs = calloc(max, sizeof(seg_t));
    if (t->segs == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    while (*p != '\0') {
        seg_t *s = &t->segs[t->nsegs];

        if (p[0] == '$' && p[1] == '{') {
            const char *name = p + 2;
            const char *end = strchr(name, '}');
            size_t i, n;

            if (end == NULL) {
                snprintf(errstr, errstr_size, "topic template \"%s\": unterminated \"${\"", t->text);
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
                         t->text, (int)n, name);
                return -1;
            }
            s->kind = placeholders[i].kind;
            p = end + 1;
        } else {
            s->kind = SEG_LITERAL;
            s->lit = p;
            while (*p != '\0' && !(p[0] == '$' && p[1] == '{')) {
                if (!is_topic_char(*p)) {
                    snprintf(errstr, errstr_size,
                             "topic template \"%s\": character '%c' is not allowed in a Kafka "
                             "topic name (only a-z A-Z 0-9 . _ -)",
                             t->text, *p);
                    return -1;
                }
                p++;
            }
            s->lit_len = (size_t)(p - s->lit);
        }
        t->nsegs++;
    }
    return 0;
}

topic_template_t *topic_template_new(const char *text, char *errstr, size_t errstr_size) {
    topic_template_t *t = calloc(1, sizeof(*t));

    if (t == NULL || (t->text = strdup(text)) == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        free(t);
        return NULL;
    }
    if (parse(t, errstr, errstr_size) != 0) {
        topic_template_destroy(t);
        return NULL;
    }
    return t;
}

void topic_template_destroy(topic_template_t *t) {
    if (t == NULL)
        return;
    free(t->segs);
    free(t->text);
    free(t);
}

bool topic_template_uses(const topic_template_t *t, topic_field_t field) {
    seg_kind_t want = field == TOPIC_FIELD_AGGREGATE_TYPE ? SEG_AGGREGATE_TYPE
                      : field == TOPIC_FIELD_AGGREGATE_ID ? SEG_AGGREGATE_ID
                                                          : SEG_EVENT_TYPE;
    for (size_t i = 0; t && i < t->nsegs; i++)
        if (t->segs[i].kind == want)
            return true;
    return false;
}

const char *topic_template_text(const topic_template_t *t) { return t->text; }

int topic_template_render(const topic_template_t *t, const topic_fields_t *f, strbuf_t *out, char *errstr,
                          size_t errstr_size) {
    out->len = 0;
    for (size_t i = 0; i < t->nsegs; i++) {
        const seg_t *s = &t->segs[i];
        const char *v = s->lit;
        size_t n = s->lit_len;
        const char *what = NULL;

        if (s->kind == SEG_AGGREGATE_TYPE) {
            v = f->aggregate_type;
            n = v ? strlen(v) : 0;
            what = "aggregate_type";
        } else if (s->kind == SEG_AGGREGATE_ID) {
            v = f->aggregate_id;
            n = f->aggregate_id_len;
            what = "aggregate_id";
        } else if (s->kind == SEG_EVENT_TYPE) {
            v = f->event_type;
            n = f->event_type_len;
            what = "event_type";
        }
        if (v == NULL) {
            snprintf(errstr, errstr_size, "%s is NULL but the topic template \"%s\" uses it", what, t->text);
            return -1;
        }
        if (strbuf_add(out, v, n) != 0) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
    }
    if (out->len == 0 || out->len > TOPIC_NAME_MAX || strcmp(out->p, ".") == 0 || strcmp(out->p, "..") == 0) {
        snprintf(errstr, errstr_size,
                 "topic \"%.300s\" is not a valid Kafka "
                 "topic name (1 to %d characters, not \".\" or \"..\")",
                 out->p, TOPIC_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < out->len; i++)
        if (!is_topic_char(out->p[i])) {
            snprintf(errstr, errstr_size,
                     "topic \"%.300s\" is not a valid Kafka topic name "
                     "(only a-z A-Z 0-9 . _ -)",
                     out->p);
            return -1;
        }
    return 0;
}
