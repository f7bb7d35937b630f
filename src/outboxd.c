/* outboxd.c - command line, configuration and signals of the outbox relay; runs relay_run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "log.h"
#include "relay.h"
#include "status.h"

extern char **environ;

#define MS_MAX 86400000LL

static const config_key_t outboxd_keys[] = {
    {"postgres.conninfo", CONFIG_STRING, "", 0, 0, NULL, false,
     "libpq connection string or URI of the database holding the outbox (password redacted in logs)"},
    {"postgres.slot", CONFIG_STRING, "outboxd", 0, 0, NULL, false, "logical replication slot name"},
    {"postgres.slot.create", CONFIG_BOOL, "true", 0, 0, NULL, false, "create the slot (wal2json) when missing"},
    {"outbox.table", CONFIG_STRING, "public.outbox", 0, 0, NULL, false, "outbox table(s), comma-separated"},
    {"outbox.topic", CONFIG_STRING, "outbox.event.${aggregate_type}", 0, 0, NULL, false,
     "topic template: ${aggregate_type}, ${aggregate_id}, ${event_type}, ${routedByValue}"},
    {"outbox.preset", CONFIG_ENUM, "none", 0, 0, "none|debezium", false,
     "outbox schema whose column and header defaults to use: debezium = Debezium's outbox table and router"},
    {"outbox.column.id", CONFIG_STRING, "id", 0, 0, NULL, false, "column holding the event id"},
    {"outbox.column.aggregate_type", CONFIG_STRING, "aggregate_type", 0, 0, NULL, false,
     "column holding the aggregate type (routes the topic); debezium preset: aggregatetype"},
    {"outbox.column.aggregate_id", CONFIG_STRING, "aggregate_id", 0, 0, NULL, false,
     "column holding the aggregate id (the record key); debezium preset: aggregateid"},
    {"outbox.column.event_type", CONFIG_STRING, "event_type", 0, 0, NULL, false,
     "column holding the event type; debezium preset: type"},
    {"outbox.column.payload", CONFIG_STRING, "payload", 0, 0, NULL, false,
     "column holding the payload (the record value; bytea is sent as raw bytes)"},
    {"outbox.column.headers", CONFIG_STRING, "headers", 0, 0, NULL, false,
     "optional jsonb column whose keys become record headers; empty = none (debezium preset)"},
    {"outbox.header.id", CONFIG_STRING, "id", 0, 0, NULL, false, "header carrying the event id"},
    {"outbox.header.event_type", CONFIG_STRING, "event_type", 0, 0, NULL, false,
     "header carrying the event type; empty = no such header (debezium preset)"},
    {"outbox.header.columns", CONFIG_STRING, "", 0, 0, NULL, false,
     "more row columns sent as headers: column[:header], ... (Debezium's table.fields.additional.placement)"},
    {"outbox.message.prefix", CONFIG_STRING, "outbox", 0, 0, NULL, false,
     "prefix of pg_logical_emit_message events; empty = ignore messages"},
    {"outbox.backfill.where", CONFIG_STRING, "", 0, 0, NULL, false,
     "when outboxd creates its slot: first publish existing rows matching this SQL predicate"},
    {"outbox.backfill.order", CONFIG_STRING, "created_at, id", 0, 0, NULL, false,
     "ORDER BY of the backfill (per table)"},
    {"outbox.cleanup", CONFIG_ENUM, "none", 0, 0, "none|delete", false,
     "delete: delete published rows by primary key once the slot was confirmed past them"},
    {"outbox.on_invalid", CONFIG_ENUM, "fail", 0, 0, "fail|dead-letter", false,
     "an event that cannot be published: stop the relay (fail) or send it to outbox.dead_letter.topic"},
    {"outbox.dead_letter.topic", CONFIG_STRING, "outbox.dead_letter", 0, 0, NULL, false,
     "topic for invalid events when outbox.on_invalid = dead-letter"},
    {"status.interval.ms", CONFIG_INT, "1000", 100, MS_MAX, NULL, false,
     "period of standby status updates (confirmed LSN) to PostgreSQL"},
    {"relay.max.inflight.events", CONFIG_INT, "10000", 1, 10000000, NULL, false,
     "unacknowledged events before reading WAL pauses (back-pressure)"},
    {"relay.max.inflight.txns", CONFIG_INT, "10000", 1, 10000000, NULL, false,
     "transactions held for acknowledgement before reading WAL pauses"},
    {"relay.stall.timeout.ms", CONFIG_INT, "15000", 0, MS_MAX, NULL, false,
     "no Kafka ack for this long with events in flight: release the replication connection until Kafka "
     "answers, so PostgreSQL can shut down cleanly (0 = never)"},
    {"shutdown.timeout.ms", CONFIG_INT, "30000", 0, MS_MAX, NULL, false,
     "on SIGTERM, how long to wait for in-flight acknowledgements"},
    {"startup.timeout.ms", CONFIG_INT, "30000", 100, MS_MAX, NULL, false,
     "how long to wait for Kafka at startup before giving up"},
    {"reconnect.backoff.max.ms", CONFIG_INT, "30000", 100, MS_MAX, NULL, false,
     "cap of the PostgreSQL reconnect backoff"},
    {"log.level", CONFIG_ENUM, "info", 0, 0, "error|warn|info|debug", false, "log level"},
    {"log.format", CONFIG_ENUM, "text", 0, 0, "text|json", false, "log line format"},
    {NULL, 0, NULL, 0, 0, NULL, false, NULL},
};

/* Defaults that outbox.preset changes. A key the user set (file, environment, -X) keeps
 * the user's value, even when it equals the generic default. */
