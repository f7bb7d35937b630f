/* decoder.c - postgres.plugin's names and the decode call over the wal2json and pgoutput
 * decoders (see decoder.h). */
#include "decoder.h"

#include <stdlib.h>
#include <string.h>

#include "pgo_decode.h"

struct decoder {
    plugin_t plugin;
    w2j_decoder_t *w2j; /* PLUGIN_WAL2JSON */
    pgo_decoder_t *pgo; /* PLUGIN_PGOUTPUT */
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
