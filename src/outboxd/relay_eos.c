/* relay_eos.c - delivery.guarantee = exactly-once in the relay loop: sessions (a fresh
 * transactional producer, fencing, the checkpoint read back), Kafka transactions around whole
 * PostgreSQL transactions with their checkpoint, commits on the job thread, replays (see
 * relay_eos.h). */
#include "relay_eos.h"
#include "relay_internal.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bgjob.h"
#include "checkpoint.h"
#include "checkpoint_reader.h"
#include "clock.h"
#include "ktxn.h"
#include "log.h"
#include "txn_batch.h"

#define CKPT_SEQ (1ULL << 62)        /* in a delivery's seq: the checkpoint record */
#define SLICE_MS 1000                /* a blocking call gives the job a chance to see a cancel this often */
#define ABORT_MS 5000                /* how long a replay tries to abort before leaving it to the next fencing */
#define READ_TIMEOUT_MS 30000        /* reading the checkpoint back, once */
#define RETRY_MS 1000                /* a session start that failed is tried again after this */
#define RETRY_LOG_MS 30000           /* the same failure is logged again after this */
#define CHECK_TXN_ID "outboxd-check" /* the settings check's producer: never initialised, never fences */

typedef enum { JOB_NONE, JOB_SESSION, JOB_COMMIT, JOB_ABORT } job_kind_t;
typedef enum { SES_NONE, SES_STARTING, SES_READY } session_t;
enum { JOB_NO_PRODUCER = 100 }; /* the session job could not create its producer (settings) */

/* An event Kafka refused for good inside a transaction that was then aborted: on the replay it
 * goes to the dead-letter topic at once. */
typedef struct refused {
    lsn_t lsn;
    char id[128]; /* "" when the event id is not known */
    char reason[512];
    dead_letter_reason_t why; /* from the delivery report's refusal class */
} refused_t;

struct relay_eos {
    relay_t *r;
    kproducer_dr_cb_t cb;
    bgjob_t *job;
    checkpoint_reader_t *reader;
    txn_batch_t batch;
    char txn_id[256];
    char database[CHECKPOINT_NAME_SIZE];
    session_t session;
    job_kind_t running;
    int64_t session_since_ms, retry_at_ms, commit_since_ms, logged_retry_ms;
    char logged_retry[1800];
    bool finish_started;
    /* The job's inputs and outputs: the loop touches them only while no job runs. */
    struct {
        kproducer_t *old_kp; /* the previous session's producer, to destroy */
        kproducer_t *kp;     /* this session's (becomes r->kp when the session is ready) */
        bool inited;         /* init_transactions succeeded on kp */
        int32_t partition;   /* of the checkpoint, -1 until known */
        checkpoint_t ck;
        int found; /* checkpoint_reader_read's result */
        int64_t offset;
        err_t err;
    } j;
    lsn_t skip_before; /* skip transactions whose commit record starts before it (0: none) */
    bool skipping;     /* the transaction being read is skipped */
    uint64_t skipped;
    refused_t *refused;
    size_t nrefused;
};

/* ------------------------------------------------------------------ jobs (background thread) */

static bool job_cancelled(void *arg) { return bgjob_cancelled(arg); }

/* Drops the old producer, creates this session's, fences every older one with the same
 * transactional.id (init_transactions completes or aborts their last transaction) and reads the
 * last committed checkpoint. Each step is done once: a retry goes on where it stopped. */
