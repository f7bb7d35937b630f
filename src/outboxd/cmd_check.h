/* cmd_check.h - `outboxd check`: a preflight run over PostgreSQL (version, wal_level, wal2json,
 * slot and walsender headroom, REPLICATION privilege, outbox tables, the slot) and Kafka
 * (reachable, topics) that prints one line per check with the fix for each failure. */
#ifndef OUTBOXD_CMD_CHECK_H
#define OUTBOXD_CMD_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "relay.h"

/* Runs every check in order, going on after failures where the next check can still run,
 * and prints "STATUS  check  detail[ -- fix: ...]" lines and a summary to out, or, when json,
 * one JSON array of {"check", "status" ("ok"|"warn"|"fail"|"skip"), "detail", "fix"}.
 * opts: borrowed, as built for relay_run. Returns 0 when every needed check passed (warnings
 * allowed), RELAY_EXIT_CONFIG (2) otherwise. Creates and drops one temporary replication slot
 * named outboxd_check_<pid>; changes nothing else. */
int check_run(const relay_options_t *opts, bool json, FILE *out);

#endif
