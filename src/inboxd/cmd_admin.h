/* cmd_admin.h - the operator commands of inboxd: `inboxd status` (messages per status, the
 * oldest pending age, the dead messages with their last_error) and `inboxd requeue` (dead
 * messages back to pending with the inbox_requeue_dead() of sql/inbox.sql). They read the
 * table over an ordinary connection of their own, so they work while inboxd runs. */
#ifndef INBOXD_CMD_ADMIN_H
#define INBOXD_CMD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit codes of both commands (those of `outboxd status`). */
enum {
    INBOX_ADMIN_EXIT_OK = 0,      /* status printed; requeue: every message asked for was requeued */
    INBOX_ADMIN_EXIT_PROBLEM = 1, /* the inbox table (or, for requeue, its functions) does not exist;
                                   * requeue --id: a message is not dead or does not exist */
    INBOX_ADMIN_EXIT_ERROR = 2    /* cannot tell: PostgreSQL unreachable, a query failed (e.g. a
                                   * missing privilege), bad arguments */
};

/* Prints the status of table (inbox.table, resolved by the server as inboxd does) of the
 * database conninfo names to out: one "label  value" line each, or one JSON object when json;
 * at most dead_limit dead messages (oldest first) are listed. Errors go to the log (stderr).
 * Strings are borrowed. Returns an INBOX_ADMIN_EXIT_* code. */
int inbox_admin_status(const char *conninfo, const char *table, int dead_limit, bool json, FILE *out);

/* Makes dead messages of table pending again with <schema of table>.inbox_requeue_dead():
 * every dead message when nids == 0 (ids NULL), else the messages ids[0..nids), in one
 * transaction. Prints what it did to out (text, or JSON when json). Strings are borrowed.
 * Returns an INBOX_ADMIN_EXIT_* code. */
int inbox_admin_requeue(const char *conninfo, const char *table, const char *const *ids, size_t nids, bool json,
                        FILE *out);

#endif
