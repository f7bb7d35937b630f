/* cleanup.c - deletes confirmed outbox rows in batches by primary key with non-blocking
 * libpq queries, driven by the relay's poll loop. */
#include "cleanup.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pgconn.h"

#define MAX_TABLES 64
#define RETRY_MS 5000

typedef struct entry {
    uint64_t seq;
    size_t table;
    char *id;
} entry_t;

typedef struct table {
    char *sql; /* DELETE FROM "s"."t" WHERE "id" = ANY($1::type[]) */
} table_t;

struct cleanup {
    const char *conninfo;
    PGconn *conn;
    entry_t *ring;
    size_t cap, head, count;
    int batch;
    size_t in_flight; /* entries (from head) the running DELETE covers */
    table_t tables[MAX_TABLES];
    int64_t retry_at_ms, now_ms;
    bool overflow_logged;
    char *array; /* the $1 array literal */
    size_t array_cap;
};

cleanup_t *cleanup_new(const char *conninfo, size_t max_pending, int batch) {
    cleanup_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cap = max_pending ? max_pending : 1;
    c->ring = calloc(c->cap, sizeof(*c->ring));
    if (!c->ring) {
        free(c);
        return NULL;
    }
    c->conninfo = conninfo;
    c->batch = batch > 0 ? batch : 500;
    return c;
}

void cleanup_destroy(cleanup_t *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->count; i++)
        free(c->ring[(c->head + i) % c->cap].id);
    for (size_t i = 0; i < MAX_TABLES; i++)
        free(c->tables[i].sql);
    if (c->conn)
        PQfinish(c->conn);
    free(c->ring);
    free(c->array);
    free(c);
}

int cleanup_set_table(cleanup_t *c, size_t i, const char *schema, const char *table, const char *id_column,
                      const char *id_type) {
    if (i >= MAX_TABLES)
        return -1;
    /* Quote identifiers by hand: no connection may exist yet. */
    size_t need = 64 + 2 * (strlen(schema) + strlen(table) + strlen(id_column)) + strlen(id_type);
    char *sql = malloc(need), *p = sql;
    if (!sql)
        return -1;
    const char *parts[] = {schema, table, id_column};
    p += sprintf(p, "DELETE FROM ");
    for (int k = 0; k < 3; k++) {
        if (k == 2)
            p += sprintf(p, " WHERE ");
        *p++ = '"';
        for (const char *s = parts[k]; *s; s++) {
            if (*s == '"')
                *p++ = '"';
            *p++ = *s;
        }
        *p++ = '"';
        if (k == 0)
            *p++ = '.';
    }
    sprintf(p, " = ANY($1::%s[])", id_type && *id_type ? id_type : "text");
    free(c->tables[i].sql);
    c->tables[i].sql = sql;
    return 0;
}

void cleanup_push(cleanup_t *c, size_t table, uint64_t seq, const char *id) {
    if (!id || table >= MAX_TABLES)
        return;
    if (c->count == c->cap) {
        if (!c->overflow_logged)
            log_warn("outbox.cleanup: %zu rows are waiting to be deleted; newer published rows are not queued "
                     "and stay in the table (delete them by hand, or let the cleanup catch up)",
                     c->count);
        c->overflow_logged = true;
        return;
    }
    char *dup = strdup(id);
    if (!dup)
        return;
    c->ring[(c->head + c->count) % c->cap] = (entry_t){seq, table, dup};
    c->count++;
}

/* Appends s to the array literal as a double-quoted element. */
static int append_elem(cleanup_t *c, size_t *len, const char *s) {
    size_t need = *len + 2 * strlen(s) + 4;
    if (need > c->array_cap) {
        size_t ncap = need * 2;
        char *n = realloc(c->array, ncap);
        if (!n)
            return -1;
        c->array = n;
        c->array_cap = ncap;
    }
    char *p = c->array + *len;
    if (*len > 1) /* after "{" */
        *p++ = ',';
    *p++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p++ = '"';
    *len = (size_t)(p - c->array);
    return 0;
}

static void drop_conn(cleanup_t *c, int64_t now_ms, const char *why) {
    log_warn("outbox.cleanup: %s; retrying in %d s", why, RETRY_MS / 1000);
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
    c->in_flight = 0;
    c->retry_at_ms = now_ms + RETRY_MS;
}

void cleanup_step(cleanup_t *c, uint64_t confirmed_seq, int64_t now_ms) {
    c->now_ms = now_ms;
    if (c->in_flight || c->count == 0 || now_ms < c->retry_at_ms)
        return;
    entry_t *first = &c->ring[c->head];
    if (first->seq > confirmed_seq)
        return;
    if (!c->tables[first->table].sql) {
        c->retry_at_ms = now_ms + RETRY_MS;
        return;
    }
    if (!c->conn) {
        c->conn = pgconn_open(c->conninfo, "outboxd-cleanup", false);
        if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
            char why[512];
            snprintf(why, sizeof(why), "cannot connect: %s", c->conn ? PQerrorMessage(c->conn) : "out of memory");
            why[strcspn(why, "\n")] = '\0';
            drop_conn(c, now_ms, why);
            return;
        }
        PQsetnonblocking(c->conn, 1);
    }
    /* One DELETE for the confirmed ids of the oldest entry's table, up to batch. */
    size_t len = 0, n = 0;
    if (c->array_cap < 64) {
        char *a = realloc(c->array, 64);
        if (!a)
            return;
        c->array = a;
        c->array_cap = 64;
    }
    c->array[len++] = '{';
    for (; n < c->count && (int)n < c->batch; n++) {
        entry_t *e = &c->ring[(c->head + n) % c->cap];
        if (e->seq > confirmed_seq || e->table != first->table)
            break;
        if (append_elem(c, &len, e->id) != 0)
            break;
    }
    c->array[len++] = '}';
    c->array[len] = '\0';
    const char *params[1] = {c->array};
    if (!PQsendQueryParams(c->conn, c->tables[first->table].sql, 1, NULL, params, NULL, NULL, 0)) {
        char why[512];
        snprintf(why, sizeof(why), "cannot send DELETE: %s", PQerrorMessage(c->conn));
        why[strcspn(why, "\n")] = '\0';
        drop_conn(c, now_ms, why);
        return;
    }
    PQflush(c->conn);
    c->in_flight = n;
}

int cleanup_fd(const cleanup_t *c) { return c->in_flight && c->conn ? PQsocket(c->conn) : -1; }

void cleanup_on_readable(cleanup_t *c) {
    if (!c->in_flight || !c->conn)
        return;
    if (!PQconsumeInput(c->conn)) {
        drop_conn(c, c->now_ms, "lost the connection");
        return;
    }
    PQflush(c->conn);
    if (PQisBusy(c->conn))
        return;
    PGresult *res;
    bool ok = true;
    char why[512] = "";
    while ((res = PQgetResult(c->conn))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ok = false;
            snprintf(why, sizeof(why), "DELETE failed: %s", PQresultErrorMessage(res));
            why[strcspn(why, "\n")] = '\0';
        }
        PQclear(res);
    }
    if (!ok) { /* keep the ids and try again later (e.g. a permission to grant) */
        drop_conn(c, c->now_ms, why);
        return;
    }
    for (size_t i = 0; i < c->in_flight; i++) {
        free(c->ring[c->head].id);
        c->head = (c->head + 1) % c->cap;
        c->count--;
    }
    c->in_flight = 0;
    c->overflow_logged = false;
}
