/* pg_failover.h - what PostgreSQL 17+ failover slots need, read from the servers: the
 * primary's synchronized_standby_slots (and whether each named standby slot is consumed),
 * and, for each host of a multi-host conninfo that is a standby, whether it syncs our slot.
 * Used by `outboxd check`, `outboxd status`, the relay's slot poll (/readyz, metrics). */
#ifndef OUTBOXD_PG_FAILOVER_H
#define OUTBOXD_PG_FAILOVER_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "error.h"

#define PG_FAILOVER_MIN_VERSION 170000
#define PG_FAILOVER_MAX_HOSTS 8

/* The standby slots that hold logical decoding back on the primary conn is connected to:
 * names in synchronized_standby_slots whose physical slot is missing, invalidated or not
 * streamed by anyone (PostgreSQL then makes every logical walsender wait, telling only the
 * client, with a WARNING). Writes the names, comma separated, into names ("" = none).
 * Returns how many (0 before PostgreSQL 17), or -1 with *e. */
int pg_failover_blocking_standby_slots(PGconn *conn, char *names, size_t size, err_t *e);

/* The fix for blocking standby slots names (as returned above). Writes into buf; returns it. */
const char *pg_failover_blocking_fix(const char *names, char *buf, size_t size);

typedef struct {
    char host[128], port[128];
    bool reachable;     /* connected */
    bool standby;       /* pg_is_in_recovery() */
    int server_version; /* PQserverVersion */
    bool sync_replication_slots, hot_standby_feedback;
    bool slot_present, slot_synced, slot_invalidated;
    char problem[512]; /* "" = ready to take over the slot; else what is missing, one line */
    char fix[512];
} pg_failover_host_t;

/* Connects to each host of conninfo on its own (target_session_attrs=any) and fills hosts[]
 * for every standby among them (at most max). Returns how many standbys were found, or -1
 * with *e when conninfo cannot be parsed. Hosts that cannot be reached are listed with
 * reachable false. */
int pg_failover_standbys(const char *conninfo, const char *slot, pg_failover_host_t *hosts, int max, err_t *e);

#endif
