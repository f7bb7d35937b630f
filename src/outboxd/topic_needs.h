/* topic_needs.h - the topics the rows of the outbox tables need: outbox.topic resolved against
 * the distinct values of the columns it uses (aggregate_type for ${aggregate_type} and
 * ${routedByValue}, event_type for ${event_type}) that the rows present in each table hold. For
 * `outboxd check`, so that a topic the relay would publish to and that does not exist is found
 * before the first event meets it. */
#ifndef OUTBOXD_TOPIC_NEEDS_H
#define OUTBOXD_TOPIC_NEEDS_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "error.h"
#include "router.h"

#define TOPIC_NEEDS_MAX 1000 /* distinct value combinations read per table, at most */

typedef struct topic_needs {
    char **topics; /* the topics, each once, sorted (owned; free with topic_needs_free) */
    size_t n;
    size_t invalid; /* combinations that yield no valid topic name (those events are refused) */
    bool truncated; /* a table had more than TOPIC_NEEDS_MAX combinations: the list is partial */
} topic_needs_t;

typedef enum {
    TOPIC_NEEDS_RESOLVED = 0,  /* *out filled (n may be 0: no rows) */
    TOPIC_NEEDS_PER_AGGREGATE, /* the template uses ${aggregate_id}: one topic per aggregate, not resolved */
    TOPIC_NEEDS_FAILED         /* a query failed: *e says why (e.g. no SELECT on a table) */
} topic_needs_status_t;

/* Reads the distinct values over conn (borrowed; an ordinary or replication=database
 * connection), each table's query in a read-only transaction with a 10 s statement_timeout.
 * ro: the routing options (tables, template, columns); router: built from them (borrowed). */
topic_needs_status_t topic_needs_resolve(PGconn *conn, const router_options_t *ro, const router_t *router,
                                         topic_needs_t *out, err_t *e);

void topic_needs_free(topic_needs_t *t); /* accepts a zeroed struct */

#endif
