/* inbox_config.c - inboxd's key table and the checks that turn a loaded config into
 * inbox_options_t. */
#include "inbox_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "duration.h"
#include "inbox_http.h"
#include "log.h"
#include "strlist.h"

#define MS_MAX 86400000LL

const config_key_t inbox_config_keys[] = {
    {"postgres.conninfo", CONFIG_STRING, "", 0, 0, NULL, false,
     "libpq connection string or URI of the service's database holding the inbox (password redacted in logs)"},
    {"postgres.password", CONFIG_STRING, "", 0, 0, NULL, true,
     "password of every PostgreSQL connection when postgres.conninfo holds none (e.g. postgres.password.file)"},
    {"inbox.topics", CONFIG_STRING, "", 0, 0, NULL, false,
     "topics to consume, comma-separated (required); an entry starting with ^ is a regex"},
    {"inbox.table", CONFIG_STRING, "public.inbox", 0, 0, NULL, false, "inbox table (sql/inbox.sql)"},
    {"inbox.offsets.table", CONFIG_STRING, "public.inbox_offsets", 0, 0, NULL, false,
     "table of partition positions, written in the same transaction as the messages"},
    {"inbox.header.id", CONFIG_STRING, "id", 0, 0, NULL, false,
     "header carrying the message id; without it (or empty): topic/partition/offset"},
    {"inbox.batch.max", CONFIG_INT, "1000", 1, 100000, NULL, false, "messages per database transaction"},
    {"inbox.batch.max.bytes", CONFIG_INT, "16777216", 1024, 536870912, NULL, false,
     "bytes per database transaction (a larger single message is written alone)"},
    {"inbox.retention", CONFIG_STRING, "7d", 0, 0, NULL, false,
     "delete done rows older than this (e.g. 7d, 12h, 1d12h); 0 = keep; also the window of deduplication by id"},
    {"inbox.retention.batch", CONFIG_INT, "1000", 1, 1000000, NULL, false, "rows per retention DELETE"},
    {"inbox.retention.interval.ms", CONFIG_INT, "60000", 100, MS_MAX, NULL, false, "pause between retention passes"},
    {"inbox.commit.interval.ms", CONFIG_INT, "1000", 0, MS_MAX, NULL, false,
     "how often recorded positions are committed to Kafka for lag tools (0: after every batch)"},
    {"deliver.url", CONFIG_STRING, "", 0, 0, NULL, false,
     "HTTP push: POST every message to this http:// or https:// URL (empty: the service claims with SQL)"},
    {"deliver.max_attempts", CONFIG_INT, "10", 1, 1000000, NULL, false,
     "HTTP push: attempts before a message is dead (429, 5xx, timeouts; other 4xx are dead at once)"},
    {"deliver.timeout.ms", CONFIG_INT, "10000", 100, 3600000, NULL, false,
     "HTTP push: time limit of one request, connecting included; then it counts as failed and is retried"},
    {"deliver.concurrency", CONFIG_INT, "8", 1, 1000, NULL, false,
     "HTTP push: requests in flight at most (always for different keys: one key is delivered in order)"},
    {"deliver.backoff.base.ms", CONFIG_INT, "1000", 1, MS_MAX, NULL, false,
     "HTTP push: wait before the 2nd attempt; doubles per attempt, with jitter (50-100 %)"},
    {"deliver.backoff.max.ms", CONFIG_INT, "300000", 1, MS_MAX, NULL, false,
     "HTTP push: longest wait between attempts; also caps a Retry-After"},
    {"deliver.poll.interval.ms", CONFIG_INT, "1000", 10, MS_MAX, NULL, false,
     "HTTP push: look for due retries this often (new rows wake it at once via NOTIFY inbox)"},
    {"deliver.headers", CONFIG_STRING, "", 0, 0, NULL, true,
     "HTTP push: static headers for every request, 'Name: value; Name2: value2' (e.g. Authorization)"},
    {"deliver.header.prefix", CONFIG_STRING, "", 0, 0, NULL, false,
     "HTTP push: prefix of the HTTP names of Kafka headers, e.g. Kafka-Header- (empty: the names as they are)"},
    {"deliver.content.type", CONFIG_STRING, "application/octet-stream", 0, 0, NULL, false,
     "HTTP push: Content-Type of the body unless a Kafka header or deliver.headers sets one"},
    {"deliver.tls.ca.location", CONFIG_STRING, "", 0, 0, NULL, false,
     "HTTP push: PEM file of the CA certificates that an https:// service is checked against (empty: the system's)"},
    {"deliver.tls.cert.location", CONFIG_STRING, "", 0, 0, NULL, false,
     "HTTP push: PEM client certificate for services that want one (mutual TLS)"},
    {"deliver.tls.key.location", CONFIG_STRING, "", 0, 0, NULL, false,
     "HTTP push: PEM private key of deliver.tls.cert.location"},
    {"inbox.on_offset_regression", CONFIG_ENUM, "fail", 0, 0, "fail|reset", false,
     "when a partition's offsets go back below the stored position (topic recreated, log truncated): fail = stop "
     "(exit 1) and say how to reset the position; reset = warn and record the partition from the new offsets"},
    {"startup.timeout.ms", CONFIG_INT, "30000", 100, MS_MAX, NULL, false,
     "how long to wait for Kafka at startup before giving up (exit 1)"},
    {"reconnect.backoff.max.ms", CONFIG_INT, "30000", 100, MS_MAX, NULL, false,
     "cap of the PostgreSQL reconnect backoff"},
    {"http.listen", CONFIG_STRING, "127.0.0.1:9633", 0, 0, NULL, false,
     "host:port of the HTTP endpoint (/metrics, /healthz, /readyz); empty = no endpoint"},
    {"inbox.metrics.interval.ms", CONFIG_INT, "10000", 100, MS_MAX, NULL, false,
     "how often the inbox table's rows are counted by status for /metrics"},
    {"log.level", CONFIG_ENUM, "info", 0, 0, "error|warn|info|debug", false, "log level (SIGHUP re-reads it)"},
    {"log.format", CONFIG_ENUM, "text", 0, 0, "text|json", false, "log line format (SIGHUP re-reads it)"},
    {NULL, 0, NULL, 0, 0, NULL, false, NULL},
};

