/* cmd_admin.c - `inboxd status` and `inboxd requeue`: the inbox table's messages per status,
 * its dead messages with their last_error, and requeueing them, over an ordinary connection. */
#include "cmd_admin.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "cmdout.h"
#include "inbox_catalog.h"
#include "inbox_grants.h"
#include "inbox_http.h"
#include "log.h"
#include "pgconn.h"

#define ERRSZ 1024
#define SQLSZ 1024
#define UTC_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const char *const statuses[] = {"pending", "processing", "failed", "dead", "done"};
#define NSTATUS (sizeof(statuses) / sizeof(*statuses))

/* pgconn_connect, its error logged. */
static PGconn *connect_db(const char *conninfo, const char *appname) {
    err_t e;
    char err[ERRSZ];
    PGconn *c = pgconn_connect(conninfo, appname, &e);
    if (!c)
        log_error("%s", err_line(&e, err, sizeof(err)));
    return c;
}

/* Logs one line: "<what>: <the server's primary message> (SQLSTATE x)"; for a missing privilege
 * (42501) also which grants of those the command needs (needs: INBOX_NEEDS_*) the role lacks,
 * with the GRANT statements (rv: the resolved table, or NULL before it is known). Always
 * INBOX_ADMIN_EXIT_ERROR. */
static int query_error(PGconn *c, const char *what, const PGresult *r, unsigned needs, const inbox_catalog_t *rv) {
    char err[2 * ERRSZ];
    err_t e;
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (rv && rv->table && code && !strcmp(code, "42501")) {
        if (PQtransactionStatus(c) == PQTRANS_INERROR) /* the lookup needs a working session */
            PQclear(PQexec(c, "ROLLBACK"));
        inbox_grants_explain(c, r, what, needs, rv->table, NULL, rv->schema, &e);
    } else {
        pgconn_result_failure(r, c, what, NULL, &e);
    }
    log_error("%s", err_line(&e, err, sizeof(err)));
    return INBOX_ADMIN_EXIT_ERROR;
}

/* Runs sql, a statement without rows: OK, or ERROR with the failure logged (query_error). */
static int command(PGconn *c, const char *sql, const char *what) {
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? INBOX_ADMIN_EXIT_OK : query_error(c, what, r, 0, NULL);
    PQclear(r);
    return rc;
}

/* Prints (out) that the table does not exist, with the fix. */
static void print_missing(FILE *out, const char *table, bool json) {
    char detail[512], fix[512];
    snprintf(detail, sizeof(detail), "inbox table %s does not exist in this database", table);
    snprintf(fix, sizeof(fix),
             "create it with psql -f sql/inbox.sql (edited for another schema), or set inbox.table to the "
             "table inboxd writes");
    cmdout_missing(out, json, "table", table, detail, fix);
}

/* Resolves table: OK (rv filled: free it with inbox_catalog_free), PROBLEM (it does not exist;
 * said on out) or ERROR (logged). */
static int resolve(PGconn *c, const char *table, bool json, FILE *out, inbox_catalog_t *rv) {
    PGresult *failed;
    inbox_catalog_status_t st = inbox_catalog_lookup(c, table, rv, &failed);
    if (st == INBOX_CATALOG_FOUND)
        return INBOX_ADMIN_EXIT_OK;
    if (st == INBOX_CATALOG_MISSING) {
        print_missing(out, table, json);
        return INBOX_ADMIN_EXIT_PROBLEM;
    }
    if (st == INBOX_CATALOG_FAILED) {
        int rc = query_error(c, "cannot look up the inbox table (inbox.table)", failed, 0, NULL);
        PQclear(failed);
        return rc;
    }
    log_error("out of memory");
    return INBOX_ADMIN_EXIT_ERROR;
}

