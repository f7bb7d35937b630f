/* cli.h - the command line outboxd and inboxd share: -c FILE, -X key=value, --print-config,
 * --print-example-config, --print-man-keys (config_doc.h), --help, --version; configuration layered defaults < file <
 * environment < -X; log setup; stop signals that only set a flag. */
#ifndef OUTBOXD_CLI_H
#define OUTBOXD_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"

typedef struct cli_spec {
    const char *prog;               /* "outboxd" (also the log's program name) */
    const char *env_prefix;         /* "OUTBOXD_" */
    const config_key_t *keys;       /* the program's key table (borrowed) */
    const char *passthrough_prefix; /* "kafka." */
    void (*usage)(FILE *out);       /* prints --help */
    int exit_config;                /* exit code for configuration errors */
    /* Optional: completes the loaded configuration (e.g. presets) before --print-config and
     * before it is returned; returns 0 or -1 with errstr. */
    int (*finish)(config_t *cfg, char *errstr, size_t errstr_size);
    /* Optional: checks each passthrough key as it is set (file, environment, -X), e.g.
     * kprops_config_check for kafka.*, so that a misspelt or invalid property fails with its
     * origin and a suggestion when the configuration is read. */
    const config_pt_check_t *passthrough_check;
    /* Optional: the passthrough keys' part of --print-example-config (commented text). */
    const char *passthrough_doc;
} cli_spec_t;

typedef enum {
    CLI_RUN = 0,         /* *cfg_out holds the configuration: go on */
    CLI_EXIT = 1,        /* done (help, version, or an error already logged): exit *code */
    CLI_PRINT_CONFIG = 2 /* --print-config: *cfg_out holds the configuration; make the checks the
                          * daemon makes before it connects anywhere, then cli_print_config() (exit
                          * 0) or log the error (exit as a configuration error) */
} cli_result_t;

/* Parses argv[first..argc). On CLI_RUN, *cfg_out is a new config the caller destroys.
 * Variables named <env_prefix>STACK_*, <env_prefix>TEST_* and <env_prefix>BIN belong to the
 * project's scripts and are not configuration. */
cli_result_t cli_load(const cli_spec_t *spec, int argc, char **argv, int first, config_t **cfg_out, int *code);

/* --print-config's output: the effective configuration, secrets redacted, on stdout. */
void cli_print_config(const config_t *cfg);

/* SIGTERM/SIGINT increment a flag (at most to 2) and SIGHUP sets the reload flag; all three are
 * blocked from now on, except while the caller waits in ppoll() with them unblocked (threads
 * started afterwards inherit the mask, so signals reach the loop thread); SIGPIPE is ignored.
 * Returns the stop flag. */
volatile sig_atomic_t *cli_stop_signals(void);

/* True after SIGHUP until cli_reload runs. */
bool cli_reload_pending(void);
/* Loads the configuration again exactly as cli_load did (file, environment, -X) and applies
 * log.level and log.format; other keys need a restart. Logs the outcome; on an error (e.g. a
 * broken file) the current settings stay. Call from the loop thread, never from a handler. */
void cli_reload(void);

#endif
