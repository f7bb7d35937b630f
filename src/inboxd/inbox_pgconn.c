/* inbox_pgconn.c - inboxd's ordinary PostgreSQL connections: pgconn's defaults, notices logged. */
#include "inbox_pgconn.h"

#include <stdint.h>
#include <stdio.h>

#include "pgconn.h"

/* arg: the log level, as an integer in the pointer. */
static void on_notice(void *arg, const char *message) {
    char buf[1024];
    pgconn_error(buf, sizeof(buf), "PostgreSQL: ", message);
    log_msg((log_level_t)(intptr_t)arg, "%s", buf);
}

PGconn *inbox_pgconn_open(const char *conninfo, const char *appname, log_level_t notice_level, const char *prefix,
                          char *errstr, size_t errstr_size, bool *permanent) {
    PGconn *c = pgconn_open(conninfo, appname, false);
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory connecting to PostgreSQL");
        *permanent = true;
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, (void *)(intptr_t)notice_level);
    if (PQstatus(c) != CONNECTION_OK) {
        *permanent = pgconn_failure_line(c, prefix, errstr, errstr_size);
        PQfinish(c);
        return NULL;
    }
    *permanent = false;
    return c;
}
