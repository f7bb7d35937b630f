/* inbox_loop.c - the inboxd main loop: one thread, one ppoll() over the Kafka consumer's fd;
 * batches of consumed messages go to PostgreSQL in one transaction each, and only then are
 * their Kafka offsets committed. */
#include "inbox_loop.h"

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "array.h"
#include "cli.h"
#include "clock.h"
#include "inbox_batch.h"
#include "inbox_ops.h"
#include "inbox_deliver.h"
#include "inbox_writer.h"
#include "kconsumer.h"
#include "log.h"
#include "notify.h"
#include "positions.h"

#define ERRSZ 4096 /* room for a PostgreSQL error, a message id and the fix */
#define BACKOFF_MIN_MS 500
#define PROGRESS_INTERVAL_MS 10000
#define SEEK_TIMEOUT_MS 5000
#define STARTUP_SLICE_MS 500    /* waiting for Kafka at startup: ops ticks and signals in between */
#define RETENTION_FIRST_MS 1000 /* first retention pass this long after startup */

typedef struct inbox {
    const inbox_options_t *o;
    volatile sig_atomic_t *stop;
    kconsumer_t *kc;
    inbox_writer_t *w;
    positions_t *parts;
    inbox_batch_t *batch;
    inbox_deliver_t *deliver; /* HTTP push thread; NULL without deliver.url */

    bool holding; /* the database is unreachable: consumption paused, the batch kept */
    int64_t retry_at_ms;
    int backoff_ms;
    bool failed;
    int exit_code;
    bool more;    /* the consumer may have more messages waiting */
    bool closing; /* leaving the group */

    int64_t commit_at_ms; /* next periodic Kafka offset commit */
    int64_t retention_at_ms;
    bool retention_off; /* disabled after a permanent error */
    long long retention_total;

    kconsumer_tp_t *ctps; /* scratch: offsets to commit */
    size_t ccap;

    uint64_t taken, inserted, duplicates, batches;
    uint64_t dropped_seen, dropped_held, dropped_unassigned, regressions;
    uint64_t rewound; /* offsets recorded before that a new connection's database did not have */
    uint64_t last_inserted, last_duplicates;
    int64_t last_progress_ms;
    inbox_ops_t *ops;       /* metrics, HTTP endpoint, table poll */
    int64_t recorded_at_us; /* wall clock of the last batch's commit (observe_recorded) */
} inbox_t;

static void inbox_fail(inbox_t *r, int code, const char *msg) {
    log_error("%s", msg);
    r->failed = true;
    if (code > r->exit_code)
        r->exit_code = code;
}

/* ---- holding while the database is away --------------------------------------------------- */

static void hold(inbox_t *r, const char *why) {
    if (r->holding)
        return;
    r->holding = true;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->retry_at_ms = clock_now_ms() + r->backoff_ms;
    char err[ERRSZ];
    if (kconsumer_pause(r->kc, true, err, sizeof(err)) != 0)
        log_warn("%s", err); /* what still arrives is dropped and re-read: nothing is lost */
    log_warn("PostgreSQL is unavailable (%s): consumption paused, nothing is committed; %zu consumed messages "
             "wait for it",
             why, inbox_batch_count(r->batch));
}

static void backoff(inbox_t *r, const char *why) {
    r->backoff_ms =
        r->backoff_ms * 2 > r->o->reconnect_backoff_max_ms ? r->o->reconnect_backoff_max_ms : r->backoff_ms * 2;
    r->retry_at_ms = clock_now_ms() + r->backoff_ms;
    log_warn("PostgreSQL is still unavailable (%s); retrying in %d ms", why, r->backoff_ms);
}

/* ---- writing a batch -------------------------------------------------------------------- */

static inbox_writer_status_t db_connect(inbox_t *r, char *err, size_t errsz);

/* Commits the recorded positions that Kafka does not have yet (for lag tools: the offsets
 * table is what inboxd itself starts from). */
static void commit_kafka(inbox_t *r, bool sync) {
    size_t n = positions_count(r->parts), k = 0;
    kconsumer_tp_t *v = array_grow(r->ctps, &r->ccap, n, sizeof(*v), n);
    if (!v)
        return;
    r->ctps = v;
    for (size_t i = 0; i < n; i++) {
        position_t *p = positions_at(r->parts, i);
        if (p->recorded < 0 || p->recorded == p->committed)
            continue;
        r->ctps[k++] = (kconsumer_tp_t){.topic = p->topic, .partition = p->partition, .offset = p->recorded};
        p->committed = p->recorded; /* a failed commit is harmless and repeated by the next change */
    }
    r->commit_at_ms = clock_now_ms() + r->o->commit_interval_ms;
    if (k == 0)
        return;
    char err[ERRSZ];
    if (kconsumer_commit(r->kc, r->ctps, k, !sync, err, sizeof(err)) != 0)
        log_warn("%s (harmless: the inbox offsets table is authoritative)", err);
}

