/* strbuf.h - a growable byte buffer that always keeps a NUL after its contents. Pure. */
#ifndef OUTBOXD_STRBUF_H
#define OUTBOXD_STRBUF_H

#include <stddef.h>

/* Zero-initialise ({0}) before use. p[0..len) is the contents and, after strbuf_add or
 * strbuf_addc, p[len] is '\0'; set len = 0 to reuse the memory. Writing straight into room
 * made by strbuf_reserve (at p + len, then advancing len) is allowed: the NUL after the
 * contents is then the writer's business. The buffer owns p: release it with strbuf_free.
 * Pointers into p stay valid until the buffer grows. */
typedef struct strbuf {
    char *p;
    size_t len;
    size_t cap;
} strbuf_t;

/* Makes room for more bytes after len plus the NUL (p may move). Returns 0, or -1 when out
 * of memory or when len + more would overflow. */
int strbuf_reserve(strbuf_t *b, size_t more);

/* Appends s[0..n) (which may hold NUL bytes) and keeps the NUL after the end. Returns 0 or -1
 * (out of memory). */
int strbuf_add(strbuf_t *b, const char *s, size_t n);
int strbuf_addc(strbuf_t *b, char c);

/* Frees the memory and zeroes *b. Accepts NULL. */
void strbuf_free(strbuf_t *b);

#endif