static const struct {
    const char *preset, *key, *value;
} preset_defaults[] = {
    /* Debezium's outbox table (id uuid, aggregatetype, aggregateid, type, payload jsonb) and
     * its Outbox Event Router's defaults: topic outbox.event.${routedByValue} (outboxd's
     * default template), key = aggregateid, value = payload, one header "id". */
    {"debezium", "outbox.column.aggregate_type", "aggregatetype"},
    {"debezium", "outbox.column.aggregate_id", "aggregateid"},
    {"debezium", "outbox.column.event_type", "type"},
    {"debezium", "outbox.column.headers", ""},
    {"debezium", "outbox.header.event_type", ""},
};

static int apply_preset(config_t *cfg, char *errstr, size_t errstr_size) {
    const char *preset = config_get(cfg, "outbox.preset");
    char origin[64];

    snprintf(origin, sizeof(origin), "outbox.preset = %s", preset);
    for (size_t i = 0; i < sizeof(preset_defaults) / sizeof(preset_defaults[0]); i++)
        if (!strcmp(preset, preset_defaults[i].preset) && !config_is_set(cfg, preset_defaults[i].key) &&
            config_set(cfg, preset_defaults[i].key, preset_defaults[i].value, origin, errstr, errstr_size) != 0)
            return -1;
    return 0;
}

static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig) {
    (void)sig;
    if (stop_signals < 2)
        stop_signals++;
}

static void usage(FILE *out) {
    fprintf(out,
            "outboxd %s - publishes committed outbox rows from PostgreSQL's WAL to Kafka\n\n"
            "usage: outboxd [-c FILE] [-X key=value]... [--print-config]\n"
            "       outboxd check [-c FILE] [-X key=value]... [--json]\n"
            "       outboxd status [-c FILE] [-X key=value]... [--json]\n"
            "       outboxd --help | --version\n\n"
            "  check           test PostgreSQL, the outbox tables, the slot and Kafka; exit 0 when all needed pass\n"
            "  status          print the slot's position, lag and WAL retention; exit 1 when it does not exist\n"
            "  -c FILE         read 'key = value' lines from FILE\n"
            "  -X key=value    set a key (overrides FILE and environment); kafka.* keys go to librdkafka\n"
            "  --print-config  print the effective configuration (secrets redacted) and exit\n"
            "  --json          check, status: print JSON\n\n"
            "Precedence: defaults < FILE < environment (OUTBOXD_<KEY>, e.g. OUTBOXD_POSTGRES_CONNINFO,\n"
            "OUTBOXD_KAFKA_BOOTSTRAP_SERVERS) < -X.\n\nKeys:\n",
            OUTBOXD_VERSION);
    config_print_help(outboxd_keys, "OUTBOXD_", out);
    fprintf(out, "  kafka.<property>  any librdkafka producer property, e.g. kafka.bootstrap.servers\n");
}

/* Maps OUTBOXD_* variables onto keys, except the names reserved for the project's scripts
 * (OUTBOXD_STACK_*, OUTBOXD_TEST_*, OUTBOXD_BIN), which are not configuration. */
static int load_env(config_t *cfg, char *errstr, size_t errstr_size) {
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof(char *));
    if (!env) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = environ[i];
        if (!strncmp(v, "OUTBOXD_STACK_", 14) || !strncmp(v, "OUTBOXD_TEST_", 13) || !strncmp(v, "OUTBOXD_BIN=", 12))
            continue;
        env[k++] = environ[i];
    }
    int rc = config_load_env(cfg, env, errstr, errstr_size);
    free(env);
    return rc;
}

