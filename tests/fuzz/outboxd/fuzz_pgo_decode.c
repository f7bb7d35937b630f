/* fuzz_pgo_decode.c - libFuzzer target: a stream of pgoutput messages (protocol 1, as the
 * walsender sends them: Relation before the rows that use it) through the decoder and the
 * router, as the relay does. The decoder keeps state across messages, so one input is a
 * whole stream: each message framed by its length (2 bytes, big-endian), decoded in order
 * on a decoder reset at the start. Seeds: tests/data/pgoutput/stream.pgo framed so
 * (scripts/fuzz.sh). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgo_decode.h"
#include "router.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pgo_decoder_t *dec;
static router_t *router;
static volatile size_t sink; /* reads every byte handed out (ASan checks the lengths) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char err[256];
    router_options_t o = {0};
    o.header_columns = "created_at:ts, aggregate_type";
    dec = pgo_decoder_new();
    router = router_new(&o, err, sizeof(err));
    if (!dec || !router)
        abort();
    return 0;
}

static void touch(const char *p, size_t n) {
    size_t s = 0;
    for (size_t i = 0; p && i < n; i++)
        s += (unsigned char)p[i];
    sink += s;
}

static void check(const w2j_record_t *rec) {
    touch(rec->timestamp, rec->timestamp ? strlen(rec->timestamp) : 0);
    touch(rec->schema, rec->schema ? strlen(rec->schema) : 0);
    touch(rec->table, rec->table ? strlen(rec->table) : 0);
    for (size_t i = 0; i < rec->ncolumns; i++) {
        const w2j_column_t *c = &rec->columns[i];
        touch(c->name, strlen(c->name));
        touch(c->value, c->value ? c->value_len : 0);
        if (w2j_column_find(rec, c->name) == NULL)
            abort(); /* every column can be found by its name */
    }
    outbox_event_t ev;
    char err[512];
    if (router_route(router, rec, &ev, err, sizeof(err)) != ROUTER_EVENT)
        return;
    touch(ev.topic, strlen(ev.topic));
    touch(ev.key, ev.key_len);
    touch(ev.value, ev.value_len);
    for (size_t i = 0; i < ev.nheaders; i++) {
        touch(ev.headers[i].name, strlen(ev.headers[i].name));
        touch(ev.headers[i].value, ev.headers[i].value_len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pgo_decoder_reset(dec);
    lsn_t lsn = 0x4000000;
    for (size_t at = 0; at + 2 <= size;) {
        size_t n = (size_t)data[at] << 8 | data[at + 1];
        at += 2;
        if (n > size - at)
            n = size - at;
        /* A copy of exactly n bytes: reading past a message's end is what ASan should see. */
        char *msg = malloc(n ? n : 1);
        if (!msg)
            abort();
        memcpy(msg, data + at, n);
        at += n;
        w2j_record_t rec;
        char err[512] = "";
        int rc = pgo_decode(dec, msg, n, lsn, &rec, err, sizeof(err));
        if (rc == 1)
            check(&rec);
        else if (rc == -1 && err[0] == '\0')
            abort(); /* a failure always says what is wrong */
        free(msg);
        lsn += 0x100;
    }
    return 0;
}
