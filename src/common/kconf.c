/* kconf.c - librdkafka configuration and queue wake-ups shared by outboxd's producer and
 * inboxd's consumer. */
#include "kconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "log.h"

void kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    log_level_t l = level <= 2 ? LOG_ERROR : level <= 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    /* A certificate our verify callback rejected (kconf_sec_verify): the client reports it
     * itself, with the cause and the fix (kconf_sec_classify). */
    if (fac && !strcmp(fac, "SSLCERTVRFY"))
        l = LOG_DEBUG;
    log_msg(l, "kafka %s: %s", fac, buf);
}

/* A property whose value must never be shown: its name says password, secret or key, as in
 * config_dump (sasl.password, sasl.oauthbearer.client.secret, ssl.key.pem). */
static bool sensitive(const char *k) {
    return strcasestr(k, "password") || strcasestr(k, "secret") || strcasestr(k, "key");
}

/* Replaces every occurrence of v in s (size bytes) by "***". */
static void redact(char *s, size_t size, const char *v) {
    size_t vl = strlen(v);
    char *p;
    while (vl > 0 && (p = strstr(s, v)) != NULL) {
        size_t tail = strlen(p + vl);
        if ((size_t)(p - s) + 3 + tail + 1 > size)
            break;
        memmove(p + 3, p + vl, tail + 1);
        memcpy(p, "***", 3);
    }
}

int kconf_set(rd_kafka_conf_t *conf, const char *k, const char *v, err_t *e) {
    char why[512];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        if (sensitive(k))
            redact(why, sizeof(why), v); /* librdkafka quotes a value it refuses */
        err_set(e, ERR_PERMANENT, "", "fix or remove that kafka.* setting (a librdkafka client property)",
                "kafka.%s: %s", k, why);
        return -1;
    }
    return 0;
}

int kconf_apply(rd_kafka_conf_t *conf, const char *const *defaults, const char *const *props, char *bootstrap,
                size_t bootstrap_size, const char *env_prefix, err_t *e) {
    bootstrap[0] = '\0';
    for (int i = 0; defaults && defaults[i]; i += 2)
        if (kconf_set(conf, defaults[i], defaults[i + 1], e))
            return -1;
    for (int i = 0; props && props[i]; i += 2) {
        if (!strcmp(props[i], "bootstrap.servers") || !strcmp(props[i], "metadata.broker.list"))
            snprintf(bootstrap, bootstrap_size, "%s", props[i + 1]);
        if (kconf_set(conf, props[i], props[i + 1], e))
            return -1;
    }
    if (!bootstrap[0]) {
        char fix[160];
        snprintf(fix, sizeof(fix),
                 "add kafka.bootstrap.servers = host:9092 to the config (or %sKAFKA_BOOTSTRAP_SERVERS)", env_prefix);
        err_set(e, ERR_PERMANENT, "", fix, "kafka.bootstrap.servers is not set");
        return -1;
    }
    rd_kafka_conf_set_log_cb(conf, kconf_log);
    return 0;
}

int kconf_queue_watch(rd_kafka_queue_t *queue, int pipefd[2], err_t *e) {
    if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        err_set(e, ERR_TRANSIENT, "", NULL, "pipe: %s", strerror(errno));
        return -1;
    }
    rd_kafka_queue_io_event_enable(queue, pipefd[1], "1", 1);
    return 0;
}

void kconf_queue_unwatch(rd_kafka_queue_t **queue) {
    if (!*queue)
        return;
    rd_kafka_queue_io_event_enable(*queue, -1, NULL, 0);
    rd_kafka_queue_destroy(*queue);
    *queue = NULL;
}

void kconf_pipe_close(int pipefd[2]) {
    for (int i = 0; i < 2; i++)
        if (pipefd[i] >= 0) {
            close(pipefd[i]);
            pipefd[i] = -1;
        }
}

const char *kconf_get(rd_kafka_conf_t *conf, const char *k, char *buf, size_t buf_size) {
    size_t size = buf_size;
    if (rd_kafka_conf_get(conf, k, buf, &size) != RD_KAFKA_CONF_OK)
        buf[0] = '\0';
    return buf;
}

bool kconf_is_true(const char *v) { return !strcasecmp(v, "true") || !strcmp(v, "1"); }

bool kconf_probe(rd_kafka_t *rk, int timeout_ms, char *errstr, size_t errstr_size) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
    if (!ok)
        snprintf(errstr, errstr_size, "%s", err ? rd_kafka_err2str(err) : "no broker in the metadata");
    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}