static int session_job(bgjob_t *j, void *arg) {
    relay_eos_t *x = arg;
    const relay_options_t *o = x->r->o;
    if (x->j.old_kp) {
        kproducer_destroy(x->j.old_kp);
        x->j.old_kp = NULL;
    }
    if (!x->j.kp) {
        x->j.kp = kproducer_new_txn(o->kafka_props, o->router.id_header, x->txn_id, x->cb, x->r, &x->j.err);
        if (!x->j.kp)
            return JOB_NO_PRODUCER;
    }
    while (!x->j.inited) {
        int64_t t0 = clock_now_ms();
        ktxn_result_t res = ktxn_init(x->j.kp, SLICE_MS * 5, &x->j.err);
        if (res == KTXN_OK)
            x->j.inited = true;
        else if (res != KTXN_RETRY || bgjob_cancelled(j))
            return (int)res;
        else if (clock_now_ms() - t0 < 100) { /* an answer that came at once: no busy loop */
            struct timespec ts = {0, 200 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (x->j.partition < 0) {
        int n = checkpoint_reader_partitions(x->reader, 10000, &x->j.err);
        if (n < 0)
            return x->j.err.kind == ERR_PERMANENT ? KTXN_FATAL : KTXN_RETRY;
        x->j.partition = checkpoint_partition(x->txn_id, strlen(x->txn_id), n);
    }
    x->j.found = checkpoint_reader_read(x->reader, x->txn_id, x->j.partition, READ_TIMEOUT_MS, job_cancelled, j,
                                        &x->j.ck, &x->j.offset, &x->j.err);
    return x->j.found < 0 ? KTXN_RETRY : KTXN_OK;
}

/* commit_transaction flushes (the loop serves the delivery reports meanwhile), then waits for
 * the coordinator. A timed-out call resumes when called again. */
static int commit_job(bgjob_t *j, void *arg) {
    relay_eos_t *x = arg;
    for (;;) {
        ktxn_result_t res = ktxn_commit(x->j.kp, SLICE_MS, &x->j.err);
        if (res != KTXN_RETRY || bgjob_cancelled(j))
            return (int)res;
    }
}

/* Aborting tells a fenced producer that it is fenced; bounded: when Kafka is away, the next
 * session's fencing aborts the transaction instead. */
static int abort_job(bgjob_t *j, void *arg) {
    relay_eos_t *x = arg;
    for (int64_t until = clock_now_ms() + ABORT_MS; clock_now_ms() < until;) {
        ktxn_result_t res = ktxn_abort(x->j.kp, SLICE_MS, &x->j.err);
        if (res != KTXN_RETRY || bgjob_cancelled(j))
            return (int)res;
    }
    return KTXN_RETRY;
}

/* ------------------------------------------------------------------------ set up */

relay_eos_t *relay_eos_new(relay_t *r, kproducer_dr_cb_t cb, err_t *e) {
    const relay_options_t *o = r->o;
    relay_eos_t *x = calloc(1, sizeof(*x));
    if (!x) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return NULL;
    }
    x->r = r;
    x->cb = cb;
    x->j.partition = -1;
    txn_batch_limits_t lim = {.max_txns = o->batch_max_txns,
                              .max_bytes = o->batch_max_bytes,
                              .max_ms = o->batch_max_ms,
                              .linger_ms = o->batch_linger_ms};
    txn_batch_init(&x->batch, &lim);
    snprintf(x->txn_id, sizeof(x->txn_id), "%s", o->transactional_id ? o->transactional_id : "");
    /* The producer settings are checked now, not at the first session: a transactional producer
     * that is never initialised contacts no coordinator and fences nobody. */
    kproducer_t *check = kproducer_new_txn(o->kafka_props, o->router.id_header, CHECK_TXN_ID, cb, r, e);
    if (!check)
        goto fail;
    kproducer_destroy(check);
    if (!(x->reader = checkpoint_reader_new(o->kafka_props, o->checkpoint_topic, e)))
        goto fail;
    if (!(x->job = bgjob_start())) {
        err_set(e, ERR_TRANSIENT, "", NULL, "cannot start the transaction thread");
        goto fail;
    }
    return x;
fail:
    relay_eos_destroy(x);
    return NULL;
}

void relay_eos_destroy(relay_eos_t *x) {
    if (!x)
        return;
    bgjob_stop(x->job);
    if (x->j.kp && x->j.kp != x->r->kp)
        kproducer_destroy(x->j.kp);
    kproducer_destroy(x->j.old_kp);
    checkpoint_reader_destroy(x->reader);
    free(x->refused);
    free(x);
}

void *relay_eos_kafka_handle(relay_eos_t *x) { return checkpoint_reader_handle(x->reader); }

int relay_eos_check_connect(relay_eos_t *x, int timeout_ms, err_t *e) {
    return checkpoint_reader_check_connect(x->reader, timeout_ms, e);
}

/* --------------------------------------------------------------------------- sessions */

static void submit(relay_eos_t *x, job_kind_t kind, bgjob_fn fn) {
    if (bgjob_submit(x->job, fn, x) == 0)
        x->running = kind;
}

/* Hands kp to the next session job, which destroys it first (destroying can wait for
 * librdkafka's threads). One is kept at a time: an older one still waiting goes here. */
static void retire(relay_eos_t *x, kproducer_t *kp) {
    if (x->j.old_kp && x->j.old_kp != kp)
        kproducer_destroy(x->j.old_kp);
    x->j.old_kp = kp;
}

void relay_eos_session_start(relay_t *r) {
    relay_eos_t *x = r->eos;
    if (!x->txn_id[0]) { /* derived once, from the database the replication connection reached */
        char id[sizeof(x->txn_id)];
        snprintf(x->txn_id, sizeof(x->txn_id), "%s",
                 checkpoint_default_txn_id(PQdb(repl_stream_conn(r->rs)), r->o->slot, id, sizeof(id)));
    }
    snprintf(x->database, sizeof(x->database), "%s", PQdb(repl_stream_conn(r->rs)));
    /* A new session never trusts the last one's producer: another instance may have held the
     * slot (and fenced it) meanwhile. */
    if (r->kp) {
        retire(x, r->kp);
        r->kp = NULL;
        x->j.kp = NULL;
    }
    if (x->j.kp && x->j.inited) { /* a session that never got ready */
        retire(x, x->j.kp);
        x->j.kp = NULL;
    }
    x->j.inited = false;
    x->session = SES_STARTING;
    x->session_since_ms = x->retry_at_ms = clock_now_ms();
    x->finish_started = false;
    x->skipping = false;
    x->skip_before = 0;
    txn_batch_reset(&x->batch, 0);
    if (x->running == JOB_NONE)
        submit(x, JOB_SESSION, session_job);
}

/* The checkpoint read back: skip what it covers when it describes this stream. */
static void session_ready(relay_t *r) {
    relay_eos_t *x = r->eos;
    char lb[LSN_FMT_SIZE], why[768];
    r->kp = x->j.kp;
    x->session = SES_READY;
    x->logged_retry[0] = '\0';
    if (x->j.found != 1) {
        txn_batch_reset(&x->batch, 0);
        log_info("exactly-once: transactional.id \"%s\" ready (older producers fenced); no checkpoint in %s yet: "
                 "streaming from the slot",
                 x->txn_id, r->o->checkpoint_topic);
        return;
    }
    checkpoint_fit_t fit =
        checkpoint_fit(&x->j.ck, x->database, r->o->slot, stream_connect_system_id(r->sc),
                       stream_connect_timeline(r->sc), repl_stream_identified_lsn(r->rs), why, sizeof(why));
    if (fit != CHECKPOINT_FITS) {
        txn_batch_reset(&x->batch, 0);
        log_warn("exactly-once: %s; not skipping anything: transactions since the slot's position that are already "
                 "in Kafka are published again (at least once)",
                 why);
        return;
    }
    x->skip_before = x->j.ck.lsn;
    txn_batch_reset(&x->batch, x->j.ck.lsn);
    log_info("exactly-once: transactional.id \"%s\" ready (older producers fenced); checkpoint %s (offset %" PRId64
             " of %s): transactions committed before it are in Kafka and are skipped",
             x->txn_id, lsn_format(x->j.ck.lsn, lb), x->j.offset, r->o->checkpoint_topic);
}

/* A failure to log once, then again only after RETRY_LOG_MS (the session is retried every RETRY_MS). */
static void log_retry(relay_eos_t *x, const char *what) {
    char line[1800];
    snprintf(line, sizeof(line), "%s: %s", what, x->j.err.msg);
    int64_t now = clock_now_ms();
    if (strcmp(x->logged_retry, line) != 0 || now - x->logged_retry_ms >= RETRY_LOG_MS) {
        log_warn("%s (retrying every %d ms)", line, RETRY_MS);
        snprintf(x->logged_retry, sizeof(x->logged_retry), "%s", line);
        x->logged_retry_ms = now;
    }
}

static void fail_loudly(relay_t *r, int code, const char *what, const err_t *e) {
    char msg[RELAY_ERRSZ + 1024], line[1800];
    snprintf(msg, sizeof(msg), "exactly-once: %s (transactional.id \"%s\"): %s", what, r->eos->txn_id,
             err_line(e, line, sizeof(line)));
    relay_fail(r, code, msg);
}

static void session_done(relay_t *r, int rc) {
    relay_eos_t *x = r->eos;
    if (x->session != SES_STARTING) /* the stream went away meanwhile: the next session drops it */
        return;
    switch (rc) {
    case KTXN_OK:
        session_ready(r);
        return;
    case KTXN_RETRY:
    case KTXN_ABORT:
        log_retry(x, "exactly-once: cannot start the Kafka session yet");
        x->retry_at_ms = clock_now_ms() + RETRY_MS;
        return;
    case JOB_NO_PRODUCER:
        fail_loudly(r, RELAY_EXIT_CONFIG, "cannot create the transactional producer", &x->j.err);
        return;
    case KTXN_FENCED:
        fail_loudly(r, RELAY_EXIT_RUNTIME, "fenced while starting", &x->j.err);
        return;
    default:
        fail_loudly(r, RELAY_EXIT_RUNTIME, "cannot start the Kafka session", &x->j.err);
        return;
    }
}

/* Runs the session job here and now (backfill and recovery publish outside the loop), serving
 * nothing else: the producer does not exist yet. */
int relay_eos_session_sync(relay_t *r, char *errstr, size_t errstr_size) {
    relay_eos_t *x = r->eos;
    relay_eos_session_start(r);
    for (;;) {
        if (x->running == JOB_NONE && x->session == SES_STARTING && clock_now_ms() >= x->retry_at_ms)
            submit(x, JOB_SESSION, session_job);
        struct pollfd p = {.fd = bgjob_fd(x->job), .events = POLLIN};
        struct timespec ts = {0, 100 * 1000000};
        ppoll(&p, 1, &ts, &r->unblocked);
        if (x->running != JOB_NONE)
            relay_eos_on_fd(r);
        if (x->session == SES_READY)
            return 0;
        if (r->state == ST_SHUTDOWN || *r->stop) {
            if (x->running != JOB_NONE)
                bgjob_cancel(x->job);
            snprintf(errstr, errstr_size, "stopped while starting the exactly-once session");
            if (x->running == JOB_NONE)
                return -1;
        }
    }
}

/* ------------------------------------------------------------------------ the loop side */

bool relay_eos_blocked(const relay_eos_t *x) {
    return x->session != SES_READY || x->running != JOB_NONE || x->batch.state == TXN_BATCH_FAILED;
}

int relay_eos_fd(const relay_eos_t *x) { return x->running != JOB_NONE ? bgjob_fd(x->job) : -1; }

static void commit_done(relay_t *r, int rc) {
    relay_eos_t *x = r->eos;
    char lb[LSN_FMT_SIZE], why[1400];
    if (rc == KTXN_OK) {
        size_t records = x->batch.records, txns = x->batch.txns;
        txn_batch_committed(&x->batch);
        log_debug("committed a Kafka transaction: %zu records of %zu PostgreSQL transactions in %" PRId64
                  " ms; checkpoint %s",
                  records, txns, clock_now_ms() - x->commit_since_ms, lsn_format(x->batch.committed, lb));
        return;
    }
    txn_batch_failed(&x->batch);
    if (rc == KTXN_FENCED || rc == KTXN_FATAL) {
        fail_loudly(r, RELAY_EXIT_RUNTIME, rc == KTXN_FENCED ? "this instance was fenced" : "commit failed", &x->j.err);
        return;
    }
    if (r->state == ST_STREAM) {
        snprintf(why, sizeof(why), "the Kafka transaction did not commit (%s): replaying it from the last checkpoint",
                 rc == KTXN_RETRY ? "gave up waiting for Kafka" : x->j.err.msg);
        relay_stream_lost(r, why);
    }
}

void relay_eos_on_fd(relay_t *r) {
    relay_eos_t *x = r->eos;
    int rc;
    if (x->running == JOB_NONE || !bgjob_done(x->job, &rc))
        return;
    job_kind_t kind = x->running;
    x->running = JOB_NONE;
    switch (kind) {
    case JOB_SESSION:
        session_done(r, rc);
        break;
    case JOB_COMMIT:
        commit_done(r, rc);
        break;
    case JOB_ABORT:
        if (rc == KTXN_FENCED)
            fail_loudly(r, RELAY_EXIT_RUNTIME, "this instance was fenced", &x->j.err);
        else if (rc == KTXN_OK)
            log_info("exactly-once: aborted the open Kafka transaction; what it held is published again");
        else
            log_warn("exactly-once: could not abort the open Kafka transaction (%s): the next session's producer "
                     "aborts it when it fences this one",
                     x->j.err.msg);
        break;
    case JOB_NONE:
        break;
    }
}

/* The checkpoint record, then the commit on the job thread. Returns 0, or -1 when the record
 * could not be queued yet (a full queue: try again) or at all (the relay fails). */
static int start_commit(relay_t *r) {
    relay_eos_t *x = r->eos;
    checkpoint_t ck = {.timeline = stream_connect_timeline(r->sc), .lsn = x->batch.last_end};
    snprintf(ck.database, sizeof(ck.database), "%s", x->database);
    snprintf(ck.slot, sizeof(ck.slot), "%s", r->o->slot);
    snprintf(ck.system_id, sizeof(ck.system_id), "%s", stream_connect_system_id(r->sc));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ck.written_at, sizeof(ck.written_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char value[1024], err[RELAY_ERRSZ];
    int n = checkpoint_encode(&ck, value, sizeof(value));
    kproducer_result_t res =
        n < 0 ? KPRODUCER_INVALID
              : kproducer_produce_to(r->kp, r->o->checkpoint_topic, x->j.partition, x->txn_id, strlen(x->txn_id), value,
                                     (size_t)n, CKPT_SEQ, err, sizeof(err));
    if (res == KPRODUCER_QUEUE_FULL)
        return -1;
    if (res != KPRODUCER_OK) {
        char msg[RELAY_ERRSZ + 128];
        snprintf(msg, sizeof(msg), "exactly-once: cannot write the checkpoint record: %s",
                 n < 0 ? "it does not fit" : err);
        relay_fail(r, RELAY_EXIT_RUNTIME, msg);
        return -1;
    }
    txn_batch_committing(&x->batch);
    x->commit_since_ms = clock_now_ms();
    submit(x, JOB_COMMIT, commit_job);
    return 0;
}

void relay_eos_step(relay_t *r, int64_t now) {
    relay_eos_t *x = r->eos;
    if (x->running != JOB_NONE || r->state != ST_STREAM)
        return;
    if (x->session == SES_STARTING && now >= x->retry_at_ms) {
        submit(x, JOB_SESSION, session_job);
        return;
    }
    if (x->session == SES_READY && !r->pending &&
        txn_batch_due(&x->batch, now, ack_tracker_in_txn(r->at), r->caught_up, false))
        start_commit(r);
}

int64_t relay_eos_due_in(const relay_eos_t *x, int64_t now) {
    if (x->running != JOB_NONE)
        return -1;
    if (x->session == SES_STARTING)
        return x->retry_at_ms > now ? x->retry_at_ms - now : 0;
    return x->session == SES_READY ? txn_batch_due_in(&x->batch, now) : -1;
}

bool relay_eos_stalled(const relay_eos_t *x, int64_t now, int stall_ms) {
    if (stall_ms <= 0)
        return false;
    return (x->session == SES_STARTING && now - x->session_since_ms >= stall_ms) ||
           (x->running == JOB_COMMIT && now - x->commit_since_ms >= stall_ms);
}

/* ---------------------------------------------------------------------- the stream side */

void relay_eos_pg_begin(relay_eos_t *x, lsn_t commit_start) {
    x->skipping = x->skip_before && commit_start < x->skip_before;
    if (x->skipping) {
        x->skipped++;
    } else if (x->skip_before) {
        char lb[LSN_FMT_SIZE];
        if (x->skipped)
            log_info("exactly-once: skipped %" PRIu64 " transactions that Kafka already had (committed before %s)",
                     x->skipped, lsn_format(x->skip_before, lb));
        x->skip_before = 0;
        x->skipped = 0;
    }
}

void relay_eos_pg_commit(relay_eos_t *x, lsn_t end) {
    txn_batch_pg_commit(&x->batch, end);
    x->skipping = false;
}

bool relay_eos_skipping(const relay_eos_t *x, lsn_t data_lsn, bool in_txn) {
    return in_txn ? x->skipping : x->skip_before && data_lsn < x->skip_before;
}

/* The refused event r->ev stands for, or -1. Matched by event id when both have one (a backfill
 * that starts over gives its rows another LSN), else by the LSN of the WAL record. */
static long find_refused(const relay_eos_t *x, const outbox_event_t *ev, lsn_t lsn) {
    for (size_t i = 0; i < x->nrefused; i++) {
        const refused_t *f = &x->refused[i];
        if (f->id[0] && ev->id ? !strcmp(f->id, ev->id) : f->lsn == lsn)
            return (long)i;
    }
    return -1;
}

int relay_eos_before_produce(relay_t *r) {
    relay_eos_t *x = r->eos;
    long i;
    if (r->dl && !r->ev_is_dlq && x->nrefused && (i = find_refused(x, &r->ev, r->ev_lsn)) >= 0) {
        refused_t f = x->refused[i];
        x->refused[i] = x->refused[--x->nrefused];
        if (dead_letter_event(r->dl, &r->ev, r->ev_lsn, f.reason, f.why) == 0)
            r->ev_is_dlq = true;
    }
    if (x->session != SES_READY || !r->kp)
        return -1; /* reading waits for the session: only a failing relay gets here */
    size_t bytes = r->ev.key_len + r->ev.value_len;
    if (txn_batch_record(&x->batch, clock_now_ms(), ack_tracker_confirmable(r->at), bytes)) {
        err_t e;
        ktxn_result_t res = ktxn_begin(r->kp, &e);
        if (res != KTXN_OK) {
            txn_batch_failed(&x->batch);
            fail_loudly(r, RELAY_EXIT_RUNTIME, "cannot begin a Kafka transaction", &e);
            return -1;
        }
    }
    return 0;
}

static void remember_refused(relay_eos_t *x, const kproducer_delivery_t *d) {
    refused_t *n = realloc(x->refused, (x->nrefused + 1) * sizeof(*n));
    if (!n)
        return; /* the replay then refuses it again, and comes back here */
    x->refused = n;
    refused_t *f = &n[x->nrefused++];
    *f = (refused_t){.lsn = d->lsn, .why = dead_letter_reason_of_refusal(d->refusal)};
    snprintf(f->id, sizeof(f->id), "%s", d->event_id ? d->event_id : "");
    snprintf(f->reason, sizeof(f->reason), "Kafka refused it for topic %s: %s", d->topic ? d->topic : "?",
             d->errstr ? d->errstr : "error");
}

bool relay_eos_delivery(relay_t *r, const kproducer_delivery_t *d) {
    relay_eos_t *x = r->eos;
    if (d->seq == CKPT_SEQ) {
        if (d->err) /* the commit fails with it and replays */
            log_warn("exactly-once: the checkpoint record was not delivered: %s", d->errstr ? d->errstr : "error");
        return true;
    }
    if (!d->err)
        return false;
    bool was_dlq = (d->seq & RELAY_DLQ_FLAG) != 0;
    /* Any failed record poisons its transaction (librdkafka makes it abortable). */
    txn_batch_failed(&x->batch);
    if (ktxn_record_refused(d->err) && (!r->dl || was_dlq))
        return false; /* the relay stops naming the event, as without transactions */
    ack_tracker_fail(r->at, d->seq & ~RELAY_DLQ_FLAG);
    char why[RELAY_ERRSZ + 256];
    if (ktxn_record_refused(d->err)) {
        /* Said whether or not this report is the one that starts the replay: librdkafka purges
         * the rest of the transaction, and those reports may come first. */
        remember_refused(x, d);
        relay_ops_failed(r->ops, d->seq);
        log_warn("exactly-once: event %s was refused by Kafka for topic %s (%s): the Kafka transaction is aborted "
                 "and replayed with the event dead-lettered",
                 d->event_id ? d->event_id : "(no id)", d->topic ? d->topic : "?", d->errstr ? d->errstr : "error");
        snprintf(why, sizeof(why), "a record was refused: replaying the Kafka transaction");
    } else {
        snprintf(why, sizeof(why), "a record was not delivered (%s): replaying the Kafka transaction",
                 d->errstr ? d->errstr : "error");
    }
    if (r->state == ST_STREAM)
        relay_stream_lost(r, why);
    return true;
}

void relay_eos_rewind(relay_t *r) {
    relay_eos_t *x = r->eos;
    bool was_open = x->batch.state == TXN_BATCH_OPEN;
    txn_batch_failed(&x->batch);
    x->skipping = false;
    x->session = SES_NONE;
    if (x->running != JOB_NONE)
        bgjob_cancel(x->job); /* a cancelled commit may still complete: the next session reads it back */
    else if (was_open && r->kp) {
        x->j.kp = r->kp;
        submit(x, JOB_ABORT, abort_job);
    }
}

bool relay_eos_drained(const relay_eos_t *x) { return x->running == JOB_NONE; }

lsn_t relay_eos_cap(const relay_eos_t *x, lsn_t confirmable) { return txn_batch_cap(&x->batch, confirmable); }

bool relay_eos_finish(relay_t *r, int64_t now) {
    relay_eos_t *x = r->eos;
    bool hurry = *r->stop >= 2 || now >= r->shutdown_deadline_ms;
    if (x->running == JOB_SESSION || (hurry && x->running != JOB_NONE))
        bgjob_cancel(x->job);
    if (x->running != JOB_NONE)
        return false;
    if (x->finish_started)
        return true;
    x->finish_started = true;
    if (x->session != SES_READY || x->batch.state != TXN_BATCH_OPEN || !r->kp || ack_tracker_failed(r->at))
        return true;
    if (ack_tracker_in_txn(r->at)) {
        log_warn("exactly-once: stopping in the middle of a PostgreSQL transaction: the open Kafka transaction is "
                 "not committed (nothing of it becomes visible); the next start publishes it again");
        return true;
    }
    if (hurry || start_commit(r) != 0)
        return true;
    return false;
}

bool relay_eos_on_fatal(relay_t *r, char *errstr, size_t errstr_size) {
    err_t e;
    ktxn_result_t res = r->kp ? ktxn_fatal(r->kp, &e) : KTXN_OK;
    char line[1800];
    if (res == KTXN_FENCED) {
        snprintf(errstr, errstr_size, "exactly-once (transactional.id \"%s\"): %s", r->eos->txn_id,
                 err_line(&e, line, sizeof(line)));
        return false;
    }
    /* Any other fatal error ends this producer only: the next session's producer fences it (a
     * delayed request of it can then do no harm) and replays what it had not committed. */
    log_error("exactly-once: the transactional producer failed for good (%s): replacing it and publishing again "
              "what it had not committed",
              res == KTXN_FATAL ? e.msg : errstr);
    txn_batch_failed(&r->eos->batch);
    if (r->state == ST_STREAM)
        relay_stream_lost(r, "the transactional producer failed");
    return true;
}

/* ----------------------------------------------------------------- backfill and recovery */

int relay_eos_commit_sync(relay_t *r, char *errstr, size_t errstr_size) {
    relay_eos_t *x = r->eos;
    if (x->batch.state == TXN_BATCH_OPEN) {
        while (start_commit(r) != 0) {
            if (r->state == ST_SHUTDOWN) {
                snprintf(errstr, errstr_size, "stopped before the Kafka transaction committed");
                return -1;
            }
            char err[RELAY_ERRSZ];
            if (kproducer_poll(r->kp, err, sizeof(err)) != 0) {
                relay_fail(r, RELAY_EXIT_RUNTIME, err);
                return -1;
            }
        }
    }
    while (x->running != JOB_NONE) {
        struct pollfd p[2] = {{.fd = bgjob_fd(x->job), .events = POLLIN},
                              {.fd = kproducer_fd(r->kp), .events = POLLIN}};
        struct timespec ts = {0, 100 * 1000000};
        ppoll(p, 2, &ts, &r->unblocked);
        char err[RELAY_ERRSZ];
        if (kproducer_poll(r->kp, err, sizeof(err)) != 0)
            relay_fail(r, RELAY_EXIT_RUNTIME, err);
        if (*r->stop >= 2)
            bgjob_cancel(x->job);
        relay_eos_on_fd(r);
    }
    if (x->batch.state != TXN_BATCH_IDLE) {
        snprintf(errstr, errstr_size, "the Kafka transaction did not commit (%s); the next attempt starts over",
                 x->j.err.msg[0] ? x->j.err.msg : "a record was not delivered");
        return -1;
    }
    return 0;
}

int relay_eos_backfill_row(relay_t *r, char *errstr, size_t errstr_size) {
    relay_eos_t *x = r->eos;
    if (x->batch.state == TXN_BATCH_FAILED) {
        snprintf(errstr, errstr_size, "a record was not delivered; the next attempt starts over");
        return -1;
    }
    if (!txn_batch_due(&x->batch, clock_now_ms(), false, false, false))
        return 0;
    return relay_eos_commit_sync(r, errstr, errstr_size);
}