/* commit -> recorded of one message of the batch just committed (inbox_batch_commit_times). */
static void observe_recorded(void *arg, const char *topic, int64_t commit_us) {
    inbox_t *r = arg;
    inbox_ops_recorded(r->ops, topic, commit_us, r->recorded_at_us);
}

/* Writes the batch in one transaction; on success commits the offsets to Kafka and empties
 * the batch. */
static inbox_writer_status_t write_batch(inbox_t *r, bool sync_commit, char *err, size_t errsz) {
    if (inbox_batch_count(r->batch) == 0)
        return INBOX_WRITER_OK;
    inbox_writer_status_t st = INBOX_WRITER_OK;
    if (!inbox_writer_connected(r->w))
        st = db_connect(r, err, errsz);
    if (st != INBOX_WRITER_OK || inbox_batch_count(r->batch) == 0) /* resync may drop it all */
        return st;
    inbox_write_result_t res;
    st = inbox_writer_write(r->w, r->batch, &res, err, errsz);
    if (st != INBOX_WRITER_OK)
        return st;
    size_t nspans;
    const inbox_span_t *spans = inbox_batch_spans(r->batch, &nspans);
    r->recorded_at_us = clock_wall_us();
    inbox_batch_commit_times(r->batch, observe_recorded, r);
    r->batches++;
    r->inserted += res.inserted;
    r->duplicates += res.fenced + res.conflicts;
    log_debug("batch of %zu: %zu new, %zu already recorded (position), %zu duplicate ids", res.messages, res.inserted,
              res.fenced, res.conflicts);
    for (size_t i = 0; spans && i < nspans; i++) {
        position_t *p = positions_find(r->parts, spans[i].topic, spans[i].partition);
        if (p && spans[i].last + 1 > p->recorded)
            p->recorded = spans[i].last + 1;
    }
    inbox_batch_clear(r->batch);
    if (sync_commit || r->o->commit_interval_ms == 0)
        commit_kafka(r, sync_commit);
    return INBOX_WRITER_OK;
}

/* Writes the batch unless holding; a database failure starts holding. Returns true when
 * the batch is empty afterwards. */
static bool flush(inbox_t *r, bool sync_commit) {
    if (inbox_batch_count(r->batch) == 0)
        return true;
    if (r->holding || r->failed)
        return false;
    char err[ERRSZ];
    inbox_writer_status_t st = write_batch(r, sync_commit, err, sizeof(err));
    if (st == INBOX_WRITER_RETRY)
        hold(r, err);
    else if (st == INBOX_WRITER_FATAL) {
        char msg[ERRSZ + 128];
        snprintf(msg, sizeof(msg), "cannot record messages in the inbox: %s", err);
        inbox_fail(r, INBOX_EXIT_RUNTIME, msg);
    }
    return st == INBOX_WRITER_OK;
}

/* ---- positions ------------------------------------------------------------------------ */

/* The partitions in one state and their stored positions (next[i] for ps[i]; -1: no row).
 * The pointers are valid until the partitions change; stored_free frees the arrays. */
typedef struct stored {
    size_t n;
    position_t **ps;
    int64_t *next;
} stored_t;

static void stored_free(stored_t *s) {
    free(s->ps);
    free(s->next);
}

static inbox_writer_status_t read_stored(inbox_t *r, position_state_t state, stored_t *s, char *err, size_t errsz) {
    memset(s, 0, sizeof(*s));
    size_t n = 0, np = positions_count(r->parts);
    for (size_t i = 0; i < np; i++)
        n += positions_at(r->parts, i)->state == state;
    if (n == 0)
        return INBOX_WRITER_OK;
    const char **topics = calloc(n, sizeof(*topics));
    int32_t *parts = calloc(n, sizeof(*parts));
    s->ps = calloc(n, sizeof(*s->ps));
    s->next = calloc(n, sizeof(*s->next));
    inbox_writer_status_t st = INBOX_WRITER_FATAL;
    if (!topics || !parts || !s->ps || !s->next) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < np; i++) {
        position_t *p = positions_at(r->parts, i);
        if (p->state != state)
            continue;
        s->ps[s->n] = p;
        topics[s->n] = p->topic;
        parts[s->n++] = p->partition;
    }
    st = inbox_writer_load_offsets(r->w, topics, parts, n, s->next, err, errsz);
out:
    free(topics);
    free(parts);
    if (st != INBOX_WRITER_OK)
        s->n = 0;
    return st;
}

