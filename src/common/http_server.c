/* http_server.c - /metrics, /healthz and /readyz over libmicrohttpd's internal thread; the
 * loop thread publishes, the server thread only reads (see http_server.h). */
#include "http_server.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

struct http_server {
    struct MHD_Daemon *daemon;
    int fd;
    char address[300];
    pthread_mutex_t mu; /* guards metrics, metrics_len, ready, reason */
    char *metrics;
    size_t metrics_len;
    bool ready;
    char reason[512];
    _Atomic int64_t heartbeat_ms;
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
                             size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text_reply(struct MHD_Connection *c, unsigned status, const char *body) {
    return reply(c, status, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    http_server_t *h = cls;
    char body[600];
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (!strcmp(url, "/metrics")) {
        pthread_mutex_lock(&h->mu);
        enum MHD_Result rc = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                   h->metrics ? h->metrics : "", h->metrics ? h->metrics_len : 0);
        pthread_mutex_unlock(&h->mu);
        return rc;
    }
    if (!strcmp(url, "/healthz")) {
        int64_t age = mono_ms() - atomic_load(&h->heartbeat_ms);
        if (age <= HTTP_SERVER_STALE_MS)
            return text_reply(c, MHD_HTTP_OK, "ok\n");
        snprintf(body, sizeof(body), "stalled: the main loop last ran %lld ms ago\n", (long long)age);
        return text_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    if (!strcmp(url, "/readyz")) {
        pthread_mutex_lock(&h->mu);
        bool ready = h->ready;
        snprintf(body, sizeof(body), ready ? "ready\n" : "not ready: %s\n", h->reason);
        pthread_mutex_unlock(&h->mu);
        return text_reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    return text_reply(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

/* Splits "host:port" or "[v6]:port". Returns 0, or -1 when there is no port. */
static int split_listen(const char *addr, char *host, size_t host_size, char *port, size_t port_size) {
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1])
        return -1;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return -1; /* a bare IPv6 address needs brackets */
    }
    if (hl == 0 || hl >= host_size || strlen(colon + 1) >= port_size)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, port_size, "%s", colon + 1);
    return 0;
}

/* Binds and listens ourselves, so that "address in use" and friends reach the user as such
 * (MHD_start_daemon only says that it failed). */
static int open_listener(http_server_t *h, const char *addr, const char *key, bool *v6, char *errstr,
                         size_t errstr_size) {
    char host[256], port[32];
    if (split_listen(addr, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(errstr, errstr_size,
                 "%s = \"%s\": expected host:port (e.g. 127.0.0.1:9632, [::1]:9632, 0.0.0.0:9632), or empty to "
                 "disable the endpoint",
                 key, addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(errstr, errstr_size, "%s = \"%s\": cannot resolve it: %s", key, addr, gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        int e = errno;
        snprintf(errstr, errstr_size, "%s = \"%s\": cannot listen there: %s%s", key, addr, strerror(e),
                 e == EADDRINUSE ? ": another process uses the port; set another port, or an empty value to disable "
                                   "the endpoint"
                                 : "");
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char nh[NI_MAXHOST] = "?", np[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, nh, sizeof(nh), np, sizeof(np), NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(h->address, sizeof(h->address), *v6 ? "[%s]:%s" : "%s:%s", nh, np);
    h->fd = fd;
    return 0;
}

http_server_t *http_server_start(const char *addr, const char *key, char *errstr, size_t errstr_size) {
    http_server_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    snprintf(h->reason, sizeof(h->reason), "starting");
    atomic_store(&h->heartbeat_ms, mono_ms());
    bool v6 = false;
    if (open_listener(h, addr, key, &v6, errstr, errstr_size) != 0) {
        http_server_stop(h);
        return NULL;
    }
    /* The thread inherits the caller's signal mask: daemons block their signals before this,
     * so signals keep going to the loop thread. */
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0), 0, NULL,
                                 NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(errstr, errstr_size, "%s = \"%s\": cannot start the HTTP server (libmicrohttpd)", key, addr);
        http_server_stop(h);
        return NULL;
    }
    h->fd = -1; /* the daemon owns it now */
    return h;
}

void http_server_stop(http_server_t *h) {
    if (!h)
        return;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    if (h->fd >= 0)
        close(h->fd);
    pthread_mutex_destroy(&h->mu);
    free(h->metrics);
    free(h);
}

const char *http_server_address(const http_server_t *h) { return h ? h->address : ""; }

void http_server_publish(http_server_t *h, const char *text, size_t len) {
    if (!h || !text)
        return;
    char *copy = malloc(len + 1);
    if (!copy)
        return; /* the previous text stays */
    memcpy(copy, text, len);
    copy[len] = '\0';
    pthread_mutex_lock(&h->mu);
    char *old = h->metrics;
    h->metrics = copy;
    h->metrics_len = len;
    pthread_mutex_unlock(&h->mu);
    free(old);
}

void http_server_heartbeat(http_server_t *h, int64_t now_ms) {
    if (h)
        atomic_store_explicit(&h->heartbeat_ms, now_ms, memory_order_relaxed);
}

void http_server_set_ready(http_server_t *h, bool ready, const char *reason) {
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->ready = ready;
    snprintf(h->reason, sizeof(h->reason), "%s", reason ? reason : "");
    pthread_mutex_unlock(&h->mu);
}
