/* jsonw.c - writes JSON text: escaped strings, shortest round-trip numbers and compact JSON
 * of a jansson value, appended to a strbuf. */
#include "jsonw.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

int jsonw_format_real(double v, char *buf, size_t size) {
    int n = 0, prec, exp10, decimals;

    for (prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*e", prec - 1, v);
        if (n < 0 || (size_t)n >= size)
            return -1;
        if (strtod(buf, NULL) == v)
            break;
    }
    if (prec > 17)
        prec = 17;
    exp10 = atoi(strchr(buf, 'e') + 1);
    if (exp10 < -4 || exp10 >= 15)
        return n;
    decimals = prec - 1 - exp10;
    n = snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, v);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int jsonw_string(strbuf_t *b, const char *s, size_t n) {
    if (strbuf_addc(b, '"') != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 2;

        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            if (c >= 0x20) {
                if (strbuf_addc(b, (char)c) != 0)
                    return -1;
                continue;
            }
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex_digit_char(c >> 4);
            esc[5] = hex_digit_char(c);
            elen = 6;
        }
        if (strbuf_add(b, esc, elen) != 0)
            return -1;
    }
    return strbuf_addc(b, '"');
}

/* Appends \uXXXX with upper-case hex digits, as Jackson does. */
static int add_java_escape(strbuf_t *b, unsigned v) {
    static const char digits[] = "0123456789ABCDEF";
    char esc[6] = {'\\', 'u', digits[(v >> 12) & 15], digits[(v >> 8) & 15], digits[(v >> 4) & 15], digits[v & 15]};

    return strbuf_add(b, esc, sizeof(esc));
}

/* The code point of a well-formed 4-byte UTF-8 sequence at s[0..n), or 0. */
static unsigned utf8_supplementary(const unsigned char *s, size_t n) {
    if (n < 4 || s[0] < 0xF0 || s[0] > 0xF4)
        return 0;
    for (int i = 1; i < 4; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    unsigned cp = ((unsigned)(s[0] & 0x07) << 18) | ((unsigned)(s[1] & 0x3F) << 12) | ((unsigned)(s[2] & 0x3F) << 6) |
                  (unsigned)(s[3] & 0x3F);
    return cp >= 0x10000 && cp <= 0x10FFFF ? cp : 0;
}

int jsonw_java_string(strbuf_t *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;

    if (strbuf_addc(b, '"') != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned c = u[i], cp;
        char short_esc = 0;
        int rc;

        switch (c) {
        case '"':
        case '\\':
            short_esc = (char)c;
            break;
        case '\b':
            short_esc = 'b';
            break;
        case '\f':
            short_esc = 'f';
            break;
        case '\n':
            short_esc = 'n';
            break;
        case '\r':
            short_esc = 'r';
            break;
        case '\t':
            short_esc = 't';
            break;
        default:
            break;
        }
        if (short_esc)
            rc = strbuf_addc(b, '\\') != 0 ? -1 : strbuf_addc(b, short_esc);
        else if (c < 0x20)
            rc = add_java_escape(b, c);
        else if (c >= 0xF0 && (cp = utf8_supplementary(u + i, n - i)) != 0) {
            cp -= 0x10000;
            rc = add_java_escape(b, 0xD800 + (cp >> 10)) != 0 ? -1 : add_java_escape(b, 0xDC00 + (cp & 0x3FF));
            i += 3;
        } else
            rc = strbuf_addc(b, (char)c);
        if (rc != 0)
            return -1;
    }
    return strbuf_addc(b, '"');
}

int jsonw_base64_string(strbuf_t *b, const unsigned char *s, size_t n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    if (strbuf_reserve(b, (n + 2) / 3 * 4 + 2) != 0 || strbuf_addc(b, '"') != 0)
        return -1;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        char q[4] = {abc[v >> 18], abc[(v >> 12) & 63], i + 1 < n ? abc[(v >> 6) & 63] : '=',
                     i + 2 < n ? abc[v & 63] : '='};

        if (strbuf_add(b, q, sizeof(q)) != 0)
            return -1;
    }
    return strbuf_addc(b, '"');
}

int jsonw_value(strbuf_t *b, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        bool first = true;

        if (strbuf_addc(b, '{') != 0)
            return -1;
        for (void *it = json_object_iter((json_t *)v); it != NULL; it = json_object_iter_next((json_t *)v, it)) {
            if ((!first && strbuf_addc(b, ',') != 0) ||
                jsonw_string(b, json_object_iter_key(it), json_object_iter_key_len(it)) != 0 ||
                strbuf_addc(b, ':') != 0 || jsonw_value(b, json_object_iter_value(it)) != 0)
                return -1;
            first = false;
        }
        return strbuf_addc(b, '}');
    }
    case JSON_ARRAY:
        if (strbuf_addc(b, '[') != 0)
            return -1;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i > 0 && strbuf_addc(b, ',') != 0) || jsonw_value(b, json_array_get(v, i)) != 0)
                return -1;
        return strbuf_addc(b, ']');
    case JSON_STRING:
        return jsonw_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        char num[32];
        int n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));

        return n < 0 ? -1 : strbuf_add(b, num, (size_t)n);
    }
    case JSON_REAL: {
        char num[48];
        int n = jsonw_format_real(json_real_value(v), num, sizeof(num));

        return n < 0 ? -1 : strbuf_add(b, num, (size_t)n);
    }
    case JSON_TRUE:
        return strbuf_add(b, "true", 4);
    case JSON_FALSE:
        return strbuf_add(b, "false", 5);
    default:
        return strbuf_add(b, "null", 4);
    }
}
