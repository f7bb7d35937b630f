/* inbox_check.c - `inboxd check`: the receiving side's preflight (see inbox_check.h). */
#include "inbox_check.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "checkout.h"
#include "inbox_catalog.h"
#include "inbox_config.h"
#include "inbox_grants.h"
#include "inbox_writer.h"
#include "kconsumer.h"
#include "log.h"
#include "pgconn.h"

#define KAFKA_TIMEOUT_MAX_MS 5000 /* and at most startup.timeout.ms */
#define URL_TIMEOUT_MAX_MS 5000   /* and at most deliver.timeout.ms */
#define WATERMARK_PARTITIONS_MAX 256

typedef struct ic {
    const config_t *cfg;
    checkout_t co;
    inbox_config_t conf;
    bool conf_ok; /* inbox_config_build and the Kafka properties passed */
    bool push;    /* deliver.url is set */
    char group[256];
    PGconn *pg;
    inbox_catalog_t inbox, offsets; /* .table NULL: not found */
    bool grants_ok;
    kconsumer_t *kc;
    const struct rd_kafka_metadata *md;
} ic_t;

static const char *table_cfg(const ic_t *c) { return config_get(c->cfg, "inbox.table"); }
static const char *offsets_cfg(const ic_t *c) { return config_get(c->cfg, "inbox.offsets.table"); }

/* group.id among the kafka.* properties, else inboxd's default. */
static void find_group(ic_t *c) {
    snprintf(c->group, sizeof(c->group), "inboxd");
    for (size_t i = 0; i < config_passthrough_count(c->cfg); i++) {
        const char *k, *v;
        config_passthrough_get(c->cfg, i, &k, &v);
        if (!strcmp(k, "group.id"))
            snprintf(c->group, sizeof(c->group), "%s", v);
    }
}

/* ---------------------------------------------------------------------------- PostgreSQL */

static void check_config(ic_t *c) {
    char err[1024];
    err_t e;
    find_group(c);
    if (inbox_config_build(c->cfg, &c->conf, err, sizeof(err)) != 0) {
        checkout_report(&c->co, CHECKOUT_FAIL, "config", err, NULL);
        return;
    }
    if (kconsumer_check_props(c->conf.opts.kafka_props, &e) != 0) {
        checkout_report(&c->co, CHECKOUT_FAIL, "config", e.msg, e.fix);
        return;
    }
    c->conf_ok = true;
    c->push = c->conf.opts.deliver != NULL;
    checkout_reportf(&c->co, CHECKOUT_OK, "config", NULL, "topics %s, table %s, positions %s, group %s; handoff: %s%s",
                     config_get(c->cfg, "inbox.topics"), table_cfg(c), offsets_cfg(c), c->group,
                     c->push ? "HTTP push to " : "SQL (the service claims messages with inbox_claim())",
                     c->push ? c->conf.opts.deliver->url : "");
}

static bool pg_skipped(ic_t *c, const char *name) {
    if (c->pg)
        return false;
    checkout_report(&c->co, CHECKOUT_SKIP, name, "not checked: PostgreSQL is not reachable", NULL);
    return true;
}

static void check_postgres(ic_t *c) {
    err_t e;
    c->pg = pgconn_connect(config_get(c->cfg, "postgres.conninfo"), "inboxd check", &e);
    if (!c->pg) {
        checkout_report(&c->co, CHECKOUT_FAIL, "postgres", e.msg, e.fix);
        return;
    }
    const char *host = PQhost(c->pg), *port = PQport(c->pg);
    bool sock = host && *host == '/';
    checkout_reportf(&c->co, CHECKOUT_OK, "postgres", NULL,
                     "reachable at %s%s%s%s, database %s, user %s, PostgreSQL %d.%d", sock ? "socket " : "",
                     host ? host : "?", sock ? "" : ":", sock ? "" : port, PQdb(c->pg), PQuser(c->pg),
                     PQserverVersion(c->pg) / 10000, PQserverVersion(c->pg) % 10000);
}