/* 0 when url is an absolute http:// or https:// URL with a host (parsed by libcurl), else -1
 * with errstr naming deliver.url and the problem. */
static int check_url(const char *url_in, char *errstr, size_t errstr_size) {
    char url[1024]; /* as shown in the errors: without the password of its userinfo */
    log_redact_url(url_in, url, sizeof(url));
    CURLU *u = curl_url();
    if (!u) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    char *scheme = NULL, *host = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url_in, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    int ret = 0;
    if (rc != CURLUE_OK) {
        snprintf(errstr, errstr_size,
                 "invalid deliver.url '%s': %s; expected an absolute URL such as http://127.0.0.1:8080/inbox", url,
                 curl_url_strerror(rc));
        ret = -1;
    } else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(errstr, errstr_size, "invalid deliver.url '%s': the scheme must be http or https, not %s", url,
                 scheme);
        ret = -1;
    } else if (!*host) {
        snprintf(errstr, errstr_size, "invalid deliver.url '%s': no host", url);
        ret = -1;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ret;
}

void inbox_config_free(inbox_config_t *c) {
    if (!c)
        return;
    strlist_free(c->topics);
    strlist_free(c->static_headers);
    free(c->kafka_props);
    memset(c, 0, sizeof(*c));
}

int inbox_config_build(const config_t *cfg, inbox_config_t *out, char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    inbox_options_t *o = &out->opts;

    const char *url = config_get(cfg, "deliver.url");
    if (url && *url && check_url(url, errstr, errstr_size) != 0)
        return -1;
    long long retention;
    const char *rs = config_get(cfg, "inbox.retention");
    if (duration_parse(rs, &retention) != 0) {
        snprintf(errstr, errstr_size,
                 "invalid value '%s' for inbox.retention: expected a duration such as 7d, 12h, 90m, 1d12h, "
                 "3600 (seconds) or 0 (keep done rows)",
                 rs ? rs : "");
        return -1;
    }
    const char *tbl = config_get(cfg, "inbox.table");
    if (!tbl || !*tbl) {
        snprintf(errstr, errstr_size, "inbox.table is empty: name the inbox table (default public.inbox)");
        return -1;
    }
    const char *otbl = config_get(cfg, "inbox.offsets.table");
    if (!otbl || !*otbl) {
        snprintf(errstr, errstr_size,
                 "inbox.offsets.table is empty: name the offsets table (default public.inbox_offsets)");
        return -1;
    }
    size_t ntopics = 0;
    out->topics = strlist_split(config_get(cfg, "inbox.topics"), &ntopics);
    if (!out->topics)
        goto oom;
    if (ntopics == 0) {
        snprintf(errstr, errstr_size,
                 "inbox.topics is not set: list the topics to consume, e.g. inbox.topics = orders.events "
                 "(or INBOXD_INBOX_TOPICS)");
        inbox_config_free(out);
        return -1;
    }
    size_t np = config_passthrough_count(cfg);
    out->kafka_props = calloc(2 * np + 1, sizeof(char *));
    if (!out->kafka_props)
        goto oom;
    for (size_t i = 0; i < np; i++)
        config_passthrough_get(cfg, i, &out->kafka_props[2 * i], &out->kafka_props[2 * i + 1]);

    o->conninfo = config_get(cfg, "postgres.conninfo");
    o->table = tbl;
    o->offsets_table = otbl;
    o->id_header = config_get(cfg, "inbox.header.id");
    o->topics = (const char *const *)out->topics;
    o->ntopics = ntopics;
    o->kafka_props = out->kafka_props;
    o->batch_max = (int)config_get_int(cfg, "inbox.batch.max");
    o->batch_max_bytes = (size_t)config_get_int(cfg, "inbox.batch.max.bytes");
    o->retention_s = retention;
    o->retention_batch = (int)config_get_int(cfg, "inbox.retention.batch");
    o->retention_interval_ms = (int)config_get_int(cfg, "inbox.retention.interval.ms");
    o->commit_interval_ms = (int)config_get_int(cfg, "inbox.commit.interval.ms");
    const char *reg = config_get(cfg, "inbox.on_offset_regression");
    o->offset_regression_reset = reg && !strcmp(reg, "reset");
    o->startup_timeout_ms = (int)config_get_int(cfg, "startup.timeout.ms");
    o->reconnect_backoff_max_ms = (int)config_get_int(cfg, "reconnect.backoff.max.ms");
    o->http_listen = config_get(cfg, "http.listen");
    o->metrics_interval_ms = (int)config_get_int(cfg, "inbox.metrics.interval.ms");
    if (url && *url) {
        inbox_deliver_options_t *d = &out->deliver;
        const char *prefix = config_get(cfg, "deliver.header.prefix");
        if (prefix && *prefix && !inbox_http_is_token(prefix)) {
            snprintf(errstr, errstr_size,
                     "invalid deliver.header.prefix '%s': use letters, digits and !#$%%&'*+-.^_`|~ (e.g. "
                     "Kafka-Header-)",
                     prefix);
            inbox_config_free(out);
            return -1;
        }
        const char *ct = config_get(cfg, "deliver.content.type");
        for (const unsigned char *c = (const unsigned char *)(ct ? ct : ""); *c; c++)
            if (*c < 0x20 || *c == 0x7f) {
                snprintf(errstr, errstr_size, "deliver.content.type has a control character");
                inbox_config_free(out);
                return -1;
            }
        size_t ns;
        out->static_headers = inbox_http_static_headers(config_get(cfg, "deliver.headers"), &ns, errstr, errstr_size);
        if (!out->static_headers) {
            inbox_config_free(out);
            return -1;
        }
        d->conninfo = o->conninfo;
        d->table = tbl;
        d->url = url;
        d->concurrency = (int)config_get_int(cfg, "deliver.concurrency");
        d->timeout_ms = (int)config_get_int(cfg, "deliver.timeout.ms");
        d->max_attempts = (int)config_get_int(cfg, "deliver.max_attempts");
        d->poll_ms = (int)config_get_int(cfg, "deliver.poll.interval.ms");
        d->backoff_base_ms = (int)config_get_int(cfg, "deliver.backoff.base.ms");
        d->backoff_max_ms = (int)config_get_int(cfg, "deliver.backoff.max.ms");
        d->header_prefix = prefix ? prefix : "";
        d->content_type = ct && *ct ? ct : "application/octet-stream";
        d->static_headers = (const char *const *)out->static_headers;
        d->tls_ca = config_get(cfg, "deliver.tls.ca.location");
        d->tls_cert = config_get(cfg, "deliver.tls.cert.location");
        d->tls_key = config_get(cfg, "deliver.tls.key.location");
        if ((d->tls_cert && *d->tls_cert) != (d->tls_key && *d->tls_key)) {
            snprintf(errstr, errstr_size,
                     "deliver.tls.cert.location and deliver.tls.key.location go together: set both or neither");
            inbox_config_free(out);
            return -1;
        }
        d->reconnect_backoff_max_ms = o->reconnect_backoff_max_ms;
        o->deliver = d;
    }
    return 0;

oom:
    snprintf(errstr, errstr_size, "out of memory");
    inbox_config_free(out);
    return -1;
}
