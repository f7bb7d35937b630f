/* inbox_deliver.c - inboxd's HTTP push: one delivery thread claims messages with
 * inbox_claim(), POSTs them with curl multi and settles them with inbox_complete() or
 * inbox_fail(); it wakes on NOTIFY inbox, on finished requests and on a poll timer. */
#include "inbox_deliver.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "inbox_catalog.h"
#include "inbox_http.h"
#include "inbox_pgconn.h"
#include "log.h"
#include "pgconn.h"
#include "strlist.h"

#define ERRSZ 1024
#define BODY_KEEP 512        /* response bytes kept for last_error */
#define SNIPPET_MAX 200      /* of which last_error shows at most this many */
#define LEASE_EXTRA_MS 10000 /* lease = deliver.timeout.ms + this: time to settle after the response */
#define BACKOFF_MIN_MS 500
#define PROGRESS_INTERVAL_MS 10000
#define TROUBLE_LOG_INTERVAL_MS 30000 /* while PostgreSQL keeps failing: a warning this often */

static _Atomic uint64_t st_attempts, st_successes, st_retries, st_dead, st_in_flight;

void inbox_deliver_stats_get(inbox_deliver_stats_t *out) {
    out->attempts = atomic_load(&st_attempts);
    out->successes = atomic_load(&st_successes);
    out->retries = atomic_load(&st_retries);
    out->dead = atomic_load(&st_dead);
    out->in_flight = atomic_load(&st_in_flight);
}

/* One request slot: everything a request in flight needs, owned by the delivery thread. */
typedef struct slot {
    CURL *easy;
    bool busy;
    char *mid;   /* message_id */
    int attempt; /* 1-based */
    struct curl_slist *hdrs;
    unsigned char *body; /* PQunescapeBytea (PQfreemem); NULL: tombstone */
    size_t blen;
    char resp[BODY_KEEP];
    size_t rlen, rtotal;
    char errbuf[CURL_ERROR_SIZE];
} slot_t;

struct inbox_deliver {
    /* copies of the options */
    inbox_deliver_options_t o;
    char *conninfo, *table_cfg, *url, *prefix, *ctype, *tls_ca, *tls_cert, *tls_key;
    char **static_lines;
    size_t nstatic;
    char **static_names; /* their names, for skipping Kafka headers of the same name */
    bool static_ctype;

    pthread_t thread;
    bool started;
    atomic_int stop; /* 0 run, 1 drain, 2 abort */
    atomic_bool finished;
    bool failed; /* written before finished is set; the delivery thread ends */
    char failmsg[ERRSZ];

    /* delivery thread only */
    CURLM *multi;
    slot_t *slots;
    int in_flight;
    PGconn *pg;
    char *table;  /* resolved, quoted */
    char *schema; /* quoted */
    int64_t reconnect_at_ms;
    int backoff_ms;
    int64_t trouble_since_ms; /* PostgreSQL failing since (0: it works) */
    int64_t trouble_logged_ms;
    unsigned trouble_count;
    char err_kind[8];    /* of the latest failure: its SQLSTATE, or "conn" (no connection) */
    char logged_kind[8]; /* of the latest one logged as a warning */
    bool want_claim;
    int64_t next_poll_ms;
    int64_t last_progress_ms;
    uint64_t last_ok, last_retry, last_dead;
};

/* ---- PostgreSQL --------------------------------------------------------------------------- */

enum { C_OK = 0, C_RETRY = 1, C_FATAL = 2 };

static void fail_thread(inbox_deliver_t *d, const char *msg) {
    snprintf(d->failmsg, sizeof(d->failmsg), "%s", msg);
    d->failed = true;
}

/* PostgreSQL failed (no connection, or a statement a retry may fix; d->err_kind says which):
 * warns the first time, when the kind of failure changes, and every TROUBLE_LOG_INTERVAL_MS
 * while it lasts (else a debug line), and schedules the next connection attempt with a
 * doubling backoff. err starts with "HTTP push: ". */
