/* array.c - growing a heap array of fixed-size elements by doubling its capacity. */
#include "array.h"

#include <stdint.h>
#include <stdlib.h>

void *array_grow(void *v, size_t *cap, size_t need, size_t elem_size, size_t first) {
    if (v && need <= *cap)
        return v;
    size_t n = *cap ? *cap : (first ? first : 1);
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return NULL;
        n *= 2;
    }
    if (elem_size && n > SIZE_MAX / elem_size)
        return NULL;
    void *p = realloc(v, n * elem_size);
    if (p)
        *cap = n;
    return p;
}
