/* other_slots.h - wal2json replication slots on the server that nothing streams, other than
 * postgres.slot: what a first start against the wrong database, a renamed slot or a removed
 * relay leaves behind. Each keeps WAL on disk until someone drops it. One query for `outboxd
 * status`, `outboxd check` and the relay's metrics and warning, and the statement that drops
 * one. */
#ifndef OUTBOXD_OTHER_SLOTS_H
#define OUTBOXD_OTHER_SLOTS_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "error.h"

#define OTHER_SLOTS_MAX 16

/* Plain data. */
typedef struct other_slot {
    char name[64];      /* slot_name (NAMEDATALEN) */
    char database[64];  /* its database */
    bool has_retained;  /* restart_lsn known */
    long long retained; /* WAL it keeps: the server's WAL position - restart_lsn, bytes */
    char wal_status[16];
} other_slot_t;

/* The inactive, non-temporary wal2json slots other than slot (any database of the server),
 * the most retaining first: up to max of them into out, their number in *total. Returns how
 * many were written, or -1 with *e. conn: an ordinary or replication=database connection. */
int other_slots_read(PGconn *conn, const char *slot, other_slot_t *out, size_t max, size_t *total, err_t *e);

/* "SELECT pg_drop_replication_slot('name');" into buf (slot names hold only a-z, 0-9 and _). */
const char *other_slots_drop_statement(const other_slot_t *s, char *buf, size_t size);

/* '"a" (database d, retains 1.2 GiB), "b" (...)' into buf, and " and N more" past n shown. */
const char *other_slots_list(const other_slot_t *s, size_t n, size_t total, char *buf, size_t size);

#endif
