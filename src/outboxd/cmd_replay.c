/* cmd_replay.c - `outboxd replay`: dead-lettered events back to their topics (see the header). */
#include "cmd_replay.h"

#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "clock.h"
#include "cmdout.h"
#include "kconf.h"
#include "kprops.h"
#include "kproducer.h"
#include "log.h"
#include "pg_preflight.h"
#include "pgconn.h"
#include "replay_plan.h"
#include "router.h"
#include "w2j_decode.h"

#define KAFKA_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 30000     /* reading: no record for this long ends the read */
#define DELIVERY_TIMEOUT_MS 30000 /* message.timeout.ms of the replay's producer (unless set) */
#define PG_TIMEOUT_MS 10000
#define HEADER_VALUE_MAX 2048
#define HEADERS_MAX 64

typedef enum { IT_PENDING, IT_REPLAYED, IT_WOULD, IT_FAILED, IT_IMPOSSIBLE } item_status_t;

/* One selected record and what became of it. */
typedef struct item {
    int32_t partition;
    int64_t offset;
    char *id, *topic, *error, *detail; /* owned; topic: where it goes (NULL: unknown) */
    dead_letter_reason_t reason;
    item_status_t status;
    int32_t to_partition;
    int64_t to_offset;
} item_t;

typedef struct rp {
    const relay_options_t *o;
    const char *dlq;
    FILE *out;
    bool dry, json;
    replay_selection_t sel;
    const char **ids;
    dead_letter_reason_t *reasons;
    rd_kafka_t *rk; /* the dead-letter topic's reader */
    const struct rd_kafka_metadata *md;
    kproducer_t *kp;
    const char **props; /* the producer's: message.timeout.ms, then the user's */
    char timeout[16];
    router_t *router;
    w2j_decoder_t *dec;
    int types; /* payload types read from PostgreSQL: 1 yes, -1 could not, 0 not yet */
    char types_err[512];
    item_t *items;
    size_t n, cap, pending;
} rp_t;

/* ---------------------------------------------------------------------------- arguments */

static int usage_error(const char *msg) {
    fprintf(stderr, "outboxd replay: %s\n", msg);
    return REPLAY_EXIT_ERROR;
}

static int parse_args(rp_t *p, char **args, int nargs) {
    p->ids = calloc((size_t)nargs + 1, sizeof(char *));
    p->reasons = calloc((size_t)nargs + 1, sizeof(*p->reasons));
    if (!p->ids || !p->reasons)
        return usage_error("out of memory");
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i];
        if (!strcmp(a, "--all")) {
            p->sel.all = true;
        } else if (!strcmp(a, "--dry-run")) {
            p->dry = true;
        } else if (!strcmp(a, "--json")) {
            p->json = true;
        } else if (!strcmp(a, "--id") || !strcmp(a, "--reason")) {
            bool id = !strcmp(a, "--id");
            int first = i + 1;
            while (i + 1 < nargs && args[i + 1][0] != '-') {
                const char *v = args[++i];
                if (id) {
                    p->ids[p->sel.nids++] = v;
                } else if (dead_letter_reason_parse(v, &p->reasons[p->sel.nreasons++]) != 0) {
                    fprintf(stderr,
                            "outboxd replay: unknown reason '%s': use unroutable, refused, unknown-topic, "
                            "not-authorized or too-large (the outboxd.reason header)\n",
                            v);
                    return REPLAY_EXIT_ERROR;
                }
            }
            if (i + 1 == first)
                return usage_error(id ? "--id needs one or more event ids" : "--reason needs one or more reasons");
        } else {
            fprintf(stderr, "outboxd replay: unknown argument '%s'\n", a);
            return REPLAY_EXIT_ERROR;
        }
    }
    p->sel.ids = p->ids;
    p->sel.reasons = p->reasons;
    if (p->sel.all == (p->sel.nids + p->sel.nreasons > 0))
        return usage_error("say which dead-letter records: --all, --id EVENT_ID..., or --reason REASON...");
    return REPLAY_EXIT_OK;
}

