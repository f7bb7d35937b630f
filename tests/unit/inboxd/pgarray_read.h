/* pgarray_read.h - for the unit tests: reads back what pgarray.c wrote (the PostgreSQL binary
 * array format), checking its header with cmocka assertions. Include after cmocka.h. */
#ifndef OUTBOXD_TEST_PGARRAY_READ_H
#define OUTBOXD_TEST_PGARRAY_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "pgarray.h"

static uint32_t get32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Decodes a one-dimensional binary array: checks the header, returns element pointers and
 * lengths (-1 = NULL) in out/lens (up to max), and the count. */
static int decode_array(const pgarray_t *a, uint32_t oid, const char **out, int32_t *lens, int max) {
    assert_true(a->len >= 12);
    uint32_t ndim = get32(a->data);
    assert_int_equal(get32(a->data + 8), oid);
    if (ndim == 0) {
        assert_int_equal(a->len, 12);
        return 0;
    }
    assert_int_equal(ndim, 1);
    int n = (int)get32(a->data + 12);
    assert_int_equal(get32(a->data + 16), 1); /* lower bound */
    bool has_null = false;
    size_t pos = 20;
    for (int i = 0; i < n; i++) {
        int32_t len = (int32_t)get32(a->data + pos);
        pos += 4;
        if (i < max) {
            out[i] = len < 0 ? NULL : a->data + pos;
            lens[i] = len;
        }
        if (len < 0)
            has_null = true;
        else
            pos += (size_t)len;
    }
    assert_int_equal(pos, a->len);
    assert_int_equal(get32(a->data + 4), has_null ? 1 : 0);
    return n;
}

#endif
