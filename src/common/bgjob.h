/* bgjob.h - a background thread for a poll() loop that must call something blocking: the
 * loop hands it one job at a time, keeps serving its other fds meanwhile, and learns that
 * the job ended when bgjob_fd() becomes readable.
 *
 * Thread ownership: a job function runs on the background thread only; while a job runs, its
 * arg (and whatever the caller handed over with it) belongs to the job: the loop touches it
 * again only after bgjob_done returned true. A job that runs for long should check
 * bgjob_cancelled() between short blocking steps. Everything else is for the loop thread. The
 * thread inherits the signal mask of the thread that starts it: block the daemon's signals
 * first. */
#ifndef OUTBOXD_BGJOB_H
#define OUTBOXD_BGJOB_H

#include <stdbool.h>

typedef struct bgjob bgjob_t;

/* A job: runs on the background thread; its return value comes back from bgjob_done. */
typedef int (*bgjob_fn)(bgjob_t *j, void *arg);

/* Starts the thread. Returns NULL when out of memory or the thread cannot start. */
bgjob_t *bgjob_start(void);

/* Cancels a running job (bgjob_cancel), waits for it to return and joins the thread. Accepts
 * NULL. */
void bgjob_stop(bgjob_t *j);

/* Hands fn(arg) to the thread. Returns 0, or -1 when a job is running or its end has not
 * been collected with bgjob_done yet. */
int bgjob_submit(bgjob_t *j, bgjob_fn fn, void *arg);

/* True from bgjob_submit until bgjob_done collected the job's end. */
bool bgjob_busy(const bgjob_t *j);

/* Readable once the job ended (until bgjob_done); -1 for NULL. */
int bgjob_fd(const bgjob_t *j);

/* When the job ended: stores its return value in *result and returns true (the thread is
 * free again). Otherwise returns false. */
bool bgjob_done(bgjob_t *j, int *result);

/* Asks the running job to give up; it sees it through bgjob_cancelled. */
void bgjob_cancel(bgjob_t *j);

/* For the job: true once bgjob_cancel or bgjob_stop was called for it. */
bool bgjob_cancelled(bgjob_t *j);

#endif
