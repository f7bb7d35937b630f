/* relay.h - the outboxd pipeline in one thread and one poll() loop:
 * repl_stream -> decoder (wal2json or pgoutput) -> router -> kproducer -> ack_tracker -> status updates. */
#ifndef OUTBOXD_RELAY_H
#define OUTBOXD_RELAY_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "decoder.h"
#include "router.h"

typedef struct relay_options {
    const char *conninfo;           /* libpq conninfo or URI (borrowed) */
    const char *slot;               /* replication slot name */
    bool create_slot;               /* create the slot when missing */
    router_options_t router;        /* tables, topic template, columns, prefix, header names */
    const char *const *kafka_props; /* NULL-terminated name, value pairs for librdkafka */
    int status_interval_ms;         /* standby status update period */
    int status_confirm_ms;          /* status.confirm.ms: a moved watermark is confirmed at most this often */
    size_t max_inflight_events;     /* back-pressure bound on unacked events */
    size_t max_inflight_txns;       /* back-pressure bound on held transactions */
    int shutdown_timeout_ms;        /* how long SIGTERM waits for in-flight acks */
    int startup_timeout_ms;         /* how long to wait for Kafka at startup */
    int reconnect_backoff_max_ms;   /* PostgreSQL reconnect backoff cap */
    const char *backfill_where;     /* when creating the slot: publish existing rows matching it */
    const char *backfill_order;     /* ORDER BY of the backfill, e.g. "created_at, id" */
    bool cleanup;                   /* outbox.cleanup = delete */
    int stall_timeout_ms;           /* no ack for this long with events outstanding: release the
                                       replication connection until Kafka answers (0 = never) */
    const char *dead_letter_topic;  /* NULL: an invalid event stops the relay (outbox.on_invalid =
                                       fail); else invalid events go to this topic */
    const char *http_listen;        /* host:port of /metrics, /healthz, /readyz; "" = none */
    long long retained_warn_bytes;  /* warn when the slot retains more WAL (0 = never) */
    int slot_poll_interval_ms;      /* how often the slot is read from pg_replication_slots */
    const char *progress_table;     /* progress.table: the durable progress record; "" = none */
    int progress_interval_ms;       /* progress.interval.ms: how often the record is written */
    bool commit_time_header;        /* outbox.header.commit_time: the outboxd.commit_time_us header */
    bool recover_lost_slot;         /* postgres.slot.on_lost = recover (else fail: exit 2) */
    long long recovery_margin_xids; /* recovery.margin.xids: republish this many transaction ids more */
    bool failover_slot;             /* postgres.slot.failover: a PostgreSQL 17+ failover slot */
    bool exactly_once;              /* delivery.guarantee = exactly-once (relay_eos.c) */
    const char *transactional_id;   /* delivery.transactional.id; "" = outboxd-<database>-<slot> */
    const char *checkpoint_topic;   /* delivery.checkpoint.topic */
    size_t batch_max_txns;          /* delivery.batch.max.transactions */
    size_t batch_max_bytes;         /* delivery.batch.max.bytes */
    int batch_max_ms;               /* delivery.batch.max.ms */
    int batch_linger_ms;            /* delivery.batch.linger.ms */
    plugin_t plugin;                /* postgres.plugin: wal2json or pgoutput */
    const char *publication;        /* postgres.publication: pgoutput's publication */
} relay_options_t;

/* Exit codes of relay_run. */
enum {
    RELAY_EXIT_OK = 0,      /* stopped by a signal after flushing */
    RELAY_EXIT_RUNTIME = 1, /* fatal Kafka error, an event that cannot be published, no broker
                               answered within startup.timeout.ms: a restart may help */
    RELAY_EXIT_CONFIG = 2   /* misconfiguration the user must fix */
};

/* Runs until *stop becomes non-zero (set by a signal handler; a value >= 2 means stop at
 * once without waiting for acks) or a fatal error. SIGTERM/SIGINT must be blocked by the
 * caller: they are unblocked only while the loop waits in ppoll(). Returns an exit code. */
int relay_run(const relay_options_t *opts, volatile sig_atomic_t *stop);

#endif
