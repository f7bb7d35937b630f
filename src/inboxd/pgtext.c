/* pgtext.c - bytes as PostgreSQL text: the UTF-8 check and the "\x"-hex form. */
#include "pgtext.h"

#include <stdint.h>
#include <stdlib.h>

#include "hex.h"

bool pgtext_is_text(const void *data, size_t len) {
    const unsigned char *p = data, *end = p + len;
    if (len > 0 && !data)
        return false;
    while (p < end) {
        unsigned c = *p;
        if (c == 0)
            return false;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead (C0, C1) or beyond U+10FFFF */
        }
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

char *pgtext_hex(const void *data, size_t len) {
    const unsigned char *p = data;
    char *s = malloc(2 * len + 3);
    if (!s)
        return NULL;
    s[0] = '\\';
    s[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        s[2 + 2 * i] = hex_digit_char(p[i] >> 4);
        s[3 + 2 * i] = hex_digit_char(p[i]);
    }
    s[2 + 2 * len] = '\0';
    return s;
}
