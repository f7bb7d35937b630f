/* strbuf.c - a growable byte buffer that always keeps a NUL after its contents. */
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int strbuf_reserve(strbuf_t *b, size_t more) {
    size_t need, cap;
    char *p;

    if (more > SIZE_MAX - b->len - 1)
        return -1;
    need = b->len + more + 1; /* room for a NUL */
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int strbuf_add(strbuf_t *b, const char *s, size_t n) {
    if (strbuf_reserve(b, n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int strbuf_addc(strbuf_t *b, char c) { return strbuf_add(b, &c, 1); }

void strbuf_free(strbuf_t *b) {
    if (b == NULL)
        return;
    free(b->p);
    *b = (strbuf_t){0};
}
