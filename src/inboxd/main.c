/* main.c - command line, configuration and signals of the inbox consumer sidecar; runs
 * inbox_run, or the status and requeue commands (inbox_admin). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "inbox_loop.h"
#include "cmd_admin.h"
#include "inbox_check.h"
#include "inbox_config.h"
#include "kconsumer.h"
#include "kprops.h"
#include "log.h"
#include "pgconn.h"

static void usage(FILE *out) {
    fprintf(out,
            "inboxd %s - records Kafka messages exactly once in the service's PostgreSQL inbox table\n\n"
            "usage: inboxd [-c FILE] [-X key=value]... [--print-config]\n"
            "       inboxd check [-c FILE] [-X key=value]... [--json]\n"
            "       inboxd status [-c FILE] [-X key=value]... [--json] [--limit N]\n"
            "       inboxd requeue [-c FILE] [-X key=value]... [--json] (--all | --id MESSAGE_ID...)\n"
            "       inboxd --help | --version\n\n"
            "  check           test the configuration, PostgreSQL, the inbox tables, functions and grants, Kafka,\n"
            "                  the topics, the consumer group and deliver.url; exit 0 when all needed pass, else 2\n"
            "  status          print the inbox's messages per status, the oldest pending age and the dead\n"
            "                  messages with their last error (--limit N of them, default 20); exit 1 when\n"
            "                  the table does not exist, 2 when PostgreSQL cannot tell\n"
            "  requeue         make dead messages pending again: --all of them, or those named by --id\n"
            "                  (exit 1 when one of them is not dead)\n"
            "  -c FILE         read 'key = value' lines from FILE\n"
            "  -X key=value    set a key (overrides FILE and environment); kafka.* keys go to librdkafka\n"
            "  --print-config  check the configuration as the daemon does before it connects, print it (secrets\n"
            "                  redacted) and exit; exit 2 when the daemon would refuse it\n"
            "  --print-example-config  print an example configuration file: every key, commented\n"
            "  --json          check, status, requeue: print JSON\n\n"
            "status and requeue use postgres.conninfo, postgres.password and inbox.table only; check uses the whole\n"
            "configuration.\n\n"
            "Precedence: defaults < FILE < environment (INBOXD_<KEY>, e.g. INBOXD_POSTGRES_CONNINFO,\n"
            "INBOXD_KAFKA_BOOTSTRAP_SERVERS) < -X.\n"
            "Any key can come from a file: KEY.file = PATH, -X KEY.file=PATH or the variable + _FILE\n"
            "(INBOXD_POSTGRES_PASSWORD_FILE=/run/secrets/pg): the file's content without its final newline;\n"
            "--print-config shows the path, never the value.\n\nKeys:\n",
            OUTBOXD_VERSION);
    config_print_help(inbox_config_keys, "INBOXD_", out);
    fprintf(out, "  kafka.<property>  any librdkafka consumer property, e.g. kafka.bootstrap.servers, "
                 "kafka.group.id (default inboxd)\n");
}

#define DEAD_LIMIT_DEFAULT 20

/* The command of `inboxd status|requeue ...`, taken out of argv before cli_load sees it. */
typedef struct command {
    const char *name; /* "status", "requeue" or NULL (the daemon) */
    bool json;
    bool all;
    int limit;
    const char **ids;
    size_t nids;
} command_t;

/* Splits argv into the command's own arguments (cmd) and the rest (args, for cli_load). The
 * command word may stand anywhere among the options; its flags follow it. Returns 0, or -1
 * with the problem printed. */
static int parse_command(int argc, char **argv, char **args, int *nargs, command_t *cmd) {
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i > 0 && (!strcmp(a, "-c") || !strcmp(a, "-X")) && i + 1 < argc) {
            args[(*nargs)++] = argv[i++];
            args[(*nargs)++] = argv[i];
        } else if (i > 0 && !cmd->name && (!strcmp(a, "status") || !strcmp(a, "requeue") || !strcmp(a, "check"))) {
            cmd->name = a;
        } else if (cmd->name && !strcmp(a, "--json")) {
            cmd->json = true;
        } else if (cmd->name && !strcmp(cmd->name, "status") && !strcmp(a, "--limit")) {
            char *end = NULL;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
            if (!end || *end || v < 0 || v > 1000000) {
                fprintf(stderr, "inboxd: --limit needs a number of dead messages to list, 0..1000000\n");
                return -1;
            }
            cmd->limit = (int)v;
            i++;
        } else if (cmd->name && !strcmp(cmd->name, "requeue") && !strcmp(a, "--all")) {
            cmd->all = true;
        } else if (cmd->name && !strcmp(cmd->name, "requeue") && !strcmp(a, "--id")) {
            int first = i + 1;
            while (i + 1 < argc && argv[i + 1][0] != '-')
                cmd->ids[cmd->nids++] = argv[++i];
            if (i + 1 == first) {
                fprintf(stderr, "inboxd: --id needs one or more message ids\n");
                return -1;
            }
        } else {
            args[(*nargs)++] = argv[i];
        }
    }
    if (cmd->name && !strcmp(cmd->name, "requeue") && cmd->all == (cmd->nids > 0)) {
        fprintf(stderr, "inboxd requeue: say which dead messages: --all, or --id MESSAGE_ID...\n");
        return -1;
    }
    return 0;
}

