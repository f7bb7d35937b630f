/* kconf.h - librdkafka configuration shared by the producer (outboxd) and the consumer
 * (inboxd): defaults, the user's kafka.* properties, the bootstrap check, and librdkafka's
 * own log lines routed through log.h, and the pipe that wakes a poll() loop on queue events. */
#ifndef OUTBOXD_KCONF_H
#define OUTBOXD_KCONF_H

#include <stdbool.h>
#include <stddef.h>

#include <pthread.h>

#include <librdkafka/rdkafka.h>

#include "error.h"
#include "tls_verify.h"

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
 * it retries) as warnings; the programs report what stops them themselves. SSLCERTVRFY lines
 * (a certificate kconf_sec_verify rejected) are debug: kconf_sec_classify says it better. */
void kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* ---- security failures: classified by librdkafka's error code and OpenSSL's verify code ---- */

/* What one client (producer or consumer) knows about its security setup and its last failed
 * certificate verification. Embedded in the client; kconf_sec_init fills it. */
typedef struct kconf_sec {
    pthread_mutex_t mu; /* guards the fields below it: the verify callback runs on broker threads */
    long x509_error;    /* the last certificate verification that failed (X509_V_ERR_*), 0 = none */
    char broker[256];   /* its broker, "host:port" */
    tls_cert_info_t cert;
    /* The settings, read once (for the messages): */
    char bootstrap[256], protocol[32], ca_file[512], mechanism[64], username[128];
    bool verify; /* the client checks the brokers' certificates (TLS with verification on) */
} kconf_sec_t;

/* The client's certificate verify callback: librdkafka passes the client's opaque (which
 * rd_kafka_conf_set_opaque set); it calls kconf_sec_verify with the client's kconf_sec_t. */
typedef int (*kconf_verify_cb_t)(rd_kafka_t *rk, const char *broker_name, int32_t broker_id, int *x509_error, int depth,
                                 const char *buf, size_t size, char *errstr, size_t errstr_size, void *opaque);

/* Reads security.protocol, enable.ssl.certificate.verification, ssl.ca.location,
 * sasl.mechanisms, sasl.username and bootstrap.servers from conf (after kconf_apply) into s,
 * and installs cb when the client verifies its brokers over TLS. */
void kconf_sec_init(kconf_sec_t *s, rd_kafka_conf_t *conf, kconf_verify_cb_t cb);
void kconf_sec_destroy(kconf_sec_t *s); /* accepts NULL */

/* The verification step for certificate der/size at depth of broker_name's chain: keeps
 * OpenSSL's verdict (*x509_error, 0 = fine) and records a failure for kconf_sec_classify.
 * Returns 1 (accept) or 0 (reject, errstr filled). */
int kconf_sec_verify(kconf_sec_t *s, const char *broker_name, const int *x509_error, int depth, const char *der,
                     size_t size, char *errstr, size_t errstr_size);

/* Classifies a client error (an rd_kafka_resp_err_t). Returns true with *e (ERR_PERMANENT) for
 * RD_KAFKA_RESP_ERR__AUTHENTICATION (the broker refused the SASL mechanism or credentials) and
 * for RD_KAFKA_RESP_ERR__SSL after a failed certificate verification (wrong CA, host name not in
 * the certificate, expired; tls_verify.h); false for anything else (transient). */
bool kconf_sec_classify(kconf_sec_t *s, int err, err_t *e);

#endif
