/* inbox_check.h - `inboxd check`: the receiving side's preflight, as `outboxd check` is the
 * sending side's. With inboxd's own configuration it tests the configuration, PostgreSQL, the
 * inbox and positions tables, the functions of sql/inbox.sql and their version, the role's
 * grants for the chosen handoff (SQL or HTTP push), the statements inboxd prepares at startup,
 * Kafka, the topics, the consumer group and, with deliver.url, the service's URL; one line per
 * check (ok, warn, FAIL or skip) with the fix for each problem, or JSON (checkout.h). It
 * changes nothing: no row, no offset, no group membership, no request to the service. */
#ifndef INBOXD_INBOX_CHECK_H
#define INBOXD_INBOX_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* Runs every check in order, going on after failures where the next check can still run,
 * and prints to out. cfg: the loaded configuration (borrowed). Returns 0 when no check failed
 * (warnings allowed), INBOX_EXIT_CONFIG (2) otherwise. */
int inbox_check_run(const config_t *cfg, bool json, FILE *out);

#endif