/* The kafka.* part of --print-example-config (contrib/config/inboxd.conf). */
static const char kafka_doc[] =
    "# kafka.<property>: any librdkafka consumer property, passed on as is (librdkafka's\n"
    "# CONFIGURATION.md); environment INBOXD_KAFKA_<PROPERTY>, e.g. INBOXD_KAFKA_BOOTSTRAP_SERVERS.\n"
    "# kafka.bootstrap.servers is required; kafka.group.id names the consumer group (default\n"
    "# inboxd). inboxd commits offsets itself (enable.auto.commit is off).\n"
    "#kafka.bootstrap.servers = localhost:9092\n"
    "#kafka.group.id = inboxd\n"
    "#kafka.auto.offset.reset = earliest\n";

int main(int argc, char **argv) {
    static const cli_spec_t spec = {"inboxd",          "INBOXD_", inbox_config_keys,    "kafka.", usage,
                                    INBOX_EXIT_CONFIG, NULL,      &kprops_config_check, kafka_doc};
    config_t *cfg;
    int code;
    char err[1024];
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    const char **ids = calloc((size_t)argc + 1, sizeof(char *));
    if (!args || !ids) {
        free(args);
        free(ids);
        return INBOX_EXIT_CONFIG;
    }
    command_t cmd = {.limit = DEAD_LIMIT_DEFAULT, .ids = ids};
    int nargs = 0;
    if (parse_command(argc, argv, args, &nargs, &cmd) != 0) {
        free(args);
        free(ids);
        return INBOX_ADMIN_EXIT_ERROR;
    }
    cli_result_t res = cli_load(&spec, nargs, args, 1, &cfg, &code);
    free(args);
    if (res == CLI_EXIT) {
        free(ids);
        return code;
    }
    if (pgconn_set_password(config_get(cfg, "postgres.conninfo"), config_get(cfg, "postgres.password"), err,
                            sizeof(err)) != 0) {
        log_error("%s", err);
        free(ids);
        config_destroy(cfg);
        return INBOX_EXIT_CONFIG;
    }
    if (cmd.name && res != CLI_PRINT_CONFIG) {
        const char *table = config_get(cfg, "inbox.table");
        int crc;
        if (!strcmp(cmd.name, "check")) {
            crc = inbox_check_run(cfg, cmd.json, stdout);
        } else if (!table || !*table) {
            log_error("inbox.table is empty: name the inbox table (default public.inbox)");
            crc = INBOX_ADMIN_EXIT_ERROR;
        } else if (!strcmp(cmd.name, "status")) {
            crc = inbox_admin_status(config_get(cfg, "postgres.conninfo"), table, cmd.limit, cmd.json, stdout);
        } else {
            crc = inbox_admin_requeue(config_get(cfg, "postgres.conninfo"), table, cmd.ids, cmd.nids, cmd.json, stdout);
        }
        free(ids);
        config_destroy(cfg);
        return crc;
    }
    free(ids);

    /* What inboxd checks before it connects anywhere; --print-config fails exactly then. */
    inbox_config_t ic;
    err_t e;
    if (inbox_config_build(cfg, &ic, err, sizeof(err)) != 0) {
        log_error("%s", err);
        config_destroy(cfg);
        return INBOX_EXIT_CONFIG;
    }
    if (kconsumer_check_props(ic.opts.kafka_props, &e) != 0) {
        log_error("%s", err_line(&e, err, sizeof(err)));
        inbox_config_free(&ic);
        config_destroy(cfg);
        return INBOX_EXIT_CONFIG;
    }
    if (res == CLI_PRINT_CONFIG) {
        cli_print_config(cfg);
        inbox_config_free(&ic);
        config_destroy(cfg);
        return 0;
    }
    volatile sig_atomic_t *stop = cli_stop_signals();

    char redacted[1024];
    log_redact_conninfo(ic.opts.conninfo, redacted, sizeof(redacted));
    log_info("inboxd %s starting: postgres \"%s\", table %s, topics %s", OUTBOXD_VERSION, redacted, ic.opts.table,
             config_get(cfg, "inbox.topics"));
    int rc = inbox_run(&ic.opts, stop);
    inbox_config_free(&ic);
    config_destroy(cfg);
    return rc;
}
