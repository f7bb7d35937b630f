/* error.h - an error as a typed value: its kind (retry or fix first), its code, one line
 * saying what failed and one line saying what to do about it. */
#ifndef OUTBOXD_ERROR_H
#define OUTBOXD_ERROR_H

#include <stddef.h>

typedef enum {
    ERR_NONE = 0,
    ERR_TRANSIENT, /* retrying may succeed: a server down or starting, the network */
    ERR_PERMANENT, /* retrying cannot succeed until the user changes something: see fix */
} err_kind_t;

/* Plain data: no pointers, copy freely. Every field is a NUL-terminated string. */
typedef struct {
    err_kind_t kind;
    char code[8];   /* SQLSTATE ("28P01"); "" when the failure happened on the client side */
    char msg[1024]; /* one line: what failed, with the server's own words where it has them */
    char fix[768];  /* one line: what to do; "" when there is nothing to do but wait */
} err_t;

/* Sets every field of e; fix may be NULL, msg is printf-formatted. Newlines, tabs and
 * runs of spaces in msg and fix are folded into single spaces. */
void err_set(err_t *e, err_kind_t kind, const char *code, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Writes "msg: fix" (or msg alone when there is no fix) into buf; returns buf. */
const char *err_line(const err_t *e, char *buf, size_t size);

/* Copies s into buf (size bytes) on one line: newlines, carriage returns and tabs become
 * single spaces, leading and trailing ones go. Returns buf. */
const char *err_one_line(const char *s, char *buf, size_t size);

#endif
