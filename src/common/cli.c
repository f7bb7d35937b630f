/* cli.c - shared command line of outboxd and inboxd: arguments, configuration layering,
 * logging setup and the stop-signal flag. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "config_doc.h"
#include "log.h"

extern char **environ;

static volatile sig_atomic_t stop_signals;
static volatile sig_atomic_t reload_signal;

/* What cli_reload needs to load the configuration again (argv's strings live as long as the
 * process; the array is copied because callers may free theirs). */
static const cli_spec_t *saved_spec;
static char **saved_argv;
static int saved_argc;

static void on_reload_signal(int sig) {
    (void)sig;
    reload_signal = 1;
}

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
    struct sigaction hup = {0};
    hup.sa_handler = on_reload_signal;
    sigemptyset(&hup.sa_mask);
    sigaction(SIGHUP, &hup, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
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

/* Defaults < file < environment < -X, then spec->finish. Returns a new config or NULL with err. */
static config_t *build_config(const cli_spec_t *spec, int argc, char **argv, int first, const char *file, char *err,
                              size_t errsz) {
    config_t *cfg = config_new(spec->keys, spec->passthrough_prefix, spec->env_prefix);
    if (!cfg) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    config_set_passthrough_check(cfg, spec->passthrough_check);
    if (file && config_load_file(cfg, file, err, errsz) != 0)
        goto error;
    if (load_env(spec, cfg, err, errsz) != 0)
        goto error;
    for (int i = first; i < argc; i++) {
        if (!strcmp(argv[i], "-c"))
            i++;
        else if (!strcmp(argv[i], "-X") && config_set_kv(cfg, argv[++i], "-X", err, errsz) != 0)
            goto error;
    }
    if (spec->finish && spec->finish(cfg, err, errsz) != 0)
        goto error;
    return cfg;
error:
    config_destroy(cfg);
    return NULL;
}

static const char *file_arg(int argc, char **argv, int first) {
    const char *file = NULL;
    for (int i = first; i + 1 < argc; i++)
        if (!strcmp(argv[i], "-c"))
            file = argv[++i];
        else if (!strcmp(argv[i], "-X"))
            i++;
    return file;
}

void cli_print_config(const config_t *cfg) {
    config_dump(cfg, stdout);
    fflush(stdout);
}

bool cli_reload_pending(void) { return reload_signal != 0; }

void cli_reload(void) {
    reload_signal = 0;
    if (!saved_spec)
        return;
    char err[1024];
    config_t *cfg =
        build_config(saved_spec, saved_argc, saved_argv, 0, file_arg(saved_argc, saved_argv, 0), err, sizeof(err));
    if (!cfg) {
        log_error("SIGHUP: cannot reload the configuration, keeping the current log settings: %s", err);
        return;
    }
    log_level_t level;
    log_format_t format;
    log_level_parse(config_get(cfg, "log.level"), &level);
    log_format_parse(config_get(cfg, "log.format"), &format);
    /* logged before the change, so that it shows also when the new level is "error" */
    log_warn("SIGHUP: reloaded log.level = %s, log.format = %s (other keys take effect at the next restart)",
             config_get(cfg, "log.level"), config_get(cfg, "log.format"));
    log_init(saved_spec->prog, level, format);
    config_destroy(cfg);
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
        /* Generated from the key table alone: contrib/config/<prog>.conf and the man page. */
        if (!strcmp(argv[i], "--print-example-config")) {
            config_doc_example(spec->keys, spec->prog, spec->env_prefix, spec->passthrough_doc, stdout);
            return CLI_EXIT;
        }
        if (!strcmp(argv[i], "--print-man-keys")) {
            config_doc_man_keys(spec->keys, spec->env_prefix, stdout);
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
    config_t *cfg = build_config(spec, argc, argv, first, file, err, sizeof(err));
    if (!cfg)
        goto error;
    log_level_t level;
    log_format_t format;
    log_level_parse(config_get(cfg, "log.level"), &level);
    log_format_parse(config_get(cfg, "log.format"), &format);
    log_init(spec->prog, level, format);
    if (print_config) {
        *cfg_out = cfg;
        return CLI_PRINT_CONFIG;
    }
    free(saved_argv);
    saved_argv = calloc((size_t)(argc - first) + 1, sizeof(char *));
    if (saved_argv) {
        saved_spec = spec;
        saved_argc = argc - first;
        for (int i = first; i < argc; i++)
            saved_argv[i - first] = argv[i];
    }
    *cfg_out = cfg;
    return CLI_RUN;
error:
    log_error("%s", err);
    config_destroy(cfg);
    *code = spec->exit_config;
    return CLI_EXIT;
}
