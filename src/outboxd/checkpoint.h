/* checkpoint.h - delivery.guarantee = exactly-once: the checkpoint record that every Kafka
 * transaction of the relay carries, what it says and when a relay may trust it. Pure: no I/O.
 *
 * The record goes to delivery.checkpoint.topic (compacted), keyed by the transactional.id, to
 * the partition Java's default partitioner picks for that key. Its value is one JSON object:
 *   {"version":1,"database":"app","slot":"outboxd","system_id":"7301...","timeline":1,
 *    "lsn":"0/16B3748","written_at":"2026-12-04T09:30:12.345Z"}
 * It says: every PostgreSQL transaction of that database whose commit record ends at or before
 * lsn, on that server (system identifier) and timeline, is in Kafka (committed together with
 * the record). A relay that starts reads the last committed record and skips the transactions
 * whose commit record starts before lsn, which PostgreSQL re-sends when the slot is behind. */
#ifndef OUTBOXD_CHECKPOINT_H
#define OUTBOXD_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lsn.h"

#define CHECKPOINT_NAME_SIZE 128

typedef struct {
    char database[CHECKPOINT_NAME_SIZE];
    char slot[CHECKPOINT_NAME_SIZE];
    char system_id[24];
    uint32_t timeline;
    lsn_t lsn;
    char written_at[40];
} checkpoint_t;

/* The record's value (JSON, NUL-terminated) into buf. Returns its length, or -1 when buf is
 * too small. written_at is taken from c as it is ("" omits it). */
int checkpoint_encode(const checkpoint_t *c, char *buf, size_t size);

/* Parses a record's value. Returns 0, or -1 with errstr (not JSON, a field missing or of the
 * wrong type, an unknown version). */
int checkpoint_decode(const char *value, size_t len, checkpoint_t *out, char *errstr, size_t errstr_size);

/* Kafka's murmur2 of key, as Java's Utils.murmur2 computes it. */
int32_t checkpoint_murmur2(const void *key, size_t len);

/* The partition of key among partitions, as Java's default partitioner picks it
 * (toPositive(murmur2(key)) % partitions). */
int32_t checkpoint_partition(const char *key, size_t len, int32_t partitions);

/* Whether a checkpoint read from Kafka describes the stream this relay is about to read. */
typedef enum {
    CHECKPOINT_FITS,           /* same database, slot, server and timeline, and not ahead of its WAL */
    CHECKPOINT_OTHER_STREAM,   /* another database or slot wrote under this transactional.id */
    CHECKPOINT_OTHER_SYSTEM,   /* another PostgreSQL server (or a rebuilt one): LSNs do not compare */
    CHECKPOINT_OTHER_TIMELINE, /* a failover since: the old timeline's LSNs may name other transactions */
    CHECKPOINT_AHEAD           /* beyond the server's WAL: a restored server; its LSNs will be reused */
} checkpoint_fit_t;

/* Compares c with the server the relay streams from (database and slot it streams; system_id
 * and timeline from IDENTIFY_SYSTEM; wal_end: the server's WAL position then, 0 = unknown).
 * why gets one sentence for anything but CHECKPOINT_FITS. */
checkpoint_fit_t checkpoint_fit(const checkpoint_t *c, const char *database, const char *slot, const char *system_id,
                                uint32_t timeline, lsn_t wal_end, char *why, size_t why_size);

/* The default transactional.id: "outboxd-<database>-<slot>" into buf; returns buf. */
const char *checkpoint_default_txn_id(const char *database, const char *slot, char *buf, size_t size);

#endif
