/* daemon_ops.h - what the operations endpoints of outboxd (relay_ops) and inboxd (inbox_ops)
 * share: the HTTP server (http.listen), the Kafka reachability probe, the loop heartbeat and
 * readiness, reported on /readyz and to systemd (sd_notify STATUS=).
 *
 * Thread ownership: a daemon_ops_t belongs to the daemon's loop thread; the HTTP server and
 * the probe run threads of their own (see http_server.h, pgpoll.h). Every function accepts a
 * daemon_ops_t whose endpoint is disabled (http NULL) and then skips the HTTP part. */
#ifndef OUTBOXD_DAEMON_OPS_H
#define OUTBOXD_DAEMON_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server.h"
#include "metrics.h"
#include "pgpoll.h"

typedef struct daemon_ops {
    http_server_t *http;  /* NULL: http.listen is empty */
    pgpoll_t *kafka_poll; /* NULL until daemon_ops_watch_kafka */
    bool kafka_known;     /* the probe answered at least once */
    bool kafka_reachable;
    char kafka_error[256]; /* why not reachable, from the last probe */
    bool notified;         /* READY=1 was sent */
    char notified_status[600];
} daemon_ops_t;

/* d: zeroed by the caller. Starts the endpoint on http_listen (NULL or "": none) and logs where
 * it listens. Returns 0, or -1 with errstr (e.g. the port is in use). */
int daemon_ops_start(daemon_ops_t *d, const char *http_listen, char *errstr, size_t errstr_size);

/* Adds the gauge <prog>_build_info (always 1) to m, labelled with what the binary is: version
 * (OUTBOXD_VERSION) and the versions of the librdkafka and libpq it runs with, so that a
 * dashboard can tell which build each instance runs and join it onto other series. */
void daemon_ops_build_info(metrics_t *m, const char *prog);

/* Stops the probe and the endpoint. Call before the Kafka handle is destroyed. */
void daemon_ops_stop(daemon_ops_t *d);

/* Starts probing Kafka every 2 s with rd_kafka_handle (borrowed; librdkafka handles are
 * thread-safe). Later calls do nothing. */
void daemon_ops_watch_kafka(daemon_ops_t *d, void *rd_kafka_handle);

/* Every loop turn: /healthz heartbeat and the systemd watchdog. */
void daemon_ops_heartbeat(daemon_ops_t *d, int64_t now_ms);

/* Takes the probe's latest answer; returns true when Kafka answered the last probe. */
bool daemon_ops_kafka_up(daemon_ops_t *d);

/* Publishes m's text on /metrics and the readiness: ready when active and Kafka answered the
 * last probe (as of daemon_ops_kafka_up). The reason when not ready is not_active (when not
 * active) or about Kafka. systemd gets READY=1 once the daemon is ready or notify_anyway, and
 * from then on STATUS= follows: active_status when ready, else the reason. */
void daemon_ops_publish(daemon_ops_t *d, metrics_t *m, bool active, const char *active_status, const char *not_active,
                        bool notify_anyway);

#endif
