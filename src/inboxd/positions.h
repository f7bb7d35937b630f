/* positions.h - the assigned partitions and their positions: which consumed message is taken
 * into the batch, which is dropped (and why), and when a partition's log went back; and the
 * SQL an operator runs to set a stored position. Pure: no I/O. */
#ifndef OUTBOXD_POSITIONS_H
#define OUTBOXD_POSITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    POSITION_READY = 0,  /* start position known: messages are taken */
    POSITION_UNKNOWN = 1 /* assigned while the database was unreachable: position not loaded */
} position_state_t;

/* An assigned partition. next: offset of the next message to take (-1: none seen yet,
 * take whatever comes first). recorded: next offset known to be recorded in the database
 * (-1: unknown), what inboxd commits to Kafka; committed: what it last committed there
 * (-1: nothing yet). origin: where this assignment started recording the partition: the
 * stored position it loaded, else the first offset it took (-1: neither yet). need_seek:
 * messages were dropped while holding (database down, position unknown) or the position was
 * moved (positions_resync); consumption must restart at next. */
typedef struct position {
    char *topic; /* owned */
    int32_t partition;
    position_state_t state;
    int64_t next;
    int64_t recorded;
    int64_t committed;
    int64_t origin;
    bool need_seek;
} position_t;

typedef struct positions positions_t;

positions_t *positions_new(void);       /* NULL when out of memory */
void positions_destroy(positions_t *p); /* accepts NULL */

/* Adds (or resets) a partition with the given state and next offset (-1: none; it is also
 * recorded and origin). Returns the
 * entry (borrowed, valid until the table changes) or NULL when out of memory. */
position_t *positions_add(positions_t *p, const char *topic, int32_t partition, position_state_t state, int64_t next);
void positions_remove(positions_t *p, const char *topic, int32_t partition);
/* The entry of topic/partition (borrowed, valid until the table changes), or NULL. */
position_t *positions_find(positions_t *p, const char *topic, int32_t partition);
size_t positions_count(const positions_t *p);
position_t *positions_at(positions_t *p, size_t i); /* borrowed; NULL when i >= count */

typedef enum {
    POSITION_TAKE = 0,        /* add it to the batch (next moved past it) */
    POSITION_DROP_UNASSIGNED, /* its partition is not assigned (any more) */
    POSITION_DROP_SEEN,       /* offset before next: already taken (a redelivery after a seek) */
    POSITION_DROP_HELD,       /* holding: dropped, and the partition will seek back to next */
    POSITION_REGRESSED        /* offset before next on a partition that consumes from next: the log
                                 went back (topic recreated, log truncated, out-of-range reset).
                                 Not taken; nothing changed. */
} position_verdict_t;

/* Decides about one consumed message. hold: the database is unreachable (consumption is
 * paused; whatever still arrives is dropped and re-read later). A partition that is UNKNOWN
 * or needs a seek holds as well. Dropping a message the partition still needs sets
 * need_seek, and next to its offset if next was -1, so that nothing is skipped.
 *
 * An offset before next is a redelivery (POSITION_DROP_SEEN) only while the partition still
 * waits for its seek (UNKNOWN or need_seek: the consumer started at Kafka's committed offset,
 * which may lag the stored position). A READY partition without need_seek consumes from next
 * (assigned there, or seeked there), and Kafka hands out a partition's offsets in ascending
 * order: an offset before next then means the log itself went back, POSITION_REGRESSED (while
 * holding: dropped as POSITION_DROP_HELD with need_seek, so it is checked again after the
 * seek). */
position_verdict_t positions_offer(positions_t *p, const char *topic, int32_t partition, int64_t offset, bool hold);

/* Compares a READY partition with its stored position as a new database connection reads
 * it (stored; -1: no row), before anything is written on that connection. Equal to recorded:
 * nothing changes (the unwritten messages stay valid). Otherwise the database wins: the last
 * transactions were lost (a failover to a standby that had not received them, a restore from
 * a backup), or another writer moved the position. next and recorded become stored (without
 * a row: next becomes origin, where this assignment started, and recorded -1), committed -1
 * (so that Kafka's committed offset follows, also backwards) and need_seek is set. Returns
 * true when it changed: the caller drops the partition's unwritten messages, which are read
 * again. *rewound: how many offsets that recorded covered are not recorded in the database
 * (recorded - the new next; 0 when the database is ahead). */
bool positions_resync(position_t *p, int64_t stored, int64_t *rewound);

/* Writes into buf the SQL statement that sets a partition's stored position, for error
 * messages that tell an operator how to reset or skip ("UPDATE <table> SET next_offset = N
 * WHERE consumer_group = '...' AND topic = '...' AND partition = P;", quotes doubled). table is
 * written as it is (already quoted by the server). Always NUL-terminates buf (size > 0). */
void positions_set_sql(char *buf, size_t size, const char *table, const char *group, const char *topic,
                       int32_t partition, int64_t next_offset);

#endif
