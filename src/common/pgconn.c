/* pgconn.c - opens libpq connections with outboxd's defaults and formats libpq errors. */
#include "pgconn.h"

#include <stdio.h>
#include <string.h>

/* Connects (blocking) or starts connecting (PQconnectStartParams) with outboxd's defaults. */
static PGconn *open_conn(const char *conninfo, const char *appname, bool replication, bool blocking) {
    /* Defaults first: values in the user's conninfo (expanded from dbname) override them. */
    const char *keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval", "keepalives_count",
                          NULL, NULL, NULL, NULL};
    const char *vals[] = {"10", "30", "10", "3", NULL, NULL, NULL, NULL};
    int n = 4;
    if (conninfo && *conninfo) {
        keys[n] = "dbname";
        vals[n++] = conninfo;
    }
    if (replication) {
        keys[n] = "replication";
        vals[n++] = "database";
    }
    keys[n] = "fallback_application_name";
    vals[n] = appname;
    return blocking ? PQconnectdbParams(keys, vals, 1) : PQconnectStartParams(keys, vals, 1);
}

PGconn *pgconn_open(const char *conninfo, const char *appname, bool replication) {
    return open_conn(conninfo, appname, replication, true);
}

PGconn *pgconn_connect(const char *conninfo, const char *appname, char *errstr, size_t errstr_size) {
    PGconn *conn = pgconn_open(conninfo, appname, false);
    if (!conn) {
        snprintf(errstr, errstr_size, "out of memory connecting to PostgreSQL");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        pgconn_error(errstr, errstr_size, "cannot connect to PostgreSQL: ", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

PGconn *pgconn_start(const char *conninfo, const char *appname) { return open_conn(conninfo, appname, false, false); }

bool pgconn_error_is_permanent(const char *msg) {
    static const char *const permanent[] = {
        "password authentication failed", "no password supplied", "pg_hba.conf",
        "does not exist", "invalid connection option", "missing \"=\"", "invalid URI",
        "invalid integer value", "invalid sslmode", "must be superuser or replication role",
        "permission denied", "authentication method", "unterminated quoted string", NULL};
    for (int i = 0; permanent[i]; i++)
        if (strstr(msg, permanent[i]))
            return true;
    return false;
}

const char *pgconn_one_line(const char *s, char *buf, size_t size) {
    size_t n = 0;
    for (; *s && n + 1 < size; s++) {
        bool space = *s == '\n' || *s == '\t' || *s == '\r';
        if (space && (n == 0 || buf[n - 1] == ' '))
            continue;
        buf[n++] = space ? ' ' : *s;
    }
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}

void pgconn_error(char *errstr, size_t errstr_size, const char *prefix, const char *msg) {
    snprintf(errstr, errstr_size, "%s%s", prefix, msg ? msg : "");
    size_t n = strlen(errstr);
    while (n > 0 && (errstr[n - 1] == '\n' || errstr[n - 1] == ' '))
        errstr[--n] = '\0';
}
