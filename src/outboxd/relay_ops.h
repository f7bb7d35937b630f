/* relay_ops.h - outboxd's operations side, driven by the relay loop: the metrics registry
 * (docs/operations.md "Metrics and health endpoints"), the HTTP endpoint (http.listen), a background poll of
 * the slot in pg_replication_slots (retained WAL, lag, wal_status) and of Kafka's
 * reachability, the guardrails on them (slot.retained.warn.bytes, a lost slot) and systemd
 * notifications.
 *
 * Thread ownership: every function here is for the relay loop thread; the hot-path ones
 * (produced, acked) are plain memory updates. The HTTP server and pollers run in their own
 * threads and exchange data with this module only through http_server_* and pgpoll_get. */
#ifndef OUTBOXD_RELAY_OPS_H
#define OUTBOXD_RELAY_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef struct relay_ops_options {
    const char *http_listen;       /* host:port, or "" = no endpoint (borrowed) */
    const char *conninfo;          /* for the slot poll (borrowed) */
    const char *slot;              /* borrowed */
    long long retained_warn_bytes; /* slot.retained.warn.bytes; 0 = no warning */
    int slot_poll_interval_ms;
    size_t max_txns; /* relay.max.inflight.txns: bounds the per-transaction bookkeeping */
} relay_ops_options_t;

typedef struct relay_ops relay_ops_t;

/* Starts the endpoint and the slot poll. Returns NULL with errstr (e.g. the port is in use). */
relay_ops_t *relay_ops_new(const relay_ops_options_t *o, char *errstr, size_t errstr_size);
void relay_ops_destroy(relay_ops_t *ops); /* accepts NULL; stops threads */

/* Starts probing Kafka's reachability with the producer's librdkafka handle (borrowed: it
 * must outlive relay_ops_destroy... or be followed by relay_ops_destroy first). */
void relay_ops_watch_kafka(relay_ops_t *ops, void *rd_kafka_handle);

/* Stream side. begin_txn: a transaction began with the commit timestamp commit_us
 * (microseconds since 1970 UTC; 0 unknown). produced: an event of
 * transaction seq was handed to Kafka. acked/failed: its delivery report; bytes = key + value. reset: the stream
 * restarted, nothing is in flight. */
void relay_ops_begin_txn(relay_ops_t *ops, int64_t commit_us);
void relay_ops_produced(relay_ops_t *ops, uint64_t seq, int64_t now_ms);
void relay_ops_acked(relay_ops_t *ops, uint64_t seq, const char *topic, size_t bytes);
void relay_ops_failed(relay_ops_t *ops, uint64_t seq);
void relay_ops_reconnected(relay_ops_t *ops);
void relay_ops_reset(relay_ops_t *ops);
/* A lost slot was recovered by republishing rows outbox rows; table-less events committed
 * since unrecoverable_since (Unix time, seconds) could not be. */
void relay_ops_recovered(relay_ops_t *ops, uint64_t rows, double unrecoverable_since);

typedef struct relay_ops_state {
    bool streaming;        /* START_REPLICATION succeeded and the stream is up */
    const char *not_ready; /* why not streaming (for /readyz), when !streaming */
    bool standby;          /* waiting for a slot another process holds */
    lsn_t received, wal_end;
    lsn_t confirmed; /* what the relay confirmed; while !streaming the slot's polled
                        confirmed_flush_lsn and lag are exported instead */
    size_t in_flight;
} relay_ops_state_t;

/* Once per loop turn: heartbeat, systemd watchdog; at most once a second the metrics and
 * readiness are published and the slot poll is evaluated, and at once when streaming or
 * standby changed. Returns 0, or -1 with errstr when
 * the relay must stop: the slot was invalidated (wal_status = lost). */
int relay_ops_tick(relay_ops_t *ops, int64_t now_ms, const relay_ops_state_t *st, char *errstr, size_t errstr_size);

/* The lag (server WAL end minus the confirmed position) as of the last metrics update, in bytes:
 * what outboxd_lag_bytes shows. 0 for NULL. */
long long relay_ops_lag_bytes(const relay_ops_t *ops);

/* Used by the relay for wal2json's commit time; exported for its unit test (the parser is pure and takes
 * every offset form PostgreSQL prints, which the relay's tests cannot all produce).
 * Parses wal2json's timestamp text, PostgreSQL's ISO form whatever DateStyle says
 * ("2026-11-23 06:22:05.190386+00"; offsets "+05:30", "-03:30", "+HH:MM:SS"; none = UTC) into
 * microseconds since the Unix epoch. Returns 0, or -1 for anything else (" BC", "infinity",
 * out-of-range fields, trailing text). */
int relay_ops_parse_timestamp(const char *text, int64_t *us);

#endif