/* ---------------------------------------------------------------------------- Kafka */

/* A consumer with the user's kafka.* properties that apply to consumers (security, brokers):
 * it is assigned partitions and joins no group; it commits nothing. */
static rd_kafka_t *reader(const rp_t *p, err_t *e) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    static const char *const fixed[] = {"group.id",  "outboxd-replay",       "enable.auto.commit",
                                        "false",     "enable.partition.eof", "false",
                                        "client.id", "outboxd-replay",       NULL};
    for (int i = 0; fixed[i]; i += 2)
        if (kconf_set(conf, fixed[i], fixed[i + 1], e))
            goto fail;
    for (int i = 0; p->o->kafka_props && p->o->kafka_props[i]; i += 2)
        if (kprops_for_consumer(p->o->kafka_props[i]) && strcmp(p->o->kafka_props[i], "client.id") &&
            kconf_set(conf, p->o->kafka_props[i], p->o->kafka_props[i + 1], e))
            goto fail;
    rd_kafka_conf_set_log_cb(conf, kconf_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        err_set(e, ERR_PERMANENT, "", "fix the kafka.* settings", "cannot create the Kafka consumer: %s", why);
        goto fail;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static const struct rd_kafka_metadata_topic *find_topic(const rp_t *p, const char *topic) {
    for (int i = 0; p->md && i < p->md->topic_cnt; i++)
        if (!strcmp(p->md->topics[i].topic, topic) && !p->md->topics[i].err)
            return &p->md->topics[i];
    return NULL;
}

/* Assigns every partition of the dead-letter topic from its first to its last record (as
 * of now); *ends gets each partition's end. Returns the partition count (0: empty or missing),
 * or -1 with e. */
static int assign_all(rp_t *p, int64_t **ends, err_t *e) {
    const struct rd_kafka_metadata_topic *t = find_topic(p, p->dlq);
    if (!t)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(t->partition_cnt);
    *ends = calloc((size_t)t->partition_cnt + 1, sizeof(int64_t));
    int parts = 0;
    for (int i = 0; i < t->partition_cnt && *ends; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(p->rk, p->dlq, t->partitions[i].id, &lo, &hi, KAFKA_TIMEOUT_MS);
        if (err) {
            err_set(e, ERR_TRANSIENT, "", NULL, "cannot read the offsets of %s [%d]: %s", p->dlq, t->partitions[i].id,
                    rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        if (t->partitions[i].id >= 0 && t->partitions[i].id < t->partition_cnt) /* ids are 0..n-1 */
            (*ends)[t->partitions[i].id] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(l, p->dlq, t->partitions[i].id)->offset = lo;
            parts++;
        }
    }
    rd_kafka_resp_err_t err = parts ? rd_kafka_assign(p->rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        err_set(e, ERR_TRANSIENT, "", NULL, "cannot read %s: %s", p->dlq, rd_kafka_err2str(err));
        return -1;
    }
    return parts;
}

/* ---------------------------------------------------------------------------- items */

static item_t *add_item(rp_t *p, const rd_kafka_message_t *m, const dlq_record_t *r) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        item_t *grown = realloc(p->items, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        p->items = grown;
        p->cap = cap;
    }
    item_t *it = &p->items[p->n++];
    *it = (item_t){.partition = m->partition,
                   .offset = m->offset,
                   .id = r->id ? strdup(r->id) : NULL,
                   .topic = r->topic ? strdup(r->topic) : NULL,
                   .error = r->error ? strdup(r->error) : NULL,
                   .reason = replay_reason_of(r),
                   .status = IT_PENDING,
                   .to_partition = -1,
                   .to_offset = -1};
    return it;
}

static void set_detail(item_t *it, item_status_t st, const char *detail) {
    it->status = st;
    free(it->detail);
    it->detail = detail ? strdup(detail) : NULL;
}

static void on_delivery(void *opaque, const kproducer_delivery_t *d) {
    rp_t *p = opaque;
    if (d->seq < 1 || d->seq > p->n)
        return;
    item_t *it = &p->items[d->seq - 1];
    p->pending--;
    if (!d->err) {
        it->to_partition = d->partition;
        it->to_offset = d->offset;
        set_detail(it, IT_REPLAYED, NULL);
        return;
    }
    char fix[600] = "", msg[1400];
    const char *t = d->topic ? d->topic : "?";
    if (d->refusal == KPRODUCER_REFUSED_UNKNOWN_TOPIC)
        snprintf(fix, sizeof(fix),
                 ": the topic does not exist: create it (kafka-topics.sh --bootstrap-server ... --create --topic %s "
                 "--partitions N), then replay again",
                 t);
    else if (d->refusal == KPRODUCER_REFUSED_NOT_AUTHORIZED)
        snprintf(fix, sizeof(fix), ": grant WRITE and DESCRIBE on topic %s (kafka-acls.sh), then replay again", t);
    snprintf(msg, sizeof(msg), "Kafka refused it for topic %s: %s%s", t, d->errstr ? d->errstr : "error", fix);
    set_detail(it, IT_FAILED, msg);
}

/* ---------------------------------------------------------------------------- routing again */

/* The payload type of each outbox table, from PostgreSQL, once (a bytea payload arrives as
 * hex text in the wal2json record). 1, or -1 with p->types_err. */
static int read_payload_types(rp_t *p) {
    if (p->types)
        return p->types;
    err_t e;
    PGconn *conn = pgconn_connect_within(p->o->conninfo, "outboxd replay", PG_TIMEOUT_MS, &e);
    p->types = -1;
    if (!conn) {
        snprintf(p->types_err, sizeof(p->types_err), "%.500s", e.msg);
        return -1;
    }
    const char *required[PG_PREFLIGHT_COL_COUNT + 1];
    pg_preflight_required_columns(&p->o->router.columns, required);
    p->types = 1;
    for (size_t i = 0; i < router_table_count(p->router); i++) {
        const char *schema, *table;
        char types[PG_PREFLIGHT_COL_COUNT][PG_PREFLIGHT_TYPE_SIZE];
        bool has_headers;
        router_table_get(p->router, i, &schema, &table);
        if (pg_preflight_table(conn, schema, table, required, types, p->o->router.columns.headers, &has_headers, &e) !=
            REPL_OK) {
            snprintf(p->types_err, sizeof(p->types_err), "%.500s", e.msg);
            p->types = -1;
            break;
        }
        router_set_payload_type(p->router, i, router_payload_type_for(types[PG_PREFLIGHT_COL_PAYLOAD]));
    }
    PQfinish(conn);
    return p->types;
}

/* A backfilled row as dead-lettered ({"schema", "table", "columns": {name: text}}) as a
 * wal2json-shaped insert into *rec; cols (room for n) and the strings are borrowed from row. */
static int row_record(json_t *row, w2j_column_t *cols, size_t n, w2j_record_t *rec) {
    json_t *columns = json_object_get(row, "columns");
    const char *schema = json_string_value(json_object_get(row, "schema"));
    const char *table = json_string_value(json_object_get(row, "table"));
    if (!json_is_object(columns) || !schema || !table || json_object_size(columns) > n)
        return -1;
    *rec = (w2j_record_t){.action = W2J_INSERT, .schema = schema, .table = table, .columns = cols};
    const char *k;
    json_t *v;
    json_object_foreach(columns, k, v) {
        cols[rec->ncolumns++] = (w2j_column_t){
            .name = k, .value = json_string_value(v), .value_len = json_is_string(v) ? json_string_length(v) : 0};
    }
    return 0;
}

/* Routes the value of a record the router could not build with today's configuration. 0 with
 * *ev (borrowed from the router), or -1 with why. */
static int reroute(rp_t *p, const rd_kafka_message_t *m, outbox_event_t *ev, char *why, size_t why_size) {
    char err[1024];
    if (read_payload_types(p) < 0) {
        snprintf(why, why_size, "cannot read the outbox table's payload type from PostgreSQL, needed to route it: %s",
                 p->types_err);
        return -1;
    }
    w2j_record_t rec;
    w2j_column_t cols[64];
    const char *value = m->payload ? (const char *)m->payload : "";
    json_t *row = json_loadb(value, m->len, 0, NULL);
    int rc = -1;
    if (row && !json_object_get(row, "action")) {
        if (row_record(row, cols, sizeof(cols) / sizeof(cols[0]), &rec) != 0) {
            snprintf(why, why_size, "its value is neither a wal2json record nor a backfilled row");
            goto out;
        }
    } else if (w2j_decode(p->dec, value, m->len, &rec, err, sizeof(err)) != 0) {
        snprintf(why, why_size, "its value is not a wal2json record: %s", err);
        goto out;
    }
    switch (router_route(p->router, &rec, ev, err, sizeof(err))) {
    case ROUTER_EVENT:
        rc = 0;
        break;
    case ROUTER_SKIP:
        snprintf(why, why_size, "not an outbox record with this configuration (outbox.table, outbox.message.prefix)");
        break;
    case ROUTER_INVALID:
        snprintf(why, why_size, "still cannot be published: %s", err);
        break;
    }
out:
    json_decref(row); /* ev points into the router, not into row */
    return rc;
}

/* ---------------------------------------------------------------------------- one record */

/* The value of header name as a NUL-terminated copy into buf (NULL when absent). */
static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t size) {
    const void *v;
    size_t len;
    if (!h || rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return NULL;
    snprintf(buf, size, "%.*s", (int)(len < size ? len : size - 1), (const char *)v);
    return buf;
}

/* Produces ev (headers: its own without outboxd.*, then outboxd.replayed), waiting while the
 * producer's queue is full. */
static void produce_one(rp_t *p, item_t *it, outbox_event_t ev, const router_header_t *hdrs, size_t nh,
                        const char *from) {
    router_header_t out[HEADERS_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; i < nh && n < HEADERS_MAX; i++)
        if (strncmp(hdrs[i].name, "outboxd.", 8) != 0)
            out[n++] = hdrs[i];
    out[n++] = (router_header_t){"outboxd.replayed", from, strlen(from)};
    ev.headers = out;
    ev.nheaders = n;
    char err[1024];
    kproducer_result_t res;
    while ((res = kproducer_produce(p->kp, &ev, (uint64_t)(it - p->items) + 1, 0, err, sizeof(err))) ==
           KPRODUCER_QUEUE_FULL) {
        struct pollfd fd = {.fd = kproducer_fd(p->kp), .events = POLLIN};
        poll(&fd, 1, 100);
        kproducer_poll(p->kp, err, sizeof(err));
    }
    if (res == KPRODUCER_OK)
        p->pending++;
    else
        set_detail(it, IT_FAILED, err);
}

static void handle(rp_t *p, const rd_kafka_message_t *m) {
    rd_kafka_headers_t *h = NULL;
    rd_kafka_message_headers(m, &h);
    char idb[HEADER_VALUE_MAX], reb[64], tob[256], erb[HEADER_VALUE_MAX], vsb[32], why[1600];
    dlq_record_t r = {.id = header(h, router_id_header(p->router), idb, sizeof(idb)),
                      .reason = header(h, "outboxd.reason", reb, sizeof(reb)),
                      .topic = header(h, "outboxd.topic", tob, sizeof(tob)),
                      .error = header(h, "outboxd.error", erb, sizeof(erb)),
                      .value_size = header(h, "outboxd.value.size", vsb, sizeof(vsb))};
    if (!replay_selected(&p->sel, &r))
        return;
    item_t *it = add_item(p, m, &r);
    if (!it)
        return;
    char from[400];
    snprintf(from, sizeof(from), "%s/%" PRId32 "/%" PRId64, p->dlq, m->partition, m->offset);
    outbox_event_t ev = {0};
    switch (replay_plan(&r, why, sizeof(why))) {
    case REPLAY_IMPOSSIBLE:
        set_detail(it, IT_IMPOSSIBLE, why);
        return;
    case REPLAY_REROUTE:
        if (reroute(p, m, &ev, why, sizeof(why)) != 0) {
            set_detail(it, IT_FAILED, why);
            return;
        }
        free(it->topic);
        it->topic = strdup(ev.topic);
        if (p->dry)
            break;
        produce_one(p, it, ev, ev.headers, ev.nheaders, from);
        return;
    case REPLAY_AS_IS: {
        if (p->dry)
            break;
        router_header_t hdrs[HEADERS_MAX];
        size_t nh = 0;
        const char *name;
        const void *v;
        size_t len;
        while (h && nh < HEADERS_MAX && rd_kafka_header_get_all(h, nh, &name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR)
            hdrs[nh++] = (router_header_t){name, v, len};
        ev = (outbox_event_t){.id = r.id,
                              .topic = r.topic,
                              .key = m->key,
                              .key_len = m->key_len,
                              .value = m->payload ? (const char *)m->payload : "",
                              .value_len = m->len};
        produce_one(p, it, ev, hdrs, nh, from);
        return;
    }
    }
    /* --dry-run */
    bool exists = find_topic(p, it->topic) != NULL;
    snprintf(why, sizeof(why), "%s",
             exists ? "" : "the topic does not exist now: create it first, or let the broker do");
    set_detail(it, IT_WOULD, why[0] ? why : NULL);
}

/* Reads the dead-letter topic up to the ends noted at the start. Returns 0, or -1 with e. */
static int read_all(rp_t *p, const int64_t *ends, int nparts, err_t *e) {
    const struct rd_kafka_metadata_topic *t = find_topic(p, p->dlq);
    int done = 0; /* partitions read up to their end (only those with records were assigned) */
    bool *finished = calloc((size_t)t->partition_cnt + 1, sizeof(bool));
    int64_t idle_since = clock_now_ms();
    char err[512];
    while (finished && done < nparts) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->rk, 200);
        if (p->kp)
            kproducer_poll(p->kp, err, sizeof(err));
        if (!m) {
            if (clock_now_ms() - idle_since > IDLE_TIMEOUT_MS) {
                err_set(e, ERR_TRANSIENT, "", NULL, "no record of %s arrived for %d ms", p->dlq, IDLE_TIMEOUT_MS);
                free(finished);
                return -1;
            }
            continue;
        }
        idle_since = clock_now_ms();
        if (!m->err && m->partition < t->partition_cnt && !finished[m->partition]) {
            handle(p, m);
            if (m->offset + 1 >= ends[m->partition]) {
                finished[m->partition] = true;
                done++;
            }
        } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_warn("reading %s: %s", p->dlq, rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    free(finished);
    return 0;
}

/* ---------------------------------------------------------------------------- output */

static const char *status_name(item_status_t st) {
    switch (st) {
    case IT_REPLAYED:
        return "replayed";
    case IT_WOULD:
        return "would-replay";
    case IT_PENDING:
        return "unknown";
    default:
        return "not-replayed";
    }
}

static void print_text(const rp_t *p, const char *const *not_found, size_t nnf) {
    size_t ok = 0;
    for (size_t i = 0; i < p->n; i++) {
        const item_t *it = &p->items[i];
        ok += it->status == IT_REPLAYED || it->status == IT_WOULD;
        fprintf(p->out, "%-12s %s [%" PRId32 "] offset %" PRId64 ", event %s (%s)", status_name(it->status), p->dlq,
                it->partition, it->offset, it->id ? it->id : "(no id)", dead_letter_reason_name(it->reason));
        if (it->status == IT_REPLAYED)
            fprintf(p->out, " -> %s [%" PRId32 "] offset %" PRId64, it->topic, it->to_partition, it->to_offset);
        else if (it->status == IT_WOULD)
            fprintf(p->out, " -> %s", it->topic);
        if (it->detail)
            fprintf(p->out, ": %s", it->detail);
        fputc('\n', p->out);
    }
    for (size_t i = 0; i < nnf; i++)
        fprintf(p->out, "%-12s event %s: no dead-letter record with that id in %s\n", "not-found", not_found[i],
                p->dlq);
    fprintf(p->out, "%s %zu of %zu selected dead-letter record%s of %s%s%s\n", p->dry ? "would replay" : "replayed", ok,
            p->n, p->n == 1 ? "" : "s", p->dlq, p->dry ? " (dry run: nothing was sent)" : "",
            p->dry ? "" : "; the dead-letter topic keeps them (consumers deduplicate by the id header)");
}

static void print_json(const rp_t *p, const char *const *not_found, size_t nnf) {
    json_t *o = json_object(), *list = json_array(), *nf = json_array();
    size_t ok = 0;
    for (size_t i = 0; i < p->n; i++) {
        const item_t *it = &p->items[i];
        ok += it->status == IT_REPLAYED || it->status == IT_WOULD;
        json_t *r = json_object();
        json_object_set_new(r, "partition", json_integer(it->partition));
        json_object_set_new(r, "offset", json_integer(it->offset));
        json_object_set_new(r, "id", cmdout_jstr(it->id));
        json_object_set_new(r, "reason", json_string(dead_letter_reason_name(it->reason)));
        json_object_set_new(r, "error", cmdout_jstr(it->error));
        json_object_set_new(r, "topic", cmdout_jstr(it->topic));
        json_object_set_new(r, "status", json_string(status_name(it->status)));
        json_object_set_new(r, "detail", cmdout_jstr(it->detail));
        json_object_set_new(r, "to_partition", it->to_partition >= 0 ? json_integer(it->to_partition) : json_null());
        json_object_set_new(r, "to_offset", it->to_offset >= 0 ? json_integer(it->to_offset) : json_null());
        json_array_append_new(list, r);
    }
    for (size_t i = 0; i < nnf; i++)
        json_array_append_new(nf, cmdout_jstr(not_found[i]));
    json_object_set_new(o, "dead_letter_topic", cmdout_jstr(p->dlq));
    json_object_set_new(o, "dry_run", json_boolean(p->dry));
    json_object_set_new(o, "selected", json_integer((json_int_t)p->n));
    json_object_set_new(o, p->dry ? "would_replay" : "replayed", json_integer((json_int_t)ok));
    json_object_set_new(o, "records", list);
    json_object_set_new(o, "not_found", nf);
    cmdout_print_json(p->out, o);
}

/* Prints the outcome; the exit code. */
static int report(rp_t *p) {
    const char **not_found = calloc(p->sel.nids + 1, sizeof(char *));
    size_t nnf = 0;
    bool all_ok = true;
    for (size_t i = 0; not_found && i < p->sel.nids; i++) {
        bool seen = false;
        for (size_t k = 0; k < p->n && !seen; k++)
            seen = p->items[k].id && !strcmp(p->items[k].id, p->sel.ids[i]);
        if (!seen)
            not_found[nnf++] = p->sel.ids[i];
    }
    for (size_t i = 0; i < p->n; i++)
        all_ok = all_ok && (p->items[i].status == IT_REPLAYED || p->items[i].status == IT_WOULD);
    if (p->json)
        print_json(p, not_found, nnf);
    else
        print_text(p, not_found, nnf);
    fflush(p->out);
    free(not_found);
    return all_ok && nnf == 0 ? REPLAY_EXIT_OK : REPLAY_EXIT_PARTIAL;
}

/* ---------------------------------------------------------------------------- run */

static int start(rp_t *p, err_t *e) {
    char err[1024];
    p->router = router_new(&p->o->router, err, sizeof(err));
    p->dec = w2j_decoder_new();
    if (!p->router || !p->dec) {
        err_set(e, ERR_PERMANENT, "", NULL, "%s", p->router ? "out of memory" : err);
        return -1;
    }
    if (!(p->rk = reader(p, e)))
        return -1;
    rd_kafka_resp_err_t merr = rd_kafka_metadata(p->rk, 1, NULL, &p->md, KAFKA_TIMEOUT_MS);
    if (merr) {
        p->md = NULL;
        err_set(e, ERR_TRANSIENT, "", "start the broker or fix kafka.bootstrap.servers", "Kafka is not reachable (%s)",
                rd_kafka_err2str(merr));
        return -1;
    }
    if (p->dry)
        return 0;
    size_t np = 0;
    while (p->o->kafka_props && p->o->kafka_props[np])
        np++;
    p->props = calloc(np + 5, sizeof(char *));
    if (!p->props) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return -1;
    }
    snprintf(p->timeout, sizeof(p->timeout), "%d", DELIVERY_TIMEOUT_MS);
    /* A replay ends: records get a time limit, and a topic that does not exist is said after
     * 2 s, not 30 (the relay keeps librdkafka's 30 s: a topic auto-created after a Kafka outage
     * needs it). The user's own values still win. */
    p->props[0] = "message.timeout.ms";
    p->props[1] = p->timeout;
    p->props[2] = "topic.metadata.propagation.max.ms";
    p->props[3] = "2000";
    memcpy(p->props + 4, p->o->kafka_props, np * sizeof(char *));
    p->kp = kproducer_new(p->props, p->o->router.id_header, on_delivery, p, e);
    return p->kp ? 0 : -1;
}

static void finish(rp_t *p) {
    char err[512];
    int64_t until = clock_now_ms() + DELIVERY_TIMEOUT_MS + 5000;
    while (p->kp && p->pending > 0 && clock_now_ms() < until) {
        struct pollfd fd = {.fd = kproducer_fd(p->kp), .events = POLLIN};
        poll(&fd, 1, 200);
        kproducer_poll(p->kp, err, sizeof(err));
    }
}

int replay_run(const relay_options_t *opts, const char *dlq_topic, char **args, int nargs, FILE *out) {
    rp_t p = {.o = opts, .dlq = dlq_topic, .out = out};
    err_t e;
    char line[2048];
    int64_t *ends = NULL;
    int rc = parse_args(&p, args, nargs);
    if (rc != REPLAY_EXIT_OK)
        goto out;
    rc = REPLAY_EXIT_ERROR;
    if (!dlq_topic || !*dlq_topic) {
        log_error("outbox.dead_letter.topic is empty: name the dead-letter topic to replay from");
        goto out;
    }
    log_level_t level = log_get_level();
    if (level < LOG_DEBUG) /* librdkafka's own lines; the command says what failed */
        log_set_level(LOG_ERROR);
    int nparts = start(&p, &e) == 0 ? assign_all(&p, &ends, &e) : -1;
    if (nparts > 0 && read_all(&p, ends, nparts, &e) != 0)
        nparts = -1;
    finish(&p);
    log_set_level(level);
    if (nparts < 0) {
        log_error("%s", err_line(&e, line, sizeof(line)));
        goto out;
    }
    rc = report(&p);
out:
    if (p.rk) {
        rd_kafka_consumer_close(p.rk);
        if (p.md)
            rd_kafka_metadata_destroy(p.md);
        rd_kafka_destroy(p.rk);
    }
    kproducer_destroy(p.kp);
    for (size_t i = 0; i < p.n; i++) {
        free(p.items[i].id);
        free(p.items[i].topic);
        free(p.items[i].error);
        free(p.items[i].detail);
    }
    free(p.items);
    free(ends);
    free(p.props);
    free(p.ids);
    free(p.reasons);
    router_destroy(p.router);
    w2j_decoder_destroy(p.dec);
    return rc;
}