/* Loads the stored positions of the partitions in state UNKNOWN; they become READY and,
 * when the table has a position, seek there. */
static inbox_writer_status_t load_unknown(inbox_t *r, char *err, size_t errsz) {
    stored_t s;
    inbox_writer_status_t st = read_stored(r, POSITION_UNKNOWN, &s, err, errsz);
    for (size_t i = 0; i < s.n; i++) {
        position_t *p = s.ps[i];
        p->state = POSITION_READY;
        p->recorded = s.next[i];
        if (s.next[i] >= 0) {
            /* The table is authoritative, also over Kafka's committed offset. */
            p->next = p->origin = s.next[i];
            p->need_seek = true;
        }
        log_info("partition %s [%" PRId32 "]: position %" PRId64 " from the inbox offsets table%s", p->topic,
                 p->partition, s.next[i], s.next[i] < 0 ? " (none: the group's committed offset)" : "");
    }
    stored_free(&s);
    return st;
}

/* After every new database connection, before anything is written on it: the stored
 * positions of the partitions being consumed, compared with what inboxd recorded. The server
 * may not be the one inboxd wrote to: after a failover to a standby that had not received the
 * last transactions (asynchronous replication), or a restore, the positions there are behind
 * what inboxd recorded and behind the group's committed offsets in Kafka. The database wins:
 * the partition drops its unwritten messages and seeks to the stored position, so the lost
 * messages are read again from Kafka (positions_resync). */
static inbox_writer_status_t resync(inbox_t *r, char *err, size_t errsz) {
    stored_t s;
    inbox_writer_status_t st = read_stored(r, POSITION_READY, &s, err, errsz);
    for (size_t i = 0; i < s.n; i++) {
        position_t *p = s.ps[i];
        int64_t had = p->recorded, rewound;
        if (!positions_resync(p, s.next[i], &rewound))
            continue;
        size_t dropped = inbox_batch_drop_partition(r->batch, p->topic, p->partition);
        char where[64] = "no position";
        if (s.next[i] >= 0)
            snprintf(where, sizeof(where), "position %" PRId64, s.next[i]);
        if (rewound > 0) {
            r->rewound += (uint64_t)rewound;
            log_warn("partition %s [%" PRId32 "]: the inbox database has %s, but inboxd recorded up to offset %" PRId64
                     ": %" PRId64 " offsets recorded before are not in it (its last transactions were lost: a "
                     "failover to a standby that had not received them, or a restore); reading them again from "
                     "Kafka from offset %" PRId64 " (and %zu consumed messages not written yet)",
                     p->topic, p->partition, where, had, rewound, p->next, dropped);
        } else {
            char knew[64] = "none";
            if (had >= 0)
                snprintf(knew, sizeof(knew), "%" PRId64, had);
            log_info("partition %s [%" PRId32 "]: the inbox database has %s, inboxd knew position %s (another "
                     "instance recorded the partition meanwhile, a commit whose outcome was unknown went through, "
                     "or a failover): consuming from offset %" PRId64 " (%zu consumed messages not written yet are "
                     "read again)",
                     p->topic, p->partition, where, knew, p->next, dropped);
        }
    }
    stored_free(&s);
    return st;
}

/* Connects the writer; then resync. Every connection inboxd makes for its batches goes
 * through here: any server it reaches may be a promoted standby. */
static inbox_writer_status_t db_connect(inbox_t *r, char *err, size_t errsz) {
    inbox_writer_status_t st = inbox_writer_connect(r->w, err, errsz);
    if (st == INBOX_WRITER_OK)
        st = resync(r, err, errsz);
    return st;
}

/* Seeks the partitions that dropped messages back to their position. */
static void do_seeks(inbox_t *r) {
    size_t np = positions_count(r->parts);
    for (size_t i = 0; i < np; i++) {
        position_t *p = positions_at(r->parts, i);
        if (!p->need_seek || p->state != POSITION_READY || p->next < 0)
            continue;
        char err[ERRSZ];
        if (kconsumer_seek(r->kc, p->topic, p->partition, p->next, SEEK_TIMEOUT_MS, err, sizeof(err)) == 0) {
            p->need_seek = false;
            log_debug("partition %s [%" PRId32 "]: consuming again from offset %" PRId64, p->topic, p->partition,
                      p->next);
        } else {
            log_warn("%s; trying again", err);
        }
    }
}

