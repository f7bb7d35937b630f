/* inboxd.c - command line, configuration and signals of the inbox consumer sidecar; runs
 * inbox_run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "inbox.h"
#include "inbox_config.h"
#include "log.h"

extern char **environ;

static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig) {
    (void)sig;
    if (stop_signals < 2)
        stop_signals++;
}

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
    const char *file = NULL;
    bool print_config = false;
    char err[1024];
    log_init("inboxd", LOG_INFO, LOG_FORMAT_TEXT);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("inboxd %s\n", OUTBOXD_VERSION);
            return 0;
        }
    }
    config_t *cfg = config_new(inbox_config_keys, "kafka.", "INBOXD_");
    if (!cfg) {
        log_error("out of memory");
        return INBOX_EXIT_CONFIG;
    }
    /* First pass: find the file; -X values are applied after it and the environment. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "-X") && i + 1 < argc) {
            i++;
        } else if (!strcmp(argv[i], "--print-config")) {
            print_config = true;
        } else {
            fprintf(stderr, "inboxd: unknown or incomplete argument '%s'\n\n", argv[i]);
            usage(stderr);
            config_destroy(cfg);
            return INBOX_EXIT_CONFIG;
        }
    }
    if (file && config_load_file(cfg, file, err, sizeof(err)) != 0)
        goto config_error;
    if (config_load_env(cfg, environ, err, sizeof(err)) != 0)
        goto config_error;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c")) {
            i++;
        } else if (!strcmp(argv[i], "-X")) {
            if (config_set_kv(cfg, argv[++i], "-X", err, sizeof(err)) != 0)
                goto config_error;
        }
    }

    log_level_t level;
    log_format_t format;
    log_level_parse(config_get(cfg, "log.level"), &level);
    log_format_parse(config_get(cfg, "log.format"), &format);
    log_init("inboxd", level, format);

    if (print_config) {
        config_dump(cfg, stdout);
        config_destroy(cfg);
        return 0;
    }

    inbox_config_t ic;
    if (inbox_config_build(cfg, &ic, err, sizeof(err)) != 0)
        goto config_error;

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
    log_redact_conninfo(ic.opts.conninfo, redacted, sizeof(redacted));
    log_info("inboxd %s starting: postgres \"%s\", table %s, topics %s", OUTBOXD_VERSION, redacted, ic.opts.table,
             config_get(cfg, "inbox.topics"));
    int rc = inbox_run(&ic.opts, &stop_signals);
    inbox_config_free(&ic);
    config_destroy(cfg);
    return rc;

config_error:
    log_error("%s", err);
    config_destroy(cfg);
    return INBOX_EXIT_CONFIG;
}