/* One of the two tables: found into *cat, or FAIL. */
static void check_table(ic_t *c, const char *name, const char *configured, const char *key, inbox_catalog_t *cat) {
    if (pg_skipped(c, name))
        return;
    PGresult *failed;
    char fix[512];
    inbox_catalog_status_t st = inbox_catalog_lookup(c->pg, configured, cat, &failed);
    if (st == INBOX_CATALOG_FOUND) {
        checkout_reportf(&c->co, CHECKOUT_OK, name, NULL, "%s exists", cat->table);
    } else if (st == INBOX_CATALOG_MISSING) {
        snprintf(fix, sizeof(fix), "create it: psql -d %s -f sql/inbox.sql (edited for another schema), or set %s",
                 PQdb(c->pg), key);
        checkout_reportf(&c->co, CHECKOUT_FAIL, name, fix, "%s (%s) does not exist in database %s", configured, key,
                         PQdb(c->pg));
    } else {
        err_t e;
        pgconn_result_failure(failed, c->pg, "cannot look it up", NULL, &e);
        checkout_report(&c->co, CHECKOUT_FAIL, name, st == INBOX_CATALOG_OOM ? "out of memory" : e.msg, NULL);
        PQclear(failed);
    }
}

/* inbox_schema_version() in the inbox table's schema: the version, 0 when the function is
 * missing (sql/inbox.sql of before versions), -1 with err when the query failed. */
static int schema_version(ic_t *c, char *err, size_t size) {
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT CASE WHEN to_regprocedure(%s || '.inbox_schema_version()') IS NULL THEN 0 END",
             "$1");
    const char *vals[1] = {c->inbox.schema};
    PGresult *r = PQexecParams(c->pg, sql, 1, NULL, vals, NULL, NULL, 0);
    int v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0))
        v = 0;
    PQclear(r);
    if (v == 0)
        return 0;
    snprintf(sql, sizeof(sql), "SELECT %s.inbox_schema_version()", c->inbox.schema);
    r = PQexec(c->pg, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        v = atoi(PQgetvalue(r, 0, 0));
    } else {
        err_t e;
        pgconn_result_failure(r, c->pg, "cannot read inbox_schema_version()", NULL, &e);
        snprintf(err, size, "%.400s", e.msg);
        v = -1;
    }
    PQclear(r);
    return v;
}

static void check_functions(ic_t *c) {
    if (pg_skipped(c, "functions"))
        return;
    if (!c->inbox.table) {
        checkout_report(&c->co, CHECKOUT_SKIP, "functions", "not checked: the inbox table does not exist", NULL);
        return;
    }
    char fix[512], err[512] = "";
    snprintf(fix, sizeof(fix),
             "run psql -d %s -f sql/inbox.sql (idempotent; edited for schema %s and table %s when they are not "
             "public.inbox)",
             PQdb(c->pg), c->inbox.schema, c->inbox.table);
    if (!c->inbox.push_functions || !c->inbox.requeue_function) {
        checkout_reportf(
            &c->co, CHECKOUT_FAIL, "functions", fix,
            "the handoff functions of sql/inbox.sql for %s are missing in schema %s (%s%s%s): %s", c->inbox.table,
            c->inbox.schema, c->inbox.push_functions ? "" : "inbox_claim, inbox_complete, inbox_fail",
            !c->inbox.push_functions && !c->inbox.requeue_function ? ", " : "",
            c->inbox.requeue_function ? "" : "inbox_requeue_dead",
            c->push ? "inboxd's HTTP push calls them" : "the service claims and settles messages with them");
        return;
    }
    int v = schema_version(c, err, sizeof(err));
    if (v < 0)
        checkout_reportf(&c->co, CHECKOUT_WARN, "functions", NULL, "present in schema %s; %s", c->inbox.schema, err);
    else if (v == INBOX_SCHEMA_VERSION)
        checkout_reportf(
            &c->co, CHECKOUT_OK, "functions", NULL,
            "inbox_claim, inbox_complete, inbox_fail, inbox_requeue_dead in schema %s; sql/inbox.sql version %d, "
            "as this inboxd expects",
            c->inbox.schema, v);
    else if (v < INBOX_SCHEMA_VERSION)
        checkout_reportf(&c->co, CHECKOUT_WARN, "functions", fix,
                         "present in schema %s, but from an older sql/inbox.sql (version %d%s; this inboxd expects %d)",
                         c->inbox.schema, v, v == 0 ? ": no inbox_schema_version()" : "", INBOX_SCHEMA_VERSION);
    else
        checkout_reportf(&c->co, CHECKOUT_WARN, "functions",
                         "upgrade inboxd to the release whose sql/inbox.sql you ran",
                         "sql/inbox.sql in schema %s is version %d, newer than this inboxd expects (%d)",
                         c->inbox.schema, v, INBOX_SCHEMA_VERSION);
}