static void try_recover(inbox_t *r) {
    if (!r->holding || r->failed || clock_now_ms() < r->retry_at_ms)
        return;
    char err[ERRSZ];
    inbox_writer_status_t st = INBOX_WRITER_OK;
    int fatal_code = INBOX_EXIT_CONFIG; /* a failed connect or check needs a fix */
    if (!inbox_writer_connected(r->w))
        st = db_connect(r, err, sizeof(err));
    if (st == INBOX_WRITER_OK) {
        fatal_code = INBOX_EXIT_RUNTIME;
        st = write_batch(r, false, err, sizeof(err));
    }
    if (st == INBOX_WRITER_OK)
        st = load_unknown(r, err, sizeof(err));
    if (st == INBOX_WRITER_RETRY) {
        backoff(r, err);
        return;
    }
    if (st == INBOX_WRITER_FATAL) {
        char msg[ERRSZ + 128];
        snprintf(msg, sizeof(msg), "cannot record messages in the inbox: %s", err);
        inbox_fail(r, fatal_code, msg);
        return;
    }
    r->holding = false;
    if (kconsumer_pause(r->kc, false, err, sizeof(err)) != 0)
        log_warn("%s", err);
    do_seeks(r); /* after resuming: the seek decides where fetching continues */
    log_info("PostgreSQL is back: consumption resumed");
}

/* ---- rebalances ----------------------------------------------------------------------- */

static bool on_assign(void *opaque, kconsumer_tp_t *tps, size_t n) {
    inbox_t *r = opaque;
    for (size_t i = 0; i < n; i++)
        if (!positions_add(r->parts, tps[i].topic, tps[i].partition, POSITION_UNKNOWN, -1)) {
            inbox_fail(r, INBOX_EXIT_RUNTIME, "out of memory");
            return true;
        }
    if (r->holding || r->failed) {
        log_info("assigned %zu partitions; their positions are read when PostgreSQL is back", n);
        return true;
    }
    const char **topics = calloc(n, sizeof(*topics));
    int32_t *parts = calloc(n, sizeof(*parts));
    int64_t *next = calloc(n, sizeof(*next));
    char err[ERRSZ];
    inbox_writer_status_t st = INBOX_WRITER_FATAL;
    snprintf(err, sizeof(err), "out of memory");
    if (topics && parts && next) {
        for (size_t i = 0; i < n; i++) {
            topics[i] = tps[i].topic;
            parts[i] = tps[i].partition;
        }
        st = INBOX_WRITER_OK;
        if (!inbox_writer_connected(r->w))
            st = db_connect(r, err, sizeof(err));
        if (st == INBOX_WRITER_OK)
            st = inbox_writer_load_offsets(r->w, topics, parts, n, next, err, sizeof(err));
    }
    if (st == INBOX_WRITER_OK) {
        for (size_t i = 0; i < n; i++) {
            position_t *p = positions_find(r->parts, tps[i].topic, tps[i].partition);
            p->state = POSITION_READY;
            p->next = p->recorded = p->origin = next[i];
            if (next[i] >= 0)
                tps[i].offset = next[i];
            if (next[i] >= 0)
                log_info("assigned %s [%" PRId32 "]: starting at offset %" PRId64 " (inbox offsets table)",
                         tps[i].topic, tps[i].partition, next[i]);
            else
                log_info("assigned %s [%" PRId32 "]: no stored position, starting at the group's committed offset "
                         "(else kafka.auto.offset.reset)",
                         tps[i].topic, tps[i].partition);
        }
    } else if (st == INBOX_WRITER_RETRY) {
        hold(r, err);
    } else {
        char msg[ERRSZ + 128];
        snprintf(msg, sizeof(msg), "cannot read partition positions: %s", err);
        inbox_fail(r, INBOX_EXIT_RUNTIME, msg);
    }
    free(topics);
    free(parts);
    free(next);
    return r->holding || r->failed;
}

static void on_revoke(void *opaque, const kconsumer_tp_t *tps, size_t n, bool lost) {
    inbox_t *r = opaque;
    /* Record what was consumed before the next owner starts from the stored positions. A
     * concurrent write of the same partition by the next owner is safe: writers of a partition
     * are serialised on its offsets row and skip what is recorded. */
    if (!r->failed)
        flush(r, false);
    if (!lost)
        commit_kafka(r, true);
    for (size_t i = 0; i < n; i++) {
        size_t dropped = inbox_batch_drop_partition(r->batch, tps[i].topic, tps[i].partition);
        if (dropped)
            log_info("revoked %s [%" PRId32 "] while PostgreSQL is unavailable: %zu unwritten messages left to the "
                     "next owner",
                     tps[i].topic, tps[i].partition, dropped);
        positions_remove(r->parts, tps[i].topic, tps[i].partition);
    }
    if (!r->closing)
        log_info("%s %zu partition%s", lost ? "lost" : "revoked", n, n == 1 ? "" : "s");
}

/* ---- consuming ---------------------------------------------------------------------------- */

