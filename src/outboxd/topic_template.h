/* topic_template.h - the outbox.topic template: parsed once into literal text and
 * placeholders, then rendered into a Kafka topic name per event and checked against
 * Kafka's topic name rules. Pure. */
#ifndef OUTBOXD_TOPIC_TEMPLATE_H
#define OUTBOXD_TOPIC_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define TOPIC_NAME_MAX 249 /* Kafka's longest topic name */

typedef struct topic_template topic_template_t;

/* The event fields a template may use. A NULL field is an error only when the template
 * uses it. aggregate_type is NUL-terminated; the other two carry their length. */
typedef struct topic_fields {
    const char *aggregate_type; /* ${aggregate_type}, ${routedByValue} */
    const char *aggregate_id;   /* ${aggregate_id} */
    size_t aggregate_id_len;
    const char *event_type; /* ${event_type} */
    size_t event_type_len;
} topic_fields_t;

/* Parses text (copied), e.g. "outbox.event.${aggregate_type}": placeholders ${aggregate_type},
 * ${aggregate_id}, ${event_type} and ${routedByValue} (Debezium's name for aggregate_type);
 * the literal text may hold only the characters of a topic name (a-z A-Z 0-9 . _ -).
 * Returns a new template, or NULL with errstr on an empty text, an unknown or unterminated
 * placeholder or a bad character. */
topic_template_t *topic_template_new(const char *text, char *errstr, size_t errstr_size);
void topic_template_destroy(topic_template_t *t); /* accepts NULL */

/* The fields a template may use, for topic_template_uses. */
typedef enum { TOPIC_FIELD_AGGREGATE_TYPE, TOPIC_FIELD_AGGREGATE_ID, TOPIC_FIELD_EVENT_TYPE } topic_field_t;

/* true when the template has a placeholder for field (${routedByValue} counts as
 * ${aggregate_type}). */
bool topic_template_uses(const topic_template_t *t, topic_field_t field);

/* The template as written (borrowed). */
const char *topic_template_text(const topic_template_t *t);

/* Writes the topic for f into out (replacing its contents; out->p is NUL-terminated).
 * Returns 0, or -1 with errstr when a field the template uses is NULL, when the result is
 * not a valid Kafka topic name, or when out of memory. */
int topic_template_render(const topic_template_t *t, const topic_fields_t *f, strbuf_t *out, char *errstr,
                          size_t errstr_size);

#endif
