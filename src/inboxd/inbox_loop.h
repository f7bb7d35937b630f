/* inbox_loop.h - the inboxd pipeline in one thread and one poll() loop:
 * kconsumer -> inbox_batch -> inbox_writer (one transaction per batch) -> Kafka offset commit;
 * with deliver.url, a second thread pushes the messages over HTTP (inbox_deliver.h). */
#ifndef INBOXD_INBOX_LOOP_H
#define INBOXD_INBOX_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "inbox_deliver.h"

typedef struct inbox_options {
    const char *conninfo;      /* libpq conninfo or URI (borrowed) */
    const char *table;         /* inbox table, e.g. "public.inbox" */
    const char *offsets_table; /* partition positions, e.g. "public.inbox_offsets" */
    const char *id_header;     /* header carrying the message id; "" = none */
    const char *const *topics; /* topics to subscribe to (a "^regex" too), borrowed */
    size_t ntopics;
    const char *const *kafka_props;         /* NULL-terminated name, value pairs for librdkafka */
    int batch_max;                          /* messages per database transaction */
    size_t batch_max_bytes;                 /* bytes per database transaction (one message may exceed it) */
    long long retention_s;                  /* delete done rows older than this; 0 = keep them */
    int retention_batch;                    /* rows per DELETE */
    int retention_interval_ms;              /* between retention passes */
    int commit_interval_ms;                 /* between Kafka offset commits (0: after every batch) */
    bool offset_regression_reset;           /* inbox.on_offset_regression = reset (false: fail) */
    int startup_timeout_ms;                 /* how long to wait for Kafka at startup */
    int reconnect_backoff_max_ms;           /* PostgreSQL reconnect backoff cap */
    const char *http_listen;                /* host:port of /metrics, /healthz, /readyz; "" = none */
    int metrics_interval_ms;                /* how often the inbox table is counted for /metrics */
    const inbox_deliver_options_t *deliver; /* HTTP push (borrowed); NULL: none */
} inbox_options_t;

/* Exit codes of inbox_run (the same as outboxd's). */
enum {
    INBOX_EXIT_OK = 0,      /* stopped by a signal */
    INBOX_EXIT_RUNTIME = 1, /* fatal Kafka error, a batch PostgreSQL refuses for good */
    INBOX_EXIT_CONFIG = 2   /* misconfiguration the user must fix */
};

/* Runs until *stop becomes non-zero (set by a signal handler; a value >= 2 means leave at
 * once without the final commit and group leave) or a fatal error. SIGTERM/SIGINT must be
 * blocked by the caller: they are unblocked only while the loop waits in ppoll(). Returns an
 * exit code. */
int inbox_run(const inbox_options_t *opts, volatile sig_atomic_t *stop);

#endif
