/* bgjob.c - one background thread running one blocking job at a time for a poll() loop, which
 * learns of the job's end on a pipe (see bgjob.h). */
#include "bgjob.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct bgjob {
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bgjob_fn fn; /* the job handed over and not started yet, or NULL */
    void *arg;
    bool busy;      /* submitted and not collected by bgjob_done */
    bool finished;  /* the job returned; result holds its value */
    bool cancelled; /* for the current job */
    bool stop;
    int result;
    int pipefd[2]; /* one byte per finished job */
};

static void *run(void *opaque) {
    bgjob_t *j = opaque;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->fn && !j->stop)
            pthread_cond_wait(&j->cv, &j->mu);
        if (!j->fn)
            break; /* stopping, nothing handed over */
        bgjob_fn fn = j->fn;
        void *arg = j->arg;
        j->fn = NULL;
        pthread_mutex_unlock(&j->mu);
        int rc = fn(j, arg);
        pthread_mutex_lock(&j->mu);
        j->result = rc;
        j->finished = true;
        char one = 1;
        if (write(j->pipefd[1], &one, 1) < 0) {
            /* The pipe is full only if nobody collects: nothing to do. */
        }
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

bgjob_t *bgjob_start(void) {
    bgjob_t *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->pipefd[0] = j->pipefd[1] = -1;
    if (pipe2(j->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(j);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (pthread_create(&j->thread, NULL, run, j) != 0) {
        close(j->pipefd[0]);
        close(j->pipefd[1]);
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        free(j);
        return NULL;
    }
    return j;
}

void bgjob_stop(bgjob_t *j) {
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    j->cancelled = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    close(j->pipefd[0]);
    close(j->pipefd[1]);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

int bgjob_submit(bgjob_t *j, bgjob_fn fn, void *arg) {
    pthread_mutex_lock(&j->mu);
    if (j->busy) {
        pthread_mutex_unlock(&j->mu);
        return -1;
    }
    j->busy = true;
    j->finished = false;
    j->cancelled = false;
    j->fn = fn;
    j->arg = arg;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

bool bgjob_busy(const bgjob_t *j) {
    bgjob_t *m = (bgjob_t *)j; /* the mutex only */
    pthread_mutex_lock(&m->mu);
    bool busy = m->busy;
    pthread_mutex_unlock(&m->mu);
    return busy;
}

int bgjob_fd(const bgjob_t *j) { return j ? j->pipefd[0] : -1; }

bool bgjob_done(bgjob_t *j, int *result) {
    char drain[16];
    pthread_mutex_lock(&j->mu);
    bool done = j->busy && j->finished;
    if (done) {
        while (read(j->pipefd[0], drain, sizeof(drain)) > 0)
            ;
        *result = j->result;
        j->busy = false;
        j->finished = false;
    }
    pthread_mutex_unlock(&j->mu);
    return done;
}

void bgjob_cancel(bgjob_t *j) {
    pthread_mutex_lock(&j->mu);
    if (j->busy)
        j->cancelled = true;
    pthread_mutex_unlock(&j->mu);
}

bool bgjob_cancelled(bgjob_t *j) {
    pthread_mutex_lock(&j->mu);
    bool c = j->cancelled;
    pthread_mutex_unlock(&j->mu);
    return c;
}