/* FAIL when the role lacks what inboxd itself needs for the handoff; warn when it lacks what
 * inboxd status and requeue need. */
static void check_grants(ic_t *c) {
    if (pg_skipped(c, "privileges"))
        return;
    if (!c->inbox.table || !c->offsets.table) {
        checkout_report(&c->co, CHECKOUT_SKIP, "privileges", "not checked: a table does not exist", NULL);
        return;
    }
    inbox_grant_t miss[INBOX_GRANTS_MAX], ops[INBOX_GRANTS_MAX];
    size_t n = 0, nops = 0;
    err_t e;
    unsigned needs = INBOX_NEEDS_INGEST | (c->push ? INBOX_NEEDS_PUSH : 0);
    const char *role = PQuser(c->pg), *handoff = c->push ? "HTTP push" : "SQL handoff";
    char list[1024], stmts[1400], fix[1600];
    if (inbox_grants_missing(c->pg, needs, c->inbox.table, c->offsets.table, c->inbox.schema, miss, &n, &e) != 0 ||
        inbox_grants_missing(c->pg, INBOX_NEEDS_STATUS | INBOX_NEEDS_REQUEUE, c->inbox.table, NULL, c->inbox.schema,
                             ops, &nops, &e) != 0) {
        checkout_report(&c->co, CHECKOUT_FAIL, "privileges", e.msg, NULL);
        return;
    }
    if (n > 0) {
        snprintf(fix, sizeof(fix), "as a superuser or the tables' owner: %s (sql/inbox_roles.sql%s grants them)",
                 inbox_grants_statements(miss, n, role, stmts, sizeof(stmts)), c->push ? " -v inbox_push=on" : "");
        checkout_reportf(&c->co, CHECKOUT_FAIL, "privileges", fix, "role \"%s\" lacks what inboxd needs for the %s: %s",
                         role, handoff, inbox_grants_list(miss, n, list, sizeof(list)));
        return;
    }
    c->grants_ok = true;
    if (nops > 0) {
        snprintf(fix, sizeof(fix), "%s (sql/inbox_roles.sql grants them)",
                 inbox_grants_statements(ops, nops, role, stmts, sizeof(stmts)));
        checkout_reportf(
            &c->co, CHECKOUT_WARN, "privileges", fix,
            "role \"%s\" has what inboxd needs for the %s, but inboxd status and requeue would fail: it lacks %s", role,
            handoff, inbox_grants_list(ops, nops, list, sizeof(list)));
        return;
    }
    checkout_reportf(&c->co, CHECKOUT_OK, "privileges", NULL,
                     "role \"%s\" has what inboxd needs for the %s and for inboxd status and requeue", role, handoff);
}

/* The statements inboxd prepares at startup, prepared the same way (inbox_writer_connect). */
static void check_statements(ic_t *c) {
    if (!c->pg || !c->inbox.table || !c->offsets.table || !c->grants_ok) {
        checkout_report(&c->co, CHECKOUT_SKIP, "statements", "not checked: see the lines above", NULL);
        return;
    }
    inbox_writer_options_t wo = {.conninfo = config_get(c->cfg, "postgres.conninfo"),
                                 .table = table_cfg(c),
                                 .offsets_table = offsets_cfg(c),
                                 .group = c->group};
    inbox_writer_t *w = inbox_writer_new(&wo);
    char err[1024] = "out of memory";
    log_level_t level = log_get_level();
    log_set_level(LOG_ERROR); /* the writer's own info lines */
    inbox_writer_status_t st = w ? inbox_writer_connect(w, err, sizeof(err)) : INBOX_WRITER_FATAL;
    log_set_level(level);
    if (st == INBOX_WRITER_OK)
        checkout_reportf(&c->co, CHECKOUT_OK, "statements", NULL,
                         "the statements inboxd prepares at startup prepare on %s and %s: the tables fit this inboxd",
                         c->inbox.table, c->offsets.table);
    else
        checkout_report(&c->co, st == INBOX_WRITER_RETRY ? CHECKOUT_WARN : CHECKOUT_FAIL, "statements", err, NULL);
    inbox_writer_destroy(w);
}