int main(int argc, char **argv) {
    const char *file = NULL, *command = NULL; /* command: "check", "status" or NULL (relay) */
    bool print_config = false, json = false;
    char err[1024];
    log_init("outboxd", LOG_INFO, LOG_FORMAT_TEXT);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("outboxd %s\n", OUTBOXD_VERSION);
            return 0;
        }
    }
    config_t *cfg = config_new(outboxd_keys, "kafka.", "OUTBOXD_");
    if (!cfg) {
        log_error("out of memory");
        return RELAY_EXIT_CONFIG;
    }
    /* First pass: find the file; -X values are applied after it and the environment. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "-X") && i + 1 < argc) {
            i++;
        } else if (!strcmp(argv[i], "--print-config")) {
            print_config = true;
        } else if (!command && (!strcmp(argv[i], "check") || !strcmp(argv[i], "status"))) {
            command = argv[i];
        } else if (command && !strcmp(argv[i], "--json")) {
            json = true;
        } else {
            fprintf(stderr, "outboxd: unknown or incomplete argument '%s'\n\n", argv[i]);
            usage(stderr);
            config_destroy(cfg);
            return RELAY_EXIT_CONFIG;
        }
    }
    if (file && config_load_file(cfg, file, err, sizeof(err)) != 0)
        goto config_error;
    if (load_env(cfg, err, sizeof(err)) != 0)
        goto config_error;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c")) {
            i++;
        } else if (!strcmp(argv[i], "-X")) {
            if (config_set_kv(cfg, argv[++i], "-X", err, sizeof(err)) != 0)
                goto config_error;
        }
    }

    if (apply_preset(cfg, err, sizeof(err)) != 0)
        goto config_error;

    log_level_t level;
    log_format_t format;
    log_level_parse(config_get(cfg, "log.level"), &level);
    log_format_parse(config_get(cfg, "log.format"), &format);
    log_init("outboxd", level, format);

    if (print_config) {
        config_dump(cfg, stdout);
        config_destroy(cfg);
        return 0;
    }

    if (!strcmp(config_get(cfg, "outbox.on_invalid"), "dead-letter") && !*config_get(cfg, "outbox.dead_letter.topic")) {
        snprintf(err, sizeof(err), "outbox.on_invalid = dead-letter needs outbox.dead_letter.topic (it is empty)");
        goto config_error;
    }

    size_t np = config_passthrough_count(cfg);
    const char **props = calloc(np * 2 + 1, sizeof(char *));
    if (!props) {
        log_error("out of memory");
        config_destroy(cfg);
        return RELAY_EXIT_CONFIG;
    }
    for (size_t i = 0; i < np; i++)
        config_passthrough_get(cfg, i, &props[2 * i], &props[2 * i + 1]);

    relay_options_t o = {
        .conninfo = config_get(cfg, "postgres.conninfo"),
        .slot = config_get(cfg, "postgres.slot"),
        .create_slot = config_get_bool(cfg, "postgres.slot.create"),
        .router =
            {
                .tables = config_get(cfg, "outbox.table"),
                .topic_template = config_get(cfg, "outbox.topic"),
                .columns =
                    {
                        .id = config_get(cfg, "outbox.column.id"),
                        .aggregate_type = config_get(cfg, "outbox.column.aggregate_type"),
                        .aggregate_id = config_get(cfg, "outbox.column.aggregate_id"),
                        .event_type = config_get(cfg, "outbox.column.event_type"),
                        .payload = config_get(cfg, "outbox.column.payload"),
                        .headers = config_get(cfg, "outbox.column.headers"),
                    },
                .message_prefix = config_get(cfg, "outbox.message.prefix"),
                .id_header = config_get(cfg, "outbox.header.id"),
                .type_header = config_get(cfg, "outbox.header.event_type"),
                .header_columns = config_get(cfg, "outbox.header.columns"),
            },
        .kafka_props = props,
        .status_interval_ms = (int)config_get_int(cfg, "status.interval.ms"),
        .max_inflight_events = (size_t)config_get_int(cfg, "relay.max.inflight.events"),
        .max_inflight_txns = (size_t)config_get_int(cfg, "relay.max.inflight.txns"),
        .shutdown_timeout_ms = (int)config_get_int(cfg, "shutdown.timeout.ms"),
        .stall_timeout_ms = (int)config_get_int(cfg, "relay.stall.timeout.ms"),
        .startup_timeout_ms = (int)config_get_int(cfg, "startup.timeout.ms"),
        .reconnect_backoff_max_ms = (int)config_get_int(cfg, "reconnect.backoff.max.ms"),
        .backfill_where = config_get(cfg, "outbox.backfill.where"),
        .cleanup = strcmp(config_get(cfg, "outbox.cleanup"), "delete") == 0,
        .backfill_order = config_get(cfg, "outbox.backfill.order"),
        .dead_letter_topic = strcmp(config_get(cfg, "outbox.on_invalid"), "dead-letter") == 0
                                 ? config_get(cfg, "outbox.dead_letter.topic")
                                 : NULL,
    };
    if (command) {
        int crc = !strcmp(command, "check") ? check_run(&o, json, stdout) : status_run(&o, json, stdout);
        free(props);
        config_destroy(cfg);
        return crc;
    }

    /* Signals only set a flag; they are blocked except while the loop waits in ppoll(). */
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, NULL);

    char redacted[1024];
    log_redact_conninfo(o.conninfo, redacted, sizeof(redacted));
    log_info("outboxd %s starting: postgres \"%s\", slot %s, tables %s", OUTBOXD_VERSION, redacted, o.slot,
             o.router.tables);
    int rc = relay_run(&o, &stop_signals);
    free(props);
    config_destroy(cfg);
    return rc;

config_error:
    log_error("%s", err);
    config_destroy(cfg);
    return RELAY_EXIT_CONFIG;
}
