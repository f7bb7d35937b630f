/* replay_plan.c - the plan for one dead-letter record and the selection (see the header). */
#include "replay_plan.h"

#include <stdio.h>
#include <string.h>

dead_letter_reason_t replay_reason_of(const dlq_record_t *r) {
    dead_letter_reason_t reason;
    if (r->reason && dead_letter_reason_parse(r->reason, &reason) == 0)
        return reason;
    if (r->value_size)
        return DEAD_LETTER_TOO_LARGE;
    return r->topic ? DEAD_LETTER_REFUSED : DEAD_LETTER_UNROUTABLE;
}

replay_kind_t replay_plan(const dlq_record_t *r, char *why, size_t why_size) {
    why[0] = '\0';
    if (r->value_size || replay_reason_of(r) == DEAD_LETTER_TOO_LARGE) {
        snprintf(why, why_size,
                 "its value was not kept (%s bytes, too large for Kafka): publish the event again from the outbox "
                 "table (docs/operations.md, \"Replaying dead-lettered events\")",
                 r->value_size ? r->value_size : "?");
        return REPLAY_IMPOSSIBLE;
    }
    if (r->topic && *r->topic)
        return REPLAY_AS_IS;
    if (replay_reason_of(r) == DEAD_LETTER_UNROUTABLE)
        return REPLAY_REROUTE;
    snprintf(why, why_size,
             "it has no outboxd.topic header (dead-lettered by an older outboxd), so its topic is unknown: publish "
             "the event again from the outbox table");
    return REPLAY_IMPOSSIBLE;
}

bool replay_selected(const replay_selection_t *sel, const dlq_record_t *r) {
    if (sel->all)
        return true;
    for (size_t i = 0; i < sel->nids; i++)
        if (r->id && !strcmp(r->id, sel->ids[i]))
            return true;
    dead_letter_reason_t reason = replay_reason_of(r);
    for (size_t i = 0; i < sel->nreasons; i++)
        if (sel->reasons[i] == reason)
            return true;
    return false;
}
