/* inbox_deliver.h - inboxd's HTTP push (deliver.url): a delivery thread that claims messages
 * with the service's own SQL path (inbox_claim, so per-key order is inbox_claim's rule),
 * POSTs them with libcurl's multi interface, up to deliver.concurrency at a time, and
 * settles each with inbox_complete / inbox_fail.
 *
 * Threads: inbox_deliver_start creates ONE delivery thread. That thread alone owns its
 * PostgreSQL connection (not the writer's), the curl multi handle and every easy handle and
 * request buffer; nothing of it is shared with the Kafka loop. The caller's thread only uses
 * inbox_deliver_stop, inbox_deliver_finished, inbox_deliver_failed and
 * inbox_deliver_destroy, which touch atomics (and curl_multi_wakeup, which is thread-safe).
 * The counters (inbox_deliver_stats_get) are process-wide atomics readable from any thread
 * at any time. The delivery thread inherits the caller's signal mask: block SIGTERM/SIGINT
 * before starting it. */
#ifndef OUTBOXD_INBOX_DELIVER_H
#define OUTBOXD_INBOX_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct inbox_deliver_options {
    const char *conninfo;              /* libpq conninfo (borrowed; copied) */
    const char *table;                 /* inbox table as configured ("public.inbox") */
    const char *url;                   /* http:// or https:// URL, checked by inbox_config */
    int concurrency;                   /* requests in flight at most (different keys) */
    int timeout_ms;                    /* whole request, connect included */
    int max_attempts;                  /* attempts before dead (inbox_fail's max_attempts) */
    int poll_ms;                       /* claim this often when no NOTIFY came */
    int backoff_base_ms;               /* inbox_fail's base */
    int backoff_max_ms;                /* inbox_fail's max_backoff; also caps Retry-After */
    const char *header_prefix;         /* prepended to Kafka header names ("" = none) */
    const char *content_type;          /* Content-Type unless a header sets it */
    const char *const *static_headers; /* "Name: value" lines, NULL-terminated (borrowed; copied) */
    int reconnect_backoff_max_ms;
    const char *tls_ca;   /* CA bundle file; NULL or "": libcurl's default */
    const char *tls_cert; /* client certificate file (PEM); NULL or "": none */
    const char *tls_key;  /* its private key file (PEM) */
} inbox_deliver_options_t;

typedef struct inbox_deliver inbox_deliver_t;

/* Copies the options and starts the delivery thread (it connects to PostgreSQL itself and
 * waits for it when it is down). Returns NULL with errstr when it cannot start (a
 * deliver.tls.* file it cannot read, out of memory). */
inbox_deliver_t *inbox_deliver_start(const inbox_deliver_options_t *o, char *errstr, size_t errstr_size);

/* Asks the thread to stop and returns at once. abort false: claim nothing more, let the
 * requests in flight finish (at most deliver.timeout.ms) and settle them. abort true (may
 * follow a false): cancel the requests in flight and put their messages back to pending. */
void inbox_deliver_stop(inbox_deliver_t *d, bool abort);

/* True once the thread has ended (after a stop, or a fatal error). */
bool inbox_deliver_finished(const inbox_deliver_t *d);

/* True when the thread ended on an error the user must fix (e.g. the inbox functions are
 * missing); errstr says which. Only meaningful once inbox_deliver_finished. */
bool inbox_deliver_failed(const inbox_deliver_t *d, char *errstr, size_t errstr_size);

/* Stops (abort) if needed, joins the thread, frees everything. Accepts NULL. */
void inbox_deliver_destroy(inbox_deliver_t *d);

/* Delivery counters since the process started, for metrics. attempts: requests sent;
 * successes: 2xx, message done; retries: attempts that left the message failed (to be
 * retried); dead: messages made dead (a 4xx or the last attempt); in_flight: requests
 * under way now. */
typedef struct inbox_deliver_stats {
    uint64_t attempts;
    uint64_t successes;
    uint64_t retries;
    uint64_t dead;
    uint64_t in_flight;
} inbox_deliver_stats_t;

void inbox_deliver_stats_get(inbox_deliver_stats_t *out);

#endif