static const char *val(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* The key column (bytea, text format) as text, or "\x<hex>" when it is not text; NULL for a
 * NULL key. New string. */
static char *key_text(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col))
        return NULL;
    size_t len = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &len);
    if (!b)
        return NULL;
    char *s = inbox_http_value(b, len);
    PQfreemem(b);
    return s;
}

/* Control characters (newlines in a reason, say) as spaces: one line per message. */
static void print_flat(FILE *out, const char *s) {
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, out);
}

/* Columns of the dead-message query. */
enum { D_ID, D_TOPIC, D_PARTITION, D_OFFSET, D_KEY, D_ATTEMPTS, D_ERROR, D_RECEIVED, D_DIED };

static void print_status_text(FILE *out, const char *table, const long long *count, const char *const *age,
                              const PGresult *dead) {
    cmdout_line(out, "table", "%s", table);
    for (size_t i = 0; i < NSTATUS; i++) {
        if (count[i] && age[i])
            cmdout_line(out, statuses[i], "%lld (the oldest received %s s ago)", count[i], age[i]);
        else
            cmdout_line(out, statuses[i], "%lld", count[i]);
    }
    cmdout_line(out, "oldest pending", "%s%s", age[0] ? age[0] : "-", age[0] ? " s" : " (none pending)");
    long long ndead = count[3];
    int shown = PQntuples(dead);
    if (ndead == 0) {
        cmdout_line(out, "dead messages", "none");
        return;
    }
    if (shown < ndead)
        cmdout_line(out, "dead messages", "%lld, the oldest %d below (--limit N shows more)", ndead, shown);
    else
        cmdout_line(out, "dead messages", "%lld", ndead);
    for (int i = 0; i < shown; i++) {
        char *key = key_text(dead, i, D_KEY);
        const char *err = val(dead, i, D_ERROR);
        fprintf(out, "  ");
        print_flat(out, PQgetvalue(dead, i, D_ID));
        fprintf(out, " (%s [%s] offset %s, key ", PQgetvalue(dead, i, D_TOPIC), PQgetvalue(dead, i, D_PARTITION),
                PQgetvalue(dead, i, D_OFFSET));
        print_flat(out, key ? key : "(none)");
        fprintf(out, "): %s attempt%s, dead since %s: ", PQgetvalue(dead, i, D_ATTEMPTS),
                strcmp(PQgetvalue(dead, i, D_ATTEMPTS), "1") ? "s" : "",
                val(dead, i, D_DIED) ? val(dead, i, D_DIED) : "?");
        print_flat(out, err ? err : "(no error recorded)");
        fputc('\n', out);
        free(key);
    }
    fprintf(out, "requeue them with: inboxd requeue --id MESSAGE_ID... (or --all)\n");
}

static json_t *status_json(const char *table, const long long *count, const char *const *age, const PGresult *dead,
                           int limit) {
    json_t *o = json_object(), *msgs = json_object(), *ages = json_object(), *list = json_array();
    json_object_set_new(o, "table", cmdout_jstr(table));
    json_object_set_new(o, "exists", json_true());
    for (size_t i = 0; i < NSTATUS; i++) {
        json_object_set_new(msgs, statuses[i], json_integer(count[i]));
        json_object_set_new(ages, statuses[i], age[i] ? json_real(strtod(age[i], NULL)) : json_null());
    }
    json_object_set_new(o, "messages", msgs);
    json_object_set_new(o, "oldest_age_s", ages);
    json_object_set_new(o, "oldest_pending_age_s", age[0] ? json_real(strtod(age[0], NULL)) : json_null());
    for (int i = 0; i < PQntuples(dead); i++) {
        json_t *m = json_object();
        char *key = key_text(dead, i, D_KEY);
        json_object_set_new(m, "message_id", cmdout_jstr(PQgetvalue(dead, i, D_ID)));
        json_object_set_new(m, "topic", cmdout_jstr(PQgetvalue(dead, i, D_TOPIC)));
        json_object_set_new(m, "partition", json_integer(strtoll(PQgetvalue(dead, i, D_PARTITION), NULL, 10)));
        json_object_set_new(m, "offset", json_integer(strtoll(PQgetvalue(dead, i, D_OFFSET), NULL, 10)));
        json_object_set_new(m, "key", cmdout_jstr(key));
        json_object_set_new(m, "attempts", json_integer(strtoll(PQgetvalue(dead, i, D_ATTEMPTS), NULL, 10)));
        json_object_set_new(m, "last_error", cmdout_jstr(val(dead, i, D_ERROR)));
        json_object_set_new(m, "received_at", cmdout_jstr(val(dead, i, D_RECEIVED)));
        json_object_set_new(m, "died_at", cmdout_jstr(val(dead, i, D_DIED)));
        json_array_append_new(list, m);
        free(key);
    }
    json_object_set_new(o, "dead_limit", json_integer(limit));
    json_object_set_new(o, "dead", list);
    return o;
}