static void trouble(inbox_deliver_t *d, const char *err) {
    int64_t now = clock_now_ms();
    d->trouble_count++;
    d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (d->backoff_ms > d->o.reconnect_backoff_max_ms)
        d->backoff_ms = d->o.reconnect_backoff_max_ms;
    d->reconnect_at_ms = now + d->backoff_ms;
    bool changed = strcmp(d->err_kind, d->logged_kind) != 0;
    memcpy(d->logged_kind, d->err_kind, sizeof(d->logged_kind));
    if (!d->trouble_since_ms) {
        d->trouble_since_ms = d->trouble_logged_ms = now;
        log_warn("%s; claiming nothing until it works again (retrying with backoff up to %d ms)", err,
                 d->o.reconnect_backoff_max_ms);
    } else if (changed || now - d->trouble_logged_ms >= TROUBLE_LOG_INTERVAL_MS) {
        d->trouble_logged_ms = now;
        log_warn("%s; still failing after %lld s and %u attempts, retrying", err,
                 (long long)((now - d->trouble_since_ms) / 1000), d->trouble_count);
    } else {
        log_debug("%s; retrying in %d ms", err, d->backoff_ms);
    }
}

/* A claim worked: PostgreSQL is usable again. */
static void recovered(inbox_deliver_t *d) {
    if (d->trouble_since_ms)
        log_info("HTTP push: PostgreSQL works again after %lld s; claiming",
                 (long long)((clock_now_ms() - d->trouble_since_ms) / 1000));
    d->trouble_since_ms = 0;
    d->trouble_count = 0;
    d->backoff_ms = 0;
    d->logged_kind[0] = '\0';
}

static void disconnect(inbox_deliver_t *d, const char *why) {
    if (d->pg)
        PQfinish(d->pg);
    d->pg = NULL;
    trouble(d, why);
}

/* Writes the failed result r of `what` to err - "HTTP push: <what> failed: <the server's
 * message> (SQLSTATE xxxxx)", and for an error that needs a fix, the fix - and returns
 * C_RETRY (connection lost, server busy or away: inbox_http_pg_classify) or C_FATAL. */
static int stmt_error(inbox_deliver_t *d, const char *what, const PGresult *r, char *err, size_t errsz) {
    const char *msg = r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : d->pg ? PQerrorMessage(d->pg) : "";
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char one[ERRSZ / 2];
    pgconn_error(one, sizeof(one), "", msg);
    snprintf(d->err_kind, sizeof(d->err_kind), "%s", st && *st ? st : "conn");
    if (!d->pg || PQstatus(d->pg) == CONNECTION_BAD || !st || !*st) {
        snprintf(d->err_kind, sizeof(d->err_kind), "conn");
        snprintf(err, errsz, "HTTP push: PostgreSQL connection lost while %s (%s)", what, one);
        return C_RETRY;
    }
    if (inbox_http_pg_classify(st) == INBOX_PG_RETRY) {
        snprintf(err, errsz, "HTTP push: %s failed: %s (SQLSTATE %s)", what, one, st);
        return C_RETRY;
    }
    const char *tbl = d->table ? d->table : d->table_cfg, *sch = d->schema ? d->schema : "<its schema>";
    const char *role = PQuser(d->pg);
    if (!strcmp(st, "42501"))
        snprintf(err, errsz,
                 "HTTP push: %s failed: %s (SQLSTATE 42501): role \"%s\" lacks a privilege that deliver.url "
                 "needs; grant it: GRANT SELECT, UPDATE ON %s TO \"%s\"; GRANT EXECUTE ON FUNCTION "
                 "%s.inbox_claim(integer, interval), %s.inbox_complete(text), "
                 "%s.inbox_fail(text, text, integer, interval, interval) TO \"%s\"",
                 what, one, role, tbl, role, sch, sch, sch, role);
    else
        snprintf(err, errsz,
                 "HTTP push: %s failed: %s (SQLSTATE %s): the inbox table %s or its functions in schema %s do "
                 "not match sql/inbox.sql: run psql -f sql/inbox.sql (edited for that schema and table) to "
                 "create or upgrade them, or remove deliver.url",
                 what, one, st, tbl, sch);
    return C_FATAL;
}

/* The statements of the delivery thread, prepared on every connect: %s is the inbox table's
 * schema when in_schema (the functions of sql/inbox.sql), else the inbox table. */
