/* router.h - turns a decoded outbox row or outbox logical message into a Kafka record:
 * topic (from a template), key, value and headers, using a configurable column mapping.
 * Pure (jansson only). */
#ifndef OUTBOXD_ROUTER_H
#define OUTBOXD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "w2j_decode.h"

/* Column names of the outbox table (all borrowed by router_new: copy is made). */
typedef struct router_columns {
    const char *id;             /* default "id" */
    const char *aggregate_type; /* default "aggregate_type" */
    const char *aggregate_id;   /* default "aggregate_id" */
    const char *event_type;     /* default "event_type" */
    const char *payload;        /* default "payload" */
    const char *headers;        /* default "headers"; NULL or "" = no headers column */
} router_columns_t;

typedef struct router_options {
    const char *tables;         /* comma list of "schema.table" (default schema public);
                                   NULL = "public.outbox". Unquoted names fold to lower case
                                   as in SQL; "Quoted" names are kept as written ("" = ") */
    const char *topic_template; /* NULL = "outbox.event.${aggregate_type}"; also ${aggregate_id},
                                   ${event_type}, ${routedByValue} (= aggregate_type) */
    router_columns_t columns;
    const char *message_prefix; /* logical message prefix, default "outbox"; NULL = none */
    const char *id_header;      /* header name for the event id, default "id" */
    const char *type_header;    /* header name for the event type, default "event_type" */
} router_options_t;

typedef struct router_header {
    const char *name; /* borrowed from the router */
    const char *value;
    size_t value_len;
} router_header_t;

/* One Kafka record. Every pointer is borrowed from the router and valid until the next
 * router_route call or router_destroy. */
typedef struct outbox_event {
    const char *id;
    const char *topic;
    const char *key; /* aggregate id */
    size_t key_len;
    const char *value; /* payload text as PostgreSQL renders it */
    size_t value_len;
    const char *event_type;
    size_t nheaders;
    const router_header_t *headers;
} outbox_event_t;

typedef enum {
    ROUTER_EVENT = 0,   /* *ev filled: publish it */
    ROUTER_SKIP = 1,    /* not an outbox record (other table, other message prefix, not I/M) */
    ROUTER_INVALID = 2  /* an outbox record that cannot be published; errstr says why and
                           ev->id is set when the id could be read */
} router_result_t;

typedef struct router router_t;

/* Returns NULL with errstr on a bad template or table list. */
router_t *router_new(const router_options_t *opts, char *errstr, size_t errstr_size);
void router_destroy(router_t *r); /* accepts NULL */

/* Number of configured tables and each as canonical schema and table name (borrowed). */
size_t router_table_count(const router_t *r);
void router_table_get(const router_t *r, size_t i, const char **schema, const char **table);

/* Builds the wal2json "add-tables" option value for the configured tables, escaping '.', ',',
 * '\', '*', '\'' and whitespace inside names with '\' (wal2json's add-tables syntax). */
const char *router_add_tables_option(const router_t *r);

router_result_t router_route(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *errstr,
                             size_t errstr_size);

#endif
