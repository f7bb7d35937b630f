/* cli.c - shared command line of outboxd and inboxd: arguments, configuration layering,
 * logging setup and the stop-signal flag. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

extern char **environ;

static volatile sig_atomic_t stop_signals;

static void on_stop_signal(int sig) {
    (void)sig;
    if (stop_signals < 2)
        stop_signals++;
}

volatile sig_atomic_t *cli_stop_signals(void) {
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
    return &stop_signals;
}

/* The environment without the scripts' reserved variables. */
static int load_env(const cli_spec_t *spec, config_t *cfg, char *errstr, size_t errstr_size) {
    size_t n = 0, plen = strlen(spec->env_prefix);
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
        if (!strncmp(v, spec->env_prefix, plen)) {
            const char *rest = v + plen;
            if (!strncmp(rest, "STACK_", 6) || !strncmp(rest, "TEST_", 5) || !strncmp(rest, "BIN=", 4))
                continue;
        }
        env[k++] = environ[i];
    }
    int rc = config_load_env(cfg, env, errstr, errstr_size);
    free(env);
    return rc;
}

cli_result_t cli_load(const cli_spec_t *spec, int argc, char **argv, int first, config_t **cfg_out, int *code) {
    const char *file = NULL;
    bool print_config = false;
    char err[1024];
    *cfg_out = NULL;
    *code = 0;
    log_init(spec->prog, LOG_INFO, LOG_FORMAT_TEXT);
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            spec->usage(stdout);
            return CLI_EXIT;
        }
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("%s %s\n", spec->prog, OUTBOXD_VERSION);
            return CLI_EXIT;
        }
    }
    /* First pass: the file and flags; -X values are applied after the file and environment. */
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "-X") && i + 1 < argc) {
            i++;
        } else if (!strcmp(argv[i], "--print-config")) {
            print_config = true;
        } else {
            fprintf(stderr, "%s: unknown or incomplete argument '%s'\n\n", spec->prog, argv[i]);
            spec->usage(stderr);
            *code = spec->exit_config;
            return CLI_EXIT;
        }
    }
    config_t *cfg = config_new(spec->keys, spec->passthrough_prefix, spec->env_prefix);
    if (!cfg) {
        log_error("out of memory");
        *code = spec->exit_config;
        return CLI_EXIT;
    }
    if (file && config_load_file(cfg, file, err, sizeof(err)) != 0)
        goto error;
    if (load_env(spec, cfg, err, sizeof(err)) != 0)
        goto error;
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "-c"))
            i++;
        else if (!strcmp(argv[i], "-X") && config_set_kv(cfg, argv[++i], "-X", err, sizeof(err)) != 0)
            goto error;
    }
    if (spec->finish && spec->finish(cfg, err, sizeof(err)) != 0)
        goto error;
    log_level_t level;
    log_format_t format;
    log_level_parse(config_get(cfg, "log.level"), &level);
    log_format_parse(config_get(cfg, "log.format"), &format);
    log_init(spec->prog, level, format);
    if (print_config) {
        config_dump(cfg, stdout);
        config_destroy(cfg);
        return CLI_EXIT;
    }
    *cfg_out = cfg;
    return CLI_RUN;
error:
    log_error("%s", err);
    config_destroy(cfg);
    *code = spec->exit_config;
    return CLI_EXIT;
}
