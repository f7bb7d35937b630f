/* checkpoint_reader.h - delivery.guarantee = exactly-once: reading the checkpoint back. A
 * read_committed librdkafka consumer (no consumer group, nothing committed) that finds the last
 * committed checkpoint record of a transactional.id, and creates the checkpoint topic when it is
 * missing. Its handle also serves the relay's Kafka probe and startup check.
 *
 * The calls block (metadata, topic creation, fetching): the relay runs them on its background
 * job thread. The handle is thread-safe; one read at a time. */
#ifndef OUTBOXD_CHECKPOINT_READER_H
#define OUTBOXD_CHECKPOINT_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "error.h"

typedef struct checkpoint_reader checkpoint_reader_t;

/* props: the user's kafka.* properties (borrowed; only the connection and security ones are
 * used: bootstrap.servers, security.protocol, ssl.*, sasl.*, socket.*, ...). topic: the
 * checkpoint topic (copied). Returns NULL with *e. */
checkpoint_reader_t *checkpoint_reader_new(const char *const *props, const char *topic, err_t *e);
void checkpoint_reader_destroy(checkpoint_reader_t *r); /* accepts NULL */

/* The librdkafka handle (borrowed), for the Kafka probe. */
void *checkpoint_reader_handle(checkpoint_reader_t *r);

/* Waits up to timeout_ms for a broker to answer. Returns 0 or -1 with *e. */
int checkpoint_reader_check_connect(checkpoint_reader_t *r, int timeout_ms, err_t *e);

/* The checkpoint topic's partition count; creates the topic when it does not exist (one
 * partition, cleanup.policy=compact, the broker's replication factor). Returns the count, or -1
 * with *e (permanent when the topic may not be created: the fix says how to create it). */
int checkpoint_reader_partitions(checkpoint_reader_t *r, int timeout_ms, err_t *e);

/* Reads the newest committed record keyed key in partition (read_committed: records of aborted
 * or open transactions are never seen; it waits, up to timeout_ms, for the partition's open
 * transactions to end). cancelled(arg), when given, is asked between fetches. Returns 1 with
 * *out and *offset, 0 when there is none (or the newest is a tombstone or unreadable: logged),
 * -1 with *e. */
int checkpoint_reader_read(checkpoint_reader_t *r, const char *key, int32_t partition, int timeout_ms,
                           bool (*cancelled)(void *), void *arg, checkpoint_t *out, int64_t *offset, err_t *e);

#endif
