/* router.h - turns a decoded outbox row or outbox logical message into a Kafka record:
 * topic (from a template), key, value and headers, using a configurable column mapping
 * (route_config.h). Pure (jansson only). */
#ifndef OUTBOXD_ROUTER_H
#define OUTBOXD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route_config.h" /* router_options_t, router_columns_t */
#include "w2j_decode.h"

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
    int64_t commit_us; /* commit time of the event's transaction (microseconds since the epoch),
                          0 when unknown: router_route leaves it 0, the relay sets it; kproducer
                          sends it as the RECORD_HEADER_COMMIT_TIME header */
} outbox_event_t;

typedef enum {
    ROUTER_EVENT = 0,  /* *ev filled: publish it */
    ROUTER_SKIP = 1,   /* not an outbox record (other table, other message prefix, not I/M) */
    ROUTER_INVALID = 2 /* an outbox record that cannot be published; errstr says why and
                          ev->id is set when the id could be read */
} router_result_t;

typedef struct router router_t;

/* Returns NULL with errstr on an invalid option (see route_config_new). */
router_t *router_new(const router_options_t *opts, char *errstr, size_t errstr_size);
void router_destroy(router_t *r); /* accepts NULL */

/* Number of configured tables and each as canonical schema and table name (borrowed). */
size_t router_table_count(const router_t *r);
void router_table_get(const router_t *r, size_t i, const char **schema, const char **table);

/* Builds the wal2json "add-tables" option value for the configured tables and the partitions
 * set with router_set_partitions, escaping '.', ',', '\', '*', '\'' and whitespace inside
 * names with '\' (wal2json's add-tables syntax). Borrowed until the next call or
 * router_set_partitions; NULL when out of memory. */
const char *router_add_tables_option(router_t *r);

/* The leaf partitions of table i (a partitioned outbox table): wal2json reports a row of a
 * partitioned table under its partition, so rows of these n tables (schemas[k].tables[k],
 * copied) are routed as rows of table i. Replaces table i's previous list (n = 0: none).
 * Returns 0, or -1 when out of memory (the previous list stays). */
int router_set_partitions(router_t *r, size_t i, size_t n, const char *const *schemas, const char *const *tables);

/* The configured table a row of schema.table belongs to (itself, or the partitioned table it
 * is a partition of), as an index for router_table_get; SIZE_MAX when none. */
size_t router_table_index(const router_t *r, const char *schema, const char *table);

/* Sets how the payload column of table i (router_table_get order) is read; every table
 * starts as ROUTER_PAYLOAD_TEXT. The relay sets it from the column's type at each connect.
 * An out-of-range i is ignored. */
void router_set_payload_type(router_t *r, size_t i, router_payload_type_t type);
router_payload_type_t router_get_payload_type(const router_t *r, size_t i);

/* The payload type for a PostgreSQL type name as pg_preflight_table reports it (domains
 * resolved to their base type): "bytea" -> ROUTER_PAYLOAD_BYTEA, anything else (NULL
 * included) -> ROUTER_PAYLOAD_TEXT. */
router_payload_type_t router_payload_type_for(const char *pg_type);

/* Names as the router uses them, defaults applied (borrowed from r), so that callers do not
 * repeat the defaults: the id header (never NULL) and the topic template. */
const char *router_id_header(const router_t *r);
const char *router_topic_template(const router_t *r);

router_result_t router_route(router_t *r, const w2j_record_t *rec, outbox_event_t *ev, char *errstr,
                             size_t errstr_size);

#endif
