/* pgpoll.c - a thread that runs a query function on its own PostgreSQL connection every
 * interval and keeps the latest snapshot for the loop thread (see pgpoll.h). */
#include "pgpoll.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "pgconn.h"

#define CONNECT_TIMEOUT_MS 10000 /* the poller's own connect deadline (see pgpoll.h) */
#define STOP_CHECK_MS 100        /* a connect in progress checks this often for pgpoll_stop */

struct pgpoll {
    char *conninfo, *appname;
    int interval_ms;
    size_t size;
    pgpoll_fn fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu; /* guards latest, polls, failures, err, last_failure, stop, busy_sock */
    pthread_cond_t cv;
    void *latest, *scratch;
    uint64_t polls, failures;
    char err[1024], last_failure[1024];
    bool stop;
    int busy_sock; /* the connection's socket while fn runs on it, else -1 */
};

static bool stopping(pgpoll_t *p) {
    pthread_mutex_lock(&p->mu);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static int64_t elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Connects without ever waiting more than STOP_CHECK_MS at a time, so that pgpoll_stop does
 * not wait for a slow or hanging connect. Returns the connection, or NULL with err. */
static PGconn *connect_nowait(pgpoll_t *p, char *err, size_t err_size) {
    PGconn *conn = pgconn_start(p->conninfo, p->appname);
    if (!conn) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING; /* as libpq says to start */
    while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        if (stopping(p)) {
            snprintf(err, err_size, "stopping");
            break;
        }
        if (elapsed_ms(&t0) >= CONNECT_TIMEOUT_MS) {
            snprintf(err, err_size, "cannot connect to PostgreSQL: no answer within %d ms", CONNECT_TIMEOUT_MS);
            break;
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int n = pfd.fd < 0 ? 1 : poll(&pfd, 1, STOP_CHECK_MS);
        if (n > 0 || (n < 0 && errno != EINTR))
            st = PQconnectPoll(conn);
    }
    if (st == PGRES_POLLING_OK && PQstatus(conn) == CONNECTION_OK) {
        PQsetErrorVerbosity(conn, PQERRORS_DEFAULT); /* pgconn_start asked for SQLSTATEs */
        return conn;
    }
    if (!err[0])
        pgconn_failure_line(conn, "cannot connect to PostgreSQL: ", err, err_size);
    PQfinish(conn);
    return NULL;
}

/* Marks the connection busy (fn runs on it: pgpoll_stop may shut its socket down to end a
 * query that hangs) or idle (sock -1). Returns false when the poller is stopping. */
static bool set_busy(pgpoll_t *p, int sock) {
    pthread_mutex_lock(&p->mu);
    bool stop = p->stop;
    p->busy_sock = stop ? -1 : sock;
    pthread_mutex_unlock(&p->mu);
    return !stop;
}

static void *run(void *opaque) {
    pgpoll_t *p = opaque;
    PGconn *conn = NULL;
    char err[1024];
    for (;;) {
        err[0] = '\0';
        if (!conn && p->conninfo)
            conn = connect_nowait(p, err, sizeof(err));
        int rc = -1;
        if ((conn || !p->conninfo) && set_busy(p, conn ? PQsocket(conn) : -1)) {
            memset(p->scratch, 0, p->size);
            rc = p->fn(conn, p->scratch, p->arg, err, sizeof(err));
            set_busy(p, -1); /* before any PQfinish: the socket number may be reused */
            if (rc != 0 && conn && PQstatus(conn) != CONNECTION_OK) {
                PQfinish(conn);
                conn = NULL;
            }
        }
        pthread_mutex_lock(&p->mu);
        if (rc == 0) {
            memcpy(p->latest, p->scratch, p->size);
            p->polls++;
        } else if (!p->stop) {
            p->failures++;
            snprintf(p->last_failure, sizeof(p->last_failure), "%s", err);
        }
        snprintf(p->err, sizeof(p->err), "%s", err);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += p->interval_ms / 1000;
        until.tv_nsec += (long)(p->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT)
            ;
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
    }
    PQfinish(conn);
    return NULL;
}

/* Frees a poller whose thread is not running (never started, or joined). */
static void free_poll(pgpoll_t *p) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    free(p->appname);
    free(p->latest);
    free(p->scratch);
    free(p);
}

pgpoll_t *pgpoll_start(const char *conninfo, const char *appname, int interval_ms, size_t snapshot_size, pgpoll_fn fn,
                       void *arg) {
    pgpoll_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->conninfo = conninfo ? strdup(conninfo) : NULL;
    p->appname = strdup(appname ? appname : "");
    p->latest = calloc(1, snapshot_size ? snapshot_size : 1);
    p->scratch = calloc(1, snapshot_size ? snapshot_size : 1);
    p->interval_ms = interval_ms;
    p->busy_sock = -1;
    p->size = snapshot_size;
    p->fn = fn;
    p->arg = arg;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    if ((conninfo && !p->conninfo) || !p->appname || !p->latest || !p->scratch ||
        pthread_create(&p->thread, NULL, run, p) != 0) {
        free_poll(p);
        return NULL;
    }
    return p;
}

void pgpoll_stop(pgpoll_t *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    if (p->busy_sock >= 0) /* a query in progress (say, a server that stopped answering) fails at once */
        shutdown(p->busy_sock, SHUT_RDWR);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    free_poll(p);
}

uint64_t pgpoll_get(pgpoll_t *p, void *out, char *errstr, size_t errstr_size) {
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->polls;
    if (n)
        memcpy(out, p->latest, p->size);
    if (errstr)
        snprintf(errstr, errstr_size, "%s", p->err);
    pthread_mutex_unlock(&p->mu);
    return n;
}

uint64_t pgpoll_failures(pgpoll_t *p, char *errstr, size_t errstr_size) {
    if (errstr && errstr_size)
        errstr[0] = '\0';
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->failures;
    if (errstr)
        snprintf(errstr, errstr_size, "%s", p->last_failure);
    pthread_mutex_unlock(&p->mu);
    return n;
}
