/* jsonw.h - writes JSON text: escaped strings, shortest round-trip numbers and compact JSON
 * of a jansson value, appended to a strbuf. Pure (jansson only). */
#ifndef OUTBOXD_JSONW_H
#define OUTBOXD_JSONW_H

#include <stddef.h>

#include <jansson.h>

#include "strbuf.h"

/* Shortest text that reads back as the same double, in PostgreSQL's float8 style: plain
 * decimals for exponents -4..14, else "1e+300"/"1e-07" (0.1 -> "0.1", where jansson's own
 * dumper prints 0.10000000000000001). v must be finite (jansson never holds NaN or an
 * infinity). Writes a NUL-terminated string into buf and returns its length, or -1 when it
 * does not fit. Assumes the "C" LC_NUMERIC locale. */
int jsonw_format_real(double v, char *buf, size_t size);

/* Appends s[0..n) as a JSON string: quotes, \" \\ \b \f \n \r \t, \u00XX for the other
 * control characters, every other byte (UTF-8 included) as is. Returns 0 or -1 (out of
 * memory). */
int jsonw_string(strbuf_t *b, const char *s, size_t n);

/* Appends the UTF-8 text s[0..n) as a JSON string exactly as Jackson writes a Java string
 * (what Kafka Connect's JsonConverter sends for a string): quotes, \" \\ \b \f \n \r \t,
 * \u00XX (upper-case hex) for the other control characters, each code point beyond U+FFFF
 * as its UTF-16 surrogate pair (U+1F600 -> \uD83D\uDE00), every other byte as is
 * (U+00E9, U+2028, '/' and DEL included). Bytes that do not start a well-formed 4-byte UTF-8
 * sequence are copied as they are. Returns 0 or -1 (out of memory). */
int jsonw_java_string(strbuf_t *b, const char *s, size_t n);

/* Appends the bytes s[0..n) as a JSON string of their base64 (standard alphabet, '='
 * padding, no line breaks): how Jackson writes binary, so how JsonConverter sends a BYTES
 * value. Returns 0 or -1 (out of memory). */
int jsonw_base64_string(strbuf_t *b, const unsigned char *s, size_t n);

/*
 * Appends v (borrowed) as compact JSON: no spaces, object members in the order parsed,
 * strings as jsonw_string writes them, integers in full, reals as jsonw_format_real writes
 * them. This is NOT PostgreSQL's jsonb text ('{"a": 1, "b": [1, 2]}', keys sorted by
 * length): {"b":1,"a":2} stays {"b":1,"a":2}. Recursion depth is bounded by jansson's
 * parser (2048 levels). Returns 0 or -1 (out of memory).
 */
int jsonw_value(strbuf_t *b, const json_t *v);

#endif
