/* daemon_ops.c - the HTTP endpoint, Kafka probe, heartbeat and readiness shared by outboxd
 * and inboxd. */
#include "daemon_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "kconf.h"
#include "log.h"
#include "notify.h"

#define KAFKA_PROBE_INTERVAL_MS 2000
#define KAFKA_PROBE_TIMEOUT_MS 1500

typedef struct kafka_snap {
    bool reachable;
    char error[256];
} kafka_snap_t;

int daemon_ops_start(daemon_ops_t *d, const char *http_listen, char *errstr, size_t errstr_size) {
    if (!http_listen || !*http_listen)
        return 0;
    d->http = http_server_start(http_listen, "http.listen", errstr, errstr_size);
    if (!d->http)
        return -1;
    log_info("serving /metrics, /healthz and /readyz on http://%s", http_server_address(d->http));
    return 0;
}

void daemon_ops_build_info(metrics_t *m, const char *prog) {
    char name[64], help[128], libpq[32];
    snprintf(name, sizeof(name), "%s_build_info", prog);
    snprintf(help, sizeof(help), "Always 1; the labels name the %s build and the librdkafka and libpq it runs with.",
             prog);
    int v = PQlibVersion(); /* 150020 for 15.20 (10 and later: major * 10000 + minor) */
    snprintf(libpq, sizeof(libpq), "%d.%d", v / 10000, v % 10000);
    metrics_family_t *f = metrics_family(m, METRICS_GAUGE, name, help, NULL, NULL, 0);
    metrics_family_const_label(f, "version", OUTBOXD_VERSION);
    metrics_family_const_label(f, "librdkafka", rd_kafka_version_str());
    metrics_family_const_label(f, "libpq", libpq);
    metrics_set(metrics_series(f, NULL), 1);
}

void daemon_ops_stop(daemon_ops_t *d) {
    pgpoll_stop(d->kafka_poll);
    d->kafka_poll = NULL;
    http_server_stop(d->http);
    d->http = NULL;
}

static int poll_kafka(PGconn *conn, void *snapshot, void *arg, char *errstr, size_t errstr_size) {
    (void)conn;
    (void)errstr;
    (void)errstr_size;
    kafka_snap_t *k = snapshot;
    k->reachable = kconf_probe(arg, KAFKA_PROBE_TIMEOUT_MS, k->error, sizeof(k->error));
    return 0;
}

void daemon_ops_watch_kafka(daemon_ops_t *d, void *rd_kafka_handle) {
    if (!d->kafka_poll)
        d->kafka_poll = pgpoll_start(NULL, "kafka probe", KAFKA_PROBE_INTERVAL_MS, sizeof(kafka_snap_t), poll_kafka,
                                     rd_kafka_handle);
}

void daemon_ops_heartbeat(daemon_ops_t *d, int64_t now_ms) {
    http_server_heartbeat(d->http, now_ms);
    notify_watchdog(now_ms);
}

bool daemon_ops_kafka_up(daemon_ops_t *d) {
    kafka_snap_t k;
    if (pgpoll_get(d->kafka_poll, &k, NULL, 0)) {
        d->kafka_known = true;
        d->kafka_reachable = k.reachable;
        snprintf(d->kafka_error, sizeof(d->kafka_error), "%s", k.reachable ? "" : k.error);
    }
    return d->kafka_known && d->kafka_reachable;
}

void daemon_ops_publish(daemon_ops_t *d, metrics_t *m, bool active, const char *active_status, const char *not_active,
                        bool notify_anyway) {
    size_t len;
    char *text = metrics_render(m, &len);
    http_server_publish(d->http, text, len);
    free(text);

    bool ready = active && d->kafka_known && d->kafka_reachable;
    char why[600];
    if (!active)
        snprintf(why, sizeof(why), "%s", not_active);
    else if (!d->kafka_known)
        snprintf(why, sizeof(why), "Kafka not probed yet");
    else
        snprintf(why, sizeof(why), "Kafka is not reachable: %s", d->kafka_error);
    http_server_set_ready(d->http, ready, ready ? "" : why);
    const char *status = ready ? active_status : why;
    if ((ready || notify_anyway || d->notified) && strcmp(status, d->notified_status) != 0) {
        notify_ready(status);
        d->notified = true;
        snprintf(d->notified_status, sizeof(d->notified_status), "%s", status);
    }
}