/* A partition that consumes from its stored position handed out an offset below it: the
 * log went back (the topic was deleted and recreated, an unclean leader election truncated
 * it, or the stored position is past the end of the log and Kafka reset the consumer to the
 * earliest offset). Skipping up to the old position would silently lose the new messages.
 * inbox.on_offset_regression = fail (default): stop, saying how to reset the position;
 * reset: write what is in the batch, store the new offset as the position and take the
 * message (POSITION_TAKE). Returns the verdict for m. */
static position_verdict_t offset_regression(inbox_t *r, const kmsg_t *m) {
    position_t *p = positions_find(r->parts, m->topic, m->partition);
    int64_t stored = p->next;
    r->regressions++;
    char err[ERRSZ];
    if (!r->o->offset_regression_reset) {
        char fix[1024];
        positions_set_sql(fix, sizeof(fix), inbox_writer_offsets_table(r->w), kconsumer_group(r->kc), m->topic,
                          m->partition, m->offset);
        snprintf(err, sizeof(err),
                 "partition %s [%" PRId32 "]: Kafka returned offset %" PRId64 ", below the stored position %" PRId64
                 ": the topic was deleted and recreated, its log was truncated, or the position is past the end "
                 "of the log and Kafka reset the consumer (offset out of range). Skipping up to offset %" PRId64
                 " would lose the new messages, so inboxd stops. To record the partition from offset %" PRId64
                 ", stop inboxd and run %s (or set inbox.on_offset_regression = reset to have inboxd do this)",
                 m->topic, m->partition, m->offset, stored, stored, m->offset, fix);
        inbox_fail(r, INBOX_EXIT_RUNTIME, err);
        return POSITION_DROP_SEEN;
    }
    log_warn("partition %s [%" PRId32 "]: Kafka returned offset %" PRId64 ", below the stored position %" PRId64
             " (topic recreated or log truncated); inbox.on_offset_regression = reset: recording the partition "
             "from offset %" PRId64,
             m->topic, m->partition, m->offset, stored, m->offset);
    /* The batch first (its messages of this partition come from the old log), then the
     * position, lowered; greatest() in the batch transaction never lowers it. */
    inbox_writer_status_t st = INBOX_WRITER_OK;
    if (!flush(r, false)) {
        st = INBOX_WRITER_RETRY;
        snprintf(err, sizeof(err), "the consumed messages before it are not written yet");
    }
    if (st == INBOX_WRITER_OK && !inbox_writer_connected(r->w))
        st = db_connect(r, err, sizeof(err));
    p = positions_find(r->parts, m->topic, m->partition); /* flush may run callbacks: find again */
    if (st == INBOX_WRITER_OK && p && p->need_seek)
        return POSITION_DROP_HELD; /* a new connection moved the position (resync): checked again after the seek */
    if (st == INBOX_WRITER_OK)
        st = inbox_writer_set_position(r->w, m->topic, m->partition, m->offset, err, sizeof(err));
    if (r->failed)
        return POSITION_DROP_SEEN;
    if (st == INBOX_WRITER_FATAL) {
        char msg[ERRSZ + 128];
        snprintf(msg, sizeof(msg), "cannot store the new position of %s [%" PRId32 "]: %s", m->topic, m->partition,
                 err);
        inbox_fail(r, INBOX_EXIT_RUNTIME, msg);
        return POSITION_DROP_SEEN;
    }
    if (!p)
        return POSITION_DROP_UNASSIGNED;
    if (st == INBOX_WRITER_RETRY) {
        /* Not now: once PostgreSQL is back the partition seeks to its (old) position again, and
         * Kafka's reset brings this message back here. */
        hold(r, err);
        p->need_seek = true;
        return POSITION_DROP_HELD;
    }
    p->next = p->recorded = p->origin = m->offset;
    p->committed = -1;
    return positions_offer(r->parts, m->topic, m->partition, m->offset, false);
}

static void fill(inbox_t *r) {
    r->more = false;
    while (!r->failed) {
        if (!r->holding && (inbox_batch_count(r->batch) >= (size_t)r->o->batch_max ||
                            inbox_batch_bytes(r->batch) >= r->o->batch_max_bytes)) {
            r->more = true;
            return;
        }
        bool fatal = false;
        char err[ERRSZ];
        const kmsg_t *m = kconsumer_next(r->kc, &fatal, err, sizeof(err));
        if (fatal) {
            inbox_fail(r, INBOX_EXIT_RUNTIME, err);
            return;
        }
        if (!m)
            return;
        position_verdict_t v = positions_offer(r->parts, m->topic, m->partition, m->offset, r->holding);
        if (v == POSITION_REGRESSED)
            v = offset_regression(r, m);
        if (r->failed)
            return;
        if (v != POSITION_TAKE) {
            r->dropped_seen += v == POSITION_DROP_SEEN;
            r->dropped_held += v == POSITION_DROP_HELD;
            r->dropped_unassigned += v == POSITION_DROP_UNASSIGNED;
            continue;
        }
        if (inbox_batch_add(r->batch, m, r->o->id_header) != 0) {
            inbox_fail(r, INBOX_EXIT_RUNTIME, "out of memory");
            return;
        }
        r->taken++;
    }
}

