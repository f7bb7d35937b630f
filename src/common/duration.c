/* duration.c - durations written for people ("7d", "1d12h", "90 min") as seconds. */
#include "duration.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    long long secs;
} units[] = {
    {"s", 1},        {"sec", 1},     {"secs", 1},      {"second", 1},     {"seconds", 1},
    {"m", 60},       {"min", 60},    {"mins", 60},     {"minute", 60},    {"minutes", 60},
    {"h", 3600},     {"hour", 3600}, {"hours", 3600},  {"d", 86400},      {"day", 86400},
    {"days", 86400}, {"w", 604800},  {"week", 604800}, {"weeks", 604800},
};

/* Seconds per unit u[0..len) (any case), or 0 when it is no unit. */
static long long unit_seconds(const char *u, size_t len) {
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].name) == len && !strncasecmp(units[i].name, u, len))
            return units[i].secs;
    return 0;
}

static const char *skip_blanks(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int duration_parse(const char *s, long long *seconds) {
    long long total = 0;
    bool any = false;
    if (!s)
        return -1;
    for (const char *p = skip_blanks(s); *p; p = skip_blanks(p)) {
        if (!isdigit((unsigned char)*p))
            return -1;
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno)
            return -1;
        p = skip_blanks(end);
        const char *u = p;
        while (isalpha((unsigned char)*p))
            p++;
        long long mult;
        if (p == u) {
            /* A bare number is seconds, only as the whole value. */
            if (any || *skip_blanks(p))
                return -1;
            mult = 1;
        } else if (!(mult = unit_seconds(u, (size_t)(p - u)))) {
            return -1;
        }
        if (v > LLONG_MAX / mult || total > LLONG_MAX - v * mult)
            return -1;
        total += v * mult;
        any = true;
    }
    if (!any)
        return -1;
    *seconds = total;
    return 0;
}
