/* pgpoll.c - a thread that runs a query function on its own PostgreSQL connection every
 * interval and keeps the latest snapshot for the loop thread (see pgpoll.h). */
#include "pgpoll.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgconn.h"

struct pgpoll {
    char *conninfo, *appname;
    int interval_ms;
    size_t size;
    pgpoll_fn fn;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu; /* guards latest, polls, err, stop */
    pthread_cond_t cv;
    void *latest, *scratch;
    uint64_t polls;
    char err[1024];
    bool stop;
};

static void *run(void *opaque) {
    pgpoll_t *p = opaque;
    PGconn *conn = NULL;
    char err[1024];
    for (;;) {
        err[0] = '\0';
        if (!conn && p->conninfo) {
            conn = pgconn_open(p->conninfo, p->appname, false);
            if (!conn)
                snprintf(err, sizeof(err), "out of memory");
            else if (PQstatus(conn) != CONNECTION_OK) {
                pgconn_error(err, sizeof(err), "cannot connect to PostgreSQL: ", PQerrorMessage(conn));
                PQfinish(conn);
                conn = NULL;
            }
        }
        int rc = -1;
        if (conn || !p->conninfo) {
            memset(p->scratch, 0, p->size);
            rc = p->fn(conn, p->scratch, p->arg, err, sizeof(err));
            if (rc != 0 && conn && PQstatus(conn) != CONNECTION_OK) {
                PQfinish(conn);
                conn = NULL;
            }
        }
        pthread_mutex_lock(&p->mu);
        if (rc == 0) {
            memcpy(p->latest, p->scratch, p->size);
            p->polls++;
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