static const struct {
    const char *name;
    bool in_schema;
    const char *sql;
} statements[] = {
    {"claim", true,
     "SELECT message_id, topic, partition, \"offset\", key, headers::text, payload, attempts "
     "FROM %s.inbox_claim($1::int, make_interval(secs => $2::float8 / 1000))"},
    {"complete", true, "SELECT %s.inbox_complete($1::text)"},
    {"fail", true,
     "SELECT %s.inbox_fail($1::text, $2::text, $3::int, make_interval(secs => $4::float8 / 1000), "
     "make_interval(secs => $5::float8 / 1000))"},
    {"retry_after", false,
     "UPDATE %s SET next_attempt_at = greatest(next_attempt_at, now() + make_interval(secs => $2::float8)) "
     "WHERE message_id = $1::text AND status = 'failed'"},
    {"requeue", false,
     "UPDATE %s SET status = 'pending', attempts = greatest(attempts - 1, 0), next_attempt_at = now() "
     "WHERE message_id = $1::text AND status = 'processing'"},
};

static int prepare(inbox_deliver_t *d, const char *name, const char *sql, char *err, size_t errsz) {
    PGresult *r = PQprepare(d->pg, name, sql, 0, NULL);
    int rc = C_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char what[64];
        snprintf(what, sizeof(what), "preparing its statement \"%s\"", name);
        rc = stmt_error(d, what, r, err, errsz);
    }
    PQclear(r);
    return rc;
}

/* Connects, checks that the inbox functions of sql/inbox.sql exist for the table and that
 * the role may claim, LISTENs, prepares. */
static int connect_pg(inbox_deliver_t *d, char *err, size_t errsz) {
    bool permanent;
    d->pg = inbox_pgconn_open(d->conninfo, "inboxd-deliver", LOG_DEBUG,
                              "HTTP push: cannot connect to PostgreSQL: ", err, errsz, &permanent);
    if (!d->pg) {
        snprintf(d->err_kind, sizeof(d->err_kind), "conn");
        return permanent ? C_FATAL : C_RETRY;
    }
    inbox_catalog_t cat;
    PGresult *r;
    int rc = C_OK;
    inbox_catalog_status_t found = inbox_catalog_lookup(d->pg, d->table_cfg, &cat, &r);
    if (found == INBOX_CATALOG_FAILED) {
        rc = stmt_error(d, "looking up the inbox table", r, err, errsz);
        PQclear(r);
    } else if (found == INBOX_CATALOG_OOM) {
        snprintf(err, errsz, "out of memory");
        rc = C_FATAL;
    } else if (found == INBOX_CATALOG_MISSING) {
        snprintf(err, errsz, "HTTP push: inbox table %s does not exist: create it with psql -f sql/inbox.sql",
                 d->table_cfg);
        rc = C_FATAL;
    } else if (!cat.push_functions) {
        snprintf(err, errsz,
                 "deliver.url needs the functions inbox_claim, inbox_complete and inbox_fail of sql/inbox.sql "
                 "for table %s in its schema %s: run psql -f sql/inbox.sql (edited for that schema and table), or "
                 "remove deliver.url",
                 cat.table, cat.schema);
        rc = C_FATAL;
    } else if (!cat.may_claim) {
        snprintf(err, errsz,
                 "role \"%s\" lacks SELECT or UPDATE on %s: deliver.url claims and settles messages there (GRANT "
                 "SELECT, UPDATE ON %s TO %s)",
                 PQuser(d->pg), cat.table, cat.table, PQuser(d->pg));
        rc = C_FATAL;
    } else if (!cat.may_execute_push) {
        const char *sch = cat.schema;
        snprintf(err, errsz,
                 "role \"%s\" may not execute inbox_claim, inbox_complete or inbox_fail in schema %s: deliver.url "
                 "claims and settles messages with them (GRANT EXECUTE ON FUNCTION %s.inbox_claim(integer, "
                 "interval), %s.inbox_complete(text), %s.inbox_fail(text, text, integer, interval, interval) TO %s)",
                 PQuser(d->pg), sch, sch, sch, sch, PQuser(d->pg));
        rc = C_FATAL;
    } else {
        free(d->table);
        free(d->schema);
        d->table = cat.table; /* ownership passes */
        d->schema = cat.schema;
        cat.table = cat.schema = NULL;
    }
    inbox_catalog_free(&cat);
    if (rc != C_OK)
        goto fail;

    r = PQexec(d->pg, "LISTEN inbox");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = stmt_error(d, "running LISTEN inbox", r, err, errsz);
    PQclear(r);
    if (rc != C_OK)
        goto fail;

    char sql[1024];
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
        snprintf(sql, sizeof(sql), statements[i].sql, statements[i].in_schema ? d->schema : d->table);
        if ((rc = prepare(d, statements[i].name, sql, err, errsz)) != C_OK)
            goto fail;
    }
    return C_OK;
