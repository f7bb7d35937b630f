/* inbox_batch.h - the pure core of inboxd: message ids, headers as JSON, the partition
 * positions that decide which consumed message is taken, the batch written in one
 * transaction, and its encoding as PostgreSQL binary arrays. No I/O. */
#ifndef OUTBOXD_INBOX_BATCH_H
#define OUTBOXD_INBOX_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmsg.h"



/* ---- message ids and headers -------------------------------------------------------------- */

/* True when p[0..len) is valid UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF) without NUL bytes: text PostgreSQL accepts in text and jsonb. */
bool inbox_is_text(const void *p, size_t len);

/* "\x" followed by the lower-case hex of data[0..len) (new string; NULL when out of memory). */
char *inbox_hex_text(const void *data, size_t len);

/* Longest message id stored as it is, in bytes. Longer ids would break the unique btree
 * index of inbox.message_id (an index row holds at most about 2.7 kB: SQLSTATE 54000). */
#define INBOX_MSGID_MAX 1024

/* SHA-256 of data[0..len) into out (libcrypto). Returns 0, or -1 when libcrypto failed
 * (out of memory). */
int inbox_sha256(const void *data, size_t len, unsigned char out[32]);

/* The message id (new string, caller frees; NULL when out of memory): the value of the
 * last header called id_header if it has one that is not empty; as is when it is text
 * (inbox_is_text), else "\x" followed by its bytes in lower-case hex. Without such a header:
 * "topic/partition/offset", e.g. "orders/2/1234". id_header NULL or "": always the latter.
 * An id from the header that would be longer than INBOX_MSGID_MAX bytes is
 * "sha256:" followed by the lower-case hex SHA-256 of the header value's bytes instead
 * (deterministic: copies of one message still deduplicate). */
char *inbox_msgid(const kmsg_t *m, const char *id_header);

/* The headers as a compact JSON object (new string, caller frees; NULL when out of memory),
 * "{}" when there are none. A value that is text becomes a JSON string, a null header JSON
 * null, any other value the string "\x<hex>"; a name that is not text is written as
 * "\x<hex>" as well. When a name repeats, the last header wins (Kafka's lastHeader). */
char *inbox_headers_json(const kmsg_header_t *h, size_t n);

/* ---- partition positions ------------------------------------------------------------------ */

typedef enum {
    INBOX_PART_READY = 0,  /* start position known: messages are taken */
    INBOX_PART_UNKNOWN = 1 /* assigned while the database was unreachable: position not loaded */
} inbox_part_state_t;

/* An assigned partition. next: offset of the next message to take (-1: none seen yet,
 * take whatever comes first). recorded: next offset known to be recorded in the database
 * (-1: unknown), what inboxd commits to Kafka; committed: what it last committed there
 * (-1: nothing yet). need_seek: messages were dropped while holding (database down,
 * position unknown); consumption must restart at next. */
typedef struct inbox_part {
    char *topic; /* owned */
    int32_t partition;
    inbox_part_state_t state;
    int64_t next;
    int64_t recorded;
    int64_t committed;
    bool need_seek;
} inbox_part_t;

typedef struct inbox_parts inbox_parts_t;

inbox_parts_t *inbox_parts_new(void);
void inbox_parts_destroy(inbox_parts_t *p); /* accepts NULL */

/* Adds (or resets) a partition with the given state and next offset (-1: none). Returns the
 * entry (borrowed, valid until the table changes) or NULL when out of memory. */
inbox_part_t *inbox_parts_add(inbox_parts_t *p, const char *topic, int32_t partition, inbox_part_state_t state,
                              int64_t next);
void inbox_parts_remove(inbox_parts_t *p, const char *topic, int32_t partition);
inbox_part_t *inbox_parts_find(inbox_parts_t *p, const char *topic, int32_t partition);
size_t inbox_parts_count(const inbox_parts_t *p);
inbox_part_t *inbox_parts_at(inbox_parts_t *p, size_t i);

