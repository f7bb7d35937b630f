/* other_slots.c - the wal2json slots nothing streams, besides postgres.slot (see the header). */
#include "other_slots.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_status.h"
#include "pgconn.h"

int other_slots_read(PGconn *conn, const char *slot, other_slot_t *out, size_t max, size_t *total, err_t *e) {
    char *lit = PQescapeLiteral(conn, slot, strlen(slot));
    if (!lit) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory");
        return -1;
    }
    /* Simple protocol (an escaped literal): check may run it on a replication connection. */
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT s.slot_name, coalesce(s.database, ''), pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN "
             "pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, s.restart_lsn)::bigint, %s "
             "FROM pg_replication_slots s WHERE s.plugin = 'wal2json' AND NOT s.active AND NOT s.temporary "
             "AND s.slot_name <> %s ORDER BY 3 DESC NULLS LAST, 1",
             PQserverVersion(conn) >= 130000 ? "coalesce(s.wal_status, '')" : "''", lit);
    PQfreemem(lit);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pgconn_result_failure(r, conn, "cannot read pg_replication_slots", NULL, e);
        PQclear(r);
        return -1;
    }
    size_t n = 0;
    *total = (size_t)PQntuples(r);
    for (int i = 0; i < PQntuples(r) && n < max; i++, n++) {
        other_slot_t *s = &out[n];
        *s = (other_slot_t){.has_retained = !PQgetisnull(r, i, 2)};
        snprintf(s->name, sizeof(s->name), "%s", PQgetvalue(r, i, 0));
        snprintf(s->database, sizeof(s->database), "%s", PQgetvalue(r, i, 1));
        s->retained = s->has_retained ? atoll(PQgetvalue(r, i, 2)) : 0;
        snprintf(s->wal_status, sizeof(s->wal_status), "%s", PQgetvalue(r, i, 3));
    }
    PQclear(r);
    return (int)n;
}

const char *other_slots_drop_statement(const other_slot_t *s, char *buf, size_t size) {
    snprintf(buf, size, "SELECT pg_drop_replication_slot('%s');", s->name);
    return buf;
}

const char *other_slots_list(const other_slot_t *s, size_t n, size_t total, char *buf, size_t size) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++) {
        char b[32] = "?";
        if (s[i].has_retained)
            status_format_bytes(s[i].retained, b, sizeof(b));
        int w = snprintf(buf + o, size - o, "%s\"%s\" (database %s, retains %s%s%s)", i ? ", " : "", s[i].name,
                         s[i].database, b, !strcmp(s[i].wal_status, "lost") ? ", invalidated" : "", "");
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (total > n && o < size)
        snprintf(buf + o, size - o, " and %zu more", total - n);
    return buf;
}