int inbox_admin_status(const char *conninfo, const char *table, int dead_limit, bool json, FILE *out) {
    PGconn *c = connect_db(conninfo, "inboxd status");
    if (!c)
        return INBOX_ADMIN_EXIT_ERROR;
    inbox_catalog_t rv = {0};
    PGresult *counts = NULL, *dead = NULL;
    int rc = resolve(c, table, json, out, &rv);
    if (rc != INBOX_ADMIN_EXIT_OK)
        goto done;
    /* One snapshot for the counts and the list. */
    if ((rc = command(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "cannot read the inbox")) !=
        INBOX_ADMIN_EXIT_OK)
        goto done;
    char sql[SQLSZ];
    snprintf(sql, sizeof(sql),
             "SELECT status, count(*), round(extract(epoch FROM now() - min(received_at))::numeric, 1)::text "
             "FROM %s GROUP BY status",
             rv.table);
    counts = PQexec(c, sql);
    if (PQresultStatus(counts) != PGRES_TUPLES_OK) {
        rc = query_error(c, "cannot count the inbox's messages", counts, INBOX_NEEDS_STATUS, &rv);
        goto done;
    }
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", dead_limit);
    const char *vals[1] = {lim};
    snprintf(sql, sizeof(sql),
             "SELECT message_id, topic, partition, \"offset\", key, attempts, last_error, " UTC_TEXT(
                 "received_at") ", " UTC_TEXT("processed_at") " FROM %s WHERE status = 'dead' ORDER BY id LIMIT $1",
             rv.table);
    dead = PQexecParams(c, sql, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(dead) != PGRES_TUPLES_OK) {
        rc = query_error(c, "cannot list the dead messages", dead, INBOX_NEEDS_STATUS, &rv);
        goto done;
    }
    long long count[NSTATUS] = {0};
    const char *age[NSTATUS] = {NULL};
    for (int i = 0; i < PQntuples(counts); i++)
        for (size_t k = 0; k < NSTATUS; k++)
            if (!strcmp(PQgetvalue(counts, i, 0), statuses[k])) {
                count[k] = strtoll(PQgetvalue(counts, i, 1), NULL, 10);
                age[k] = val(counts, i, 2);
            }
    if (json)
        cmdout_print_json(out, status_json(rv.table, count, age, dead, dead_limit));
    else
        print_status_text(out, rv.table, count, age, dead);
done:
    fflush(out);
    PQclear(counts);
    PQclear(dead);
    inbox_catalog_free(&rv);
    PQfinish(c);
    return rc;
}

