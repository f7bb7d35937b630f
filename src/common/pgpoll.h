/* pgpoll.h - a background poller: every interval, on its own ordinary (non-replication)
 * PostgreSQL connection and in its own thread, runs a caller's query function that fills a
 * plain-data snapshot; the daemon's loop copies the latest snapshot without ever waiting for
 * the database (metrics of the slot or the inbox table, guardrails).
 *
 * Thread ownership: fn runs on the poller thread only and writes only the snapshot it is given
 * (and arg, which the loop must not touch while the poller runs). pgpoll_get and
 * pgpoll_failures are for the loop thread. The thread inherits the signal mask of the thread that starts it: block the
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
 * something else, e.g. Kafka through a thread-safe librdkafka handle in arg). arg: borrowed, passed to fn. Polls at
 * once, then every interval_ms. The connection is made without blocking, with the poller's own deadline of 10 s
 * (connect_timeout in conninfo does not apply). Returns NULL when out of memory or the thread
 * cannot start. */
pgpoll_t *pgpoll_start(const char *conninfo, const char *appname, int interval_ms, size_t snapshot_size, pgpoll_fn fn,
                       void *arg);
/* Stops and joins the thread, closes the connection. Accepts NULL. Does not wait for a connect
 * in progress (at most ~100 ms) nor for a query on the connection (its socket is shut down, so
 * the query fails at once); waits for fn of a poll without connection (keep those short). */
void pgpoll_stop(pgpoll_t *p);

/* Copies the latest successful snapshot to out (snapshot_size bytes). Returns how many polls
 * succeeded so far (0: out untouched). errstr gets the last poll's error, "" when it succeeded. */
uint64_t pgpoll_get(pgpoll_t *p, void *out, char *errstr, size_t errstr_size);

/* How many polls failed so far (a failed connect counts as one); 0 for NULL. errstr (may be
 * NULL) gets the error of the latest failed poll, kept after later polls succeed ("" if none
 * failed), so that a failure between two looks is not missed. */
uint64_t pgpoll_failures(pgpoll_t *p, char *errstr, size_t errstr_size);

#endif