/* ---------------------------------------------------------------------------- Kafka */

static bool assign_nothing(void *opaque, kconsumer_tp_t *tps, size_t n) {
    (void)opaque, (void)tps, (void)n;
    return false;
}

static void revoke_nothing(void *opaque, const kconsumer_tp_t *tps, size_t n, bool lost) {
    (void)opaque, (void)tps, (void)n, (void)lost;
}

static int kafka_timeout(const ic_t *c) {
    int t = c->conf.opts.startup_timeout_ms;
    return t < KAFKA_TIMEOUT_MAX_MS ? t : KAFKA_TIMEOUT_MAX_MS;
}

/* A consumer handle with inboxd's configuration that never subscribes: it joins no group. */
static void check_kafka(ic_t *c) {
    if (!c->conf_ok) {
        checkout_report(&c->co, CHECKOUT_SKIP, "kafka", "not checked: the configuration is invalid", NULL);
        return;
    }
    err_t e;
    c->kc = kconsumer_new(c->conf.opts.kafka_props, c->conf.opts.topics, c->conf.opts.ntopics, assign_nothing,
                          revoke_nothing, c, &e);
    if (!c->kc) {
        checkout_report(&c->co, CHECKOUT_FAIL, "kafka", e.msg, e.fix);
        return;
    }
    rd_kafka_t *rk = kconsumer_handle(c->kc);
    if (kconsumer_check_connect(c->kc, kafka_timeout(c), &e) != 0) {
        checkout_report(&c->co, CHECKOUT_FAIL, "kafka", e.msg, e.fix);
        return;
    }
    rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 1, NULL, &c->md, kafka_timeout(c));
    if (merr) {
        c->md = NULL;
        checkout_reportf(&c->co, CHECKOUT_FAIL, "kafka", NULL, "a broker answered, but listing the topics failed: %s",
                         rd_kafka_err2str(merr));
        return;
    }
    char bootstrap[300] = "";
    size_t bsize = sizeof(bootstrap);
    rd_kafka_conf_get(rd_kafka_conf(rk), "bootstrap.servers", bootstrap, &bsize);
    checkout_reportf(&c->co, CHECKOUT_OK, "kafka", NULL, "reachable at bootstrap.servers=%s (%d broker%s)", bootstrap,
                     c->md->broker_cnt, c->md->broker_cnt == 1 ? "" : "s");
}

static int partitions_of(const struct rd_kafka_metadata *md, const char *topic) {
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, topic))
            return md->topics[i].err ? 0 : md->topics[i].partition_cnt;
    return 0;
}

/* Topics a "^regex" entry matches; -1 when it does not compile (librdkafka's regex syntax is
 * POSIX extended, as regcomp's). */
static int regex_matches(const struct rd_kafka_metadata *md, const char *re) {
    regex_t rx;
    if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
        return -1;
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!md->topics[i].err && regexec(&rx, md->topics[i].topic, 0, NULL, 0) == 0)
            n++;
    regfree(&rx);
    return n;
}

