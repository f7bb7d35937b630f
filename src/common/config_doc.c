/* config_doc.c - an example configuration file and the man page's key list, generated from a
 * daemon's key table (see config_doc.h). */
#include "config_doc.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#define WRAP 92 /* comment lines of the example file */

/* "string", "integer from 1 to 10", "true or false", "one of a, b or c" */
static void type_text(const config_key_t *k, char *buf, size_t size) {
    switch (k->type) {
    case CONFIG_INT:
        if (k->min == LLONG_MIN && k->max == LLONG_MAX)
            snprintf(buf, size, "integer");
        else
            snprintf(buf, size, "integer from %lld to %lld", k->min, k->max);
        return;
    case CONFIG_BOOL:
        snprintf(buf, size, "true or false");
        return;
    case CONFIG_ENUM: {
        size_t o = (size_t)snprintf(buf, size, "one of ");
        const char *c = k->choices ? k->choices : "";
        for (const char *p = c; *p && o + 4 < size; p++) {
            if (*p != '|') {
                buf[o++] = *p;
                continue;
            }
            const char *sep = strchr(p + 1, '|') ? ", " : " or ";
            o += (size_t)snprintf(buf + o, size - o, "%s", sep);
        }
        buf[o < size ? o : size - 1] = '\0';
        return;
    }
    case CONFIG_STRING:
    default:
        snprintf(buf, size, "string");
        return;
    }
}

/* Writes text as '# ' comment lines of at most WRAP columns, broken at spaces. */
static void comment(FILE *out, const char *text) {
    const char *p = text;
    while (*p) {
        size_t len = strlen(p);
        if (len + 2 > WRAP) {
            size_t cut = WRAP - 2;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0) { /* one long word: up to the next space */
                cut = WRAP - 2;
                while (p[cut] && p[cut] != ' ')
                    cut++;
            }
            len = cut;
        }
        fprintf(out, "# %.*s\n", (int)len, p);
        p += len;
        while (*p == ' ')
            p++;
    }
}

/* A value as the file format reads it back: quoted when empty or when trimming or a '#'
 * would change it. */
static void put_value(FILE *out, const char *v) {
    size_t n = strlen(v);
    if (n == 0 || v[0] == ' ' || v[n - 1] == ' ' || v[0] == '"' || strchr(v, '#'))
        fprintf(out, "\"%s\"", v);
    else
        fputs(v, out);
}

void config_doc_example(const config_key_t *keys, const char *prog, const char *env_prefix, const char *passthrough_doc,
                        FILE *out) {
    char type[256], env[256];
    fprintf(out, "# %s.conf - an example configuration of %s: every key, its meaning and its default.\n", prog, prog);
    fprintf(out, "# Generated from %s's key table by `%s --print-example-config`: do not edit (the test\n", prog, prog);
    fprintf(out, "# suite checks that the shipped file equals what the binary prints).\n#\n");
    comment(out, "Lines are `key = value`; '#' starts a comment; a \"double-quoted\" value keeps spaces and '#'. "
                 "Every key is commented out at its default: uncomment and change what you need. The environment "
                 "(the variable named at each key) and -X key=value override this file.");
    for (const config_key_t *k = keys; k && k->name; k++) {
        fprintf(out, "\n");
        char line[1024];
        snprintf(line, sizeof(line), "%s%s", k->help ? k->help : "", k->secret ? " (secret: never printed)" : "");
        comment(out, line);
        type_text(k, type, sizeof(type));
        config_key_env_name(env_prefix, k->name, env, sizeof(env));
        snprintf(line, sizeof(line), "%s; environment %s", type, env);
        comment(out, line);
        fprintf(out, "#%s = ", k->name);
        put_value(out, k->def ? k->def : "");
        fputc('\n', out);
    }
    if (passthrough_doc && *passthrough_doc)
        fprintf(out, "\n%s", passthrough_doc);
}

/* Text for roff: backslashes doubled as \e, a leading '.' or '\'' protected. */
static void roff(FILE *out, const char *s) {
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void config_doc_man_keys(const config_key_t *keys, const char *env_prefix, FILE *out) {
    char type[256], env[256];
    for (const config_key_t *k = keys; k && k->name; k++) {
        type_text(k, type, sizeof(type));
        config_key_env_name(env_prefix, k->name, env, sizeof(env));
        fputs(".TP\n.B ", out);
        roff(out, k->name);
        fputc('\n', out);
        roff(out, type);
        if (k->def && *k->def) {
            fputs(", default \\fB", out);
            roff(out, k->def);
            fputs("\\fR", out);
        } else {
            fputs(", default empty", out);
        }
        fputs("; environment \\fB", out);
        roff(out, env);
        fputs("\\fR.\n.br\n", out);
        roff(out, k->help ? k->help : "");
        if (k->secret)
            fputs(" (secret: never printed)", out);
        fputc('\n', out);
    }
}
