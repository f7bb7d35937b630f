/* positions.c - the assigned partitions and their positions: which consumed message is taken;
 * the SQL that sets a stored position. */
#include "positions.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

struct positions {
    position_t *v;
    size_t n, cap;
};

positions_t *positions_new(void) { return calloc(1, sizeof(positions_t)); }

void positions_destroy(positions_t *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].topic);
    free(p->v);
    free(p);
}

position_t *positions_find(positions_t *p, const char *topic, int32_t partition) {
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].partition == partition && !strcmp(p->v[i].topic, topic))
            return &p->v[i];
    return NULL;
}

position_t *positions_add(positions_t *p, const char *topic, int32_t partition, position_state_t state, int64_t next) {
    position_t *e = positions_find(p, topic, partition);
    if (!e) {
        position_t *v = array_grow(p->v, &p->cap, p->n + 1, sizeof(*v), 16);
        if (!v)
            return NULL;
        p->v = v;
        char *t = strdup(topic);
        if (!t)
            return NULL;
        e = &p->v[p->n++];
        e->topic = t;
        e->partition = partition;
    }
    e->state = state;
    e->next = next;
    e->recorded = next;
    e->committed = -1;
    e->origin = next;
    e->need_seek = false;
    return e;
}

void positions_remove(positions_t *p, const char *topic, int32_t partition) {
    position_t *e = positions_find(p, topic, partition);
    if (!e)
        return;
    free(e->topic);
    size_t i = (size_t)(e - p->v);
    memmove(&p->v[i], &p->v[i + 1], (p->n - i - 1) * sizeof(*e));
    p->n--;
}

size_t positions_count(const positions_t *p) { return p->n; }
position_t *positions_at(positions_t *p, size_t i) { return i < p->n ? &p->v[i] : NULL; }

position_verdict_t positions_offer(positions_t *p, const char *topic, int32_t partition, int64_t offset, bool hold) {
    position_t *e = positions_find(p, topic, partition);
    if (!e)
        return POSITION_DROP_UNASSIGNED;
    if (e->next >= 0 && offset < e->next) {
        if (e->state != POSITION_READY || e->need_seek)
            return POSITION_DROP_SEEN; /* fetched from before the seek to the stored position */
        if (hold) {
            e->need_seek = true; /* after the seek to next, the check runs again */
            return POSITION_DROP_HELD;
        }
        return POSITION_REGRESSED;
    }
    if (hold || e->state != POSITION_READY || e->need_seek) {
        /* Not taken: consumption has to come back here. */
        if (e->next < 0)
            e->next = offset;
        e->need_seek = true;
        return POSITION_DROP_HELD;
    }
    if (e->origin < 0)
        e->origin = offset;
    e->next = offset + 1;
    return POSITION_TAKE;
}

bool positions_resync(position_t *p, int64_t stored, int64_t *rewound) {
    *rewound = 0;
    if (stored < 0)
        stored = -1;
    if (stored == p->recorded)
        return false;
    int64_t target = stored >= 0 ? stored : p->origin;
    if (p->recorded >= 0 && target >= 0 && target < p->recorded)
        *rewound = p->recorded - target;
    p->next = target;
    p->recorded = stored;
    p->committed = -1;
    p->need_seek = target >= 0;
    return true;
}

/* ---- operator hints ------------------------------------------------------------------------- */

/* Appends s to buf (holding a string of *n bytes) as an SQL string literal. */
static void append_literal(char *buf, size_t size, size_t *n, const char *s) {
    if (*n + 1 < size)
        buf[(*n)++] = '\'';
    for (; *s && *n + 2 < size; s++) {
        if (*s == '\'')
            buf[(*n)++] = '\'';
        buf[(*n)++] = *s;
    }
    if (*n + 1 < size)
        buf[(*n)++] = '\'';
    buf[*n < size ? *n : size - 1] = '\0';
}

static void append_text(char *buf, size_t size, size_t *n, const char *s) {
    int k = snprintf(buf + *n, size - *n, "%s", s);
    *n = k < 0 || (size_t)k >= size - *n ? size - 1 : *n + (size_t)k;
}

void positions_set_sql(char *buf, size_t size, const char *table, const char *group, const char *topic,
                       int32_t partition, int64_t next_offset) {
    if (size == 0)
        return;
    buf[0] = '\0';
    size_t n = 0;
    char tmp[96];
    append_text(buf, size, &n, "UPDATE ");
    append_text(buf, size, &n, table);
    snprintf(tmp, sizeof(tmp), " SET next_offset = %" PRId64 " WHERE consumer_group = ", next_offset);
    append_text(buf, size, &n, tmp);
    append_literal(buf, size, &n, group);
    append_text(buf, size, &n, " AND topic = ");
    append_literal(buf, size, &n, topic);
    snprintf(tmp, sizeof(tmp), " AND partition = %" PRId32 ";", partition);
    append_text(buf, size, &n, tmp);
}
