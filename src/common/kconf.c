/* kconf.c - librdkafka configuration and queue wake-ups shared by outboxd's producer and
 * inboxd's consumer. */
#include "kconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

void kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    log_level_t l = level <= 2 ? LOG_ERROR : level <= 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    log_msg(l, "kafka %s: %s", fac, buf);
}

int kconf_set(rd_kafka_conf_t *conf, const char *k, const char *v, err_t *e) {
    char why[512];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
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
