/* checkout.h - the output of the preflight commands (outboxd check, inboxd check): one line per
 * check - "ok", "warn", "FAIL" or "skip", the check's name, what it found and, after
 * " -- fix: ", what to do - or one JSON array of {"check", "status", "detail", "fix"}; then the
 * summary line and the exit code (0: no check failed, warnings allowed; 2: one failed). */
#ifndef OUTBOXD_CHECKOUT_H
#define OUTBOXD_CHECKOUT_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

typedef enum { CHECKOUT_OK = 0, CHECKOUT_WARN = 1, CHECKOUT_FAIL = 2, CHECKOUT_SKIP = 3 } checkout_status_t;

#define CHECKOUT_EXIT_FAILED 2

typedef struct checkout {
    const char *prog; /* "outboxd": the summary says what will not work (borrowed) */
    bool json;
    FILE *out;       /* borrowed */
    json_t *results; /* json: the array printed at the end (owned) */
    int counts[4];
} checkout_t;

/* Returns 0, or -1 when out of memory. */
int checkout_init(checkout_t *c, const char *prog, bool json, FILE *out);

/* One check's line (text: printed and flushed at once; JSON: kept for checkout_finish).
 * detail and fix (NULL or "" = none) are folded onto one line. */
void checkout_report(checkout_t *c, checkout_status_t st, const char *name, const char *detail, const char *fix);
void checkout_reportf(checkout_t *c, checkout_status_t st, const char *name, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Prints the JSON array or the summary line, frees what c holds; returns 0 when no check
 * failed, else CHECKOUT_EXIT_FAILED. */
int checkout_finish(checkout_t *c);

#endif