typedef enum {
    INBOX_TAKE = 0,        /* add it to the batch (next moved past it) */
    INBOX_DROP_UNASSIGNED, /* its partition is not assigned (any more) */
    INBOX_DROP_SEEN,       /* offset before next: already taken (a redelivery after a seek) */
    INBOX_DROP_HELD,       /* holding: dropped, and the partition will seek back to next */
    INBOX_REGRESSED        /* offset before next on a partition that consumes from next: the log
                              went back (topic recreated, log truncated, out-of-range reset).
                              Not taken; nothing changed. */
} inbox_verdict_t;

/* Decides about one consumed message. hold: the database is unreachable (consumption is
 * paused; whatever still arrives is dropped and re-read later). A partition that is UNKNOWN
 * or needs a seek holds as well. Dropping a message the partition still needs sets
 * need_seek, and next to its offset if next was -1, so that nothing is skipped.
 *
 * An offset before next is a redelivery (INBOX_DROP_SEEN) only while the partition still
 * waits for its seek (UNKNOWN or need_seek: the consumer started at Kafka's committed offset,
 * which may lag the stored position). A READY partition without need_seek consumes from next
 * (assigned there, or seeked there), and Kafka hands out a partition's offsets in ascending
 * order: an offset before next then means the log itself went back, INBOX_REGRESSED (while
 * holding: dropped as INBOX_DROP_HELD with need_seek, so it is checked again after the seek). */
inbox_verdict_t inbox_parts_offer(inbox_parts_t *p, const char *topic, int32_t partition, int64_t offset, bool hold);

/* ---- the batch ---------------------------------------------------------------------------- */

typedef struct inbox_batch inbox_batch_t;

/* A partition's span in the batch: offsets of its first and last message. */
typedef struct inbox_span {
    const char *topic; /* borrowed from the batch */
    int32_t partition;
    int64_t first, last;
    size_t count;
} inbox_span_t;

inbox_batch_t *inbox_batch_new(void);
void inbox_batch_destroy(inbox_batch_t *b); /* accepts NULL */

/* Copies m into the batch with its message id (inbox_msgid with id_header) and headers
 * JSON. Messages of one partition must come in offset order. Returns 0 or -1 (out of
 * memory). */
int inbox_batch_add(inbox_batch_t *b, const kmsg_t *m, const char *id_header);

size_t inbox_batch_count(const inbox_batch_t *b);
/* Bytes of keys, payloads, ids and headers held. */
size_t inbox_batch_bytes(const inbox_batch_t *b);
void inbox_batch_clear(inbox_batch_t *b);
/* The message id of message i (borrowed). */
const char *inbox_batch_msgid(const inbox_batch_t *b, size_t i);

/* The partitions in the batch, sorted by topic then partition (the lock order of the
 * writer). Borrowed, valid until the batch changes; *n receives the count. NULL with
 * *n = 0 when the batch is empty or out of memory (then also inbox_batch_count > 0). */
const inbox_span_t *inbox_batch_spans(inbox_batch_t *b, size_t *n);

/* Marks every message of topic/partition with an offset below next_offset as already
 * recorded (it will not be inserted). Returns how many were newly marked. */
size_t inbox_batch_fence(inbox_batch_t *b, const char *topic, int32_t partition, int64_t next_offset);
/* Messages not marked by inbox_batch_fence. */
size_t inbox_batch_unfenced(const inbox_batch_t *b);
/* Clears every fence mark (a failed transaction is retried from scratch). */
void inbox_batch_unfence(inbox_batch_t *b);

/* Removes the messages of topic/partition (revoked while they could not be written).
 * Returns how many. */
size_t inbox_batch_drop_partition(inbox_batch_t *b, const char *topic, int32_t partition);

/* ---- PostgreSQL binary arrays --------------------------------------------------------------- */

/* Type oids of the array elements used by the writer. */
#define INBOX_OID_BYTEA 17u
#define INBOX_OID_INT8 20u
#define INBOX_OID_INT4 23u
#define INBOX_OID_TEXT 25u
#define INBOX_OID_JSONB 3802u