fail:
    PQfinish(d->pg);
    d->pg = NULL;
    return rc;
}

/* Runs a prepared statement (what: for messages); NULL unless it worked. A failure a retry
 * may fix drops the connection (trouble: logged, reconnect with backoff); one that needs a fix
 * (a revoked privilege, a dropped function or column) fails the thread, which then ends. */
static PGresult *run(inbox_deliver_t *d, const char *stmt, const char *what, int n, const char *const *vals) {
    if (!d->pg)
        return NULL;
    PGresult *r = PQexecPrepared(d->pg, stmt, n, vals, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
        return r;
    char err[ERRSZ];
    int rc = stmt_error(d, what, r, err, sizeof(err));
    PQclear(r);
    if (rc == C_FATAL) {
        if (!d->failed) /* the first one says what to fix; the connection stays for abort_all */
            fail_thread(d, err);
    } else {
        disconnect(d, err);
    }
    return NULL;
}

/* ---- requests ----------------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    slot_t *s = userdata;
    size_t n = size * nmemb;
    if (s->rlen < sizeof(s->resp)) {
        size_t k = n < sizeof(s->resp) - s->rlen ? n : sizeof(s->resp) - s->rlen;
        memcpy(s->resp + s->rlen, ptr, k);
        s->rlen += k;
    }
    s->rtotal += n;
    return n;
}

static void slot_clear(slot_t *s) {
    free(s->mid);
    s->mid = NULL;
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    if (s->body)
        PQfreemem(s->body);
    s->body = NULL;
    s->blen = s->rlen = s->rtotal = 0;
    s->errbuf[0] = '\0';
    s->busy = false;
}

/* Appends "Name: value(bytes)" (or "Name;" when empty); false when out of memory. */
static bool add_header(struct curl_slist **l, const char *name, const void *v, size_t len) {
    char *val = inbox_http_value(v, len);
    if (!val)
        return false;
    size_t sz = strlen(name) + strlen(val) + 3;
    char *line = malloc(sz);
    if (line) {
        if (*val)
            snprintf(line, sz, "%s: %s", name, val);
        else
            snprintf(line, sz, "%s;", name);
    }
    free(val);
    struct curl_slist *n = line ? curl_slist_append(*l, line) : NULL;
    free(line);
    if (!n)
        return false;
    *l = n;
    return true;
}

static bool add_line(struct curl_slist **l, const char *line) {
    struct curl_slist *n = curl_slist_append(*l, line);
    if (n)
        *l = n;
    return n != NULL;
}

/* Starts the request for claimed row i in slot s. False when out of memory. */
static bool start_request(inbox_deliver_t *d, slot_t *s, const PGresult *r, int i) {
    const char *mid = PQgetvalue(r, i, 0), *topic = PQgetvalue(r, i, 1);
    s->mid = strdup(mid);
    s->attempt = atoi(PQgetvalue(r, i, 7));
    if (!s->mid)
        return false;
    bool ok = add_header(&s->hdrs, "Idempotency-Key", mid, strlen(mid)) &&
              add_header(&s->hdrs, "Kafka-Topic", topic, strlen(topic)) &&
              add_header(&s->hdrs, "Kafka-Partition", PQgetvalue(r, i, 2), strlen(PQgetvalue(r, i, 2))) &&
              add_header(&s->hdrs, "Kafka-Offset", PQgetvalue(r, i, 3), strlen(PQgetvalue(r, i, 3))) &&
              add_header(&s->hdrs, "Inbox-Attempt", PQgetvalue(r, i, 7), strlen(PQgetvalue(r, i, 7)));
    if (ok && !PQgetisnull(r, i, 4)) {
        size_t klen = 0;
        unsigned char *key = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 4), &klen);
        ok = key && add_header(&s->hdrs, "Kafka-Key", key, klen);
        if (key)
            PQfreemem(key);
    }
    if (ok && PQgetisnull(r, i, 6))
        ok = add_line(&s->hdrs, "Kafka-Tombstone: true");
    for (size_t k = 0; ok && k < d->nstatic; k++)
        ok = add_line(&s->hdrs, d->static_lines[k]);
    size_t nk = 0;
    bool kafka_ctype = false;
    char **kl = ok ? inbox_http_kafka_headers(PQgetisnull(r, i, 5) ? NULL : PQgetvalue(r, i, 5), d->prefix,
                                              (const char *const *)d->static_names, d->nstatic, &nk, &kafka_ctype)
                   : NULL;
    if (ok && !kl) {
        log_warn("HTTP push: message %s: its headers are not a JSON object; sending it without them", mid);
        nk = 0;
    }
    for (size_t k = 0; ok && k < nk; k++)
        ok = add_line(&s->hdrs, kl[k]);
    strlist_free(kl);
    if (ok && !kafka_ctype && !d->static_ctype) {
        char ct[512];
        snprintf(ct, sizeof(ct), "Content-Type: %s", d->ctype);
        ok = add_line(&s->hdrs, ct);
    }
    if (ok)
        ok = add_line(&s->hdrs, "Expect:"); /* no 100-continue round trip */
    if (!ok)
        return false;
    if (!PQgetisnull(r, i, 6)) {
        s->body = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 6), &s->blen);
        if (!s->body)
            return false;
    }

    CURL *e = s->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, d->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body ? (const char *)s->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->blen);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "inboxd/" OUTBOXD_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    if (*d->tls_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, d->tls_ca);
    if (*d->tls_cert) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, d->tls_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, d->tls_key);
    }
    s->errbuf[0] = '\0';
    if (curl_multi_add_handle(d->multi, e) != CURLM_OK)
        return false;
    s->busy = true;
    d->in_flight++;
    atomic_fetch_add(&st_attempts, 1);
    atomic_fetch_add(&st_in_flight, 1);
    return true;
}

