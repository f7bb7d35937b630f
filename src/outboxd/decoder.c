/* decoder.c - postgres.plugin's names and the decode call over the wal2json and pgoutput
 * decoders (see decoder.h). */
#include "decoder.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pgo_decode.h"

struct decoder {
    plugin_t plugin;
    w2j_decoder_t *w2j; /* PLUGIN_WAL2JSON */
    pgo_decoder_t *pgo; /* PLUGIN_PGOUTPUT */
    char *json;         /* the last decoder_as_wal2json rendering (pgoutput) */
};

int plugin_parse(const char *name, plugin_t *out) {
    if (name && !strcmp(name, "wal2json"))
        *out = PLUGIN_WAL2JSON;
    else if (name && !strcmp(name, "pgoutput"))
        *out = PLUGIN_PGOUTPUT;
    else
        return -1;
    return 0;
}

const char *plugin_name(plugin_t p) { return p == PLUGIN_PGOUTPUT ? "pgoutput" : "wal2json"; }

decoder_t *decoder_new(plugin_t p) {
    decoder_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->plugin = p;
    if (p == PLUGIN_PGOUTPUT ? !(d->pgo = pgo_decoder_new()) : !(d->w2j = w2j_decoder_new())) {
        free(d);
        return NULL;
    }
    return d;
}

void decoder_destroy(decoder_t *d) {
    if (!d)
        return;
    w2j_decoder_destroy(d->w2j);
    pgo_decoder_destroy(d->pgo);
    free(d->json);
    free(d);
}

plugin_t decoder_plugin(const decoder_t *d) { return d->plugin; }

void decoder_reset(decoder_t *d) {
    if (d->pgo)
        pgo_decoder_reset(d->pgo);
}

int decoder_decode(decoder_t *d, const char *buf, size_t len, lsn_t data_start, w2j_record_t *out, char *errstr,
                   size_t errstr_size) {
    if (d->pgo)
        return pgo_decode(d->pgo, buf, len, data_start, out, errstr, errstr_size);
    return w2j_decode(d->w2j, buf, len, out, errstr, errstr_size) == 0 ? 1 : -1;
}

/* s[0..n) as a JSON string (may hold NUL bytes), or JSON null for NULL. */
static json_t *text_or_null(const char *s, size_t n) { return s ? json_stringn_nocheck(s, n) : json_null(); }

static int set_lsn(json_t *o, const char *key, lsn_t lsn) {
    char b[LSN_FMT_SIZE];
    return json_object_set_new(o, key, json_string(lsn_format(lsn, b)));
}

/* rec as wal2json format-version 2 writes it (the keys w2j_decode reads; values as JSON
 * strings, which it reads back as the same text). NULL when out of memory. */
static json_t *as_wal2json(const w2j_record_t *rec) {
    json_t *o = json_object();
    char action[2] = {(char)rec->action, '\0'};
    int bad = !o || json_object_set_new(o, "action", json_string(action)) ||
              json_object_set_new(o, "xid", rec->xid ? json_integer(rec->xid) : json_null()) ||
              json_object_set_new(o, "timestamp",
                                  text_or_null(rec->timestamp, rec->timestamp ? strlen(rec->timestamp) : 0)) ||
              set_lsn(o, "lsn", rec->lsn);
    if (!bad && rec->action == W2J_MESSAGE)
        bad = json_object_set_new(o, "transactional", json_boolean(rec->transactional)) ||
              json_object_set_new(o, "prefix", text_or_null(rec->prefix, rec->prefix ? strlen(rec->prefix) : 0)) ||
              json_object_set_new(o, "content", text_or_null(rec->content, rec->content_len));
    if (!bad && rec->schema)
        bad = json_object_set_new(o, "schema", json_string(rec->schema)) ||
              json_object_set_new(o, "table", json_string(rec->table ? rec->table : ""));
    if (!bad && (rec->action == W2J_INSERT || rec->action == W2J_UPDATE)) {
        json_t *cols = json_array();
        bad = !cols || json_object_set_new(o, "columns", cols);
        for (size_t i = 0; !bad && i < rec->ncolumns; i++) {
            const w2j_column_t *c = &rec->columns[i];
            json_t *col = json_object();
            bad = !col || json_array_append_new(cols, col) || json_object_set_new(col, "name", json_string(c->name)) ||
                  json_object_set_new(col, "value", text_or_null(c->value, c->value_len));
        }
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int decoder_as_wal2json(decoder_t *d, const w2j_record_t *rec, const char *buf, size_t len, const char **out,
                        size_t *out_len) {
    if (!d->pgo) { /* wal2json's own record */
        *out = buf;
        *out_len = len;
        return 0;
    }
    json_t *o = as_wal2json(rec);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    if (!text)
        return -1;
    free(d->json);
    d->json = text;
    *out = text;
    *out_len = strlen(text);
    return 0;
}
