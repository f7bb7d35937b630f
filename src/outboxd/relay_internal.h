/* relay_internal.h - the relay's state and the few relay steps the backfill drives: private to
 * relay.c (the loop) and backfill_publish.c (which publishes existing rows through the same
 * pipeline before the slot exists). Nothing else includes it. */
#ifndef OUTBOXD_RELAY_INTERNAL_H
#define OUTBOXD_RELAY_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "ack_tracker.h"
#include "cleanup.h"
#include "dead_letter.h"
#include "decoder.h"
#include "kproducer.h"
#include "lsn.h"
#include "partition_fence.h"
#include "partition_watch.h"
#include "progress.h"
#include "relay.h"
#include "relay_eos.h"
#include "relay_ops.h"
#include "repl_stream.h"
#include "router.h"
#include "stream_connect.h"
#include "w2j_decode.h"

#define RELAY_ERRSZ 1024
#define RELAY_DLQ_FLAG (1ULL << 63) /* in a delivery's seq: the record went to the dead-letter topic */

typedef enum { ST_CONNECT, ST_STREAM, ST_DRAIN, ST_SHUTDOWN } relay_state_t;

typedef struct relay {
    const relay_options_t *o;
    volatile sig_atomic_t *stop;
    sigset_t unblocked; /* the signal mask while waiting: SIGTERM and SIGINT deliverable */
    repl_stream_t *rs;
    decoder_t *dec; /* postgres.plugin's */
    router_t *router;
    kproducer_t *kp;
    ack_tracker_t *at;
    dead_letter_t *dl; /* outbox.on_invalid = dead-letter; NULL otherwise */
    cleanup_t *cl;     /* outbox.cleanup = delete; NULL otherwise */
    stream_connect_options_t sco;
    stream_connect_t *sc;
    relay_ops_t *ops;               /* metrics, HTTP endpoint, slot poll, guardrails */
    progress_writer_t *pw;          /* the durable progress record; NULL when progress.table is off */
    bool progress_failing;          /* the writer's last poll failed (logged once) */
    int64_t progress_check_ms;      /* when the writer's state was last looked at */
    relay_eos_t *eos;               /* delivery.guarantee = exactly-once; NULL otherwise. Then kp is NULL
                                       between streaming sessions (relay_eos.c creates one per session) */
    partition_fence_t *pf;          /* wal2json over partitioned tables (relay_partitions.c); else NULL */
    partition_watch_t *pwatch;      /* its catalog poll */
    partition_snapshot_t part_snap; /* its latest poll */
    char part_err[512];             /* the poll's last failure (logged once) */

    relay_state_t state;
    int exit_code;
    bool pending; /* ev was refused with QUEUE_FULL: retry before reading more */
    outbox_event_t ev;
    uint64_t ev_seq;
    lsn_t ev_lsn;           /* LSN of ev's WAL record */
    int64_t txn_commit_us;  /* commit time of the transaction being read (wal2json); 0 unknown */
    bool ev_is_dlq;         /* ev is a dead-letter record (a refusal then stops the relay) */
    uint64_t confirmed_seq; /* transactions up to this seq were confirmed to PostgreSQL */
    bool status_due;
    bool caught_up; /* the last read found no whole message waiting */
    lsn_t sent_flush;
    int64_t last_status_ms, next_connect_ms, shutdown_deadline_ms;
    int64_t stop_ms; /* when SIGTERM came (0: not yet) */
    bool finishing;  /* stopping: reading to the end of the open transaction first */
    int backoff_ms;
    bool had_stream; /* streamed at least once: later connects are reconnects */

    uint64_t produced, acked, last_progress_acked;
    uint64_t stall_acked;   /* r->acked when stall_since was last reset */
    int64_t stall_since_ms; /* since when events are outstanding without any acknowledgement */
    int64_t last_progress_ms;

    lsn_t wal_end;                    /* the walsender's last reported WAL end */
    bool standby;                     /* the slot is streamed by another process: waiting for it */
    char not_ready[RELAY_ERRSZ + 64]; /* why not streaming, for /readyz */
} relay_t;

/* Stops the relay: logs msg, then the loop flushes what was acknowledged and exits with the
 * highest code given. */
void relay_fail(relay_t *r, int code, const char *msg);

/* The replication stream broke or must be replayed (why: logged): drop the unsent record,
 * close the stream, then (state ST_DRAIN) wait until in-flight work settled and reconnect from
 * the confirmed position. */
void relay_stream_lost(relay_t *r, const char *why);

/* What may be confirmed to PostgreSQL now: the ack tracker's watermark, held back under
 * exactly-once until the Kafka transaction holding it committed. */
lsn_t relay_confirmable(const relay_t *r);

/* Hands r->ev (an event of transaction r->ev_seq from the WAL record at r->ev_lsn) to the
 * producer; a refused event goes to the dead-letter topic when configured. Sets r->pending
 * when the producer's queue is full (call again after serving delivery reports). */
void relay_publish(relay_t *r);

/* outbox.cleanup = delete: queues the row of r->ev, as rec names it, for deletion. */
void relay_queue_cleanup(relay_t *r, const w2j_record_t *rec);

/* Metrics, health and guardrails (cheap unless a second has passed); a lost slot stops the relay. */
void relay_tick(relay_t *r, int64_t now_ms);

#endif
