/* array.h - growing a heap array of fixed-size elements by doubling its capacity. Pure. */
#ifndef OUTBOXD_ARRAY_H
#define OUTBOXD_ARRAY_H

#include <stddef.h>

/* Returns v (owned by the caller; NULL for none yet) with room for at least need elements of
 * elem_size bytes: v itself when it is not NULL and *cap >= need, else v reallocated to *cap
 * doubled (first, or 1, when *cap is 0) until need fits, *cap updated. So the result is NULL
 * only when out of memory or the size overflows (a NULL v gets memory even for need 0): v and
 * *cap are then unchanged and v still valid. Typical use:
 *     row_t *v = array_grow(b->rows, &b->cap, b->n + 1, sizeof(*v), 256);
 *     if (!v) return -1;
 *     b->rows = v; */
void *array_grow(void *v, size_t *cap, size_t need, size_t elem_size, size_t first);

#endif
