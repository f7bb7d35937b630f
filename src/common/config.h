/* config.h - typed configuration: known keys with defaults and help, passthrough keys
 * (kafka.*), loaded from a file, the environment and -X key=value overrides. Pure. */
#ifndef OUTBOXD_CONFIG_H
#define OUTBOXD_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

/* Any key can be read from a file: "<key>.file = PATH" (file, -X) or the variable of the key
 * with "_FILE" appended (OUTBOXD_KAFKA_SASL_PASSWORD_FILE=PATH). The value is the file's
 * content without one final newline; a regular file of at most CONFIG_FILE_MAX bytes, no NUL
 * byte. It is never
 * shown: errors say "***", config_dump prints "<key>.file = PATH". */
#define CONFIG_FILE_SUFFIX ".file"
#define CONFIG_ENV_FILE_SUFFIX "_FILE"
#define CONFIG_FILE_MAX 65536

typedef enum { CONFIG_STRING, CONFIG_INT, CONFIG_BOOL, CONFIG_ENUM } config_type_t;

typedef struct config_key {
    const char *name; /* "postgres.conninfo" */
    config_type_t type;
    const char *def;     /* default as text; NULL = unset */
    long long min, max;  /* CONFIG_INT bounds (inclusive) */
    const char *choices; /* CONFIG_ENUM: "a|b|c" */
    bool secret;         /* value never printed (config_dump shows ***) */
    const char *help;    /* one line */
} config_key_t;

typedef struct config config_t;

/* keys: array terminated by an entry with name == NULL; borrowed, must outlive the config
 * (normally a static table). passthrough_prefix: keys starting with it (e.g. "kafka.") are
 * accepted as-is and listed by config_passthrough_*; NULL = none. env_prefix: e.g.
 * "OUTBOXD_"; NULL = no environment mapping. Returns a new config holding the defaults. */
config_t *config_new(const config_key_t *keys, const char *passthrough_prefix, const char *env_prefix);
void config_destroy(config_t *cfg); /* accepts NULL */

/* Validation of passthrough keys (e.g. librdkafka's properties for kafka.*). */
typedef enum { CONFIG_PT_OK = 0, CONFIG_PT_UNKNOWN, CONFIG_PT_INVALID } config_pt_verdict_t;
typedef struct config_pt_check {
    /* key without the prefix, and its value: OK, UNKNOWN (no such property; why says so and
     * suggestion gets the closest known name without the prefix, or "") or INVALID (why says
     * what is wrong with the value). */
    config_pt_verdict_t (*check)(const char *key, const char *value, char *why, size_t why_size, char *suggestion,
                                 size_t suggestion_size);
    /* true when name (without the prefix) is a passthrough property: an unknown key that is one
     * gets the suggestion prefix + name. May be NULL. */
    bool (*known)(const char *name);
} config_pt_check_t;

/* Makes config_set (and so files, the environment and -X) check every passthrough key with
 * check (copied; NULL removes it): an unknown property or a bad value is an error naming the
 * key and its origin ("file.conf:3"), with "did you mean" for a misspelt name. */
void config_set_passthrough_check(config_t *cfg, const config_pt_check_t *check);

/* Sets one key. origin names where the value came from ("file.conf:12", "-X", "env
 * OUTBOXD_X") and is used in errors. Unknown keys, bad ints/bools/enums fail with a
 * message naming the origin and, for unknown keys, the closest known key. "<key>.file" reads
 * the value of key from the file its value names (CONFIG_FILE_SUFFIX).
 * Returns 0 or -1 with errstr filled. */
int config_set(config_t *cfg, const char *key, const char *value, const char *origin, char *errstr, size_t errstr_size);

/* Parses "key=value" (as given to -X) and sets it. */
int config_set_kv(config_t *cfg, const char *kv, const char *origin, char *errstr, size_t errstr_size);

/* Reads "key = value" lines; '#' starts a comment (whole line, or after whitespace); values
 * may be "double-quoted" to keep leading/trailing spaces or '#'. Errors say "FILE:LINE: ...". */
int config_load_file(config_t *cfg, const char *path, char *errstr, size_t errstr_size);

/* config_load_file on an open stream f (borrowed; not closed); path names it in errors. */
int config_load_stream(config_t *cfg, FILE *f, const char *path, char *errstr, size_t errstr_size);

/* Maps environment variables env_prefix + KEY (upper case, '.' -> '_') onto known keys, e.g.
 * OUTBOXD_POSTGRES_CONNINFO -> postgres.conninfo; for passthrough keys
 * OUTBOXD_KAFKA_BOOTSTRAP_SERVERS -> kafka.bootstrap.servers (lower case, '_' -> '.'). A
 * variable with "_FILE" appended names the file holding the value (<key>.file). envp:
 * NULL-terminated "NAME=value" array (borrowed). An env_prefix variable that maps to no key is
 * an error, and so are a variable and its _FILE twin both set. */
int config_load_env(config_t *cfg, char *const *envp, char *errstr, size_t errstr_size);

/* The file key's value was read from (borrowed), or NULL when it was not read from a file. */
const char *config_file_of(const config_t *cfg, const char *key);

/* Borrowed value or NULL when unset. */
const char *config_get(const config_t *cfg, const char *key);
/* True when key was given a value by config_set (file, environment, -X, or the program),
 * even one equal to the default; false when it holds its default or is unknown. */
bool config_is_set(const config_t *cfg, const char *key);
long long config_get_int(const config_t *cfg, const char *key);
bool config_get_bool(const config_t *cfg, const char *key);

/* Passthrough keys in the order first set: key without the prefix and value, borrowed. */
size_t config_passthrough_count(const config_t *cfg);
void config_passthrough_get(const config_t *cfg, size_t i, const char **key, const char **value);

/* The env variable name for key ("OUTBOXD_POSTGRES_CONNINFO") into buf. */
void config_env_name(const config_t *cfg, const char *key, char *buf, size_t buf_size);
/* The same without a config: env_prefix (may be NULL) followed by the key in upper case, every
 * character that is not a letter or digit written '_'. */
void config_key_env_name(const char *env_prefix, const char *key, char *buf, size_t buf_size);

/* Prints every known key with type, default and help (for --help). */
void config_print_help(const config_key_t *keys, const char *env_prefix, FILE *out);

/* Prints the effective configuration, secrets and conninfo passwords redacted; passthrough
 * keys containing "password", "secret" or "key" (e.g. sasl.password, ssl.key.pem) redacted; a
 * value read from a file as "<key>.file = PATH". */
void config_dump(const config_t *cfg, FILE *out);

#endif