int inbox_admin_requeue(const char *conninfo, const char *table, const char *const *ids, size_t nids, bool json,
                        FILE *out) {
    PGconn *c = connect_db(conninfo, "inboxd requeue");
    if (!c)
        return INBOX_ADMIN_EXIT_ERROR;
    inbox_catalog_t rv = {0};
    json_t *list = NULL;
    int rc = resolve(c, table, json, out, &rv);
    if (rc != INBOX_ADMIN_EXIT_OK)
        goto done;
    if (!rv.requeue_function) {
        log_error("the function inbox_requeue_dead(text) of sql/inbox.sql for table %s is missing in schema %s: run "
                  "psql -f sql/inbox.sql (edited for that schema and table)",
                  rv.table, rv.schema);
        rc = INBOX_ADMIN_EXIT_PROBLEM;
        goto done;
    }
    char sql[SQLSZ], look[SQLSZ];
    snprintf(sql, sizeof(sql), "SELECT %s.inbox_requeue_dead($1::text)", rv.schema);
    long long total = 0;
    if (nids == 0) {
        const char *vals[1] = {NULL}; /* every dead message */
        PGresult *r = PQexecParams(c, sql, 1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = query_error(c, "cannot requeue the dead messages", r, INBOX_NEEDS_REQUEUE, &rv);
        } else {
            total = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            if (json) {
                json_t *o = json_object();
                json_object_set_new(o, "table", cmdout_jstr(rv.table));
                json_object_set_new(o, "requeued", json_integer(total));
                cmdout_print_json(out, o);
            } else {
                fprintf(out, "requeued %lld dead message%s of %s\n", total, total == 1 ? "" : "s", rv.table);
            }
        }
        PQclear(r);
        goto done;
    }

    /* The ids in one transaction: one NOTIFY, all or nothing on an error. */
    snprintf(look, sizeof(look), "SELECT status FROM %s WHERE message_id = $1", rv.table);
    if ((rc = command(c, "BEGIN", "cannot requeue")) != INBOX_ADMIN_EXIT_OK)
        goto done;
    list = json_array();
    size_t missed = 0;
    for (size_t i = 0; i < nids; i++) {
        const char *vals[1] = {ids[i]};
        PGresult *st = PQexecParams(c, look, 1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(st) != PGRES_TUPLES_OK) {
            rc = query_error(c, "cannot look up a message", st, INBOX_NEEDS_REQUEUE, &rv);
            PQclear(st);
            goto done;
        }
        PGresult *r = PQexecParams(c, sql, 1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = query_error(c, "cannot requeue", r, INBOX_NEEDS_REQUEUE, &rv);
            PQclear(st);
            PQclear(r);
            goto done;
        }
        long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        const char *was = PQntuples(st) ? PQgetvalue(st, 0, 0) : NULL;
        total += n;
        missed += n == 0;
        json_t *m = json_object();
        json_object_set_new(m, "message_id", cmdout_jstr(ids[i]));
        json_object_set_new(m, "requeued", json_boolean(n > 0));
        json_object_set_new(m, "status", cmdout_jstr(was)); /* before: dead, or why it was not requeued */
        json_array_append_new(list, m);
        if (!json) {
            print_flat(out, ids[i]);
            if (n > 0)
                fprintf(out, ": requeued (dead -> pending)\n");
            else if (was)
                fprintf(out, ": not requeued: it is %s, not dead\n", was);
            else
                fprintf(out, ": not requeued: no such message in %s\n", rv.table);
        }
        PQclear(st);
        PQclear(r);
    }
    if ((rc = command(c, "COMMIT", "cannot requeue (COMMIT)")) != INBOX_ADMIN_EXIT_OK)
        goto done;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "table", cmdout_jstr(rv.table));
        json_object_set_new(o, "requeued", json_integer(total));
        json_object_set_new(o, "messages", list);
        list = NULL;
        cmdout_print_json(out, o);
    } else {
        fprintf(out, "requeued %lld of %zu message%s of %s\n", total, nids, nids == 1 ? "" : "s", rv.table);
    }
    if (missed)
        rc = INBOX_ADMIN_EXIT_PROBLEM;
done:
    fflush(out);
    json_decref(list);
    inbox_catalog_free(&rv);
    PQfinish(c);
    return rc;
}
