/* inbox_writer.h - the PostgreSQL side of inboxd: writes a batch and the partitions'
 * positions in one transaction (ON CONFLICT (message_id) DO NOTHING), loads positions for
 * newly assigned partitions, deletes expired done rows. */
#ifndef OUTBOXD_INBOX_WRITER_H
#define OUTBOXD_INBOX_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inbox_batch.h"

typedef struct inbox_writer inbox_writer_t;

typedef enum {
    INBOX_WRITER_OK = 0,
    INBOX_WRITER_RETRY = 1, /* the database is unreachable or restarting: try again later */
    INBOX_WRITER_FATAL = 2  /* needs a fix (missing table, permissions, bad conninfo, ...) */
} inbox_writer_status_t;

typedef struct inbox_writer_options {
    const char *conninfo;      /* libpq conninfo or URI */
    const char *table;         /* inbox table as written in the config ("public.inbox") */
    const char *offsets_table; /* offsets table ("public.inbox_offsets") */
    const char *group;         /* consumer group: the offsets rows' consumer_group */
} inbox_writer_options_t;

/* Copies the options; connects to nothing. NULL when out of memory. */
inbox_writer_t *inbox_writer_new(const inbox_writer_options_t *o);
void inbox_writer_destroy(inbox_writer_t *w); /* accepts NULL */

/* Connects, checks both tables (their columns, the unique message_id) and prepares the
 * statements. RETRY: the server is not reachable now; FATAL: errstr says what to fix. Unless
 * it returns OK, the writer is left disconnected.
 *
 * Every function below that returns RETRY leaves the writer disconnected as well (the next
 * attempt connects anew: the connection may be broken, or reach a standby that became
 * read-only in a failover); FATAL keeps a healthy connection. */
inbox_writer_status_t inbox_writer_connect(inbox_writer_t *w, char *errstr, size_t errstr_size);
bool inbox_writer_connected(const inbox_writer_t *w);

/* The tables as resolved by the server, quoted ("public.inbox"); valid once connected
 * (before: as configured). Borrowed. */
const char *inbox_writer_table(const inbox_writer_t *w);
const char *inbox_writer_offsets_table(const inbox_writer_t *w);

typedef struct inbox_write_result {
    size_t messages;  /* in the batch */
    size_t fenced;    /* before the stored position of their partition: recorded before */
    size_t inserted;  /* new rows */
    size_t conflicts; /* message id already in the inbox (ON CONFLICT DO NOTHING) */
} inbox_write_result_t;

/* One transaction: locks the offsets rows of the batch's partitions (creating them; in
 * topic/partition order), marks the messages before each stored position as recorded
 * (inbox_batch_fence), inserts the rest with ON CONFLICT (message_id) DO NOTHING, moves
 * each position to at least its last offset + 1, commits. Writers of one partition are
 * serialised on its offsets row, so a message is never recorded twice and ids grow with
 * offsets. On RETRY or FATAL nothing was written (or, if the connection broke during
 * COMMIT, possibly everything: a retry then finds it all fenced). The batch's fence marks
 * are reset at the start.
 *
 * One exception: when PostgreSQL refuses a row for its values (a data, constraint, program
 * limit or trigger error), the batch is bisected in a second transaction, the messages
 * before the first refused one are recorded (with their positions; res->inserted counts
 * them) and FATAL's errstr names the refused message (topic, partition, offset, id), the
 * error and the UPDATE of the offsets table that skips it. */
inbox_writer_status_t inbox_writer_write(inbox_writer_t *w, inbox_batch_t *b, inbox_write_result_t *res, char *errstr,
                                         size_t errstr_size);

/* Sets a partition's stored position to next_offset, also backwards (a recreated topic
 * adopted with inbox.on_offset_regression = reset); creates the row if missing. One
 * statement, outside any batch transaction. */
inbox_writer_status_t inbox_writer_set_position(inbox_writer_t *w, const char *topic, int32_t partition,
                                                int64_t next_offset, char *errstr, size_t errstr_size);

/* Stored positions of n partitions: next[i] = the next offset, or -1 without a row. */
inbox_writer_status_t inbox_writer_load_offsets(inbox_writer_t *w, const char *const *topics, const int32_t *partitions,
                                                size_t n, int64_t *next, char *errstr, size_t errstr_size);

/* Deletes up to limit done rows processed more than older_than_s seconds ago; *deleted. */
inbox_writer_status_t inbox_writer_retention(inbox_writer_t *w, long long older_than_s, int limit, long long *deleted,
                                             char *errstr, size_t errstr_size);

#endif
