/* cleanup.h - outbox.cleanup = delete: deletes published outbox rows by primary key once
 * the slot was confirmed past them, in small batches, with asynchronous queries on its own
 * ordinary connection so the relay's loop never waits for them. */
#ifndef OUTBOXD_CLEANUP_H
#define OUTBOXD_CLEANUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cleanup cleanup_t;

/* conninfo: borrowed for the cleanup's lifetime. max_pending: most ids queued (beyond it,
 * ids are not queued and their rows stay: logged once per overflow). batch: ids per DELETE. */
cleanup_t *cleanup_new(const char *conninfo, size_t max_pending, int batch);
void cleanup_destroy(cleanup_t *c); /* accepts NULL */

/* Registers table i (in the router's order) with its id column and the column's type
 * ("uuid", "text", "bigint", ...); called again after each preflight. Returns 0 or -1. */
int cleanup_set_table(cleanup_t *c, size_t i, const char *schema, const char *table, const char *id_column,
                      const char *id_type);

/* Queues the row with this id of table i, published as part of transaction seq. */
void cleanup_push(cleanup_t *c, size_t table, uint64_t seq, const char *id);

/* Starts a DELETE when none is running and the oldest queued rows belong to transactions
 * up to confirmed_seq (those the slot was confirmed past). Call it often; it is cheap. */
void cleanup_step(cleanup_t *c, uint64_t confirmed_seq, int64_t now_ms);

/* Socket of the running DELETE (poll for reading), or -1 when none runs. */
int cleanup_fd(const cleanup_t *c);
/* The socket is readable: collect the result when complete. */
void cleanup_on_readable(cleanup_t *c);

#endif
