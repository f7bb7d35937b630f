/* pgarray.h - one-dimensional arrays in PostgreSQL's binary format, the parameters of the
 * inbox writer's statements (one array per column: a whole batch in one INSERT). Pure. */
#ifndef OUTBOXD_PGARRAY_H
#define OUTBOXD_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type oids of the array elements used by the writer (pg_type.oid). */
#define PGARRAY_OID_BYTEA 17u
#define PGARRAY_OID_INT8 20u
#define PGARRAY_OID_INT4 23u
#define PGARRAY_OID_TEXT 25u
#define PGARRAY_OID_JSONB 3802u

/* A one-dimensional array in PostgreSQL's binary send format (array_recv): int32 ndim,
 * int32 has-nulls flag, uint32 element oid, then per dimension int32 size and int32 lower
 * bound (1), then per element int32 length (-1: NULL) and the element's binary form, all
 * integers in network byte order. text: the bytes; bytea: the bytes; int4/int8: big-endian;
 * jsonb: version byte 1 then the JSON text. An empty array has ndim 0 and no dimensions. */
typedef struct pgarray {
    char *data; /* owned; valid after pgarray_finish */
    size_t len, cap;
    uint32_t oid;
    int32_t n;
    bool has_null;
    bool oom;
} pgarray_t;

void pgarray_init(pgarray_t *a, uint32_t oid);
void pgarray_free(pgarray_t *a); /* frees data; the struct may be re-initialised */
/* Appends an element; data NULL is SQL NULL. For jsonb pass the JSON text: the version
 * byte is added. */
void pgarray_add(pgarray_t *a, const void *data, size_t len);
void pgarray_add_int4(pgarray_t *a, int32_t v);
void pgarray_add_int8(pgarray_t *a, int64_t v);
/* Writes the header. Returns 0, or -1 when an allocation failed along the way. */
int pgarray_finish(pgarray_t *a);

#endif
