/* route_config.h - the outbox.* routing options as configured (router_options_t) and their
 * parsed, validated form (route_config_t): tables, wal2json's add-tables value, topic
 * template, column names and header names. Pure. */
#ifndef OUTBOXD_ROUTE_CONFIG_H
#define OUTBOXD_ROUTE_CONFIG_H

#include <stddef.h>

#include "strbuf.h"
#include "topic_template.h"

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
    const char *key_format;     /* "raw" (default, NULL) or "json" (route_format_t) */
    const char *value_format;   /* "raw" (default, NULL) or "json" */
    const char *payload_null;   /* "invalid" (default, NULL), "null" or "tombstone" (route_null_t) */
} router_options_t;

/* How the record key or value is written (outbox.key.format, outbox.value.format). */
typedef enum {
    ROUTE_FORMAT_RAW = 0, /* the bytes as they are: the aggregate id; the payload's text or bytea bytes */
    ROUTE_FORMAT_JSON = 1 /* as Kafka Connect's JsonConverter (schemas.enable=false) writes a string
                             (jsonw_java_string), or a bytea payload (jsonw_base64_string) */
} route_format_t;

/* What a NULL payload becomes (outbox.payload.null). */
typedef enum {
    ROUTE_NULL_INVALID = 0,  /* an invalid event (outbox.on_invalid) */
    ROUTE_NULL_NULL = 1,     /* a null payload in the value format: no value (a tombstone) when raw,
                                the 4 bytes null when json: what Debezium's router sends by default */
    ROUTE_NULL_TOMBSTONE = 2 /* no value, whatever the value format (route.tombstone.on.empty.payload) */
} route_null_t;

/* One outbox table, canonical (unquoted, case as PostgreSQL stores it). */
typedef struct route_table {
    char *schema;
    char *table;
} route_table_t;

/* outbox.header.columns: row column `column` is sent as header `header`. */
typedef struct route_header_column {
    char *column;
    char *header;
} route_header_column_t;

/* The options with defaults applied; every string is owned by the config. */
typedef struct route_config {
    route_table_t *tables; /* at least one, no two alike */
    size_t ntables;
    char *add_tables; /* wal2json's add-tables value for the tables */
    topic_template_t *topic;
    char *col_id; /* column names, never NULL */
    char *col_aggregate_type;
    char *col_aggregate_id;
    char *col_event_type;
    char *col_payload;
    char *col_headers;    /* NULL: no headers column */
    char *message_prefix; /* NULL: messages are not outbox events */
    char *id_header;
    char *type_header; /* NULL: no event type header */
    route_header_column_t *header_columns;
    size_t nheader_columns;
    route_format_t key_format;
    route_format_t value_format;
    route_null_t payload_null;
} route_config_t;

/* Appends "schema.table" to wal2json's add-tables value in b (after a ',' when b is not
 * empty), with the names escaped. Returns 0 or -1 (out of memory). */
int route_config_add_table_item(strbuf_t *b, const char *schema, const char *table);

/* Parses and validates opts (NULL = all defaults). Returns a new config, or NULL with errstr
 * naming the option and what is wrong with it. */
route_config_t *route_config_new(const router_options_t *opts, char *errstr, size_t errstr_size);
void route_config_destroy(route_config_t *c); /* accepts NULL */

#endif
