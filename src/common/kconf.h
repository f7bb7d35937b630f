/* kconf.h - librdkafka configuration shared by the producer (outboxd) and the consumer
 * (inboxd): defaults, the user's kafka.* properties, the bootstrap check, and librdkafka's
 * own log lines routed through log.h, and the pipe that wakes a poll() loop on queue events. */
#ifndef OUTBOXD_KCONF_H
#define OUTBOXD_KCONF_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "error.h"

/* Sets one property; errors read "kafka.<k>: <librdkafka's message>". Returns 0 or -1. */
int kconf_set(rd_kafka_conf_t *conf, const char *k, const char *v, err_t *e);

/* Sets defaults (NULL-terminated name, value pairs, borrowed) and then the user's props
 * (same form, kafka.* without the prefix; they win), copies bootstrap.servers (or
 * metadata.broker.list) into bootstrap, and fails when none was given, naming the
 * environment variable env_prefix + "KAFKA_BOOTSTRAP_SERVERS". Installs kconf_log.
 * Returns 0 or -1 with errstr. */
int kconf_apply(rd_kafka_conf_t *conf, const char *const *defaults, const char *const *props, char *bootstrap,
                size_t bootstrap_size, const char *env_prefix, err_t *e);

/* Wakes a poll() loop: makes queue write one byte to a new non-blocking pipe whenever an
 * event arrives, so the loop waits on pipefd[0]. pipefd must hold -1s on entry; both ends
 * are owned by the caller and closed by kconf_queue_unwatch. Returns 0, or -1 with e. */
int kconf_queue_watch(rd_kafka_queue_t *queue, int pipefd[2], err_t *e);

/* Undoes kconf_queue_watch: detaches and destroys queue (NULL: nothing to do), sets it to
 * NULL. Call kconf_pipe_close after the client handle is destroyed. */
void kconf_queue_unwatch(rd_kafka_queue_t **queue);

/* Closes both ends of a pipe made by kconf_queue_watch (-1: not open) and sets them to -1. */
void kconf_pipe_close(int pipefd[2]);

/* A property's current value as text into buf ("" if unknown); returns buf. */
const char *kconf_get(rd_kafka_conf_t *conf, const char *k, char *buf, size_t buf_size);

/* true/1 as librdkafka reads a boolean property. */
bool kconf_is_true(const char *v);

/* Asks for metadata without topics, which any live broker answers (librdkafka handles are
 * thread-safe). Returns true when a broker answered; otherwise false with the reason in
 * errstr. */
bool kconf_probe(rd_kafka_t *rk, int timeout_ms, char *errstr, size_t errstr_size);

/* librdkafka's log callback: its levels 0-2 as errors, 3-4 (ERR, WARNING: transient trouble
 * it retries) as warnings; the programs report what stops them themselves. */
void kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
