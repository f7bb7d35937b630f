/* lsn.c - parse and format PostgreSQL log sequence numbers in their "X/Y" text form. */
#include "lsn.h"
#include "hex.h"

#include <inttypes.h>
#include <stdio.h>

/* Parses 1..8 hex digits at *sp into *out and advances *sp past them. No sign, no "0x", no
 * spaces: strtoul would accept all three. Returns 0 or -1. */
static int parse_half(const char **sp, uint32_t *out) {
    const char *s = *sp;
    uint32_t v = 0;
    int n = 0;
    int d;

    while ((d = hex_digit_value(*s)) >= 0) {
        if (++n > 8)
            return -1;
        v = (v << 4) | (uint32_t)d;
        s++;
    }
    if (n == 0)
        return -1;
    *out = v;
    *sp = s;
    return 0;
}

int lsn_parse(const char *s, lsn_t *out) {
    uint32_t hi, lo;

    if (s == NULL)
        return -1;
    if (parse_half(&s, &hi) != 0)
        return -1;
    if (*s++ != '/')
        return -1;
    if (parse_half(&s, &lo) != 0)
        return -1;
    if (*s != '\0')
        return -1;
    if (out != NULL)
        *out = ((lsn_t)hi << 32) | lo;
    return 0;
}

char *lsn_format(lsn_t lsn, char *buf) {
    snprintf(buf, LSN_FMT_SIZE, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
    return buf;
}