static void check_topics(ic_t *c) {
    if (!c->md) {
        checkout_report(&c->co, CHECKOUT_SKIP, "topics", "not checked: no topic list from Kafka", NULL);
        return;
    }
    char found[1024] = "", missing[1024] = "", unmatched[512] = "";
    size_t of = 0, om = 0, ou = 0;
    for (size_t i = 0; i < c->conf.opts.ntopics; i++) {
        const char *t = c->conf.opts.topics[i];
        if (t[0] == '^') {
            int n = regex_matches(c->md, t);
            if (n > 0 && of < sizeof(found))
                of += (size_t)snprintf(found + of, sizeof(found) - of, "%s%s (matches %d)", of ? ", " : "", t, n);
            else if (n <= 0 && ou < sizeof(unmatched))
                ou += (size_t)snprintf(unmatched + ou, sizeof(unmatched) - ou, "%s%s", ou ? ", " : "", t);
            continue;
        }
        int parts = partitions_of(c->md, t);
        if (parts > 0 && of < sizeof(found))
            of += (size_t)snprintf(found + of, sizeof(found) - of, "%s%s (%d partition%s)", of ? ", " : "", t, parts,
                                   parts == 1 ? "" : "s");
        else if (parts == 0 && om < sizeof(missing))
            om += (size_t)snprintf(missing + om, sizeof(missing) - om, "%s%s", om ? ", " : "", t);
    }
    char fix[1400];
    bool one = !strchr(missing, ',');
    snprintf(fix, sizeof(fix),
             "create %s (kafka-topics.sh --bootstrap-server ... --create --topic %s --partitions N%s), or fix "
             "inbox.topics",
             one ? "it" : "them", one ? missing : "<topic>", one ? "" : ", for each");
    if (om > 0)
        checkout_reportf(&c->co, CHECKOUT_FAIL, "topics", fix,
                         "%s do%s not exist: inboxd would consume nothing from %s%s%s", missing,
                         strchr(missing, ',') ? "" : "es", strchr(missing, ',') ? "them" : "it", of ? "; exist: " : "",
                         found);
    else if (ou > 0)
        checkout_reportf(&c->co, CHECKOUT_WARN, "topics", "check the regular expression in inbox.topics",
                         "%s matches no topic now (inboxd would wait for one)%s%s", unmatched, of ? "; exist: " : "",
                         found);
    else
        checkout_reportf(&c->co, CHECKOUT_OK, "topics", NULL, "%s", found);
}

/* Stored positions of the group in the offsets table: how many partitions, and how many
 * messages behind the partitions' ends (high watermarks) they are in all. */
static void positions_text(ic_t *c, char *buf, size_t size) {
    snprintf(buf, size, "%s", "");
    if (!c->pg || !c->offsets.table || !c->kc)
        return;
    char sql[700];
    snprintf(sql, sizeof(sql), "SELECT topic, partition, next_offset FROM %s WHERE consumer_group = $1 LIMIT %d",
             c->offsets.table, WATERMARK_PARTITIONS_MAX);
    const char *vals[1] = {c->group};
    PGresult *r = PQexecParams(c->pg, sql, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        err_t e;
        pgconn_result_failure(r, c->pg, "positions unknown", NULL, &e);
        snprintf(buf, size, "; %.400s", e.msg);
        PQclear(r);
        return;
    }
    long long behind = 0;
    bool known = true;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(kconsumer_handle(c->kc), PQgetvalue(r, i, 0), atoi(PQgetvalue(r, i, 1)),
                                             &lo, &hi, kafka_timeout(c)) != 0) {
            known = false;
            continue;
        }
        long long next = atoll(PQgetvalue(r, i, 2));
        behind += hi > next ? hi - next : 0;
    }
    if (PQntuples(r) == 0)
        snprintf(buf, size, "; no stored positions in %s yet", c->offsets.table);
    else if (known)
        snprintf(buf, size, "; positions stored in %s for %d partition%s, %lld message%s not recorded yet",
                 c->offsets.table, PQntuples(r), PQntuples(r) == 1 ? "" : "s", behind, behind == 1 ? "" : "s");
    else
        snprintf(buf, size, "; positions stored in %s for %d partition%s", c->offsets.table, PQntuples(r),
                 PQntuples(r) == 1 ? "" : "s");
    PQclear(r);
}

