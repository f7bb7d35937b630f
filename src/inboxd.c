/* inboxd.c - command line, configuration and signals of the inbox consumer sidecar; runs
 * inbox_run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "inbox.h"
#include "inbox_config.h"
#include "log.h"

static void usage(FILE *out) {
    fprintf(out,
            "inboxd %s - records Kafka messages exactly once in the service's PostgreSQL inbox table\n\n"
            "usage: inboxd [-c FILE] [-X key=value]... [--print-config]\n"
            "       inboxd --help | --version\n\n"
            "  -c FILE         read 'key = value' lines from FILE\n"
            "  -X key=value    set a key (overrides FILE and environment); kafka.* keys go to librdkafka\n"
            "  --print-config  print the effective configuration (secrets redacted) and exit\n\n"
            "Precedence: defaults < FILE < environment (INBOXD_<KEY>, e.g. INBOXD_POSTGRES_CONNINFO,\n"
            "INBOXD_KAFKA_BOOTSTRAP_SERVERS) < -X.\n\nKeys:\n",
            OUTBOXD_VERSION);
    config_print_help(inbox_config_keys, "INBOXD_", out);
    fprintf(out, "  kafka.<property>  any librdkafka consumer property, e.g. kafka.bootstrap.servers, "
                 "kafka.group.id (default inboxd)\n");
}

int main(int argc, char **argv) {
    static const cli_spec_t spec = {"inboxd", "INBOXD_", inbox_config_keys, "kafka.", usage, INBOX_EXIT_CONFIG, NULL};
    config_t *cfg;
    int code;
    char err[1024];
    if (cli_load(&spec, argc, argv, 1, &cfg, &code) != CLI_RUN)
        return code;

    inbox_config_t ic;
    if (inbox_config_build(cfg, &ic, err, sizeof(err)) != 0) {
        log_error("%s", err);
        config_destroy(cfg);
        return INBOX_EXIT_CONFIG;
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
