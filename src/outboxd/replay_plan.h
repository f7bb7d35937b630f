/* replay_plan.h - what `outboxd replay` does with one dead-letter record, from its headers
 * (dead_letter.h): send it back as it is to the topic in outboxd.topic, route its value again
 * (a record the router could not build: the wal2json record or backfilled row, with today's
 * configuration), or not at all (the value was dropped for its size); and whether the
 * operator's selection (--all, --id, --reason) takes it. Pure. */
#ifndef OUTBOXD_REPLAY_PLAN_H
#define OUTBOXD_REPLAY_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "dead_letter.h"

/* The headers of a dead-letter record that matter (borrowed, NUL-terminated; NULL when
 * absent). */
typedef struct dlq_record {
    const char *id;         /* the event id header (outbox.header.id) */
    const char *reason;     /* outboxd.reason */
    const char *topic;      /* outboxd.topic */
    const char *error;      /* outboxd.error */
    const char *value_size; /* outboxd.value.size: the value was dropped */
} dlq_record_t;

typedef enum {
    REPLAY_AS_IS = 0, /* the original key, value and headers to outboxd.topic */
    REPLAY_REROUTE,   /* the value is the event's wal2json record or row: route it again */
    REPLAY_IMPOSSIBLE /* why says so */
} replay_kind_t;

/* The record's class: outboxd.reason, or for records of an outboxd before that header, what
 * the other headers tell (outboxd.value.size: too-large; no outboxd.topic: unroutable; else
 * refused). */
dead_letter_reason_t replay_reason_of(const dlq_record_t *r);

/* What to do with r; REPLAY_IMPOSSIBLE with why (one line, the fix included). */
replay_kind_t replay_plan(const dlq_record_t *r, char *why, size_t why_size);

/* The operator's selection: every record, or those whose id is among ids, or whose class is
 * among reasons (both borrowed). */
typedef struct replay_selection {
    bool all;
    const char *const *ids;
    size_t nids;
    const dead_letter_reason_t *reasons;
    size_t nreasons;
} replay_selection_t;

bool replay_selected(const replay_selection_t *sel, const dlq_record_t *r);

#endif
