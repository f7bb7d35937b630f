/* stream_connect.h - how the relay gets its replication stream: connect, check the server and
 * the outbox tables, find the slot and decide what to do about it (stream it, create it,
 * back-fill before creating it, stand by while another process streams it, or stop with the
 * fix), then START_REPLICATION with the output plugin's options (wal2json's add-tables, or
 * pgoutput's publication, made to fit the outbox tables first) from the right LSN. */
#ifndef OUTBOXD_STREAM_CONNECT_H
#define OUTBOXD_STREAM_CONNECT_H

#include <stdbool.h>
#include <stddef.h>

#include "cleanup.h"
#include "decoder.h"
#include "lsn.h"
#include "progress.h"
#include "repl_stream.h"
#include "router.h"

typedef struct stream_connect_options {
    const char *conninfo;       /* postgres.conninfo */
    const char *slot;           /* postgres.slot */
    bool create_slot;           /* postgres.slot.create */
    bool backfill;              /* outbox.backfill.where is set: a missing slot is created by a backfill */
    const char *message_prefix; /* outbox logical messages' prefix (add-msg-prefixes); NULL or "" = none */
    const router_columns_t *columns;
    const char *progress_table;    /* progress.table: the durable record; NULL or "" = none */
    bool recover;                  /* postgres.slot.on_lost = recover (else fail) */
    uint64_t recovery_margin_xids; /* recovery.margin.xids: republish this many xids more */
    bool failover;                 /* postgres.slot.failover: PostgreSQL 17+ failover slot */
    plugin_t plugin;               /* postgres.plugin */
    const char *publication;       /* postgres.publication (pgoutput) */
} stream_connect_options_t;

/* What to do about the slot, given what pg_replication_slots says about it. */
typedef enum {
    STREAM_SLOT_USE,      /* it exists, is ours and is free: stream it */
    STREAM_SLOT_STANDBY,  /* another process streams it: wait for it to let go */
    STREAM_SLOT_CREATE,   /* missing on a first start: create it (publishes what commits from now on) */
    STREAM_SLOT_BACKFILL, /* missing on a first start with outbox.backfill.where: back-fill, then create */
    STREAM_SLOT_RECOVER,  /* lost (missing or invalidated) after outboxd published from this database, as
                             the progress record says: republish from the record's horizon, then create */
    STREAM_SLOT_REFUSE    /* the user must act first (another plugin or database, lost while streamed,
                             postgres.slot.create = false) */
} stream_slot_action_t;

/* What stream_connect_open achieved. */
typedef enum {
    STREAM_CONNECT_STREAMING, /* the stream runs from *start */
    STREAM_CONNECT_BACKFILL,  /* connected and checked; the slot must be created by a backfill
                                 (backfill_publish_run) on this connection */
    STREAM_CONNECT_RECOVER,   /* connected and checked; the slot was lost (errstr says how): drop what is left
                                 of it and republish (stream_connect_recovery) on this connection */
    STREAM_CONNECT_STANDBY,   /* another process streams the slot (errstr names it): close, look again soon */
    STREAM_CONNECT_RETRY,     /* transient (errstr): close, back off, connect again */
    STREAM_CONNECT_FATAL      /* the user must fix something (errstr says what and how) */
} stream_connect_result_t;

typedef struct stream_connect stream_connect_t;

/* o and everything it points to (as router and cl) are borrowed for the object's lifetime;
 * router: the configured tables (each gets its payload type on every connect); cl: NULL, or
 * outbox.cleanup's tables to register. Returns NULL when out of memory. */
stream_connect_t *stream_connect_new(const stream_connect_options_t *o, router_t *router, cleanup_t *cl);
void stream_connect_destroy(stream_connect_t *sc); /* accepts NULL */

/* Connects rs, checks the server and the tables, decides about the slot (creating it when
 * that is the decision) and starts streaming from the later of confirmed (what the relay
 * confirmed) and the slot's confirmed_flush_lsn, into *start. had_stream: this process
 * streamed the slot before, so a missing slot is a loss, not a first start. The connection
 * stays open for STREAMING and BACKFILL; the caller closes it otherwise. */
stream_connect_result_t stream_connect_open(stream_connect_t *sc, repl_stream_t *rs, bool had_stream, lsn_t confirmed,
                                            lsn_t *start, char *errstr, size_t errstr_size);

/* The slot policy, pure (exported for its unit test): what to do about the slot o->slot as
 * slot describes it, for a connection to database db (NULL = unknown) on the server system_id
 * (IDENTIFY_SYSTEM; NULL = unknown), given the progress record rec (NULL = none). errstr gets
 * the reason for STANDBY and RECOVER and the error with its fix for REFUSE. */
stream_slot_action_t stream_connect_decide(const stream_connect_options_t *o, const repl_slot_info_t *slot,
                                           const char *db, bool had_stream, lsn_t confirmed,
                                           const progress_record_t *rec, const char *system_id, char *errstr,
                                           size_t errstr_size);

/* wal2json over partitioned outbox tables (as of the last connect): how many there are (0 with
 * none, and always with pgoutput, which publishes them through their root), their indexes
 * (router_table_get order) and the leaf partitions the stream reads (*leaves: 2 * *nleaves
 * strings, schema and name of each). All borrowed until the next connect. */
size_t stream_connect_partitioned(const stream_connect_t *sc, const size_t **indexes, const char *const **leaves,
                                  size_t *nleaves);

/* The server the last stream_connect_open reached: IDENTIFY_SYSTEM's system identifier and
 * timeline (borrowed; "" and 0 before the first connect). */
const char *stream_connect_system_id(const stream_connect_t *sc);
uint32_t stream_connect_timeline(const stream_connect_t *sc);

/* The progress record as of the last connect (loaded, or written when the slot was created);
 * NULL when there is none (no record yet, or progress.table is off or unusable). */
const progress_record_t *stream_connect_record(const stream_connect_t *sc);

/* For a backfill or recovery on rs (connected by stream_connect_open): samples the server
 * right before the new slot is created, so that the record written for the slot's
 * position has a valid horizon. Returns 0, or -1 (logged; the slot gets no record). */
int stream_connect_sample(stream_connect_t *sc, repl_stream_t *rs);

/* Writes the progress record for a slot just created at `at` on rs's server, with the
 * sample taken before (stream_connect_sample). Logged when it fails. */
void stream_connect_record_slot(stream_connect_t *sc, repl_stream_t *rs, lsn_t at);

/* After STREAM_CONNECT_RECOVER: the predicate selecting the outbox rows to republish
 * (progress_recovery_where, with a sample of rs's server; "true" when nothing better is
 * known) and the record it derives from (borrowed). Returns 0, or -1 with errstr. */
int stream_connect_recovery(stream_connect_t *sc, repl_stream_t *rs, char *where, size_t where_size,
                            const progress_record_t **rec, char *errstr, size_t errstr_size);

#endif
