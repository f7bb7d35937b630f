/* backfill.h - reads the outbox rows that match a predicate as of a slot's exported
 * snapshot, in a given order, and hands each to a callback as a wal2json-shaped insert
 * record, so the router treats them exactly like streamed rows (backfill_publish.h
 * publishes them). */
#ifndef OUTBOXD_BACKFILL_H
#define OUTBOXD_BACKFILL_H

#include <stddef.h>
#include <stdint.h>

#include "w2j_decode.h"

typedef struct backfill_options {
    const char *conninfo; /* ordinary (non-replication) connection, borrowed */
    const char *snapshot; /* exported snapshot name from CREATE_REPLICATION_SLOT */
    const char *where;    /* SQL predicate, e.g. "processed = false" */
    const char *order;    /* ORDER BY list, e.g. "created_at, id" */
    int batch;            /* rows per FETCH */
} backfill_options_t;

/* Called for each row; rec is borrowed until the callback returns. Return 0 to go on, or
 * non-zero to stop the backfill (backfill_read then returns that value). */
typedef int (*backfill_row_cb_t)(void *opaque, const w2j_record_t *rec);

/* Reads schemas[i].tables[i] for i < ntables, one table after the other, all in one
 * REPEATABLE READ transaction on the snapshot. *rows counts the rows handed over.
 * Returns 0, a callback's non-zero value, or -1 with errstr (naming the table and the
 * server's message, e.g. a bad predicate). */
int backfill_read(const backfill_options_t *o, const char *const *schemas, const char *const *tables, size_t ntables,
                  backfill_row_cb_t cb, void *opaque, uint64_t *rows, char *errstr, size_t errstr_size);

#endif
