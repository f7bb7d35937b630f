/* cmd_replay.h - `outboxd replay`: sends dead-lettered events back to the topic they were meant
 * for, once the cause is fixed (the topic exists, the ACL is granted, the topic template or the
 * row is fixed). It reads outbox.dead_letter.topic from its beginning up to its end as it is
 * when the command starts, without a consumer group; selects records (--all, --id, --reason);
 * and produces each with the relay's idempotent acks=all producer: a record Kafka refused goes
 * back as it was (key, value, its own headers) to the topic in outboxd.topic; a record the
 * router could not build is routed again with today's configuration. --dry-run says what it
 * would do and sends nothing. It does not delete anything from the dead-letter topic. */
#ifndef OUTBOXD_CMD_REPLAY_H
#define OUTBOXD_CMD_REPLAY_H

#include <stdio.h>

#include "relay.h"

/* Exit codes of replay_run. */
enum {
    REPLAY_EXIT_OK = 0,      /* every selected record was replayed (or would be, with --dry-run) */
    REPLAY_EXIT_PARTIAL = 1, /* a selected record could not be replayed, or an --id was not found */
    REPLAY_EXIT_ERROR = 2    /* bad arguments, Kafka unreachable, the dead-letter topic missing */
};

/* args[0..nargs): the command's own arguments (--all, --id ID..., --reason R..., --dry-run,
 * --json); opts: as built for relay_run (borrowed); dlq_topic: outbox.dead_letter.topic. Prints
 * one line per selected record and a summary (or one JSON object) to out. Returns a
 * REPLAY_EXIT_* code. */
int replay_run(const relay_options_t *opts, const char *dlq_topic, char **args, int nargs, FILE *out);

#endif
