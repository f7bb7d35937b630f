/* fuzz_config.c - libFuzzer target: the configuration parser. The input is read as a config
 * file, then each of its lines as a -X key=value and as an environment variable, and the
 * result is dumped (--print-config), as the daemons' command line does. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every type and flag of the key table, with outboxd's and inboxd's kinds of names. */
static const config_key_t keys[] = {
    {"postgres.conninfo", CONFIG_STRING, "", 0, 0, NULL, false, "conninfo"},
    {"postgres.password", CONFIG_STRING, "", 0, 0, NULL, true, "password"},
    {"postgres.slot.create", CONFIG_BOOL, "true", 0, 0, NULL, false, "bool"},
    {"relay.max.inflight.events", CONFIG_INT, "10000", 1, 10000000, NULL, false, "int"},
    {"slot.retained.warn.bytes", CONFIG_INT, "0", 0, 1LL << 50, NULL, false, "big int"},
    {"outbox.on_invalid", CONFIG_ENUM, "fail", 0, 0, "fail|dead-letter", false, "enum"},
    {"deliver.headers", CONFIG_STRING, "", 0, 0, NULL, true, "secret"},
    {"log.level", CONFIG_ENUM, "info", 0, 0, "error|warn|info|debug", false, "enum"},
    {NULL, 0, NULL, 0, 0, NULL, false, NULL},
};

static FILE *null_out;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    if (!null_out && !(null_out = fopen("/dev/null", "w")))
        abort();
    config_t *cfg = config_new(keys, "kafka.", "OUTBOXD_");
    if (!cfg)
        return 0;
    if (size > 0) {
        FILE *f = fmemopen((void *)data, size, "r");
        if (f) {
            config_load_stream(cfg, f, "fuzz.conf", err, sizeof(err));
            fclose(f);
        }
    }
    /* The same bytes as -X arguments and as environment variables, one per line. */
    char *text = malloc(size + 1);
    char **env = calloc(size + 2, sizeof(char *));
    if (text && env) {
        memcpy(text, data, size);
        text[size] = '\0';
        size_t n = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            config_set_kv(cfg, line, "-X", err, sizeof(err));
            char *e = malloc(strlen(line) + 9);
            if (e) {
                memcpy(e, "OUTBOXD_", 8);
                strcpy(e + 8, line);
                env[n++] = e;
            }
        }
        config_load_env(cfg, env, err, sizeof(err));
        for (size_t i = 0; i < n; i++)
            free(env[i]);
    }
    free(text);
    free(env);
    config_dump(cfg, null_out);
    config_destroy(cfg);
    return 0;
}
