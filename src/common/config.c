/* config.c - typed configuration table: set/validate keys, passthrough (kafka.*) keys, config
 * files, environment mapping, --help table and redacted dump. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "suggest.h"

/* A passthrough key (prefix stripped) and its value, both owned. */
typedef struct {
    char *key;
    char *value;
    char *file; /* the file the value was read from (key.file), or NULL */
} config_pt_t;

struct config {
    const config_key_t *keys; /* borrowed */
    size_t nkeys;
    char **values;    /* per known key, owned; NULL = unset */
    bool *set;        /* per known key: given by config_set (not just the default) */
    char **files;     /* per known key, owned: the file its value was read from (key.file), or NULL */
    char *pt_prefix;  /* owned; NULL = no passthrough */
    char *env_prefix; /* owned; NULL = no environment mapping */
    config_pt_t *pt;
    size_t npt, pt_cap;
    config_pt_check_t pt_check; /* optional validation of passthrough keys */
};

/* ---- helpers ------------------------------------------------------------------------------ */

static char *dup_range(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

static bool contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

/* " (origin)" or "" */
static const char *origin_open(const char *origin) { return origin != NULL && origin[0] != '\0' ? " (" : ""; }

static const char *origin_text(const char *origin) { return origin != NULL && origin[0] != '\0' ? origin : ""; }

static const char *origin_close(const char *origin) { return origin != NULL && origin[0] != '\0' ? ")" : ""; }

static const config_key_t *find_key(const config_t *cfg, const char *name, size_t *idx) {
    for (size_t i = 0; i < cfg->nkeys; i++) {
        if (strcmp(cfg->keys[i].name, name) == 0) {
            if (idx != NULL)
                *idx = i;
            return &cfg->keys[i];
        }
    }
    return NULL;
}

static bool is_passthrough(const config_t *cfg, const char *name) {
    return cfg->pt_prefix != NULL && strncmp(name, cfg->pt_prefix, strlen(cfg->pt_prefix)) == 0;
}

static config_pt_t *find_pt(const config_t *cfg, const char *suffix) {
    for (size_t i = 0; i < cfg->npt; i++)
        if (strcmp(cfg->pt[i].key, suffix) == 0)
            return &cfg->pt[i];
    return NULL;
}

/* Plain decimal: optional '-', digits, nothing else. Returns 0 or -1 (also on overflow). */
static int parse_int(const char *s, long long *out) {
    const char *p = s;
    char *end;
    long long v;

    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* true/false, 1/0, yes/no, on/off in any case. Returns 0 or -1. */
static int parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Finds value among "a|b|c" (any case). Returns the start of the matching choice and its
 * length in *len, or NULL. */
static const char *match_choice(const char *choices, const char *value, size_t *len) {
    size_t vlen = strlen(value);
    const char *p = choices;

    if (choices == NULL)
        return NULL;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (n == vlen && strncasecmp(p, value, n) == 0) {
            *len = n;
            return p;
        }
        if (bar == NULL)
            return NULL;
        p = bar + 1;
    }
}

/* "a|b|c" -> "a, b, c" */
static void choices_list(const char *choices, char *buf, size_t size) {
    size_t o = 0;

    if (size == 0)
        return;
    for (const char *p = choices != NULL ? choices : ""; *p && o + 3 < size; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
}

/* Known keys that extend name by one or more ".part"s ("relay.max.inflight" ->
 * "relay.max.inflight.events"), as "'a' or 'b'" into buf; "" when none. */
static void suggest_longer(const config_t *cfg, const char *name, char *buf, size_t size) {
    size_t n = strlen(name), o = 0, found = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->nkeys && found < 3; i++) {
        const char *k = cfg->keys[i].name;
        if (strncasecmp(k, name, n) != 0 || k[n] != '.')
            continue;
        int w = snprintf(buf + o, size - o, "%s%s", found ? "' or '" : "", k);
        if (w < 0 || (size_t)w >= size - o)
            break;
        o += (size_t)w;
        found++;
    }
}

/* Closest known key to name into buf (or "" when nothing is close): a key one typo away, a
 * key that name is the start of, a librdkafka property written without the passthrough
 * prefix ("bootstrap.servers" -> "kafka.bootstrap.servers"), or, for a misspelt passthrough
 * prefix ("kafak.acks"), the same key under the right prefix ("kafka.acks"). */
static void suggest_key(const config_t *cfg, const char *name, char *buf, size_t size) {
    int best = INT_MAX;

    buf[0] = '\0';
    for (size_t i = 0; i < cfg->nkeys; i++)
        suggest_consider(name, cfg->keys[i].name, &best, buf, size);
    if (best > 0 && cfg->pt_check.known != NULL && cfg->pt_check.known(name)) {
        snprintf(buf, size, "%s%s", cfg->pt_prefix, name);
        return;
    }
    if (!buf[0]) {
        suggest_longer(cfg, name, buf, size);
        if (buf[0])
            return;
    }
    if (cfg->pt_prefix != NULL) {
        const char *dot = strchr(name, '.');
        if (dot != NULL && dot[1] != '\0') {
            size_t hlen = (size_t)(dot - name) + 1;
            char *head = dup_range(name, hlen);
            if (head != NULL) {
                int d = suggest_distance(head, cfg->pt_prefix);
                if (d > 0 && d < best && suggest_close(d, cfg->pt_prefix)) {
                    best = d;
                    snprintf(buf, size, "%s%s", cfg->pt_prefix, dot + 1);
                }
                free(head);
            }
        }
    }
}

/* Validates value for key k; on success returns 0 and *out = a new string to store (enums
 * take the spelling of the table), else -1 with errstr filled. */
static int validate(const config_key_t *k, const char *value, bool hide, const char *origin, char *errstr,
                    size_t errstr_size, char **out) {
    /* Never echo a secret, even a mistyped one, nor what a file held. */
    const char *shown = k->secret || hide ? "***" : value;

    switch (k->type) {
    case CONFIG_INT: {
        long long v;
        if (parse_int(value, &v) != 0 || v < k->min || v > k->max) {
            snprintf(errstr, errstr_size, "invalid value '%s' for %s%s%s%s: expected an integer from %lld to %lld",
                     shown, k->name, origin_open(origin), origin_text(origin), origin_close(origin), k->min, k->max);
            return -1;
        }
        break;
    }
    case CONFIG_BOOL: {
        bool b;
        if (parse_bool(value, &b) != 0) {
            snprintf(errstr, errstr_size,
                     "invalid value '%s' for %s%s%s%s: expected true/false, yes/no, on/off or "
                     "1/0",
                     shown, k->name, origin_open(origin), origin_text(origin), origin_close(origin));
            return -1;
        }
        break;
    }
    case CONFIG_ENUM: {
        size_t n;
        const char *c = match_choice(k->choices, value, &n);
        if (c == NULL) {
            char list[512];
            choices_list(k->choices, list, sizeof(list));
            snprintf(errstr, errstr_size, "invalid value '%s' for %s%s%s%s: expected one of %s", shown, k->name,
                     origin_open(origin), origin_text(origin), origin_close(origin), list);
            return -1;
        }
        *out = dup_range(c, n);
        goto check;
    }
    case CONFIG_STRING:
        break;
    }
    *out = strdup(value);
check:
    if (*out == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

static void oom(char *errstr, size_t errstr_size) { snprintf(errstr, errstr_size, "out of memory"); }

/* ---- lifecycle ---------------------------------------------------------------------------- */

config_t *config_new(const config_key_t *keys, const char *passthrough_prefix, const char *env_prefix) {
    config_t *cfg = calloc(1, sizeof(*cfg));

    if (cfg == NULL)
        return NULL;
    cfg->keys = keys;
    while (keys != NULL && keys[cfg->nkeys].name != NULL)
        cfg->nkeys++;
    cfg->values = calloc(cfg->nkeys + 1, sizeof(char *));
    cfg->set = calloc(cfg->nkeys + 1, sizeof(bool));
    cfg->files = calloc(cfg->nkeys + 1, sizeof(char *));
    if (cfg->values == NULL || cfg->set == NULL || cfg->files == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nkeys; i++) {
        if (keys[i].def != NULL && (cfg->values[i] = strdup(keys[i].def)) == NULL)
            goto fail;
    }
    if (passthrough_prefix != NULL && passthrough_prefix[0] != '\0' &&
        (cfg->pt_prefix = strdup(passthrough_prefix)) == NULL)
        goto fail;
    if (env_prefix != NULL && (cfg->env_prefix = strdup(env_prefix)) == NULL)
        goto fail;
    return cfg;

fail:
    config_destroy(cfg);
    return NULL;
}

void config_destroy(config_t *cfg) {
    if (cfg == NULL)
        return;
    if (cfg->values != NULL) {
        for (size_t i = 0; i < cfg->nkeys; i++)
            free(cfg->values[i]);
        free(cfg->values);
    }
    free(cfg->set);
    if (cfg->files != NULL) {
        for (size_t i = 0; i < cfg->nkeys; i++)
            free(cfg->files[i]);
        free(cfg->files);
    }
    for (size_t i = 0; i < cfg->npt; i++) {
        free(cfg->pt[i].key);
        free(cfg->pt[i].value);
        free(cfg->pt[i].file);
    }
    free(cfg->pt);
    free(cfg->pt_prefix);
    free(cfg->env_prefix);
    free(cfg);
}

/* ---- setting ------------------------------------------------------------------------------ */

void config_set_passthrough_check(config_t *cfg, const config_pt_check_t *check) {
    if (cfg != NULL)
        cfg->pt_check = check != NULL ? *check : (config_pt_check_t){0};
}

/* The passthrough check's verdict on key (suffix: without the prefix) = value, as an error
 * naming the key and its origin. A secret-looking key never has its value echoed. */
static int check_passthrough(const config_t *cfg, const char *key, const char *suffix, const char *value,
                             bool from_file, const char *origin, char *errstr, size_t errstr_size) {
    char why[512] = "", suggestion[256] = "";
    config_pt_verdict_t v = cfg->pt_check.check(suffix, value, why, sizeof(why), suggestion, sizeof(suggestion));
    if (v == CONFIG_PT_OK)
        return 0;
    if (v == CONFIG_PT_UNKNOWN) {
        snprintf(errstr, errstr_size, "unknown config key '%s'%s%s%s: %s%s%s%s%s", key, origin_open(origin),
                 origin_text(origin), origin_close(origin), why, suggestion[0] ? "; did you mean '" : "",
                 suggestion[0] ? cfg->pt_prefix : "", suggestion, suggestion[0] ? "'?" : "");
        return -1;
    }
    bool secret =
        from_file || contains_ci(suffix, "password") || contains_ci(suffix, "secret") || contains_ci(suffix, "key");
    snprintf(errstr, errstr_size, "invalid value '%s' for %s%s%s%s: %s", secret ? "***" : value, key,
             origin_open(origin), origin_text(origin), origin_close(origin), why);
    return -1;
}

/* Takes ownership of file (the file the value came from, or NULL) on success and failure. */
static int set_passthrough(config_t *cfg, const char *key, const char *value, char *file, const char *origin,
                           char *errstr, size_t errstr_size) {
    const char *suffix = key + strlen(cfg->pt_prefix);
    config_pt_t *e;
    char *v;

    if (suffix[0] == '\0') {
        snprintf(errstr, errstr_size, "config key '%s'%s%s%s has nothing after the '%s' prefix", key,
                 origin_open(origin), origin_text(origin), origin_close(origin), cfg->pt_prefix);
        free(file);
        return -1;
    }
    if (cfg->pt_check.check != NULL &&
        check_passthrough(cfg, key, suffix, value, file != NULL, origin, errstr, errstr_size) != 0) {
        free(file);
        return -1;
    }
    v = strdup(value);
    if (v == NULL) {
        free(file);
        oom(errstr, errstr_size);
        return -1;
    }
    e = find_pt(cfg, suffix);
    if (e != NULL) {
        /* Last value wins; the key keeps its first position. */
        free(e->value);
        free(e->file);
        e->value = v;
        e->file = file;
        return 0;
    }
    if (cfg->npt == cfg->pt_cap) {
        size_t ncap = cfg->pt_cap ? cfg->pt_cap * 2 : 8;
        config_pt_t *n = realloc(cfg->pt, ncap * sizeof(*n));
        if (n == NULL) {
            free(v);
            free(file);
            oom(errstr, errstr_size);
            return -1;
        }
        cfg->pt = n;
        cfg->pt_cap = ncap;
    }
    e = &cfg->pt[cfg->npt];
    e->key = strdup(suffix);
    if (e->key == NULL) {
        free(v);
        free(file);
        oom(errstr, errstr_size);
        return -1;
    }
    e->value = v;
    e->file = file;
    cfg->npt++;
    return 0;
}

/* Sets a known or passthrough key; file: the file value was read from (owned; NULL = none),
 * which also keeps the value out of error messages. */
static int set_key(config_t *cfg, const char *key, const char *value, char *file, const char *origin, char *errstr,
                   size_t errstr_size) {
    size_t idx;
    const config_key_t *k = find_key(cfg, key, &idx);
    if (k != NULL) {
        char *v;
        if (validate(k, value, file != NULL, origin, errstr, errstr_size, &v) != 0) {
            free(file);
            return -1;
        }
        free(cfg->values[idx]);
        free(cfg->files[idx]);
        cfg->values[idx] = v;
        cfg->files[idx] = file;
        cfg->set[idx] = true;
        return 0;
    }
    if (is_passthrough(cfg, key))
        return set_passthrough(cfg, key, value, file, origin, errstr, errstr_size);
    free(file);

    char hint[256];
    suggest_key(cfg, key, hint, sizeof(hint));
    snprintf(errstr, errstr_size, "unknown config key '%s'%s%s%s%s%s%s", key, origin_open(origin), origin_text(origin),
             origin_close(origin), hint[0] ? "; did you mean '" : "", hint, hint[0] ? "'?" : "");
    return -1;
}

/* Reads a value file: at most CONFIG_FILE_MAX bytes, no NUL byte, one final "\n" or "\r\n"
 * removed. Returns a new string, or NULL with why filled (never with the file's content). */
static char *read_value_file(const char *path, char *why, size_t why_size) {
    /* O_NONBLOCK: a FIFO (or a terminal) must not hang the daemon at open or read time;
     * only regular files (also behind symlinks, as Kubernetes mounts secrets) are read. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "%s", fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (f == NULL) {
        snprintf(why, why_size, "%s", strerror(errno));
        close(fd);
        return NULL;
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, CONFIG_FILE_MAX + 1, f) : 0;
    bool failed = buf == NULL || ferror(f);
    fclose(f);
    if (failed || n > CONFIG_FILE_MAX || memchr(buf, '\0', n) != NULL) {
        snprintf(why, why_size, "%s",
                 buf == NULL           ? "out of memory"
                 : n > CONFIG_FILE_MAX ? "larger than 64 KiB"
                 : failed              ? "read error"
                                       : "it holds a NUL byte");
        free(buf);
        return NULL;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return buf;
}

/* key.file = path: the value of key is the content of the file path. */
static int set_from_file(config_t *cfg, const char *key, const char *path, const char *origin, char *errstr,
                         size_t errstr_size) {
    char why[128], from[1024];
    if (path[0] == '\0') {
        snprintf(errstr, errstr_size, "%s.file%s%s%s is empty: it must name a file", key, origin_open(origin),
                 origin_text(origin), origin_close(origin));
        return -1;
    }
    char *value = read_value_file(path, why, sizeof(why));
    if (value == NULL) {
        snprintf(errstr, errstr_size, "cannot read %s.file '%s'%s%s%s: %s", key, path, origin_open(origin),
                 origin_text(origin), origin_close(origin), why);
        return -1;
    }
    snprintf(from, sizeof(from), "%s.file '%s'%s%s%s", key, path, origin_open(origin), origin_text(origin),
             origin_close(origin));
    char *file = strdup(path);
    int r = file != NULL ? set_key(cfg, key, value, file, from, errstr, errstr_size) : -1;
    if (file == NULL)
        oom(errstr, errstr_size);
    explicit_bzero(value, strlen(value));
    free(value);
    return r;
}

/* The key that key names with a ".file" suffix (a new string), or NULL when it is not one. */
static char *file_key_stem(const config_t *cfg, const char *key) {
    size_t n = strlen(key), sl = strlen(CONFIG_FILE_SUFFIX);
    if (n <= sl || strcmp(key + n - sl, CONFIG_FILE_SUFFIX) != 0 || find_key(cfg, key, NULL) != NULL)
        return NULL;
    char *stem = dup_range(key, n - sl);
    if (stem != NULL && find_key(cfg, stem, NULL) == NULL && !is_passthrough(cfg, stem)) {
        free(stem);
        stem = NULL;
    }
    return stem;
}

int config_set(config_t *cfg, const char *key, const char *value, const char *origin, char *errstr,
               size_t errstr_size) {
    if (key == NULL || key[0] == '\0') {
        snprintf(errstr, errstr_size, "empty config key%s%s%s", origin_open(origin), origin_text(origin),
                 origin_close(origin));
        return -1;
    }
    if (value == NULL) {
        snprintf(errstr, errstr_size, "no value for config key '%s'%s%s%s", key, origin_open(origin),
                 origin_text(origin), origin_close(origin));
        return -1;
    }
    char *stem = file_key_stem(cfg, key);
    if (stem != NULL) {
        int r = set_from_file(cfg, stem, value, origin, errstr, errstr_size);
        free(stem);
        return r;
    }
    return set_key(cfg, key, value, NULL, origin, errstr, errstr_size);
}

const char *config_file_of(const config_t *cfg, const char *key) {
    size_t idx;
    if (cfg == NULL || key == NULL)
        return NULL;
    if (find_key(cfg, key, &idx) != NULL)
        return cfg->files[idx];
    if (is_passthrough(cfg, key)) {
        const config_pt_t *e = find_pt(cfg, key + strlen(cfg->pt_prefix));
        return e != NULL ? e->file : NULL;
    }
    return NULL;
}

int config_set_kv(config_t *cfg, const char *kv, const char *origin, char *errstr, size_t errstr_size) {
    const char *eq = kv != NULL ? strchr(kv, '=') : NULL;
    const char *ks, *ke;
    char *key;
    int r;

    if (eq == NULL) {
        /* The text is not echoed: it may be a mistyped secret. */
        snprintf(errstr, errstr_size, "expected key=value%s%s%s", origin_open(origin), origin_text(origin),
                 origin_close(origin));
        return -1;
    }
    ks = kv;
    ke = eq;
    while (ks < ke && is_blank(*ks))
        ks++;
    while (ke > ks && is_blank(ke[-1]))
        ke--;
    if (ks == ke) {
        snprintf(errstr, errstr_size, "missing key before '='%s%s%s", origin_open(origin), origin_text(origin),
                 origin_close(origin));
        return -1;
    }
    key = dup_range(ks, (size_t)(ke - ks));
    if (key == NULL) {
        oom(errstr, errstr_size);
        return -1;
    }
    r = config_set(cfg, key, eq + 1, origin, errstr, errstr_size);
    free(key);
    return r;
}

/* ---- files -------------------------------------------------------------------------------- */

/* Parses the value part of a line (after '=' and leading blanks) in place into *out. Returns
 * NULL or a static error text. */
static const char *parse_value(char *s, char **out) {
    if (*s == '"') {
        char *r = s + 1, *w = s;
        for (;;) {
            if (*r == '\0')
                return "unterminated quoted value";
            if (*r == '"')
                break;
            if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                r++;
            *w++ = *r++;
        }
        *w = '\0';
        r++;
        while (is_blank(*r))
            r++;
        if (*r != '\0' && *r != '#')
            return "unexpected text after closing quote";
        *out = s;
        return NULL;
    }

    /* Unquoted: '#' starts a comment when it follows a blank, so "a#b" stays. (A '#' right
     * after "= " was already taken as a comment by the caller.) */
    {
        char *p = s, *end;
        for (; *p; p++)
            if (*p == '#' && p > s && is_blank(p[-1]))
                break;
        *p = '\0';
        end = p;
        while (end > s && is_blank(end[-1]))
            *--end = '\0';
        *out = s;
        return NULL;
    }
}

int config_load_file(config_t *cfg, const char *path, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "cannot open config file '%s': %s", path, strerror(errno));
        return -1;
    }
    int ret = config_load_stream(cfg, f, path, errstr, errstr_size);
    fclose(f);
    return ret;
}

int config_load_stream(config_t *cfg, FILE *f, const char *path, char *errstr, size_t errstr_size) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    int ret = -1;

    while ((len = getline(&line, &cap, f)) >= 0) {
        char *p = line, *key, *key_end, *value, *eq = NULL;
        const char *perr;
        char origin[1024];

        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strlen(line) != (size_t)len) {
            snprintf(errstr, errstr_size, "%s:%lu: NUL byte in line", path, lineno);
            goto out;
        }
        if (lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
            p += 3; /* UTF-8 byte order mark */
        while (is_blank(*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;

        /* '=' must come before any comment. */
        for (char *q = p; *q; q++) {
            if (*q == '=') {
                eq = q;
                break;
            }
            if (*q == '#' && q > p && is_blank(q[-1]))
                break;
        }
        if (eq == NULL) {
            snprintf(errstr, errstr_size, "%s:%lu: expected 'key = value'", path, lineno);
            goto out;
        }
        key = p;
        key_end = eq;
        while (key_end > key && is_blank(key_end[-1]))
            key_end--;
        if (key_end == key) {
            snprintf(errstr, errstr_size, "%s:%lu: expected 'key = value' (missing key)", path, lineno);
            goto out;
        }
        *key_end = '\0';
        value = eq + 1;
        while (is_blank(*value))
            value++;
        if (value > eq + 1 && *value == '#') {
            *value = '\0'; /* "key = # comment": empty value */
        }
        perr = parse_value(value, &value);
        if (perr != NULL) {
            snprintf(errstr, errstr_size, "%s:%lu: %s", path, lineno, perr);
            goto out;
        }
        snprintf(origin, sizeof(origin), "%s:%lu", path, lineno);
        if (config_set(cfg, key, value, origin, errstr, errstr_size) != 0)
            goto out;
    }
    if (ferror(f)) {
        snprintf(errstr, errstr_size, "cannot read config file '%s': %s", path, strerror(errno));
        goto out;
    }
    ret = 0;

out:
    free(line);
    return ret;
}

/* ---- environment -------------------------------------------------------------------------- */

/* prefix + key in upper case with every non-alphanumeric character as '_'. */
static void env_name(const char *prefix, const char *key, char *buf, size_t size) {
    size_t o = 0;

    if (size == 0)
        return;
    for (const char *p = prefix != NULL ? prefix : ""; *p && o + 1 < size; p++)
        buf[o++] = *p;
    for (const char *p = key; *p && o + 1 < size; p++)
        buf[o++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    buf[o] = '\0';
}

void config_env_name(const config_t *cfg, const char *key, char *buf, size_t buf_size) {
    env_name(cfg->env_prefix, key, buf, buf_size);
}

void config_key_env_name(const char *env_prefix, const char *key, char *buf, size_t buf_size) {
    env_name(env_prefix, key, buf, buf_size);
}

/* Maps one env_prefix variable (name/name_len, value) to a key and sets it. */
static int load_env_var(config_t *cfg, const char *name, size_t name_len, const char *value, char *errstr,
                        size_t errstr_size) {
    char *var = dup_range(name, name_len);
    char origin[512], buf[512];
    const char *suffix;
    int r = -1;

    if (var == NULL) {
        oom(errstr, errstr_size);
        return -1;
    }
    snprintf(origin, sizeof(origin), "env %s", var);

    /* Known keys first: their names may hold '_' ("outbox.on_invalid"). */
    for (size_t i = 0; i < cfg->nkeys; i++) {
        env_name(cfg->env_prefix, cfg->keys[i].name, buf, sizeof(buf));
        if (strcmp(buf, var) == 0) {
            r = config_set(cfg, cfg->keys[i].name, value, origin, errstr, errstr_size);
            goto out;
        }
    }

    /* <VAR>_FILE names the file that holds the value of a known key (passthrough keys get
     * theirs below: OUTBOXD_KAFKA_SASL_PASSWORD_FILE -> kafka.sasl.password.file). */
    size_t vl = strlen(var), fl = strlen(CONFIG_ENV_FILE_SUFFIX);
    if (vl > fl && !strcmp(var + vl - fl, CONFIG_ENV_FILE_SUFFIX)) {
        for (size_t i = 0; i < cfg->nkeys; i++) {
            env_name(cfg->env_prefix, cfg->keys[i].name, buf, sizeof(buf));
            if (strlen(buf) == vl - fl && !strncmp(buf, var, vl - fl)) {
                char key[300];
                snprintf(key, sizeof(key), "%s%s", cfg->keys[i].name, CONFIG_FILE_SUFFIX);
                r = config_set(cfg, key, value, origin, errstr, errstr_size);
                goto out;
            }
        }
    }

    suffix = var + strlen(cfg->env_prefix);
    if (cfg->pt_prefix != NULL) {
        size_t plen;
        env_name(NULL, cfg->pt_prefix, buf, sizeof(buf)); /* "kafka." -> "KAFKA_" */
        plen = strlen(buf);
        if (strncmp(suffix, buf, plen) == 0) {
            char *key = malloc(strlen(cfg->pt_prefix) + strlen(suffix + plen) + 1);
            char *w;
            if (key == NULL) {
                oom(errstr, errstr_size);
                goto out;
            }
            w = stpcpy(key, cfg->pt_prefix);
            for (const char *p = suffix + plen; *p; p++)
                *w++ = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
            *w = '\0';
            r = config_set(cfg, key, value, origin, errstr, errstr_size);
            free(key);
            goto out;
        }
    }

    {
        /* Suggest the closest known variable (for a _FILE variable, the closest one's twin). */
        int best = INT_MAX;
        char hint[512] = "";
        bool file = vl > fl && !strcmp(var + vl - fl, CONFIG_ENV_FILE_SUFFIX);
        if (file)
            var[vl - fl] = '\0';
        for (size_t i = 0; i < cfg->nkeys; i++) {
            int d;
            env_name(cfg->env_prefix, cfg->keys[i].name, buf, sizeof(buf));
            d = suggest_distance(var, buf);
            if (d < best && suggest_close(d, buf + strlen(cfg->env_prefix))) {
                best = d;
                snprintf(hint, sizeof(hint), "%s%s", buf, file ? CONFIG_ENV_FILE_SUFFIX : "");
            }
        }
        if (file)
            var[vl - fl] = CONFIG_ENV_FILE_SUFFIX[0];
        snprintf(errstr, errstr_size, "unknown environment variable %s: no config key %s%s%s", var,
                 hint[0] ? "matches; did you mean " : "matches it", hint, hint[0] ? "?" : "");
    }

out:
    free(var);
    return r;
}

/* Both <VAR> and <VAR>_FILE set: which wins would depend on the order of the environment. */
static int env_file_conflict(const config_t *cfg, char *const *envp, char *errstr, size_t errstr_size) {
    size_t plen = strlen(cfg->env_prefix), fl = strlen(CONFIG_ENV_FILE_SUFFIX);
    for (size_t i = 0; envp[i] != NULL; i++) {
        const char *eq = strchr(envp[i], '=');
        size_t n = eq != NULL ? (size_t)(eq - envp[i]) : 0;
        if (n <= plen + fl || strncmp(envp[i], cfg->env_prefix, plen) != 0 ||
            strncmp(envp[i] + n - fl, CONFIG_ENV_FILE_SUFFIX, fl) != 0)
            continue;
        for (size_t j = 0; envp[j] != NULL; j++) {
            if (!strncmp(envp[j], envp[i], n - fl) && envp[j][n - fl] == '=') {
                snprintf(errstr, errstr_size,
                         "both %.*s and %.*s are set: set the value or the file that holds it, "
                         "not both",
                         (int)(n - fl), envp[i], (int)n, envp[i]);
                return -1;
            }
        }
    }
    return 0;
}

int config_load_env(config_t *cfg, char *const *envp, char *errstr, size_t errstr_size) {
    size_t plen;

    if (cfg->env_prefix == NULL || cfg->env_prefix[0] == '\0')
        return 0;
    if (envp == NULL)
        envp = environ;
    if (envp == NULL)
        return 0;
    if (env_file_conflict(cfg, envp, errstr, errstr_size) != 0)
        return -1;
    plen = strlen(cfg->env_prefix);
    for (size_t i = 0; envp[i] != NULL; i++) {
        const char *e = envp[i];
        const char *eq;

        if (strncmp(e, cfg->env_prefix, plen) != 0)
            continue;
        eq = strchr(e, '=');
        if (eq == NULL)
            continue;
        if (load_env_var(cfg, e, (size_t)(eq - e), eq + 1, errstr, errstr_size) != 0)
            return -1;
    }
    return 0;
}

/* ---- getters ------------------------------------------------------------------------------ */

const char *config_get(const config_t *cfg, const char *key) {
    size_t idx;

    if (cfg == NULL || key == NULL)
        return NULL;
    if (find_key(cfg, key, &idx) != NULL)
        return cfg->values[idx];
    if (is_passthrough(cfg, key)) {
        config_pt_t *e = find_pt(cfg, key + strlen(cfg->pt_prefix));
        return e != NULL ? e->value : NULL;
    }
    return NULL;
}

bool config_is_set(const config_t *cfg, const char *key) {
    size_t idx;

    if (cfg == NULL || key == NULL)
        return false;
    if (find_key(cfg, key, &idx) != NULL)
        return cfg->set[idx];
    return is_passthrough(cfg, key) && find_pt(cfg, key + strlen(cfg->pt_prefix)) != NULL;
}

long long config_get_int(const config_t *cfg, const char *key) {
    const char *v = config_get(cfg, key);
    long long n;

    if (v == NULL || parse_int(v, &n) != 0)
        return 0;
    return n;
}

bool config_get_bool(const config_t *cfg, const char *key) {
    const char *v = config_get(cfg, key);
    bool b;

    if (v == NULL || parse_bool(v, &b) != 0)
        return false;
    return b;
}

size_t config_passthrough_count(const config_t *cfg) { return cfg != NULL ? cfg->npt : 0; }

void config_passthrough_get(const config_t *cfg, size_t i, const char **key, const char **value) {
    if (cfg == NULL || i >= cfg->npt) {
        if (key != NULL)
            *key = NULL;
        if (value != NULL)
            *value = NULL;
        return;
    }
    if (key != NULL)
        *key = cfg->pt[i].key;
    if (value != NULL)
        *value = cfg->pt[i].value;
}

/* ---- help and dump ------------------------------------------------------------------------ */

static const char *type_name(config_type_t t) {
    switch (t) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_INT:
        return "int";
    case CONFIG_BOOL:
        return "bool";
    case CONFIG_ENUM:
        return "enum";
    }
    return "?";
}

/* Type column: "string", "bool", "int 1..65535", "text|json". */
static void type_text(const config_key_t *k, char *buf, size_t size) {
    if (k->type == CONFIG_ENUM && k->choices != NULL)
        snprintf(buf, size, "%s", k->choices);
    else if (k->type == CONFIG_INT && !(k->min == LLONG_MIN && k->max == LLONG_MAX))
        snprintf(buf, size, "int %lld..%lld", k->min, k->max);
    else
        snprintf(buf, size, "%s", type_name(k->type));
}

static const char *default_text(const config_key_t *k) {
    if (k->def == NULL)
        return "-";
    if (k->def[0] == '\0')
        return "\"\"";
    return k->def;
}

void config_print_help(const config_key_t *keys, const char *env_prefix, FILE *out) {
    int wkey = (int)strlen("KEY"), wtype = (int)strlen("TYPE"), wdef = (int)strlen("DEFAULT");
    int wenv = (int)strlen("ENVIRONMENT");
    bool env = env_prefix != NULL && env_prefix[0] != '\0';
    char buf[512];

    if (keys == NULL)
        return;
    for (const config_key_t *k = keys; k->name != NULL; k++) {
        int n;
        if ((n = (int)strlen(k->name)) > wkey)
            wkey = n;
        type_text(k, buf, sizeof(buf));
        if ((n = (int)strlen(buf)) > wtype)
            wtype = n;
        if ((n = (int)strlen(default_text(k))) > wdef)
            wdef = n;
        env_name(env_prefix, k->name, buf, sizeof(buf));
        if ((n = (int)strlen(buf)) > wenv)
            wenv = n;
    }
    if (env)
        fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", wkey, "KEY", wtype, "TYPE", wdef, "DEFAULT", wenv, "ENVIRONMENT",
                "DESCRIPTION");
    else
        fprintf(out, "%-*s  %-*s  %-*s  %s\n", wkey, "KEY", wtype, "TYPE", wdef, "DEFAULT", "DESCRIPTION");
    for (const config_key_t *k = keys; k->name != NULL; k++) {
        char type[512], envn[512];
        type_text(k, type, sizeof(type));
        env_name(env_prefix, k->name, envn, sizeof(envn));
        if (env)
            fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s%s\n", wkey, k->name, wtype, type, wdef, default_text(k), wenv,
                    envn, k->help != NULL ? k->help : "", k->secret ? " (secret)" : "");
        else
            fprintf(out, "%-*s  %-*s  %-*s  %s%s\n", wkey, k->name, wtype, type, wdef, default_text(k),
                    k->help != NULL ? k->help : "", k->secret ? " (secret)" : "");
    }
}

/* Prints "key = value", quoting the value when reading it back would change it. */
static void dump_line(FILE *out, const char *prefix, const char *key, const char *value) {
    size_t n = strlen(value);
    bool quote =
        n == 0 || is_blank(value[0]) || is_blank(value[n - 1]) || value[0] == '"' || strchr(value, '#') != NULL;

    fprintf(out, "%s%s = ", prefix, key);
    if (!quote) {
        fprintf(out, "%s\n", value);
        return;
    }
    fputc('"', out);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', out);
        fputc(*p, out);
    }
    fputs("\"\n", out);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

void config_dump(const config_t *cfg, FILE *out) {
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nkeys; i++) {
        const config_key_t *k = &cfg->keys[i];
        const char *v = cfg->values[i];

        if (v == NULL)
            continue;
        if (cfg->files[i] != NULL) {
            dump_line(out, k->name, CONFIG_FILE_SUFFIX, cfg->files[i]); /* where it is, not what it is */
        } else if (k->secret || contains_ci(k->name, "password") || contains_ci(k->name, "secret")) {
            fprintf(out, "%s = %s\n", k->name, *v ? "***" : "\"\""); /* an empty one is not a secret */
        } else if (ends_with(k->name, "conninfo") || ends_with(k->name, ".url")) {
            size_t size = 4 * strlen(v) + 64;
            char *red = malloc(size);
            if (red == NULL) {
                fprintf(out, "%s = ***\n", k->name);
                continue;
            }
            if (ends_with(k->name, ".url"))
                log_redact_url(v, red, size);
            else
                log_redact_conninfo(v, red, size);
            dump_line(out, "", k->name, red);
            free(red);
        } else {
            dump_line(out, "", k->name, v);
        }
    }
    for (size_t i = 0; i < cfg->npt; i++) {
        const config_pt_t *e = &cfg->pt[i];
        if (e->file != NULL) {
            char name[512];
            snprintf(name, sizeof(name), "%s%s", e->key, CONFIG_FILE_SUFFIX);
            dump_line(out, cfg->pt_prefix, name, e->file);
        } else if (contains_ci(e->key, "password") || contains_ci(e->key, "secret") || contains_ci(e->key, "key"))
            fprintf(out, "%s%s = ***\n", cfg->pt_prefix, e->key);
        else
            dump_line(out, cfg->pt_prefix, e->key, e->value);
    }
}
