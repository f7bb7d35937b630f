/* main.c - command line, configuration and signals of the outbox relay; runs relay_run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_check.h"
#include "cmd_replay.h"
#include "cli.h"
#include "config.h"
#include "config_check.h"
#include "kprops.h"
#include "log.h"
#include "pgconn.h"
#include "relay.h"
#include "cmd_status.h"

#define MS_MAX 86400000LL

static const config_key_t outboxd_keys[] = {
    {"postgres.conninfo", CONFIG_STRING, "", 0, 0, NULL, false,
     "libpq connection string or URI of the database holding the outbox (password redacted in logs)"},
    {"postgres.password", CONFIG_STRING, "", 0, 0, NULL, true,
     "password of every PostgreSQL connection when postgres.conninfo holds none (e.g. postgres.password.file)"},
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
    {"outbox.preset", CONFIG_ENUM, "none", 0, 0, "none|debezium|debezium-json", false,
     "outbox schema whose defaults to use: debezium = Debezium's outbox table and router with StringConverter; "
     "debezium-json = the same with JsonConverter (schemas.enable=false)"},
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
    {"outbox.header.commit_time", CONFIG_BOOL, "true", 0, 0, NULL, false,
     "send the transaction's commit time as header outboxd.commit_time_us (inboxd's delivery latency); false under "
     "the debezium presets (Debezium sends the id header only)"},
    {"outbox.header.columns", CONFIG_STRING, "", 0, 0, NULL, false,
     "more row columns sent as headers: column[:header], ... (Debezium's table.fields.additional.placement)"},
    {"outbox.key.format", CONFIG_ENUM, "raw", 0, 0, "raw|json", false,
     "record key: raw = the aggregate id's bytes; json = a JSON string as Kafka Connect's JsonConverter writes it "
     "(debezium-json preset)"},
    {"outbox.value.format", CONFIG_ENUM, "raw", 0, 0, "raw|json", false,
     "record value: raw = the payload's text (bytea: its bytes); json = the payload as a JSON string as "
     "JsonConverter writes it (bytea: base64) (debezium-json preset)"},
    {"outbox.payload.null", CONFIG_ENUM, "invalid", 0, 0, "invalid|null|tombstone", false,
     "a NULL payload: invalid (see outbox.on_invalid); null = a record without value (raw) or with the value null "
     "(json), as Debezium sends it (debezium presets); tombstone = a record without value"},
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
    {"delivery.guarantee", CONFIG_ENUM, "at-least-once", 0, 0, "at-least-once|exactly-once", false,
     "exactly-once: Kafka transactions with a checkpoint, so read_committed consumers see each event once "
     "(docs/guarantees.md)"},
    {"delivery.transactional.id", CONFIG_STRING, "", 0, 0, NULL, false,
     "exactly-once: the producer's transactional.id, unique per relay; empty = outboxd-<database>-<slot>"},
    {"delivery.checkpoint.topic", CONFIG_STRING, "outboxd.checkpoints", 0, 0, NULL, false,
     "exactly-once: compacted topic of the checkpoints (created when missing)"},
    {"delivery.batch.max.transactions", CONFIG_INT, "10000", 1, 10000000, NULL, false,
     "exactly-once: PostgreSQL transactions (with events) per Kafka transaction at most"},
    {"delivery.batch.max.bytes", CONFIG_INT, "16777216", 1, 1LL << 40, NULL, false,
     "exactly-once: record bytes (key + value) per Kafka transaction before it is committed"},
    {"delivery.batch.max.ms", CONFIG_INT, "100", 1, MS_MAX, NULL, false,
     "exactly-once: how long a Kafka transaction stays open at most"},
    {"delivery.batch.linger.ms", CONFIG_INT, "10", 0, MS_MAX, NULL, false,
     "exactly-once: a Kafka transaction is committed as soon as the stream is caught up and it is this old"},
    {"status.interval.ms", CONFIG_INT, "1000", 100, MS_MAX, NULL, false,
     "period of standby status updates (confirmed LSN) to PostgreSQL"},
    {"status.confirm.ms", CONFIG_INT, "10", 1, MS_MAX, NULL, false,
     "a confirmed position that acknowledgements moved is sent at most this often; status.interval.ms or more: "
     "only with the periodic update (fewer messages, more events sent again after a crash)"},
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
    {"debezium", "outbox.payload.null", "null"},
    {"debezium", "outbox.header.commit_time", "false"},
    /* The same with key.converter = value.converter = JsonConverter, schemas.enable=false. */
    {"debezium-json", "outbox.column.aggregate_type", "aggregatetype"},
    {"debezium-json", "outbox.column.aggregate_id", "aggregateid"},
    {"debezium-json", "outbox.column.event_type", "type"},
    {"debezium-json", "outbox.column.headers", ""},
    {"debezium-json", "outbox.header.event_type", ""},
    {"debezium-json", "outbox.payload.null", "null"},
    {"debezium-json", "outbox.header.commit_time", "false"},
    {"debezium-json", "outbox.key.format", "json"},
    {"debezium-json", "outbox.value.format", "json"},
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
            "       outboxd replay [-c FILE] [-X key=value]... [--dry-run] [--json] (--all | --id EVENT_ID... |\n"
            "                      --reason REASON...)\n"
            "       outboxd --help | --version\n\n"
            "  check           test PostgreSQL, the outbox tables, the slot and Kafka; exit 0 when all needed pass\n"
            "  status          print the slot's position, lag and WAL retention; exit 1 when it does not exist\n"
            "  replay          publish dead-lettered events (outbox.dead_letter.topic) again to their topics:\n"
            "                  all, by event id, or by reason (unroutable, refused, unknown-topic, not-authorized);\n"
            "                  --dry-run says what it would do; exit 1 when one could not be replayed\n"
            "  -c FILE         read 'key = value' lines from FILE\n"
            "  -X key=value    set a key (overrides FILE and environment); kafka.* keys go to librdkafka\n"
            "  --print-config  check the configuration as the daemon does before it connects, print it (secrets\n"
            "                  redacted) and exit; exit 2 when the daemon would refuse it\n"
            "  --print-example-config  print an example configuration file: every key, commented\n"
            "  --json          check, status, replay: print JSON\n\n"
            "Precedence: defaults < FILE < environment (OUTBOXD_<KEY>, e.g. OUTBOXD_POSTGRES_CONNINFO,\n"
            "OUTBOXD_KAFKA_BOOTSTRAP_SERVERS) < -X.\n"
            "Any key can come from a file: KEY.file = PATH, -X KEY.file=PATH or the variable + _FILE\n"
            "(OUTBOXD_POSTGRES_PASSWORD_FILE=/run/secrets/pg): the file's content without its final newline;\n"
            "--print-config shows the path, never the value.\n\nKeys:\n",
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

