/* repl_stream.h - the PostgreSQL side of the relay: a replication=database libpq connection,
 * slot lookup/creation, START_REPLICATION, non-blocking reads of XLogData and keepalive
 * messages, and standby status updates. */
#ifndef OUTBOXD_REPL_STREAM_H
#define OUTBOXD_REPL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "error.h"
#include "lsn.h"

/* Status of calls that talk to the server, decided by the server's SQLSTATE and the command
 * that failed (never by the words of its message, which follow lc_messages). Besides OK, RETRY
 * and FATAL, the situations a caller decides on have their own value; errstr always says what
 * happened and, where the user can do something, how to fix it. */
typedef enum {
    REPL_OK = 0,
    REPL_RETRY = 1,            /* transient (server down or restarting, connection lost): reconnect after backoff */
    REPL_FATAL = 2,            /* the user must fix something; errstr says what and how */
    REPL_SLOT_BUSY = 3,        /* START_REPLICATION: another process streams the slot (55006 object_in_use) */
    REPL_SLOT_MISSING = 4,     /* START_REPLICATION: the slot does not exist (42704 undefined_object) */
    REPL_SLOT_INVALIDATED = 5, /* the server removed WAL the slot needed: it can never stream again (permanent) */
    REPL_NO_FREE_SLOT = 6      /* CREATE_REPLICATION_SLOT: all replication slots are in use (53400
                                  configuration_limit_exceeded; permanent until one is dropped) */
} repl_status_t;

typedef enum {
    REPL_MSG_DATA = 'w',     /* XLogData: one output plugin message (a wal2json record, a pgoutput message) */
    REPL_MSG_KEEPALIVE = 'k' /* primary keepalive */
} repl_msg_kind_t;

typedef struct repl_msg {
    repl_msg_kind_t kind;
    lsn_t data_start;     /* w: LSN of the record */
    lsn_t wal_end;        /* w and k: the sender's position */
    int64_t send_time_us; /* server clock, microseconds since 2000-01-01 */
    bool reply_requested; /* k */
    const char *data;     /* w: payload, borrowed until the next repl_stream_read */
    size_t len;
} repl_msg_t;

typedef struct repl_slot_info {
    bool exists;
    bool active;
    bool lost;     /* wal_status = 'lost': invalidated, the server removed WAL it needed */
    bool failover; /* PostgreSQL 17+: synced to standbys that have sync_replication_slots */
    int active_pid;
    char plugin[64];
    char database[64];
    lsn_t confirmed_flush;
} repl_slot_info_t;

typedef struct repl_stream repl_stream_t;

repl_stream_t *repl_stream_new(void);
void repl_stream_destroy(repl_stream_t *rs); /* accepts NULL; closes the connection */

/* Connects with replication=database (conninfo: key=value or URI; borrowed) and sets the
 * session's DateStyle to ISO and TimeZone to UTC (wal2json's commit timestamps). */
repl_status_t repl_stream_connect(repl_stream_t *rs, const char *conninfo, char *errstr, size_t errstr_size);

/* Why the last repl_stream_connect that could not connect failed, as a typed value (borrowed,
 * valid until the next connect): code is the server's SQLSTATE, fix what errstr ended with. */
const err_t *repl_stream_connect_error(const repl_stream_t *rs);

/* Why the last slot command (create, start) or the stream failed, as a typed value (borrowed,
 * valid until the next failure): msg and fix are the two halves of the errstr it wrote. */
const err_t *repl_stream_last_error(const repl_stream_t *rs);
void repl_stream_close(repl_stream_t *rs);
bool repl_stream_connected(const repl_stream_t *rs);

/* The connection (borrowed), for simple-protocol SQL such as preflight checks; NULL when
 * closed. */
PGconn *repl_stream_conn(repl_stream_t *rs);

/* Looks the slot up in pg_replication_slots (PostgreSQL 13 or later: wal_status). */
repl_status_t repl_stream_slot_info(repl_stream_t *rs, const char *slot, repl_slot_info_t *info, char *errstr,
                                    size_t errstr_size);
/* IDENTIFY_SYSTEM: the server's system identifier (decimal text; a promoted standby keeps its
 * primary's) and its current timeline (a promotion starts a new one). */
