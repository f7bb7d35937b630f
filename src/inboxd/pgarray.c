/* pgarray.c - one-dimensional arrays in PostgreSQL's binary format (array_recv). */
#include "pgarray.h"

#include <stdlib.h>
#include <string.h>

#define PGARRAY_HEADER 20 /* ndim, flags, oid, dim size, lower bound */

static void put32(char *p, uint32_t v) {
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static bool reserve(pgarray_t *a, size_t more) {
    if (a->oom)
        return false;
    if (a->len + more <= a->cap)
        return true;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + more)
        cap *= 2;
    char *d = realloc(a->data, cap);
    if (!d) {
        a->oom = true;
        return false;
    }
    a->data = d;
    a->cap = cap;
    return true;
}

void pgarray_init(pgarray_t *a, uint32_t oid) {
    *a = (pgarray_t){.oid = oid};
    if (reserve(a, PGARRAY_HEADER))
        a->len = PGARRAY_HEADER;
}

void pgarray_free(pgarray_t *a) {
    free(a->data);
    a->data = NULL;
    a->len = a->cap = 0;
}

void pgarray_add(pgarray_t *a, const void *data, size_t len) {
    bool jsonb = a->oid == PGARRAY_OID_JSONB && data;
    size_t size = data ? len + (jsonb ? 1 : 0) : 0;
    if (size > INT32_MAX - 1) {
        a->oom = true;
        return;
    }
    if (!reserve(a, 4 + size))
        return;
    put32(a->data + a->len, data ? (uint32_t)size : 0xFFFFFFFFu);
    a->len += 4;
    if (jsonb)
        a->data[a->len++] = 1;
    if (data && len) {
        memcpy(a->data + a->len, data, len);
        a->len += len;
    }
    if (!data)
        a->has_null = true;
    a->n++;
}

void pgarray_add_int4(pgarray_t *a, int32_t v) {
    char b[4];
    put32(b, (uint32_t)v);
    pgarray_add(a, b, 4);
}

void pgarray_add_int8(pgarray_t *a, int64_t v) {
    char b[8];
    put32(b, (uint32_t)((uint64_t)v >> 32));
    put32(b + 4, (uint32_t)v);
    pgarray_add(a, b, 8);
}

int pgarray_finish(pgarray_t *a) {
    if (a->oom || !a->data)
        return -1;
    if (a->n == 0) {
        put32(a->data, 0);
        put32(a->data + 4, 0);
        put32(a->data + 8, a->oid);
        a->len = 12;
        return 0;
    }
    put32(a->data, 1);
    put32(a->data + 4, a->has_null ? 1 : 0);
    put32(a->data + 8, a->oid);
    put32(a->data + 12, (uint32_t)a->n);
    put32(a->data + 16, 1);
    return 0;
}
