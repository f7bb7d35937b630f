/* pgpoll.h - a background poller: every interval, on its own ordinary (non-replication)
 * PostgreSQL connection and in its own thread, runs a caller's query function that fills a
 * plain-data snapshot; the daemon's loop copies the latest snapshot without ever waiting for
 * the database (metrics of the slot or the inbox table, guardrails).
 *
 * Thread ownership: fn runs on the poller thread only and writes only the snapshot it is given
 * (and arg, which the loop must not touch while the poller runs). pgpoll_get is for the loop
 * thread. The thread inherits the signal mask of the thread that starts it: block the
 * daemon's signals first. The poller never logs: errors are returned by pgpoll_get. */
#ifndef OUTBOXD_PGPOLL_H
#define OUTBOXD_PGPOLL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* Fills snapshot (snapshot_size bytes, zeroed before each call) from conn. Returns 0, or -1
 * with errstr (the connection is then reset when it is broken). */
typedef int (*pgpoll_fn)(PGconn *conn, void *snapshot, void *arg, char *errstr, size_t errstr_size);

typedef struct pgpoll pgpoll_t;

/* conninfo, appname: copied; conninfo NULL: no connection, fn gets conn NULL (a poll of
 * something else, e.g. Kafka through a thread-safe librdkafka handle in arg). arg: borrowed, passed to fn. Polls at once, then every
 * interval_ms. Returns NULL when out of memory or the thread cannot start. */
pgpoll_t *pgpoll_start(const char *conninfo, const char *appname, int interval_ms, size_t snapshot_size,
                       pgpoll_fn fn, void *arg);
/* Stops and joins the thread (waits for a query or connect in progress), closes the
 * connection. Accepts NULL. */
void pgpoll_stop(pgpoll_t *p);

/* Copies the latest successful snapshot to out (snapshot_size bytes). Returns how many polls
 * succeeded so far (0: out untouched). errstr gets the last poll's error, "" when it succeeded. */
uint64_t pgpoll_get(pgpoll_t *p, void *out, char *errstr, size_t errstr_size);

#endif
