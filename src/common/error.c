/* error.c - typed error values: setting them and printing them on one line. */
#include "error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *err_one_line(const char *s, char *buf, size_t size) {
    if (size == 0)
        return buf;
    size_t n = 0;
    for (; s && *s && n + 1 < size; s++) {
        bool space = *s == '\n' || *s == '\t' || *s == '\r';
        if (space && (n == 0 || buf[n - 1] == ' '))
            continue;
        buf[n++] = space ? ' ' : *s;
    }
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

void err_set(err_t *e, err_kind_t kind, const char *code, const char *fix, const char *fmt, ...) {
    char raw[sizeof(e->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    e->kind = kind;
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
    err_one_line(raw, e->msg, sizeof(e->msg));
    err_one_line(fix ? fix : "", e->fix, sizeof(e->fix));
}

const char *err_line(const err_t *e, char *buf, size_t size) {
    if (e->fix[0])
        snprintf(buf, size, "%s: %s", e->msg, e->fix);
    else
        snprintf(buf, size, "%s", e->msg);
    return buf;
}