/* The kafka.* part of --print-example-config (contrib/config/outboxd.conf). */
static const char kafka_doc[] =
    "# kafka.<property>: any librdkafka producer property, passed on as is (librdkafka's\n"
    "# CONFIGURATION.md); environment OUTBOXD_KAFKA_<PROPERTY>, e.g. OUTBOXD_KAFKA_BOOTSTRAP_SERVERS.\n"
    "# kafka.bootstrap.servers is required. outboxd sets enable.idempotence = true and acks = all\n"
    "# (other values are refused), and defaults partitioner = murmur2_random (Java's),\n"
    "# message.timeout.ms = 0, queue.buffering.max.kbytes = 16384 and linger.ms = 5.\n"
    "#kafka.bootstrap.servers = localhost:9092\n"
    "#kafka.security.protocol = sasl_ssl\n"
    "#kafka.sasl.mechanisms = SCRAM-SHA-512\n"
    "#kafka.sasl.username = outboxd\n"
    "#kafka.sasl.password = (secret: better in the environment, OUTBOXD_KAFKA_SASL_PASSWORD)\n";

/* The relay's options from the loaded configuration; props: the kafka.* pairs (borrowed). */
static relay_options_t options_of(const config_t *cfg, const char **props) {
    return (relay_options_t){
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
                .key_format = config_get(cfg, "outbox.key.format"),
                .value_format = config_get(cfg, "outbox.value.format"),
                .payload_null = config_get(cfg, "outbox.payload.null"),
            },
        .kafka_props = props,
        .status_interval_ms = (int)config_get_int(cfg, "status.interval.ms"),
        .status_confirm_ms = (int)config_get_int(cfg, "status.confirm.ms"),
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
        .commit_time_header = config_get_bool(cfg, "outbox.header.commit_time"),
        .exactly_once = strcmp(config_get(cfg, "delivery.guarantee"), "exactly-once") == 0,
        .transactional_id = config_get(cfg, "delivery.transactional.id"),
        .checkpoint_topic = config_get(cfg, "delivery.checkpoint.topic"),
        .batch_max_txns = (size_t)config_get_int(cfg, "delivery.batch.max.transactions"),
        .batch_max_bytes = (size_t)config_get_int(cfg, "delivery.batch.max.bytes"),
        .batch_max_ms = (int)config_get_int(cfg, "delivery.batch.max.ms"),
        .batch_linger_ms = (int)config_get_int(cfg, "delivery.batch.linger.ms"),
        .plugin = strcmp(config_get(cfg, "postgres.plugin"), "pgoutput") == 0 ? PLUGIN_PGOUTPUT : PLUGIN_WAL2JSON,
        .publication = config_get(cfg, "postgres.publication"),
    };
}

