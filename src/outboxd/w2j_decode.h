/* w2j_decode.h - decodes one wal2json format-version 2 record (one JSON object) into a
 * borrowed view: action, LSNs, table, columns, logical message; and a bytea column's hex
 * text into its bytes. Pure (jansson only). */
#ifndef OUTBOXD_W2J_DECODE_H
#define OUTBOXD_W2J_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

typedef enum {
    W2J_BEGIN = 'B',
    W2J_COMMIT = 'C',
    W2J_INSERT = 'I',
    W2J_UPDATE = 'U',
    W2J_DELETE = 'D',
    W2J_MESSAGE = 'M',
    W2J_TRUNCATE = 'T'
} w2j_action_t;

typedef struct w2j_column {
    const char *name;  /* borrowed */
    const char *value; /* borrowed, NUL-terminated text form; NULL when SQL NULL */
    size_t value_len;
} w2j_column_t;

typedef struct w2j_record {
    w2j_action_t action;
    uint32_t xid;           /* 0 when include-xids is off */
    lsn_t lsn;              /* B/C: commit record start; I/U/D/M: the change's own LSN */
    lsn_t nextlsn;          /* B/C: end of the commit record (the LSN to confirm); else 0 */
    const char *timestamp;  /* commit timestamp text ("2026-11-23 06:22:05.19+00") or NULL */
    int64_t commit_time_us; /* B: the same as microseconds since 1970-01-01 UTC when the decoder has it
                               as a number (pgoutput); 0: only the text */
    const char *schema;     /* I/U/D/T */
    const char *table;
    size_t ncolumns; /* I/U: new tuple columns */
    const w2j_column_t *columns;
    bool transactional;  /* M */
    const char *prefix;  /* M */
    const char *content; /* M: message content, NUL-terminated */
    size_t content_len;
} w2j_record_t;

typedef struct w2j_decoder w2j_decoder_t;

w2j_decoder_t *w2j_decoder_new(void);
void w2j_decoder_destroy(w2j_decoder_t *dec); /* accepts NULL */

/* Decodes buf[0..len) (not NUL-terminated). On success fills *out and returns 0; every
 * pointer in *out is borrowed from the decoder and valid until the next w2j_decode call on
 * it or its destruction. Values that wal2json sends as JSON numbers or booleans are given in
 * their JSON text form ("42", "true"). Returns -1 with errstr naming what is malformed. */
int w2j_decode(w2j_decoder_t *dec, const char *buf, size_t len, w2j_record_t *out, char *errstr, size_t errstr_size);

/* Finds a column by name in rec (NULL when absent). */
const w2j_column_t *w2j_column_find(const w2j_record_t *rec, const char *name);

/* Decodes a bytea column value as wal2json sends it: hex[0..n) holds hex digits (either
 * case), optionally after a leading \x (a domain over bytea keeps it; SQL's text form has
 * it). out must have room for n / 2 bytes; sets *out_len. Returns 0, or -1 on an odd number
 * of digits or a non-hex character, with *bad_pos = offset in hex of the problem (n for an
 * odd number of digits). Pure. */
int w2j_bytea_decode(const char *hex, size_t n, unsigned char *out, size_t *out_len, size_t *bad_pos);

#endif
