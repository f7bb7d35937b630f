/* fuzz_w2j_decode.c - libFuzzer target: one wal2json format-version 2 record, as the walsender
 * sends it, through the decoder and the router (default mapping, and a mapping with header
 * columns, a bytea payload and a template of three placeholders), as the relay does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "w2j_decode.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static w2j_decoder_t *dec;
static router_t *plain, *mapped;
static volatile size_t sink; /* reads every byte the router hands out (ASan checks the lengths) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char err[256];
    router_options_t o = {0};
    dec = w2j_decoder_new();
    plain = router_new(&o, err, sizeof(err));
    o.tables = "public.outbox, sales.\"Events\"";
    o.topic_template = "${aggregate_type}.${event_type}-${aggregate_id}";
    o.header_columns = "created_at:ts, aggregate_type";
    o.type_header = "";
    mapped = router_new(&o, err, sizeof(err));
    if (!dec || !plain || !mapped)
        abort();
    router_set_payload_type(mapped, 0, ROUTER_PAYLOAD_BYTEA);
    return 0;
}

static void touch(const char *p, size_t n) {
    size_t s = 0;
    for (size_t i = 0; p && i < n; i++)
        s += (unsigned char)p[i];
    sink += s;
}

static void route(router_t *r, const w2j_record_t *rec) {
    outbox_event_t ev;
    char err[512];
    if (router_route(r, rec, &ev, err, sizeof(err)) != ROUTER_EVENT)
        return;
    touch(ev.topic, strlen(ev.topic));
    touch(ev.key, ev.key_len);
    touch(ev.value, ev.value_len + 1); /* a NUL follows the value */
    touch(ev.id, ev.id ? strlen(ev.id) : 0);
    for (size_t i = 0; i < ev.nheaders; i++) {
        touch(ev.headers[i].name, strlen(ev.headers[i].name));
        touch(ev.headers[i].value, ev.headers[i].value_len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    w2j_record_t rec;
    char err[512];
    if (w2j_decode(dec, (const char *)data, size, &rec, err, sizeof(err)) != 0)
        return 0;
    for (size_t i = 0; i < rec.ncolumns; i++) {
        const w2j_column_t *c = &rec.columns[i];
        if (w2j_column_find(&rec, c->name) == NULL)
            abort(); /* every column can be found by its name */
        if (c->value) {
            unsigned char *out = malloc(c->value_len / 2 + 1);
            size_t n, bad;
            if (out && w2j_bytea_decode(c->value, c->value_len, out, &n, &bad) == 0 && n > c->value_len / 2)
                abort();
            free(out);
        }
    }
    route(plain, &rec);
    route(mapped, &rec);
    return 0;
}