static void retention(inbox_t *r) {
    if (r->o->retention_s <= 0 || r->retention_off || r->holding || r->failed || clock_now_ms() < r->retention_at_ms)
        return;
    if (!inbox_writer_connected(r->w) || inbox_batch_count(r->batch) > 0)
        return;
    char err[ERRSZ];
    long long deleted = 0;
    inbox_writer_status_t st =
        inbox_writer_retention(r->w, r->o->retention_s, r->o->retention_batch, &deleted, err, sizeof(err));
    if (st == INBOX_WRITER_OK) {
        r->retention_total += deleted;
        if (deleted >= r->o->retention_batch) {
            r->retention_at_ms = clock_now_ms(); /* more to delete: again after the next batch */
            return;
        }
        if (r->retention_total > 0)
            log_info("retention: deleted %lld done messages older than %lld s", r->retention_total, r->o->retention_s);
        r->retention_total = 0;
    } else if (st == INBOX_WRITER_RETRY) {
        log_warn("retention: %s", err);
    } else {
        log_error("retention disabled until restart: %s", err);
        r->retention_off = true;
    }
    r->retention_at_ms = clock_now_ms() + r->o->retention_interval_ms;
}

/* Every PROGRESS_INTERVAL_MS while anything moves or waits: messages recorded and their rate,
 * duplicates, the consumer lag. */
static void progress(inbox_t *r) {
    int64_t now = clock_now_ms();
    if (now - r->last_progress_ms < PROGRESS_INTERVAL_MS)
        return;
    uint64_t ins = r->inserted - r->last_inserted, dup = r->duplicates - r->last_duplicates;
    long long lag = inbox_ops_consumer_lag(r->ops);
    double secs = (double)(now - r->last_progress_ms) / 1000.0;
    if (ins || dup || lag > 0) {
        char lagtxt[64];
        if (lag >= 0)
            snprintf(lagtxt, sizeof(lagtxt), "consumer lag %lld messages", lag);
        else
            snprintf(lagtxt, sizeof(lagtxt), "consumer lag unknown");
        log_info("recorded %" PRIu64 " messages (%.0f msgs/s, %" PRIu64
                 " duplicates skipped) in the last %.0f s; %s; %" PRIu64 " in total",
                 ins, (double)ins / secs, dup, secs, lagtxt, r->inserted);
    }
    r->last_inserted = r->inserted;
    r->last_duplicates = r->duplicates;
    r->last_progress_ms = now;
}

/* For the consumer lag: while inboxd holds for PostgreSQL, the consumer's position runs ahead
 * of the inbox (consumed messages are dropped, to be read again), so the lag counts from the
 * recorded position. Otherwise everything consumed is written at once, and the consumer's
 * position (which also steps over transaction markers) counts: -1. */
static int64_t recorded_position(void *arg, const char *topic, int32_t partition) {
    inbox_t *r = arg;
    if (!r->holding && (!r->batch || inbox_batch_count(r->batch) == 0))
        return -1;
    position_t *p = r->parts ? positions_find(r->parts, topic, partition) : NULL;
    if (!p)
        return -1;
    if (p->recorded >= 0)
        return p->recorded;
    /* No stored position yet: the first unwritten message, else where consumption resumes. */
    size_t n;
    const inbox_span_t *spans = inbox_batch_spans(r->batch, &n);
    for (size_t i = 0; spans && i < n; i++)
        if (spans[i].partition == partition && !strcmp(spans[i].topic, topic))
            return spans[i].first;
    return p->next;
}

static inbox_ops_state_t ops_state(inbox_t *r, const char *not_ready) {
    return (inbox_ops_state_t){.recorded = r->inserted,
                               .duplicates = r->duplicates,
                               .batches = r->batches,
                               .batch_messages = r->batch ? inbox_batch_count(r->batch) : 0,
                               .dropped_redelivered = r->dropped_seen,
                               .dropped_paused = r->dropped_held,
                               .dropped_unassigned = r->dropped_unassigned,
                               .regressions = r->regressions,
                               .rewound = r->rewound,
                               .consuming = !not_ready,
                               .not_ready = not_ready,
                               .recorded_position = recorded_position,
                               .recorded_position_arg = r};
}

