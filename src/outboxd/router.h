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
    const char *header_columns; /* "col[:header], ...": row columns sent as headers (after the
                                   id and type headers); NULL or "" = none */
    const char *type_header;    /* header name for the event type, default "event_type";
                                   "" = no event type header */
} router_options_t;

/* How a table's payload column text (as wal2json sends it) becomes the record value. */
typedef enum {
    ROUTER_PAYLOAD_TEXT = 0, /* as is: jsonb, json, text, varchar, numbers, ... (the default) */
    ROUTER_PAYLOAD_BYTEA = 1 /* hex text (00ff41; \x00ff41 for a domain over bytea) decoded
                                into the raw bytes */
} router_payload_type_t;

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
    const char *value; /* payload text as PostgreSQL renders it, or the raw bytes of a bytea
                          payload (may hold NUL bytes: use value_len; a NUL follows the end) */
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

/* Sets how the payload column of table i (router_table_get order) is read; every table
 * starts as ROUTER_PAYLOAD_TEXT. The relay sets it from the column's type at each connect.
 * An out-of-range i is ignored. */
void router_set_payload_type(router_t *r, size_t i, router_payload_type_t type);
router_payload_type_t router_get_payload_type(const router_t *r, size_t i);

/* The payload type for a PostgreSQL type name as pg_preflight_table reports it (domains
 * resolved to their base type): "bytea" -> ROUTER_PAYLOAD_BYTEA, anything else (NULL
 * included) -> ROUTER_PAYLOAD_TEXT. */
router_payload_type_t router_payload_type_for(const char *pg_type);

/* Decodes hex[0..n) (digits in either case, optionally after a leading \x) into out, which
 * must have room for n / 2 bytes, and sets *out_len. Returns 0, or -1 on an odd number of
 * digits or a non-hex character, with *bad_pos = offset in hex of the problem. Pure. */
int router_hex_decode(const char *hex, size_t n, unsigned char *out, size_t *out_len, size_t *bad_pos);

router_result_t router_route(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *errstr,
                             size_t errstr_size);

#endif
