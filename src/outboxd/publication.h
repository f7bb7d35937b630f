/* publication.h - the publication pgoutput streams through (postgres.publication): it must
 * publish the inserts of every outbox table, a partitioned one through its root
 * (publish_via_partition_root), so that rows arrive under the names outbox.table gives. Read
 * from the catalog; created, or extended by the tables it lacks, when the role may. */
#ifndef OUTBOXD_PUBLICATION_H
#define OUTBOXD_PUBLICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "error.h"
#include "repl_stream.h"
#include "router.h"

/* The SQL that creates the publication outboxd needs for router's tables:
 *   CREATE PUBLICATION "name" FOR TABLE "s"."t", ... WITH (publish = 'insert',
 *   publish_via_partition_root = true)
 * into out (conn quotes the names). Returns 0, or -1 when it does not fit or out of memory. */
int publication_create_sql(PGconn *conn, const char *name, const router_t *router, char *out, size_t out_size);

/* What publication_check found. */
typedef struct publication_state {
    bool exists;
    bool inserts;          /* publishes inserts */
    bool via_root;         /* publish_via_partition_root */
    char missing[512];     /* the outbox tables it does not publish, "s.t, ..." ("" = none) */
    uint64_t missing_mask; /* the same as indexes of router_table_get (the first 64 tables) */
} publication_state_t;

/* Reads the publication `name` on conn (any connection, also a replication=database one:
 * simple queries only) and which of router's tables it lacks. Returns REPL_OK with *st, or
 * REPL_RETRY / REPL_FATAL with *e when the catalog cannot be read. */
repl_status_t publication_check(PGconn *conn, const char *name, const router_t *router, publication_state_t *st,
                                err_t *e);

/* Makes the publication fit router's tables: creates it when missing, adds the tables it
 * lacks (*added = true then: rows written into them before now are not published), and
 * refuses (REPL_FATAL, e->fix = the SQL to run) when it does not publish inserts, when
 * partitioned is true and it does not publish through the partition root, or when the role
 * may not create or alter it (42501: not the tables' owner). REPL_RETRY on transient failures. */
repl_status_t publication_ensure(PGconn *conn, const char *name, const router_t *router, bool partitioned, bool *added,
                                 err_t *e);

#endif