int main(int argc, char **argv) {
    static const cli_spec_t spec = {"outboxd",         "OUTBOXD_",    outboxd_keys,         "kafka.", usage,
                                    RELAY_EXIT_CONFIG, finish_config, &kprops_config_check, kafka_doc};
    const char *command = NULL; /* "check", "status", "replay" or NULL (relay) */
    bool json = false;
    int code;
    config_t *cfg;

    /* The command word may stand anywhere among the options; --json follows it. */
    char **args = calloc((size_t)argc + 1, sizeof(char *)), **cmd_args = calloc((size_t)argc + 1, sizeof(char *));
    if (!args || !cmd_args) {
        free(args);
        free(cmd_args);
        return RELAY_EXIT_CONFIG;
    }
    int nargs = 0, ncmd = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && (!strcmp(argv[i], "-c") || !strcmp(argv[i], "-X")) && i + 1 < argc) {
            args[nargs++] = argv[i++];
            args[nargs++] = argv[i];
        } else if (i > 0 && !command &&
                   (!strcmp(argv[i], "check") || !strcmp(argv[i], "status") || !strcmp(argv[i], "replay"))) {
            command = argv[i];
        } else if (command && !strcmp(command, "replay")) { /* its own arguments: cmd_replay.c */
            cmd_args[ncmd++] = argv[i];
        } else if (command && !strcmp(argv[i], "--json")) {
            json = true;
        } else {
            args[nargs++] = argv[i];
        }
    }
    cli_result_t res = cli_load(&spec, nargs, args, 1, &cfg, &code);
    free(args);
    if (res == CLI_EXIT) {
        free(cmd_args);
        return code;
    }
    char perr[256];
    if (pgconn_set_password(config_get(cfg, "postgres.conninfo"), config_get(cfg, "postgres.password"), perr,
                            sizeof(perr)) != 0) {
        log_error("%s", perr);
        free(cmd_args);
        config_destroy(cfg);
        return RELAY_EXIT_CONFIG;
    }

    size_t np = config_passthrough_count(cfg);
    const char **props = calloc(np * 2 + 1, sizeof(char *));
    if (!props) {
        log_error("out of memory");
        free(cmd_args);
        config_destroy(cfg);
        return RELAY_EXIT_CONFIG;
    }
    for (size_t i = 0; i < np; i++)
        config_passthrough_get(cfg, i, &props[2 * i], &props[2 * i + 1]);

    relay_options_t o = options_of(cfg, props);
    if (!command || res == CLI_PRINT_CONFIG) { /* what the relay checks before it connects */
        err_t e;
        char line[2048];
        int crc = config_check_options(&o, &e) == 0 ? RELAY_EXIT_OK : RELAY_EXIT_CONFIG;
        if (crc != RELAY_EXIT_OK)
            log_error("%s", err_line(&e, line, sizeof(line)));
        else if (res == CLI_PRINT_CONFIG)
            cli_print_config(cfg);
        if (crc != RELAY_EXIT_OK || res == CLI_PRINT_CONFIG) {
            free(props);
            free(cmd_args);
            config_destroy(cfg);
            return crc;
        }
    }
    if (command) {
        int crc = !strcmp(command, "check") ? check_run(&o, json, stdout)
                  : !strcmp(command, "status")
                      ? status_run(&o, json, stdout)
                      : replay_run(&o, config_get(cfg, "outbox.dead_letter.topic"), cmd_args, ncmd, stdout);
        free(props);
        free(cmd_args);
        config_destroy(cfg);
        return crc;
    }

    free(cmd_args);
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
