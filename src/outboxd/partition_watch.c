/* partition_watch.c - the catalog poll behind the partition fence: one statement reads its own
 * snapshot and the leaf partitions of the watched tables (see partition_watch.h). */
#include "partition_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgpoll.h"
#include "strbuf.h"

typedef struct leaf {
    char *schema, *name;
} leaf_t;

struct partition_watch {
    pgpoll_t *poll;
    char *sql;
    leaf_t *known; /* sorted by schema, name */
    size_t nknown;
    uint64_t seen; /* polls returned by partition_watch_latest */
};

static int leaf_cmp(const void *a, const void *b) {
    const leaf_t *x = a, *y = b;
    int c = strcmp(x->schema, y->schema);
    return c ? c : strcmp(x->name, y->name);
}

/* 'name' quoted as an identifier inside an SQL literal: '"sch""ema"."t''able"'. */
static int add_ident_literal(strbuf_t *b, const char *schema, const char *table) {
    if (strbuf_addc(b, '\'') != 0)
        return -1;
    for (int part = 0; part < 2; part++) {
        const char *s = part ? table : schema;
        if ((part && strbuf_addc(b, '.') != 0) || strbuf_addc(b, '"') != 0)
            return -1;
        for (; *s; s++)
            if ((*s == '"' && strbuf_addc(b, '"') != 0) || (*s == '\'' && strbuf_addc(b, '\'') != 0) ||
                strbuf_addc(b, *s) != 0)
                return -1;
        if (strbuf_addc(b, '"') != 0)
            return -1;
    }
    return strbuf_addc(b, '\'');
}

char *partition_watch_sql(size_t n, const char *const *schemas, const char *const *tables) {
    /* The snapshot is the statement's; the partitions are read through catalog snapshots that
     * are never older, so they show at least what the snapshot's finished transactions did. */
    static const char head[] = "SELECT s.snap, l.nspname, l.relname FROM (SELECT pg_current_snapshot()::text "
                               "AS snap) s LEFT JOIN (SELECT n.nspname, c.relname FROM (VALUES ";
    static const char tail[] = ") r(oid) CROSS JOIN LATERAL pg_partition_tree(r.oid) t JOIN pg_class c ON c.oid = "
                               "t.relid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.isleaf AND t.level > 0) "
                               "l ON true";
    strbuf_t b = {0};
    int rc = strbuf_add(&b, head, sizeof(head) - 1);
    for (size_t k = 0; !rc && k < n; k++) {
        const char *item = k ? ", (to_regclass(" : "(to_regclass(";
        rc = strbuf_add(&b, item, strlen(item)) || add_ident_literal(&b, schemas[k], tables[k]) ||
             strbuf_add(&b, "))", 2);
    }
    if (rc || strbuf_add(&b, tail, sizeof(tail) - 1) != 0) {
        strbuf_free(&b);
        return NULL;
    }
    return b.p;
}

/* Runs on the poller thread. */
static int watch_poll(PGconn *conn, void *snapshot, void *arg, char *errstr, size_t errstr_size) {
    partition_watch_t *w = arg;
    partition_snapshot_t *s = snapshot;
    PGresult *res = PQexec(conn, w->sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
        snprintf(errstr, errstr_size, "cannot read the partitions of the outbox tables: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    if (partition_fence_parse_snapshot(PQgetvalue(res, 0, 0), s) != 0) {
        snprintf(errstr, errstr_size, "unexpected snapshot \"%s\"", PQgetvalue(res, 0, 0));
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        leaf_t key = {PQgetvalue(res, i, 1), PQgetvalue(res, i, 2)};
        s->npartitions++;
        if (!bsearch(&key, w->known, w->nknown, sizeof(leaf_t), leaf_cmp))
            s->unknown++;
    }
    PQclear(res);
    return 0;
}

partition_watch_t *partition_watch_start(const char *conninfo, size_t n, const char *const *schemas,
                                         const char *const *tables, size_t nknown, const char *const *known,
                                         int interval_ms) {
    partition_watch_t *w = calloc(1, sizeof(*w));
    if (!w || !(w->known = calloc(nknown + 1, sizeof(leaf_t))))
        goto fail;
    for (; w->nknown < nknown; w->nknown++) {
        leaf_t *l = &w->known[w->nknown];
        l->schema = strdup(known[2 * w->nknown]);
        l->name = strdup(known[2 * w->nknown + 1]);
        if (!l->schema || !l->name) {
            w->nknown++; /* freed with the others */
            goto fail;
        }
    }
    qsort(w->known, w->nknown, sizeof(leaf_t), leaf_cmp);
    if (!(w->sql = partition_watch_sql(n, schemas, tables)) ||
        !(w->poll =
              pgpoll_start(conninfo, "outboxd partitions", interval_ms, sizeof(partition_snapshot_t), watch_poll, w)))
        goto fail;
    return w;
fail:
    partition_watch_stop(w);
    return NULL;
}

void partition_watch_stop(partition_watch_t *w) {
    if (!w)
        return;
    pgpoll_stop(w->poll);
    for (size_t i = 0; i < w->nknown; i++) {
        free(w->known[i].schema);
        free(w->known[i].name);
    }
    free(w->known);
    free(w->sql);
    free(w);
}

bool partition_watch_latest(partition_watch_t *w, partition_snapshot_t *out, char *errstr, size_t errstr_size) {
    uint64_t n = pgpoll_get(w->poll, out, errstr, errstr_size);
    if (n == 0 || n == w->seen)
        return false;
    w->seen = n;
    return true;
}
