/* checkpoint.c - the exactly-once checkpoint record: its JSON form, its partition, and whether
 * it fits the stream a relay is about to read (see checkpoint.h). Pure. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define CHECKPOINT_VERSION 1

int checkpoint_encode(const checkpoint_t *c, char *buf, size_t size) {
    char lb[LSN_FMT_SIZE];
    json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s}", "version", CHECKPOINT_VERSION, "database", c->database,
                          "slot", c->slot, "system_id", c->system_id, "timeline", (json_int_t)c->timeline, "lsn",
                          lsn_format(c->lsn, lb));
    if (!o)
        return -1;
    if (c->written_at[0])
        json_object_set_new(o, "written_at", json_string(c->written_at));
    size_t n = json_dumpb(o, buf, size, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (n == 0 || n >= size)
        return -1;
    buf[n] = '\0';
    return (int)n;
}

static int get_str(json_t *o, const char *key, char *out, size_t size, char *errstr, size_t errstr_size) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || json_string_length(v) >= size) {
        snprintf(errstr, errstr_size, "checkpoint record: \"%s\" %s", key,
                 !v                  ? "is missing"
                 : json_is_string(v) ? "is too long"
                                     : "is not a string");
        return -1;
    }
    snprintf(out, size, "%s", json_string_value(v));
    return 0;
}

int checkpoint_decode(const char *value, size_t len, checkpoint_t *out, char *errstr, size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *o = json_loadb(value ? value : "", value ? len : 0, 0, &je);
    int rc = -1;
    char lsn[LSN_FMT_SIZE + 8];
    if (!json_is_object(o)) {
        snprintf(errstr, errstr_size, "checkpoint record is not a JSON object");
        goto out;
    }
    json_t *ver = json_object_get(o, "version"), *tli = json_object_get(o, "timeline");
    if (!json_is_integer(ver) || json_integer_value(ver) != CHECKPOINT_VERSION) {
        snprintf(errstr, errstr_size, "checkpoint record of an unknown version (this outboxd writes version %d)",
                 CHECKPOINT_VERSION);
        goto out;
    }
    if (!json_is_integer(tli) || json_integer_value(tli) < 0 || json_integer_value(tli) > (json_int_t)UINT32_MAX) {
        snprintf(errstr, errstr_size, "checkpoint record: \"timeline\" is not a timeline");
        goto out;
    }
    out->timeline = (uint32_t)json_integer_value(tli);
    if (get_str(o, "database", out->database, sizeof(out->database), errstr, errstr_size) ||
        get_str(o, "slot", out->slot, sizeof(out->slot), errstr, errstr_size) ||
        get_str(o, "system_id", out->system_id, sizeof(out->system_id), errstr, errstr_size) ||
        get_str(o, "lsn", lsn, sizeof(lsn), errstr, errstr_size))
        goto out;
    if (lsn_parse(lsn, &out->lsn) != 0) {
        snprintf(errstr, errstr_size, "checkpoint record: \"lsn\" is not an LSN");
        goto out;
    }
    if (json_object_get(o, "written_at"))
        get_str(o, "written_at", out->written_at, sizeof(out->written_at), errstr, errstr_size);
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* Java's org.apache.kafka.common.utils.Utils.murmur2, in unsigned arithmetic (same bits). */
int32_t checkpoint_murmur2(const void *key, size_t len) {
    const unsigned char *d = key;
    const uint32_t m = 0x5bd1e995u;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t n4 = len / 4;
    for (size_t i = 0; i < n4; i++) {
        const unsigned char *p = d + i * 4;
        uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    const unsigned char *tail = d + (len & ~(size_t)3);
    switch (len % 4) {
    case 3:
        h ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        h ^= tail[0];
        h *= m;
        break;
    default:
        break;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

int32_t checkpoint_partition(const char *key, size_t len, int32_t partitions) {
    if (partitions <= 0)
        return 0;
    return (int32_t)(((uint32_t)checkpoint_murmur2(key, len) & 0x7fffffffu) % (uint32_t)partitions);
}

checkpoint_fit_t checkpoint_fit(const checkpoint_t *c, const char *database, const char *slot, const char *system_id,
                                uint32_t timeline, lsn_t wal_end, char *why, size_t why_size) {
    char a[LSN_FMT_SIZE], b[LSN_FMT_SIZE];
    if (strcmp(c->database, database) != 0 || strcmp(c->slot, slot) != 0) {
        snprintf(why, why_size,
                 "the checkpoint under this transactional.id was written for database \"%s\", slot \"%s\" (this "
                 "relay streams database \"%s\", slot \"%s\"): two relays share delivery.transactional.id",
                 c->database, c->slot, database, slot);
        return CHECKPOINT_OTHER_STREAM;
    }
    if (strcmp(c->system_id, system_id) != 0) {
        snprintf(why, why_size,
                 "the checkpoint was written for PostgreSQL system %s, this server is system %s (another or a "
                 "rebuilt server): its LSNs say nothing here",
                 c->system_id, system_id);
        return CHECKPOINT_OTHER_SYSTEM;
    }
    if (c->timeline != timeline) {
        snprintf(why, why_size,
                 "the checkpoint was written on timeline %" PRIu32 ", the server is on timeline %" PRIu32
                 " (a failover since): LSNs after the switch may name other transactions",
                 c->timeline, timeline);
        return CHECKPOINT_OTHER_TIMELINE;
    }
    if (wal_end && c->lsn > wal_end) {
        snprintf(why, why_size,
                 "the checkpoint (%s) is beyond the server's WAL (%s): the server was restored to an earlier "
                 "state and will reuse those LSNs",
                 lsn_format(c->lsn, a), lsn_format(wal_end, b));
        return CHECKPOINT_AHEAD;
    }
    if (why_size)
        why[0] = '\0';
    return CHECKPOINT_FITS;
}

const char *checkpoint_default_txn_id(const char *database, const char *slot, char *buf, size_t size) {
    snprintf(buf, size, "outboxd-%s-%s", database, slot);
    return buf;
}