/* Claims up to the free slots and starts their requests. */
static void claim(inbox_deliver_t *d) {
    int free_slots = d->o.concurrency - d->in_flight;
    d->want_claim = false;
    d->next_poll_ms = clock_now_ms() + d->o.poll_ms;
    if (free_slots <= 0 || !d->pg)
        return;
    char n[16], lease[32];
    snprintf(n, sizeof(n), "%d", free_slots);
    snprintf(lease, sizeof(lease), "%d", d->o.timeout_ms + LEASE_EXTRA_MS);
    const char *vals[2] = {n, lease};
    PGresult *r = run(d, "claim", "claiming messages (inbox_claim)", 2, vals);
    if (!r)
        return;
    recovered(d);
    int rows = PQntuples(r), k = 0;
    for (int i = 0; i < rows; i++) {
        while (k < d->o.concurrency && d->slots[k].busy)
            k++;
        slot_t *s = &d->slots[k];
        if (!start_request(d, s, r, i)) {
            log_error("HTTP push: out of memory starting the request of message %s; it is claimed again after "
                      "its lease",
                      PQgetvalue(r, i, 0));
            slot_clear(s);
        }
    }
    if (rows == free_slots)
        d->want_claim = true; /* there may be more */
    PQclear(r);
}

/* Records the outcome of a finished request in the inbox. */
static void settle(inbox_deliver_t *d, slot_t *s, CURLcode cc) {
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    inbox_http_verdict_t v = cc == CURLE_OK ? inbox_http_classify(status) : INBOX_HTTP_RETRY;
    char why[ERRSZ];
    curl_off_t retry_after = 0;
    if (cc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s: %s", curl_easy_strerror(cc), s->errbuf[0] ? s->errbuf : "no detail");
    } else {
        inbox_http_error_text(status, s->resp, s->rlen, SNIPPET_MAX, why,
                              sizeof(why)); /* rlen > SNIPPET_MAX when cut */
        if (v == INBOX_HTTP_RETRY && curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK)
            retry_after = 0;
    }
    if (!d->pg) {
        log_warn("HTTP push: message %s: %s, but PostgreSQL is unavailable to record it; it is delivered again "
                 "after its lease",
                 s->mid, v == INBOX_HTTP_DONE ? "delivered" : why);
        return;
    }
    if (v == INBOX_HTTP_DONE) {
        const char *vals[1] = {s->mid};
        PGresult *r = run(d, "complete", "marking a message done (inbox_complete)", 1, vals);
        if (r) {
            atomic_fetch_add(&st_successes, 1);
            log_debug("HTTP push: message %s delivered (HTTP %ld, attempt %d)", s->mid, status, s->attempt);
        }
        PQclear(r);
        return;
    }
    char maxa[16], base[16], maxb[16];
    snprintf(maxa, sizeof(maxa), "%d", v == INBOX_HTTP_DEAD ? 1 : d->o.max_attempts);
    snprintf(base, sizeof(base), "%d", d->o.backoff_base_ms);
    snprintf(maxb, sizeof(maxb), "%d", d->o.backoff_max_ms);
    const char *vals[5] = {s->mid, why, maxa, base, maxb};
    PGresult *r = run(d, "fail", "recording a failed attempt (inbox_fail)", 5, vals);
    if (!r)
        return;
    const char *res = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "";
    if (!strcmp(res, "dead")) {
        atomic_fetch_add(&st_dead, 1);
        log_warn("HTTP push: message %s is dead after %d attempt%s: %s", s->mid, s->attempt, s->attempt == 1 ? "" : "s",
                 why);
    } else if (!strcmp(res, "failed")) {
        atomic_fetch_add(&st_retries, 1);
        log_debug("HTTP push: message %s, attempt %d: %s; retried later", s->mid, s->attempt, why);
        long long ra = inbox_http_retry_after_secs((long long)retry_after, d->o.backoff_max_ms);
        if (ra > 0) {
            char secs[32];
            snprintf(secs, sizeof(secs), "%lld", ra);
            const char *v2[2] = {s->mid, secs};
            PQclear(run(d, "retry_after", "applying a Retry-After", 2, v2));
        }
    }
    PQclear(r);
}