/* ---- security failures ------------------------------------------------------------------- */

void kconf_sec_init(kconf_sec_t *s, rd_kafka_conf_t *conf, kconf_verify_cb_t cb) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    char verify[16];
    kconf_get(conf, "bootstrap.servers", s->bootstrap, sizeof(s->bootstrap));
    kconf_get(conf, "security.protocol", s->protocol, sizeof(s->protocol));
    kconf_get(conf, "ssl.ca.location", s->ca_file, sizeof(s->ca_file));
    kconf_get(conf, "sasl.mechanisms", s->mechanism, sizeof(s->mechanism));
    kconf_get(conf, "sasl.username", s->username, sizeof(s->username));
    kconf_get(conf, "enable.ssl.certificate.verification", verify, sizeof(verify));
    bool tls = !strcasecmp(s->protocol, "ssl") || !strcasecmp(s->protocol, "sasl_ssl");
    s->verify = tls && kconf_is_true(verify);
    if (s->verify && cb)
        rd_kafka_conf_set_ssl_cert_verify_cb(conf, cb);
}

void kconf_sec_destroy(kconf_sec_t *s) {
    if (s)
        pthread_mutex_destroy(&s->mu);
}

int kconf_sec_verify(kconf_sec_t *s, const char *broker_name, const int *x509_error, int depth, const char *der,
                     size_t size, char *errstr, size_t errstr_size) {
    pthread_mutex_lock(&s->mu);
    if (*x509_error == 0) {
        if (depth == 0)
            s->x509_error = 0; /* a broker's certificate passed: earlier failures are history */
        pthread_mutex_unlock(&s->mu);
        return 1;
    }
    s->x509_error = *x509_error;
    snprintf(s->broker, sizeof(s->broker), "%s", broker_name ? broker_name : "");
    if (tls_cert_info_der(der, size, &s->cert) != 0 || depth != 0)
        memset(&s->cert, 0, sizeof(s->cert)); /* the names of a CA certificate would mislead */
    pthread_mutex_unlock(&s->mu);
    snprintf(errstr, errstr_size, "%s", X509_verify_cert_error_string(*x509_error));
    return 0;
}

/* "host" of "host:port" or "[v6]:port" into buf. */
static void broker_host(const char *broker, char *buf, size_t size) {
    const char *colon = strrchr(broker, ':');
    size_t n = colon ? (size_t)(colon - broker) : strlen(broker);
    if (n >= 2 && broker[0] == '[' && broker[n - 1] == ']') {
        broker++;
        n -= 2;
    }
    snprintf(buf, size, "%.*s", (int)n, broker);
}

bool kconf_sec_classify(kconf_sec_t *s, int err, err_t *e) {
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        char fix[600];
        snprintf(fix, sizeof(fix),
                 "check kafka.sasl.username and kafka.sasl.password (or where they come from: a .file key or a _FILE "
                 "variable), and that the brokers have this user for kafka.sasl.mechanisms=%s (kafka-configs.sh "
                 "--describe --entity-type users)",
                 s->mechanism[0] ? s->mechanism : "GSSAPI");
        err_set(e, ERR_PERMANENT, "", fix,
                "Kafka at bootstrap.servers=%s refused the SASL authentication (mechanism %s, user \"%s\")",
                s->bootstrap, s->mechanism[0] ? s->mechanism : "GSSAPI", s->username);
        return true;
    }
    if (err != RD_KAFKA_RESP_ERR__SSL)
        return false;
    pthread_mutex_lock(&s->mu);
    long x509 = s->x509_error;
    char broker[256], host[256], server[300];
    tls_cert_info_t cert = s->cert;
    snprintf(broker, sizeof(broker), "%s", s->broker);
    pthread_mutex_unlock(&s->mu);
    if (!x509)
        return false; /* not a certificate problem: the handshake broke off, which a retry may cure */
    broker_host(broker, host, sizeof(host));
    snprintf(server, sizeof(server), "Kafka broker %s", broker);
    tls_peer_t peer = {.server = server,
                       .host = host,
                       .ca_file = s->ca_file,
                       .ca_setting = "kafka.ssl.ca.location",
                       .host_setting =
                           "the host names in kafka.bootstrap.servers (and the brokers' advertised.listeners)"};
    tls_verify_error(e, x509, X509_verify_cert_error_string(x509), &peer, &cert);
    return true;
}