/* Waits up to ms for the consumer's fd or a signal (signals are unblocked only in here). */
static void wait_fd(inbox_t *r, int ms) {
    struct pollfd pfd = {.fd = kconsumer_fd(r->kc), .events = POLLIN};
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    sigset_t none;
    sigemptyset(&none);
    if (ppoll(&pfd, 1, &ts, &none) < 0 && errno != EINTR)
        log_warn("ppoll: %s", strerror(errno));
}

/* Waits for the HTTP push thread to finish its requests in flight (at most
 * deliver.timeout.ms); a second signal meanwhile cancels them (their rows go back to
 * pending). */
static void stop_deliver(inbox_t *r) {
    if (!r->deliver)
        return;
    for (int waited = 0; !inbox_deliver_finished(r->deliver); waited++) {
        if (*r->stop >= 2)
            inbox_deliver_stop(r->deliver, true);
        else if (waited == 4) /* 200 ms: not just the thread winding down */
            log_info("waiting for the HTTP requests in flight (a second signal cancels them)");
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        sigset_t none;
        sigemptyset(&none);
        ppoll(NULL, 0, &ts, &none);
    }
}

static int next_timeout(inbox_t *r) {
    if (r->more && !r->holding)
        return 0;
    int64_t now = clock_now_ms(), t = 1000;
    if (r->holding && r->retry_at_ms - now < t)
        t = r->retry_at_ms - now;
    if (!r->holding && r->o->retention_s > 0 && !r->retention_off && r->retention_at_ms - now < t)
        t = r->retention_at_ms - now;
    if (!r->holding && r->commit_at_ms - now < t)
        t = r->commit_at_ms - now;
    return t < 0 ? 0 : (int)t;
}

/* Waits for Kafka in short slices: the ops endpoint's heartbeat (and the systemd watchdog)
 * keeps going, and SIGTERM (blocked outside ppoll) still stops inboxd. A broker that does
 * not answer is an outage, not a configuration error: exit 1, so that systemd restarts.
 * Returns true once a broker answered; false when stopped or given up (r->exit_code set). */
static bool wait_for_kafka(inbox_t *r) {
    char err[ERRSZ];
    int64_t deadline = clock_now_ms() + r->o->startup_timeout_ms;
    for (;;) {
        inbox_ops_state_t os = ops_state(r, "starting: waiting for Kafka");
        inbox_ops_tick(r->ops, clock_now_ms(), &os);
        int64_t t0 = clock_now_ms();
        int slice = deadline - t0 < STARTUP_SLICE_MS ? (int)(deadline - t0) : STARTUP_SLICE_MS;
        err_t e;
        if (kconsumer_check_connect(r->kc, slice > 0 ? slice : 1, &e) == 0)
            return true;
        err_line(&e, err, sizeof(err));
        if (e.kind == ERR_PERMANENT) { /* refused credentials or certificate: retrying cannot help */
            log_error("%s", err);
            r->exit_code = INBOX_EXIT_CONFIG;
            return false;
        }
        sigset_t pending;
        sigpending(&pending);
        if (*r->stop || sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)) {
            log_info("stopped before consuming");
            return false;
        }
        if (clock_now_ms() >= deadline) {
            log_error("%s (gave up after startup.timeout.ms=%d)", err, r->o->startup_timeout_ms);
            r->exit_code = INBOX_EXIT_RUNTIME;
            return false;
        }
        int64_t rest = t0 + slice - clock_now_ms(); /* the request failed early (connection refused) */
        if (rest > 0) {
            struct timespec ts = {.tv_sec = rest / 1000, .tv_nsec = (long)(rest % 1000) * 1000000L};
            sigset_t none;
            sigemptyset(&none);
            ppoll(NULL, 0, &ts, &none); /* a signal ends it and sets *r->stop */
        }
    }
}

