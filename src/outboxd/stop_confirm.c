/* stop_confirm.c - waits for PostgreSQL to take the final confirmation and logs what the slot
 * holds (see stop_confirm.h). */
#include "stop_confirm.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "clock.h"
#include "log.h"
#include "pgconn.h"

#define POLL_MS 50
#define READ_ONCE_MS 500

typedef enum { SLOT_READ, SLOT_GONE, SLOT_UNKNOWN } slot_read_t;

/* The slot's confirmed_flush_lsn into *held. */
static slot_read_t read_slot(PGconn *conn, const char *sql, int64_t deadline, lsn_t *held, char *err, size_t size) {
    PGresult *r = pgconn_query_until(conn, sql, deadline);
    slot_read_t st = SLOT_UNKNOWN;
    if (!r) {
        snprintf(err, size, "no answer from PostgreSQL in time");
    } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        err_t e;
        pgconn_result_failure(r, conn, "cannot read pg_replication_slots", NULL, &e);
        snprintf(err, size, "%s", e.msg);
    } else if (PQntuples(r) == 0) {
        st = SLOT_GONE;
    } else if (!PQgetisnull(r, 0, 0) && lsn_parse(PQgetvalue(r, 0, 0), held) == 0) {
        st = SLOT_READ;
    } else {
        snprintf(err, size, "the slot has no confirmed_flush_lsn");
    }
    PQclear(r);
    return st;
}

void stop_confirm_report(const char *conninfo, const char *slot, lsn_t sent, bool wait, int timeout_ms) {
    char sb[LSN_FMT_SIZE], hb[LSN_FMT_SIZE], err[1024] = "";
    if (!wait && timeout_ms > READ_ONCE_MS) /* a second signal, or no stream: one quick look */
        timeout_ms = READ_ONCE_MS;
    int64_t deadline = clock_now_ms() + timeout_ms;
    err_t e;
    lsn_t held = 0;
    slot_read_t st = SLOT_UNKNOWN;
    PGconn *conn = pgconn_connect_within(conninfo, "outboxd stop", timeout_ms, &e);
    char *lit = conn ? PQescapeLiteral(conn, slot, strlen(slot)) : NULL;
    if (!conn) {
        snprintf(err, sizeof(err), "%s", e.msg);
    } else if (!lit) {
        snprintf(err, sizeof(err), "out of memory");
    } else {
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                 lit);
        for (;;) {
            st = read_slot(conn, sql, deadline, &held, err, sizeof(err));
            if (st != SLOT_READ || !wait || held >= sent || clock_now_ms() + POLL_MS >= deadline)
                break;
            poll(NULL, 0, POLL_MS);
        }
    }
    PQfreemem(lit);
    if (conn)
        PQfinish(conn);
    lsn_format(sent, sb);
    if (st == SLOT_GONE)
        log_warn("stopped; replication slot \"%s\" does not exist any more (outboxd had confirmed %s)", slot, sb);
    else if (st == SLOT_UNKNOWN)
        log_info("stopped; outboxd confirmed %s to slot \"%s\" (not verified: %s)", sb, slot, err);
    else if (held >= sent)
        log_info("stopped; slot \"%s\" confirmed at %s", slot, lsn_format(held, hb));
    else
        log_warn("stopped; slot \"%s\" confirmed at %s (pg_replication_slots): PostgreSQL did not take outboxd's last "
                 "confirmation (%s) before the connection closed, so the events between are published again at the "
                 "next start (duplicates, nothing lost)",
                 slot, lsn_format(held, hb), sb);
}