static void finish_done(inbox_deliver_t *d) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        slot_t *s = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        CURLcode cc = m->data.result;
        curl_multi_remove_handle(d->multi, m->easy_handle);
        d->in_flight--;
        atomic_fetch_sub(&st_in_flight, 1);
        settle(d, s, cc);
        slot_clear(s);
        d->want_claim = true; /* a key's next message may be claimable now */
    }
}

/* Cancels the requests in flight and puts their messages back to pending. */
static void abort_all(inbox_deliver_t *d) {
    int n = 0;
    for (int i = 0; i < d->o.concurrency; i++) {
        slot_t *s = &d->slots[i];
        if (!s->busy)
            continue;
        curl_multi_remove_handle(d->multi, s->easy);
        d->in_flight--;
        atomic_fetch_sub(&st_in_flight, 1);
        const char *vals[1] = {s->mid};
        PGresult *r = run(d, "requeue", "putting a cancelled message back to pending", 1, vals);
        n += r != NULL;
        PQclear(r);
        slot_clear(s);
    }
    if (n)
        log_info("HTTP push: %d request%s cancelled; their messages are pending again", n, n == 1 ? "" : "s");
}

static void progress(inbox_deliver_t *d, bool final) {
    int64_t now = clock_now_ms();
    if (!final && now - d->last_progress_ms < PROGRESS_INTERVAL_MS)
        return;
    inbox_deliver_stats_t st;
    inbox_deliver_stats_get(&st);
    uint64_t ok = st.successes - d->last_ok, re = st.retries - d->last_retry, de = st.dead - d->last_dead;
    if (ok || re || de)
        log_info("HTTP push: %" PRIu64 " delivered, %" PRIu64 " to retry, %" PRIu64 " dead %s", ok, re, de,
                 final ? "since the last report" : "in the last 10 s");
    d->last_ok = st.successes;
    d->last_retry = st.retries;
    d->last_dead = st.dead;
    d->last_progress_ms = now;
}

