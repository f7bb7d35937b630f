/* decoder.h - the output plugin the relay streams with (postgres.plugin: wal2json or pgoutput)
 * and one decode call for either plugin's messages, giving the same decoded record
 * (w2j_record_t) to the router. Pure. */
#ifndef OUTBOXD_DECODER_H
#define OUTBOXD_DECODER_H

#include <stdbool.h>
#include <stddef.h>

#include "lsn.h"
#include "w2j_decode.h"

typedef enum {
    PLUGIN_WAL2JSON = 0, /* JSON records (format-version 2), filtered by add-tables */
    PLUGIN_PGOUTPUT = 1  /* PostgreSQL's built-in binary protocol, filtered by a publication */
} plugin_t;

/* "wal2json" or "pgoutput" into *out. Returns 0, or -1 for another name. */
int plugin_parse(const char *name, plugin_t *out);
/* The plugin's name as PostgreSQL knows it (pg_replication_slots.plugin). */
const char *plugin_name(plugin_t p);

typedef struct decoder decoder_t;

/* Returns NULL when out of memory. */
decoder_t *decoder_new(plugin_t p);
void decoder_destroy(decoder_t *d); /* accepts NULL */
plugin_t decoder_plugin(const decoder_t *d);

/* A new stream starts: forget what the last one announced (pgoutput's relations). */
void decoder_reset(decoder_t *d);

/* Decodes the payload buf[0..len) of one XLogData message starting at data_start. Returns 1
 * with *out filled (borrowed from the decoder until its next call), 0 when the message only
 * fed the decoder (pgoutput's Relation, Type, Origin), or -1 with errstr. */
int decoder_decode(decoder_t *d, const char *buf, size_t len, lsn_t data_start, w2j_record_t *out, char *errstr,
                   size_t errstr_size);

/* The message buf[0..len) that decoded into rec, as a wal2json format-version 2 record: what
 * a dead-letter record carries when no Kafka record could be built (and what `outboxd replay`
 * routes again). wal2json: buf itself. pgoutput: rec rendered as wal2json would (column values
 * as JSON strings), in a buffer the decoder owns until its next decoder_as_wal2json or its
 * destruction. Sets *out and *out_len; returns 0, or -1 when out of memory. */
int decoder_as_wal2json(decoder_t *d, const w2j_record_t *rec, const char *buf, size_t len, const char **out,
                        size_t *out_len);

#endif
