/* http_server.h - the operations endpoint of outboxd and inboxd (http.listen), served by
 * libmicrohttpd from its own thread: GET /metrics (Prometheus text), /healthz (the loop is
 * alive) and /readyz (the daemon does its job), 200 or 503 with a one-line text body.
 *
 * Thread ownership: the server thread only reads what the loop thread published. The loop
 * thread calls http_server_publish and http_server_set_ready (they copy under a mutex; call
 * them at a low rate, e.g. once a second or on a change) and http_server_heartbeat (one
 * atomic store, fine on every loop turn). Every function accepts NULL (the endpoint is
 * disabled) and then does nothing. */
#ifndef OUTBOXD_HTTP_SERVER_H
#define OUTBOXD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* /healthz answers 503 when the loop's last heartbeat is older than this. Longer than the
 * longest blocking step of a loop turn (a PostgreSQL connect gives up after 10 s). */
#define HTTP_SERVER_STALE_MS 30000

typedef struct http_server http_server_t;

/* Listens on listen ("host:port", "[v6addr]:port"; host may be a name) and starts serving.
 * key names the configuration key in errors ("http.listen"). Returns a new server, or NULL
 * with errstr (e.g. the port is in use) - the caller stops with that error. */
http_server_t *http_server_start(const char *listen, const char *key, char *errstr, size_t errstr_size);
/* Stops the thread, closes the socket, frees everything. Accepts NULL. */
void http_server_stop(http_server_t *h);

/* The address actually listened on, "127.0.0.1:9632" (borrowed, valid until stop). */
const char *http_server_address(const http_server_t *h);

/* Replaces the /metrics body with a copy of text[0..len). */
void http_server_publish(http_server_t *h, const char *text, size_t len);
/* The loop is alive at now_ms (CLOCK_MONOTONIC milliseconds). */
void http_server_heartbeat(http_server_t *h, int64_t now_ms);
/* /readyz: 200 "ready" when ready, else 503 "not ready: <reason>" (reason copied). */
void http_server_set_ready(http_server_t *h, bool ready, const char *reason);

#endif