/* NOTIFY inbox (rows arrived, dead rows requeued) makes the next pass claim. consume: read
 * the socket first. */
static void notifies(inbox_deliver_t *d, bool consume) {
    if (!d->pg)
        return;
    if (consume && !PQconsumeInput(d->pg)) {
        char err[ERRSZ];
        pgconn_error(err, sizeof(err), "HTTP push: PostgreSQL connection lost (", PQerrorMessage(d->pg));
        snprintf(d->err_kind, sizeof(d->err_kind), "conn");
        strncat(err, ")", sizeof(err) - strlen(err) - 1);
        disconnect(d, err);
        return;
    }
    PGnotify *nf;
    while ((nf = PQnotifies(d->pg))) {
        d->want_claim = true;
        PQfreemem(nf);
    }
}

static void *thread_main(void *arg) {
    inbox_deliver_t *d = arg;
    char err[ERRSZ];
    d->last_progress_ms = clock_now_ms();
    d->want_claim = true;
    for (;;) {
        int stop = atomic_load(&d->stop);
        if (stop >= 2 || d->failed) { /* failed: a statement needs a fix (run) */
            abort_all(d);
            break;
        }
        if (stop && d->in_flight == 0)
            break;
        if (!d->pg && !stop && clock_now_ms() >= d->reconnect_at_ms) {
            int rc = connect_pg(d, err, sizeof(err));
            if (rc == C_FATAL) {
                fail_thread(d, err);
                abort_all(d);
                break;
            }
            if (rc == C_RETRY)
                trouble(d, err); /* the backoff is reset by the first claim that works */
            else
                d->want_claim = true;
        }
        if (d->pg && !stop && (d->want_claim || clock_now_ms() >= d->next_poll_ms))
            claim(d);

        int running = 0;
        curl_multi_perform(d->multi, &running);
        finish_done(d);
        notifies(d, false); /* those that arrived with the statements' results */
        if (d->want_claim && d->pg && !stop && d->in_flight < d->o.concurrency)
            continue;
        progress(d, false);

        /* curl_multi_poll also returns for curl's own timers; ours: the next claim, or the
         * next reconnect. While stopping only the requests in flight matter. */
        int64_t now = clock_now_ms(), t = 1000;
        if (!stop && d->pg && d->next_poll_ms - now < t)
            t = d->next_poll_ms - now;
        if (!stop && !d->pg && d->reconnect_at_ms - now < t)
            t = d->reconnect_at_ms - now;
        if (t < 0)
            t = 0;
        struct curl_waitfd wfd = {.fd = d->pg ? PQsocket(d->pg) : -1, .events = CURL_WAIT_POLLIN};
        curl_multi_poll(d->multi, &wfd, d->pg ? 1 : 0, (int)t, NULL);
        notifies(d, true);
    }
    progress(d, true);
    if (d->pg)
        PQfinish(d->pg);
    d->pg = NULL;
    atomic_store(&d->finished, true);
    return NULL;
}

/* ---- the caller's side ---------------------------------------------------------------------- */

static void free_all(inbox_deliver_t *d) {
    if (d->slots) {
        for (int i = 0; i < d->o.concurrency; i++) {
            slot_clear(&d->slots[i]);
            if (d->slots[i].easy)
                curl_easy_cleanup(d->slots[i].easy);
        }
        free(d->slots);
    }
    if (d->multi)
        curl_multi_cleanup(d->multi);
    strlist_free(d->static_lines);
    strlist_free(d->static_names);
    free(d->conninfo);
    free(d->table_cfg);
    free(d->url);
    free(d->prefix);
    free(d->ctype);
    free(d->tls_ca);
    free(d->tls_cert);
    free(d->tls_key);
    free(d->table);
    free(d->schema);
    free(d);
}

