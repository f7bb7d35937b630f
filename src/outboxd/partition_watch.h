/* partition_watch.h - polls the catalog for the leaf partitions of the partitioned outbox
 * tables that wal2json streams, together with the statement's snapshot: the input of the
 * confirm fence (partition_fence.h). Runs on its own connection and thread (pgpoll). */
#ifndef OUTBOXD_PARTITION_WATCH_H
#define OUTBOXD_PARTITION_WATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "partition_fence.h"

typedef struct partition_watch partition_watch_t;

/* Watches the n partitioned tables schemas[k].tables[k] (copied) every interval_ms on a
 * connection of its own (conninfo copied); each poll counts the leaf partitions that are not
 * among the nknown the stream reads (known: 2 * nknown strings, schema and name of each;
 * copied). Returns NULL when out of memory. */
partition_watch_t *partition_watch_start(const char *conninfo, size_t n, const char *const *schemas,
                                         const char *const *tables, size_t nknown, const char *const *known,
                                         int interval_ms);
void partition_watch_stop(partition_watch_t *w); /* accepts NULL */

/* The latest poll into *out when it is newer than the one returned last: true; else false.
 * errstr: the last poll's error ("" when it succeeded). */
bool partition_watch_latest(partition_watch_t *w, partition_snapshot_t *out, char *errstr, size_t errstr_size);

/* The poll's statement for the tables (exported for the unit test): a new string. */
char *partition_watch_sql(size_t n, const char *const *schemas, const char *const *tables);

#endif