/* A one-dimensional array in PostgreSQL's binary send format (array_recv): int32 ndim,
 * int32 has-nulls flag, uint32 element oid, then per dimension int32 size and int32 lower
 * bound (1), then per element int32 length (-1: NULL) and the element's binary form, all
 * integers in network byte order. text: the bytes; bytea: the bytes; int4/int8: big-endian;
 * jsonb: version byte 1 then the JSON text. An empty array has ndim 0 and no dimensions. */
typedef struct inbox_pgarray {
    char *data; /* owned; valid after inbox_pgarray_finish */
    size_t len, cap;
    uint32_t oid;
    int32_t n;
    bool has_null;
    bool oom;
} inbox_pgarray_t;

void inbox_pgarray_init(inbox_pgarray_t *a, uint32_t oid);
void inbox_pgarray_free(inbox_pgarray_t *a); /* frees data; the struct may be re-initialised */
/* Appends an element; data NULL is SQL NULL. For jsonb pass the JSON text: the version
 * byte is added. */
void inbox_pgarray_add(inbox_pgarray_t *a, const void *data, size_t len);
void inbox_pgarray_add_int4(inbox_pgarray_t *a, int32_t v);
void inbox_pgarray_add_int8(inbox_pgarray_t *a, int64_t v);
/* Writes the header. Returns 0, or -1 when an allocation failed along the way. */
int inbox_pgarray_finish(inbox_pgarray_t *a);

/* The columns of the insert: message_id text[], topic text[], partition int4[],
 * offset int8[], key bytea[], headers jsonb[], payload bytea[], in batch order, unfenced
 * messages only. */
enum {
    INBOX_COL_MSGID,
    INBOX_COL_TOPIC,
    INBOX_COL_PARTITION,
    INBOX_COL_OFFSET,
    INBOX_COL_KEY,
    INBOX_COL_HEADERS,
    INBOX_COL_PAYLOAD,
    INBOX_NCOLS
};

/* Fills cols (INBOX_NCOLS arrays, initialised here; free each with inbox_pgarray_free).
 * Returns the number of rows, or -1 when out of memory. */
long inbox_batch_encode(const inbox_batch_t *b, inbox_pgarray_t cols[INBOX_NCOLS]);
/* The same for the unfenced messages number from .. to-1 (counted among unfenced messages, in
 * batch order; to is capped at inbox_batch_unfenced). */
long inbox_batch_encode_range(const inbox_batch_t *b, size_t from, size_t to, inbox_pgarray_t cols[INBOX_NCOLS]);

/* Where unfenced message number k (as in inbox_batch_encode_range) came from; pointers
 * borrowed from the batch. Returns false when there is no such message. */
typedef struct inbox_row_ref {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *msgid;
} inbox_row_ref_t;
bool inbox_batch_unfenced_row(const inbox_batch_t *b, size_t k, inbox_row_ref_t *out);

/* ---- operator hints ------------------------------------------------------------------------- */

/* Writes into buf the SQL statement that sets a partition's stored position, for error
 * messages that tell an operator how to reset or skip ("UPDATE <table> SET next_offset = N
 * WHERE consumer_group = '...' AND topic = '...' AND partition = P;", quotes doubled). table is
 * written as it is (already quoted by the server). */
void inbox_position_sql(char *buf, size_t size, const char *table, const char *group, const char *topic,
                        int32_t partition, int64_t next_offset);

/* ---- durations ---------------------------------------------------------------------------- */

/* Parses a duration: "0", a number of seconds ("3600"), or one or more number+unit parts
 * ("7d", "12h", "1d12h", "90 min", "2 weeks"). Units: s, sec, second(s); m, min, minute(s);
 * h, hour(s); d, day(s); w, week(s). Returns 0 with *seconds, or -1. */
int inbox_duration_parse(const char *s, long long *seconds);

/* Splits a comma-separated list, trimming blanks around each item; empty items are
 * skipped. Returns a new NULL-terminated array of new strings (free with
 * inbox_list_free) and *n, or NULL when out of memory. */
char **inbox_list_split(const char *s, size_t *n);
void inbox_list_free(char **list); /* accepts NULL */

#endif