/* "HTTP push to URL" with any user and password of the URL left out. */
static void log_url(const inbox_deliver_t *d) {
    CURLU *u = curl_url();
    char *shown = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, d->url, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_get(u, CURLUPART_URL, &shown, 0);
    }
    log_info("HTTP push to %s: up to %d requests in flight, timeout %d ms, dead after %d attempts",
             shown ? shown : "(deliver.url)", d->o.concurrency, d->o.timeout_ms, d->o.max_attempts);
    curl_free(shown);
    curl_url_cleanup(u);
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

inbox_deliver_t *inbox_deliver_start(const inbox_deliver_options_t *o, char *errstr, size_t errstr_size) {
    const char *files[][2] = {{"deliver.tls.ca.location", o->tls_ca},
                              {"deliver.tls.cert.location", o->tls_cert},
                              {"deliver.tls.key.location", o->tls_key}};
    for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++)
        if (files[i][1] && *files[i][1] && access(files[i][1], R_OK) != 0) {
            snprintf(errstr, errstr_size, "%s: cannot read %s: %s", files[i][0], files[i][1], strerror(errno));
            return NULL;
        }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errstr, errstr_size, "HTTP push: libcurl initialisation failed");
        return NULL;
    }
    inbox_deliver_t *d = calloc(1, sizeof(*d));
    if (!d)
        goto oom;
    d->o = *o;
    d->conninfo = dup_or_empty(o->conninfo);
    d->table_cfg = dup_or_empty(o->table);
    d->url = dup_or_empty(o->url);
    d->prefix = dup_or_empty(o->header_prefix);
    d->ctype = dup_or_empty(o->content_type);
    d->tls_ca = dup_or_empty(o->tls_ca);
    d->tls_cert = dup_or_empty(o->tls_cert);
    d->tls_key = dup_or_empty(o->tls_key);
    if (!d->conninfo || !d->table_cfg || !d->url || !d->prefix || !d->ctype || !d->tls_ca || !d->tls_cert ||
        !d->tls_key)
        goto oom;
    size_t ns = 0;
    while (o->static_headers && o->static_headers[ns])
        ns++;
    d->nstatic = ns;
    d->static_lines = calloc(ns + 1, sizeof(char *));
    d->static_names = calloc(ns + 1, sizeof(char *));
    if (!d->static_lines || !d->static_names)
        goto oom;
    for (size_t i = 0; i < ns; i++) {
        const char *l = o->static_headers[i];
        size_t nl = strcspn(l, ":;");
        d->static_lines[i] = strdup(l);
        d->static_names[i] = strndup(l, nl);
        if (!d->static_lines[i] || !d->static_names[i])
            goto oom;
        if (!strcasecmp(d->static_names[i], "content-type"))
            d->static_ctype = true;
    }
    d->multi = curl_multi_init();
    d->slots = calloc((size_t)o->concurrency, sizeof(slot_t));
    if (!d->multi || !d->slots)
        goto oom;
    curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->concurrency);
    for (int i = 0; i < o->concurrency; i++)
        if (!(d->slots[i].easy = curl_easy_init()))
            goto oom;
    log_url(d);
    int rc = pthread_create(&d->thread, NULL, thread_main, d);
    if (rc != 0) {
        snprintf(errstr, errstr_size, "HTTP push: cannot start the delivery thread: %s", strerror(rc));
        free_all(d);
        return NULL;
    }
    d->started = true;
    return d;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    if (d)
        free_all(d);
    return NULL;
}

void inbox_deliver_stop(inbox_deliver_t *d, bool abort) {
    if (!d)
        return;
    int want = abort ? 2 : 1;
    if (atomic_load(&d->stop) < want)
        atomic_store(&d->stop, want);
    curl_multi_wakeup(d->multi);
}

bool inbox_deliver_finished(const inbox_deliver_t *d) { return !d || atomic_load(&d->finished); }

bool inbox_deliver_failed(const inbox_deliver_t *d, char *errstr, size_t errstr_size) {
    if (!d || !atomic_load(&d->finished) || !d->failed)
        return false;
    snprintf(errstr, errstr_size, "%s", d->failmsg);
    return true;
}

void inbox_deliver_destroy(inbox_deliver_t *d) {
    if (!d)
        return;
    if (d->started) {
        inbox_deliver_stop(d, true);
        pthread_join(d->thread, NULL);
    }
    free_all(d);
}
