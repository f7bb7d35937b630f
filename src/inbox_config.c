/* inbox_config.c - inboxd's key table and the checks that turn a loaded config into
 * inbox_options_t. */
#include "inbox_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbox_batch.h"

#define MS_MAX 86400000LL

const config_key_t inbox_config_keys[] = {
    {"postgres.conninfo", CONFIG_STRING, "", 0, 0, NULL, false,
     "libpq connection string or URI of the service's database holding the inbox (password redacted in logs)"},
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
     "HTTP push of messages to the service: not available in this version (must be empty)"},
    {"deliver.max_attempts", CONFIG_INT, "10", 1, 1000000, NULL, false,
     "HTTP push: attempts before a message is dead (reserved; the SQL path takes it from inbox_fail)"},
    {"startup.timeout.ms", CONFIG_INT, "30000", 100, MS_MAX, NULL, false,
     "how long to wait for Kafka at startup before giving up"},
    {"reconnect.backoff.max.ms", CONFIG_INT, "30000", 100, MS_MAX, NULL, false,
     "cap of the PostgreSQL reconnect backoff"},
    {"log.level", CONFIG_ENUM, "info", 0, 0, "error|warn|info|debug", false, "log level"},
    {"log.format", CONFIG_ENUM, "text", 0, 0, "text|json", false, "log line format"},
    {NULL, 0, NULL, 0, 0, NULL, false, NULL},
};

void inbox_config_free(inbox_config_t *c) {
    if (!c)
        return;
    inbox_list_free(c->topics);
    free(c->kafka_props);
    memset(c, 0, sizeof(*c));
}

int inbox_config_build(const config_t *cfg, inbox_config_t *out, char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    inbox_options_t *o = &out->opts;

    const char *url = config_get(cfg, "deliver.url");
    if (url && *url) {
        snprintf(errstr, errstr_size,
                 "deliver.url is set, but HTTP push is not available in this version of inboxd: remove "
                 "deliver.url and let the service take messages with inbox_claim() (docs/inboxd.md)");
        return -1;
    }
    long long retention;
    const char *rs = config_get(cfg, "inbox.retention");
    if (inbox_duration_parse(rs, &retention) != 0) {
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
    out->topics = inbox_list_split(config_get(cfg, "inbox.topics"), &ntopics);
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
    o->startup_timeout_ms = (int)config_get_int(cfg, "startup.timeout.ms");
    o->reconnect_backoff_max_ms = (int)config_get_int(cfg, "reconnect.backoff.max.ms");
    return 0;

oom:
    snprintf(errstr, errstr_size, "out of memory");
    inbox_config_free(out);
    return -1;
}