int inbox_run(const inbox_options_t *o, volatile sig_atomic_t *stop) {
    inbox_t r = {.o = o, .stop = stop, .exit_code = INBOX_EXIT_OK};
    char err[ERRSZ];
    r.parts = positions_new();
    r.batch = inbox_batch_new();
    if (!r.parts || !r.batch) {
        log_error("out of memory");
        r.exit_code = INBOX_EXIT_RUNTIME;
        goto out;
    }
    inbox_ops_options_t oo = {.http_listen = o->http_listen,
                              .conninfo = o->conninfo,
                              .table = o->table,
                              .poll_interval_ms = o->metrics_interval_ms};
    r.ops = inbox_ops_new(&oo, err, sizeof(err));
    if (!r.ops) {
        log_error("%s", err);
        r.exit_code = INBOX_EXIT_CONFIG;
        goto out;
    }
    err_t e;
    r.kc = kconsumer_new(o->kafka_props, o->topics, o->ntopics, on_assign, on_revoke, &r, &e);
    if (!r.kc) {
        log_error("%s", err_line(&e, err, sizeof(err)));
        r.exit_code = INBOX_EXIT_CONFIG;
        goto out;
    }
    inbox_ops_watch_kafka(r.ops, kconsumer_handle(r.kc), kconsumer_group(r.kc));
    inbox_writer_options_t wo = {
        .conninfo = o->conninfo, .table = o->table, .offsets_table = o->offsets_table, .group = kconsumer_group(r.kc)};
    r.w = inbox_writer_new(&wo);
    if (!r.w) {
        log_error("out of memory");
        r.exit_code = INBOX_EXIT_RUNTIME;
        goto out;
    }
    if (!wait_for_kafka(&r))
        goto out;
    /* A configuration problem on the PostgreSQL side stops here; an unreachable server does
     * not: inboxd joins the group holding (partitions paused, positions read once it is back). */
    inbox_writer_status_t st = db_connect(&r, err, sizeof(err));
    if (st == INBOX_WRITER_FATAL) {
        log_error("%s", err);
        r.exit_code = INBOX_EXIT_CONFIG;
        goto out;
    }
    if (kconsumer_subscribe(r.kc, err, sizeof(err)) != 0) {
        log_error("%s", err);
        r.exit_code = INBOX_EXIT_CONFIG;
        goto out;
    }
    if (st == INBOX_WRITER_RETRY) {
        char why[ERRSZ];
        snprintf(why, sizeof(why), "%s", err);
        hold(&r, why);
    }
    log_info("consuming %zu topic%s in group %s into %s (batches of up to %d messages)", o->ntopics,
             o->ntopics == 1 ? "" : "s", kconsumer_group(r.kc), inbox_writer_table(r.w), o->batch_max);
    if (o->deliver && !(r.deliver = inbox_deliver_start(o->deliver, err, sizeof(err)))) {
        log_error("%s", err);
        r.exit_code = INBOX_EXIT_CONFIG;
        goto out;
    }
    r.last_progress_ms = clock_now_ms();
    r.retention_at_ms = clock_now_ms() + RETENTION_FIRST_MS;
    r.commit_at_ms = clock_now_ms() + o->commit_interval_ms;

    while (!*stop && !r.failed) {
        fill(&r);
        if (r.failed)
            break;
        if (!r.holding)
            flush(&r, false);
        if (r.holding) {
            try_recover(&r);
        } else {
            do_seeks(&r);
            if (clock_now_ms() >= r.commit_at_ms)
                commit_kafka(&r, false);
            retention(&r);
        }
        progress(&r);
        if (cli_reload_pending())
            cli_reload();
        inbox_ops_state_t os = ops_state(&r, r.holding ? "PostgreSQL is unavailable: consumption paused" : NULL);
        inbox_ops_tick(r.ops, clock_now_ms(), &os);
        if (r.deliver && inbox_deliver_finished(r.deliver)) {
            char why[ERRSZ];
            if (!inbox_deliver_failed(r.deliver, why, sizeof(why)))
                snprintf(why, sizeof(why), "HTTP push stopped unexpectedly");
            inbox_fail(&r, INBOX_EXIT_CONFIG, why);
        }
        if (*stop || r.failed)
            break;
        wait_fd(&r, next_timeout(&r));
    }

    notify_stopping();
    inbox_ops_state_t final = ops_state(&r, "stopping");
    inbox_ops_tick(r.ops, clock_now_ms(), &final);
    /* Shutdown: write what was consumed, commit, leave the group (the revoke callback runs
     * and commits synchronously). A second signal skips all that: nothing is lost, the next
     * start re-reads from the stored positions. */
    inbox_deliver_stop(r.deliver, *stop >= 2 || r.failed); /* finishes meanwhile */
    if (*stop < 2 && !r.failed)
        flush(&r, true);
    if (*stop < 2) {
        r.closing = true;
        if (kconsumer_close(r.kc, err, sizeof(err)) != 0)
            log_warn("%s", err);
    }
    if (!r.failed)
        log_info("stopped: recorded %" PRIu64 " messages, %" PRIu64 " duplicates skipped, in %" PRIu64 " batches%s",
                 r.inserted, r.duplicates, r.batches,
                 inbox_batch_count(r.batch) ? "; unwritten messages are re-read on the next start" : "");

    stop_deliver(&r);

out:
    inbox_ops_destroy(r.ops); /* before the consumer: its Kafka probe uses the handle */
    inbox_deliver_destroy(r.deliver);
    kconsumer_destroy(r.kc);
    inbox_writer_destroy(r.w);
    inbox_batch_destroy(r.batch);
    positions_destroy(r.parts);
    free(r.ctps);
    return r.exit_code;
}
