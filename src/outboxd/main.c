/* main.c - command line, configuration and signals of the outbox relay; runs relay_run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_check.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "relay.h"
#include "cmd_status.h"

#define MS_MAX 86400000LL

static const config_key_t outboxd_keys[] = {
    {"postgres.conninfo", CONFIG_STRING, "", 0, 0, NULL, false,
     "libpq connection string or URI of the database holding the outbox (password redacted in logs)"},
    {"postgres.slot", CONFIG_STRING, "outboxd", 0, 0, NULL, false, "logical replication slot name"},
    {"postgres.slot.create", CONFIG_BOOL, "true", 0, 0, NULL, false,
     "create the slot (with postgres.plugin) when missing"},
    {"postgres.plugin", CONFIG_ENUM, "wal2json", 0, 0, "wal2json|pgoutput", false,
     "output plugin: wal2json (the package must be installed and allowed), or pgoutput (built into PostgreSQL: "
     "managed services; needs a publication, and PostgreSQL 14+ for outbox logical messages)"},
    {"postgres.publication", CONFIG_STRING, "outboxd", 0, 0, NULL, false,
     "pgoutput: the publication of the outbox tables (created when missing and the role owns the tables)"},
    {"postgres.slot.on_lost", CONFIG_ENUM, "recover", 0, 0, "recover|fail", false,
     "the slot is missing or invalidated after outboxd published from this database: republish from the progress "
     "record and go on (recover), or stop with exit 2 and the runbook (fail)"},
    {"postgres.slot.failover", CONFIG_BOOL, "false", 0, 0, NULL, false,
     "PostgreSQL 17+: make the slot a failover slot, synced to standbys with sync_replication_slots = on"},
    {"progress.table", CONFIG_STRING, "public.outboxd_progress", 0, 0, NULL, false,
     "table in the outbox database holding the durable progress record (created when missing); empty = none"},
    {"progress.interval.ms", CONFIG_INT, "1000", 100, MS_MAX, NULL, false,
     "how often the progress record is sampled and written (only when the confirmed position moved)"},
    {"recovery.margin.xids", CONFIG_INT, "0", 0, 1000000000, NULL, false,
     "slot recovery republishes rows from this many transaction ids before the recorded horizon as well"},
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
    {"http.listen", CONFIG_STRING, "127.0.0.1:9632", 0, 0, NULL, false,
     "host:port of the HTTP endpoint (/metrics, /healthz, /readyz); empty = no endpoint"},
    {"slot.retained.warn.bytes", CONFIG_INT, "1073741824", 0, 1LL << 50, NULL, false,
     "log a warning (and set outboxd_slot_retained_over_warn) when the slot retains more WAL than this; 0 = never"},
    {"slot.poll.interval.ms", CONFIG_INT, "5000", 100, MS_MAX, NULL, false,
     "how often the slot's retained WAL, lag and wal_status are read (ordinary connection)"},
    {"log.level", CONFIG_ENUM, "info", 0, 0, "error|warn|info|debug", false, "log level (SIGHUP re-reads it)"},
    {"log.format", CONFIG_ENUM, "text", 0, 0, "text|json", false, "log line format (SIGHUP re-reads it)"},
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

/* The dead-letter policy needs its topic. */
static int check_dead_letter(config_t *cfg, char *errstr, size_t errstr_size) {
    if (!strcmp(config_get(cfg, "outbox.on_invalid"), "dead-letter") && !*config_get(cfg, "outbox.dead_letter.topic")) {
        snprintf(errstr, errstr_size, "outbox.on_invalid = dead-letter needs outbox.dead_letter.topic (it is empty)");
        return -1;
    }
    return 0;
}

static int finish_config(config_t *cfg, char *errstr, size_t errstr_size) {
    return apply_preset(cfg, errstr, errstr_size) != 0 ? -1 : check_dead_letter(cfg, errstr, errstr_size);
}

int main(int argc, char **argv) {
    static const cli_spec_t spec = {"outboxd", "OUTBOXD_",        outboxd_keys, "kafka.",
                                    usage,     RELAY_EXIT_CONFIG, finish_config};
    const char *command = NULL; /* "check", "status" or NULL (relay) */
    bool json = false;
    int code;
    config_t *cfg;

    /* The command word may stand anywhere among the options; --json follows it. */
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    if (!args)
        return RELAY_EXIT_CONFIG;
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && (!strcmp(argv[i], "-c") || !strcmp(argv[i], "-X")) && i + 1 < argc) {
            args[nargs++] = argv[i++];
            args[nargs++] = argv[i];
        } else if (i > 0 && !command && (!strcmp(argv[i], "check") || !strcmp(argv[i], "status"))) {
            command = argv[i];
        } else if (command && !strcmp(argv[i], "--json")) {
            json = true;
        } else {
            args[nargs++] = argv[i];
        }
    }
    cli_result_t res = cli_load(&spec, nargs, args, 1, &cfg, &code);
    free(args);
    if (res != CLI_RUN)
        return code;

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
        .http_listen = config_get(cfg, "http.listen"),
        .retained_warn_bytes = config_get_int(cfg, "slot.retained.warn.bytes"),
        .slot_poll_interval_ms = (int)config_get_int(cfg, "slot.poll.interval.ms"),
        .dead_letter_topic = strcmp(config_get(cfg, "outbox.on_invalid"), "dead-letter") == 0
                                 ? config_get(cfg, "outbox.dead_letter.topic")
                                 : NULL,
        .progress_table = config_get(cfg, "progress.table"),
        .progress_interval_ms = (int)config_get_int(cfg, "progress.interval.ms"),
        .recover_lost_slot = strcmp(config_get(cfg, "postgres.slot.on_lost"), "recover") == 0,
        .recovery_margin_xids = config_get_int(cfg, "recovery.margin.xids"),
        .failover_slot = config_get_bool(cfg, "postgres.slot.failover"),
        .plugin = strcmp(config_get(cfg, "postgres.plugin"), "pgoutput") == 0 ? PLUGIN_PGOUTPUT : PLUGIN_WAL2JSON,
        .publication = config_get(cfg, "postgres.publication"),
    };
    if (command) {
        int crc = !strcmp(command, "check") ? check_run(&o, json, stdout) : status_run(&o, json, stdout);
        free(props);
        config_destroy(cfg);
        return crc;
    }

    volatile sig_atomic_t *stop = cli_stop_signals();

    char redacted[1024];
    log_redact_conninfo(o.conninfo, redacted, sizeof(redacted));
    log_info("outboxd %s starting: postgres \"%s\", slot %s, tables %s", OUTBOXD_VERSION, redacted, o.slot,
             o.router.tables);
    int rc = relay_run(&o, stop);
    free(props);
    config_destroy(cfg);
    return rc;
}