static void check_group(ic_t *c) {
    if (!c->md) {
        checkout_report(&c->co, CHECKOUT_SKIP, "group", "not checked: Kafka is not reachable", NULL);
        return;
    }
    const struct rd_kafka_group_list *gl = NULL;
    char pos[512];
    positions_text(c, pos, sizeof(pos));
    rd_kafka_resp_err_t err = rd_kafka_list_groups(kconsumer_handle(c->kc), c->group, &gl, kafka_timeout(c));
    if (err) {
        checkout_reportf(&c->co, CHECKOUT_WARN, "group", NULL, "cannot describe consumer group %s: %s%s", c->group,
                         rd_kafka_err2str(err), pos);
    } else if (gl->group_cnt == 0 || !strcmp(gl->groups[0].state, "Dead")) {
        checkout_reportf(&c->co, CHECKOUT_OK, "group", NULL,
                         "consumer group %s does not exist yet: inboxd joins it when it starts%s", c->group, pos);
    } else if (gl->groups[0].err) {
        checkout_reportf(&c->co, CHECKOUT_WARN, "group", NULL, "consumer group %s: %s%s", c->group,
                         rd_kafka_err2str(gl->groups[0].err), pos);
    } else {
        const struct rd_kafka_group_info *g = &gl->groups[0];
        bool ours = !strcmp(g->protocol_type, "consumer") || !g->protocol_type[0];
        checkout_reportf(&c->co, ours ? CHECKOUT_OK : CHECKOUT_WARN, "group",
                         ours ? NULL : "use another kafka.group.id", "consumer group %s: %s, %d member%s%s%s%s",
                         c->group, g->state, g->member_cnt, g->member_cnt == 1 ? "" : "s",
                         g->member_cnt ? " (inboxd instances consuming now)" : "", ours ? "" : ", not a consumer group",
                         pos);
    }
    if (gl)
        rd_kafka_group_list_destroy(gl);
}

/* ---------------------------------------------------------------------------- HTTP push */

/* Connects to the service (TCP, and TLS for https:// with deliver.tls.*), sends nothing. */
static void check_url(ic_t *c) {
    if (!c->push)
        return;
    const inbox_deliver_options_t *d = c->conf.opts.deliver;
    CURL *e = curl_easy_init();
    if (!e) {
        checkout_report(&c->co, CHECKOUT_FAIL, "deliver_url", "out of memory", NULL);
        return;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    long timeout = d->timeout_ms < URL_TIMEOUT_MAX_MS ? d->timeout_ms : URL_TIMEOUT_MAX_MS;
    curl_easy_setopt(e, CURLOPT_URL, d->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    if (d->tls_ca && *d->tls_ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, d->tls_ca);
    if (d->tls_cert && *d->tls_cert) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, d->tls_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, d->tls_key);
    }
    CURLcode rc = curl_easy_perform(e);
    bool tls = !strncmp(d->url, "https:", 6);
    if (rc == CURLE_OK)
        checkout_reportf(&c->co, CHECKOUT_OK, "deliver_url", NULL, "%s accepts connections%s (nothing was sent)",
                         d->url, tls ? " and its TLS certificate verifies" : "");
    else
        checkout_reportf(
            &c->co, CHECKOUT_FAIL, "deliver_url",
            "start the service, or fix deliver.url (and deliver.tls.* for https); inboxd retries messages while it "
            "is away, but nothing is delivered",
            "cannot connect to %s: %s", d->url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    curl_easy_cleanup(e);
}

int inbox_check_run(const config_t *cfg, bool json, FILE *out) {
    ic_t c = {.cfg = cfg};
    if (checkout_init(&c.co, "inboxd", json, out) != 0) {
        log_error("out of memory");
        return CHECKOUT_EXIT_FAILED;
    }
    log_level_t level = log_get_level();
    if (level < LOG_DEBUG) /* librdkafka logs each failed connection attempt; the check line says it once */
        log_set_level(LOG_ERROR);
    check_config(&c);
    check_postgres(&c);
    check_table(&c, "inbox_table", table_cfg(&c), "inbox.table", &c.inbox);
    check_table(&c, "offsets_table", offsets_cfg(&c), "inbox.offsets.table", &c.offsets);
    check_functions(&c);
    check_grants(&c);
    check_statements(&c);
    check_kafka(&c);
    check_topics(&c);
    check_group(&c);
    check_url(&c);
    log_set_level(level);
    int rc = checkout_finish(&c.co);
    if (c.md)
        rd_kafka_metadata_destroy(c.md);
    kconsumer_destroy(c.kc);
    if (c.pg)
        PQfinish(c.pg);
    inbox_catalog_free(&c.inbox);
    inbox_catalog_free(&c.offsets);
    inbox_config_free(&c.conf);
    return rc;
}
