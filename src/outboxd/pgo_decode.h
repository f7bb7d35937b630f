/* pgo_decode.h - decodes one pgoutput message (logical replication protocol version 1, the
 * binary stream of PostgreSQL's built-in output plugin) into the same decoded record the
 * wal2json decoder produces (w2j_record_t), so that the router and the relay do not know which
 * plugin sent it. Keeps the state the protocol needs across messages: the relations announced
 * so far and the open transaction's xid and commit time. Pure (no I/O). */
#ifndef OUTBOXD_PGO_DECODE_H
#define OUTBOXD_PGO_DECODE_H

#include <stddef.h>

#include "lsn.h"
#include "w2j_decode.h"

typedef struct pgo_decoder pgo_decoder_t;

/* Returns NULL when out of memory. */
pgo_decoder_t *pgo_decoder_new(void);
void pgo_decoder_destroy(pgo_decoder_t *dec); /* accepts NULL */

/* Forgets the relations and the open transaction: call when a new stream starts (the server
 * announces every relation again on each connection). */
void pgo_decoder_reset(pgo_decoder_t *dec);

/* Decodes buf[0..len), the payload of one XLogData message whose dataStart is data_start.
 * Returns 1 with *out filled (Begin, Commit, Insert, Update, Delete, Truncate, Message: the
 * same fields wal2json's records give, see below), 0 when the message only fed the decoder
 * (Relation, Type, Origin: *out is zeroed), or -1 with errstr naming what is malformed or
 * unsupported. Every pointer in *out is borrowed from the decoder and valid until the next
 * pgo_decode or pgo_decoder_reset on it or its destruction.
 *
 * So that a record is byte for byte what the wal2json path gives for the same row:
 *   - B/C: lsn = the commit record's start, nextlsn = its end; timestamp = the commit time as
 *     PostgreSQL prints a timestamptz in UTC ("2026-11-23 06:27:54.167436+00", trailing zeros
 *     of the fraction dropped, no fraction when it is zero); the open transaction's xid and
 *     timestamp are repeated on its I and M records, as wal2json does.
 *   - I/U/D: lsn = data_start; the new tuple's columns (I, U) with their text values; a bool
 *     column reads "true"/"false" (wal2json sends JSON booleans), a bytea column its hex digits
 *     without "\x" (wal2json strips it; a domain over bytea keeps it on both paths).
 *   - M: transactional flag, prefix, content; a non-transactional message has xid 0 and no
 *     timestamp (wal2json: null).
 * Not the same: numeric, float4 and float8 values are PostgreSQL's exact text here, while
 * wal2json sends JSON numbers (12.50 comes out as 12.5 there, NaN as NULL). */
int pgo_decode(pgo_decoder_t *dec, const char *buf, size_t len, lsn_t data_start, w2j_record_t *out, char *errstr,
               size_t errstr_size);

/* Formats us, microseconds since 2000-01-01 00:00 UTC (the protocol's clock), as PostgreSQL
 * prints a timestamptz with TimeZone = UTC into out (at least 40 bytes). Pure. */
void pgo_format_timestamp(int64_t us, char *out, size_t out_size);

#endif