repl_status_t repl_stream_identify(repl_stream_t *rs, char *system_id, size_t system_id_size, uint32_t *timeline,
                                   char *errstr, size_t errstr_size);
/* The server's WAL flush position as the last repl_stream_identify saw it (0: unknown). */
lsn_t repl_stream_identified_lsn(const repl_stream_t *rs);

/* ALTER_REPLICATION_SLOT slot (FAILOVER true): PostgreSQL 17+ syncs it to standbys with
 * sync_replication_slots = on, so a promoted standby has it. */
repl_status_t repl_stream_set_failover(repl_stream_t *rs, const char *slot, char *errstr, size_t errstr_size);

/* DROP_REPLICATION_SLOT slot (not WAIT): for a slot that was invalidated. A slot that no
 * longer exists is REPL_OK; one in use is REPL_SLOT_BUSY. */
repl_status_t repl_stream_drop_slot(repl_stream_t *rs, const char *slot, char *errstr, size_t errstr_size);

/* CREATE_REPLICATION_SLOT slot LOGICAL plugin; a slot that exists already (42710
 * duplicate_object: another instance created it first) is REPL_OK. Maps the known failures
 * (plugin not installed, not allowed by output_plugin_libraries, wal_level: REPL_FATAL; all
 * slots in use: REPL_NO_FREE_SLOT) to a one-line fix. */
repl_status_t repl_stream_create_slot(repl_stream_t *rs, const char *slot, const char *plugin, char *errstr,
                                      size_t errstr_size);

/* CREATE_REPLICATION_SLOT slot TEMPORARY LOGICAL plugin EXPORT_SNAPSHOT: the slot vanishes
 * when the connection closes; snapshot receives the exported snapshot's name (valid until
 * the next command on this connection) and *consistent the slot's start. */
repl_status_t repl_stream_create_temp_slot(repl_stream_t *rs, const char *slot, const char *plugin, char *snapshot,
                                           size_t snapshot_size, lsn_t *consistent, char *errstr, size_t errstr_size);

/* pg_copy_logical_replication_slot(src, dst, temporary => false): a permanent slot at src's
 * exact position (restart and confirmed LSN). */
repl_status_t repl_stream_copy_slot(repl_stream_t *rs, const char *src, const char *dst, char *errstr,
                                    size_t errstr_size);

/* START_REPLICATION SLOT slot LOGICAL start (options: NULL-terminated name, value pairs,
 * borrowed; plugin: the slot's output plugin, named in the fixes of failures). On success the connection is in CopyBoth
 * mode and non-blocking. Besides OK, RETRY and FATAL (the plugin and wal_level failures as for
 * repl_stream_create_slot): REPL_SLOT_BUSY, REPL_SLOT_MISSING, REPL_SLOT_INVALIDATED. */
repl_status_t repl_stream_start(repl_stream_t *rs, const char *slot, const char *plugin, lsn_t start,
                                const char *const *options, char *errstr, size_t errstr_size);

/* The socket to poll; -1 when closed. */
int repl_stream_fd(const repl_stream_t *rs);

/* Reads what the socket has (call when it is readable). Returns 0, or REPL_RETRY/REPL_FATAL
 * when the connection broke or the server ended the stream. */
repl_status_t repl_stream_consume(repl_stream_t *rs, char *errstr, size_t errstr_size);

/* Next complete message from what was consumed: 1 with *msg filled, 0 when none is
 * buffered, or -1 on error/end of stream with errstr and *why: REPL_SLOT_INVALIDATED when the
 * server ended the stream because the slot was invalidated (stop: reconnecting cannot help),
 * else REPL_RETRY (reconnect). */
int repl_stream_read(repl_stream_t *rs, repl_msg_t *msg, repl_status_t *why, char *errstr, size_t errstr_size);

/* Queues a standby status update: write, flush (= apply) positions. */
repl_status_t repl_stream_send_status(repl_stream_t *rs, lsn_t write, lsn_t flush, char *errstr, size_t errstr_size);
/* Sends queued output. Returns 0 when all was sent, 1 when some remains (poll for
 * writability), -1 on error. */
int repl_stream_flush(repl_stream_t *rs);

#endif
