/* inbox_ops.h - inboxd's operations side, driven by the inbox loop: the metrics registry
 * (docs/operations.md "inboxd metrics"), the HTTP endpoint (http.listen), a background poll of the inbox
 * table (messages per status, oldest pending age), a Kafka reachability probe, the consumer
 * lag and systemd notifications.
 *
 * Thread ownership: every function here is for the inbox loop thread. The HTTP server and
 * the pollers run in their own threads and exchange data with this module only through
 * http_server_* and pgpoll_get. */
#ifndef OUTBOXD_INBOX_OPS_H
#define OUTBOXD_INBOX_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct inbox_ops_options {
    const char *http_listen; /* host:port, or "" = no endpoint (borrowed) */
    const char *conninfo;    /* for the inbox table poll (borrowed) */
    const char *table;       /* inbox.table as configured (borrowed) */
    int poll_interval_ms;    /* inbox.metrics.interval.ms */
} inbox_ops_options_t;

typedef struct inbox_ops inbox_ops_t;

/* Starts the endpoint and the table poll. Returns NULL with errstr (e.g. the port is in use). */
inbox_ops_t *inbox_ops_new(const inbox_ops_options_t *o, char *errstr, size_t errstr_size);
void inbox_ops_destroy(inbox_ops_t *ops); /* accepts NULL; stops threads (before the consumer is destroyed) */

/* Starts the Kafka probe and the consumer lag with the consumer's librdkafka handle
 * (borrowed; destroy ops before the consumer); group (copied) labels the latency histograms. */
void inbox_ops_watch_kafka(inbox_ops_t *ops, void *rd_kafka_handle, const char *group);

/* A message of topic with outboxd's commit time commit_us was recorded by an inbox transaction
 * that committed at now_us (wall clock): one observation of inboxd_commit_to_recorded_seconds. */
void inbox_ops_recorded(inbox_ops_t *ops, const char *topic, int64_t commit_us, int64_t now_us);

typedef struct inbox_ops_state {
    uint64_t recorded;   /* messages inserted into the inbox */
    uint64_t duplicates; /* messages skipped: already recorded (position or id) */
    uint64_t batches;
    size_t batch_messages;                                            /* consumed, waiting in the batch */
    uint64_t dropped_redelivered, dropped_paused, dropped_unassigned; /* consumed, not taken (why) */
    uint64_t regressions; /* partitions whose offsets went back below the stored position */
    uint64_t rewound;     /* offsets recorded before that a new database connection did not have */
    /* The consumer lag is the high watermark minus this partition's position: the next offset
     * recorded in the inbox, or -1 to take the consumer's position (NULL: always). */
    int64_t (*recorded_position)(void *arg, const char *topic, int32_t partition);
    void *recorded_position_arg;
    bool consuming;        /* subscribed, the database reachable, not failed */
    const char *not_ready; /* why not, for /readyz */
    /* HTTP push counters are read by inbox_ops_tick itself (inbox_deliver_stats_get). */
} inbox_ops_state_t;

/* Once per loop turn: heartbeat, systemd watchdog; at most once a second the metrics and
 * readiness are published. */
void inbox_ops_tick(inbox_ops_t *ops, int64_t now_ms, const inbox_ops_state_t *st);

/* The consumer lag summed over the assigned partitions, as of the last publish (at most a
 * second old); -1 when unknown (nothing assigned, no positions or watermarks yet). */
long long inbox_ops_consumer_lag(const inbox_ops_t *ops);

#endif
