/* kconsumer.h - the Kafka side of inboxd: a librdkafka high-level consumer (consumer group,
 * no automatic offset commits) whose messages and rebalances arrive on a pollable fd. */
#ifndef OUTBOXD_KCONSUMER_H
#define OUTBOXD_KCONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "kmsg.h"

typedef struct kconsumer kconsumer_t;

/* Start at the group's committed offset, else at auto.offset.reset (librdkafka's
 * RD_KAFKA_OFFSET_INVALID). */
#define KCONSUMER_OFFSET_STORED (-1001)

/* A partition of a rebalance or a commit. topic borrowed. */
typedef struct kconsumer_tp {
    const char *topic;
    int32_t partition;
    int64_t offset;
} kconsumer_tp_t;

/* The group assigned partitions (called from inside kconsumer_next). Set tps[i].offset to
 * the offset to start at; it comes in as KCONSUMER_OFFSET_STORED. Return true to have the
 * new partitions paused right after the assignment (kconsumer_pause(false) resumes them). */
typedef bool (*kconsumer_assign_cb_t)(void *opaque, kconsumer_tp_t *tps, size_t n);

/* The group takes partitions away (called from inside kconsumer_next, and from
 * kconsumer_close), before they are unassigned: write what was consumed from them, commit.
 * lost: the group already gave them to another member (a commit will fail). */
typedef void (*kconsumer_revoke_cb_t)(void *opaque, const kconsumer_tp_t *tps, size_t n, bool lost);

/* kconsumer_next hands out a kmsg_t (kmsg.h), borrowed until the next kconsumer_next,
 * kconsumer_close or kconsumer_destroy. */

/* props: NULL-terminated name, value pairs from the user (kafka.* without the prefix),
 * borrowed. Enforced (a conflicting user value is an error): enable.auto.commit=false and
 * enable.auto.offset.store=false, because offsets are committed only after the database
 * commit. Defaults the user may override: group.id=inboxd, auto.offset.reset=earliest,
 * client.id=inboxd, enable.partition.eof=false. topics: subscribed to (borrowed; "^..." is a
 * regex). Returns NULL with errstr on a bad property. */
/* Builds (and drops) the consumer's configuration from props as kconsumer_new does, without
 * creating a client: the forbidden values, bootstrap.servers, group.id. Returns 0, or -1 with
 * *e, exactly when kconsumer_new would fail before it creates the client. */
int kconsumer_check_props(const char *const *props, err_t *e);

kconsumer_t *kconsumer_new(const char *const *props, const char *const *topics, size_t ntopics,
                           kconsumer_assign_cb_t assign_cb, kconsumer_revoke_cb_t revoke_cb, void *opaque, err_t *e);
/* Accepts NULL. Does not leave the group (call kconsumer_close first for a clean exit). */
void kconsumer_destroy(kconsumer_t *k);

/* Waits up to timeout_ms for a broker to answer a metadata request. Returns 0, or -1 with *e:
 * ERR_PERMANENT when the brokers refused the SASL credentials or failed certificate
 * verification (kconf_sec_classify: retrying cannot help), else ERR_TRANSIENT naming
 * bootstrap.servers. */
int kconsumer_check_connect(kconsumer_t *k, int timeout_ms, err_t *e);

/* Joins the group with the subscription. Returns 0 or -1 with errstr. */
int kconsumer_subscribe(kconsumer_t *k, char *errstr, size_t errstr_size);

/* Readable when messages, rebalances or errors are waiting: then call kconsumer_next until
 * it returns NULL (the fd fires again only after the queue was emptied). */
int kconsumer_fd(const kconsumer_t *k);

/* The next message, or NULL when none is waiting. Serves rebalances (the callbacks run in
 * here) and errors on the way. *fatal becomes true, with errstr, on a fatal consumer error;
 * stop then. */
const kmsg_t *kconsumer_next(kconsumer_t *k, bool *fatal, char *errstr, size_t errstr_size);

/* Pauses (true) or resumes (false) every assigned partition. Returns 0 or -1 with errstr. */
int kconsumer_pause(kconsumer_t *k, bool pause, char *errstr, size_t errstr_size);

/* Moves an assigned partition's position to offset; waits up to timeout_ms so that no
 * message fetched for the old position is delivered afterwards. Returns 0 or -1 with errstr
 * (the position is then unknown: seek again). */
int kconsumer_seek(kconsumer_t *k, const char *topic, int32_t partition, int64_t offset, int timeout_ms, char *errstr,
                   size_t errstr_size);

/* Commits offsets (each the next offset to read) for the group; async returns at once and
 * failures are logged. Returns 0 or -1 with errstr (synchronous commits only). */
int kconsumer_commit(kconsumer_t *k, const kconsumer_tp_t *tps, size_t n, bool async, char *errstr, size_t errstr_size);

/* Leaves the group: the revoke callback runs for what is assigned. Returns 0 or -1 with
 * errstr. */
int kconsumer_close(kconsumer_t *k, char *errstr, size_t errstr_size);

/* The effective group.id (borrowed). */
const char *kconsumer_group(const kconsumer_t *k);

/* The librdkafka handle (borrowed), for tests (mock cluster). */
void *kconsumer_handle(kconsumer_t *k);

#endif
