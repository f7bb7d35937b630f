/* topic_needs.c - outbox.topic resolved against the values the rows in the outbox tables hold
 * (see topic_needs.h). */
#include "topic_needs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconn.h"
#include "strbuf.h"
#include "topic_template.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds topic unless it is there; -1 when out of memory. */
static int add_topic(topic_needs_t *t, const char *topic) {
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->topics[i], topic))
            return 0;
    char **grown = realloc(t->topics, (t->n + 2) * sizeof(char *));
    if (!grown)
        return -1;
    t->topics = grown;
    if (!(t->topics[t->n] = strdup(topic)))
        return -1;
    t->topics[++t->n] = NULL;
    return 0;
}

void topic_needs_free(topic_needs_t *t) {
    for (size_t i = 0; t && i < t->n; i++)
        free(t->topics[i]);
    if (t) {
        free(t->topics);
        *t = (topic_needs_t){0};
    }
}

/* Runs sql (one statement) in a read-only transaction with a statement_timeout; the result
 * (PQclear it) or NULL with *e. */
static PGresult *bounded_query(PGconn *conn, const char *sql, const char *what, err_t *e) {
    PGresult *r = PQexec(conn, "BEGIN READ ONLY; SET LOCAL statement_timeout = '10s'");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pgconn_result_failure(r, conn, what, NULL, e);
        PQclear(r);
        PQclear(PQexec(conn, "ROLLBACK"));
        return NULL;
    }
    PQclear(r);
    r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pgconn_result_failure(r, conn, what, NULL, e);
        PQclear(r);
        r = NULL;
    }
    PQclear(PQexec(conn, r ? "COMMIT" : "ROLLBACK"));
    return r;
}

/* SELECT DISTINCT of the columns the template uses, for table schema.table. */
static int build_sql(PGconn *conn, const router_options_t *ro, bool use_at, bool use_et, const char *schema,
                     const char *table, char *sql, size_t size) {
    const char *at = ro->columns.aggregate_type ? ro->columns.aggregate_type : "aggregate_type";
    const char *et = ro->columns.event_type ? ro->columns.event_type : "event_type";
    char *qs = PQescapeIdentifier(conn, schema, strlen(schema)), *qt = PQescapeIdentifier(conn, table, strlen(table));
    char *qa = PQescapeIdentifier(conn, at, strlen(at)), *qe = PQescapeIdentifier(conn, et, strlen(et));
    int rc = -1;
    if (qs && qt && qa && qe) {
        snprintf(sql, size, "SELECT DISTINCT %s::text, %s::text FROM %s.%s LIMIT %d", use_at ? qa : "NULL",
                 use_et ? qe : "NULL", qs, qt, TOPIC_NEEDS_MAX + 1);
        rc = 0;
    }
    PQfreemem(qs);
    PQfreemem(qt);
    PQfreemem(qa);
    PQfreemem(qe);
    return rc;
}

/* Renders the topic of each row of r (aggregate_type, event_type) into out. */
static int render_rows(const topic_template_t *tpl, const PGresult *r, topic_needs_t *out) {
    strbuf_t topic = {0};
    char err[256];
    int rows = PQntuples(r), rc = 0;
    if (rows > TOPIC_NEEDS_MAX) {
        out->truncated = true;
        rows = TOPIC_NEEDS_MAX;
    }
    for (int i = 0; i < rows && rc == 0; i++) {
        const char *at = PQgetisnull(r, i, 0) ? NULL : PQgetvalue(r, i, 0);
        const char *et = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
        topic_fields_t f = {.aggregate_type = at, .event_type = et, .event_type_len = et ? strlen(et) : 0};
        if (topic_template_render(tpl, &f, &topic, err, sizeof(err)) != 0)
            out->invalid++;
        else
            rc = add_topic(out, topic.p);
    }
    strbuf_free(&topic);
    return rc;
}

topic_needs_status_t topic_needs_resolve(PGconn *conn, const router_options_t *ro, const router_t *router,
                                         topic_needs_t *out, err_t *e) {
    char err[256];
    *out = (topic_needs_t){0};
    topic_template_t *tpl = topic_template_new(ro->topic_template, err, sizeof(err));
    if (!tpl) {
        err_set(e, ERR_PERMANENT, "", NULL, "%s", err);
        return TOPIC_NEEDS_FAILED;
    }
    topic_needs_status_t st = TOPIC_NEEDS_RESOLVED;
    if (topic_template_uses(tpl, TOPIC_FIELD_AGGREGATE_ID)) {
        st = TOPIC_NEEDS_PER_AGGREGATE;
        goto out;
    }
    bool use_at = topic_template_uses(tpl, TOPIC_FIELD_AGGREGATE_TYPE);
    bool use_et = topic_template_uses(tpl, TOPIC_FIELD_EVENT_TYPE);
    for (size_t i = 0; i < router_table_count(router) && st == TOPIC_NEEDS_RESOLVED; i++) {
        const char *schema, *table;
        char sql[1024], what[600];
        router_table_get(router, i, &schema, &table);
        snprintf(what, sizeof(what), "cannot read the values of the topic template's columns in %s.%s", schema, table);
        if (build_sql(conn, ro, use_at, use_et, schema, table, sql, sizeof(sql)) != 0) {
            err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
            st = TOPIC_NEEDS_FAILED;
            break;
        }
        PGresult *r = bounded_query(conn, sql, what, e);
        if (!r || render_rows(tpl, r, out) != 0) {
            if (r)
                err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
            st = TOPIC_NEEDS_FAILED;
        }
        PQclear(r);
    }
    if (st == TOPIC_NEEDS_RESOLVED && out->n > 1)
        qsort(out->topics, out->n, sizeof(char *), cmp_str);
out:
    if (st != TOPIC_NEEDS_RESOLVED)
        topic_needs_free(out);
    topic_template_destroy(tpl);
    return st;
}
