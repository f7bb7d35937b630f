/* pg_preflight.h - checks of the PostgreSQL server and the outbox tables that turn a
 * newcomer's misconfiguration into a one-line error with the fix. */
#ifndef OUTBOXD_PG_PREFLIGHT_H
#define OUTBOXD_PG_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "error.h"
#include "repl_stream.h"
#include "router.h"

/* Room for a type name as format_type() prints it ("bytea", "character varying",
 * "myschema.\"My Type\""); longer names are cut. */
#define PG_PREFLIGHT_TYPE_SIZE 160

/* The columns every outbox table must have, by their index in the required list that
 * pg_preflight_required_columns builds (and so in pg_preflight_table's required_types). */
typedef enum {
    PG_PREFLIGHT_COL_ID,
    PG_PREFLIGHT_COL_AGGREGATE_TYPE,
    PG_PREFLIGHT_COL_AGGREGATE_ID,
    PG_PREFLIGHT_COL_EVENT_TYPE,
    PG_PREFLIGHT_COL_PAYLOAD,
    PG_PREFLIGHT_COL_COUNT
} pg_preflight_col_t;

/* Fills required with the configured names of the required columns (borrowed from c) in
 * pg_preflight_col_t order, then a NULL: the required list for pg_preflight_table. */
void pg_preflight_required_columns(const router_columns_t *c, const char *required[PG_PREFLIGHT_COL_COUNT + 1]);

/* wal_level is logical. Also sets the session's bytea_output to hex, because wal2json prints
 * bytea with the session's output format and assumes hex (it drops the first two characters,
 * the "\x"), so a database or role with bytea_output = escape would garble bytea values.
 * conn: borrowed (the replication=database connection that will stream). */
repl_status_t pg_preflight_server(PGconn *conn, err_t *e);

/* The table exists and has every column of required (NULL-terminated, borrowed; NULL or ""
 * entries are skipped). required_types: NULL, or an array with one entry per element of
 * required (before its NULL); each gets the column's type as format_type() prints it, with
 * domains resolved to their base type and without modifiers ("bytea", "jsonb", "character
 * varying"), "" for a skipped entry. optional: a column that may be absent;
 * *optional_present tells. */
repl_status_t pg_preflight_table(PGconn *conn, const char *schema, const char *table, const char *const *required,
                                 char (*required_types)[PG_PREFLIGHT_TYPE_SIZE], const char *optional,
                                 bool *optional_present, err_t *e);

/* Whether schema.table is a partitioned table and, if it is, its leaf partitions (at any
 * depth): *leaves is a new NULL-terminated list of 2 * *nleaves strings, schema and name of
 * each (free with strlist_free; NULL when there are none). wal2json reports a row of a
 * partitioned table under its leaf partition's name; pgoutput under the root's when the
 * publication has publish_via_partition_root. */
repl_status_t pg_preflight_partitions(PGconn *conn, const char *schema, const char *table, bool *partitioned,
                                      char ***leaves, size_t *nleaves, err_t *e);

#endif
