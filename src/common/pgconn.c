/* pgconn.c - opens libpq connections with outboxd's defaults and classifies their failures. */
#include "pgconn.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pgtls.h"

static char *default_password; /* postgres.password; set once at startup */

int pgconn_set_password(const char *conninfo, const char *password, char *errstr, size_t errstr_size) {
    if (!password || !*password)
        return 0;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &perr);
    bool both = false;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, "password") && o->val && *o->val)
            both = true;
    PQconninfoFree(opts);
    PQfreemem(perr); /* a malformed conninfo is reported when it is used */
    if (both) {
        snprintf(errstr, errstr_size,
                 "postgres.password is set and postgres.conninfo holds a password too: keep one of them");
        return -1;
    }
    free(default_password);
    if (!(default_password = strdup(password))) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

const char *pgconn_password(void) { return default_password; }

/* Connects (blocking) or starts connecting (PQconnectStartParams) with outboxd's defaults.
 *
 * A failed connection must be classified by the server's SQLSTATE, and libpq keeps the
 * SQLSTATE of a connection-time error only in the message, and only when the connection's
 * error verbosity is PQERRORS_VERBOSE ("FATAL:  28P01: password authentication failed ...").
 * Verbosity can only be set on an existing PGconn, so the blocking connect starts the
 * connection, sets it, and lets PQreset run libpq's own blocking connect (connect_timeout,
 * multiple hosts, target_session_attrs: all libpq's) with the same options. Once connected,
 * verbosity goes back to the default so that query errors read as before. A connection that
 * fails inside PQconnectStartParams (a bad option value: no network yet) keeps the default
 * verbosity; pgconn_failure reads that as a configuration error. */
static PGconn *open_conn(const char *conninfo, const char *appname, bool replication, bool blocking) {
    /* Defaults first: values in the user's conninfo (expanded from dbname) override them.
     * Keepalives notice a dead peer only while nothing is unacknowledged; a replication
     * connection always has status updates in flight, so tcp_user_timeout (60 s of sent
     * data unacknowledged) is what ends a half-open connection (test_faults_net.py). */
    const char *keys[] = {"connect_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          NULL,
                          NULL,
                          NULL,
                          NULL,
                          NULL};
    const char *vals[] = {"10", "30", "10", "3", "60000", NULL, NULL, NULL, NULL, NULL};
    int n = 5;
    if (default_password) {
        keys[n] = "password";
        vals[n++] = default_password;
    }
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
    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        return conn;
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
    if (blocking) {
        PQreset(conn);
        if (PQstatus(conn) == CONNECTION_OK)
            PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
    }
    return conn;
}

PGconn *pgconn_open(const char *conninfo, const char *appname, bool replication) {
    return open_conn(conninfo, appname, replication, true);
}

PGconn *pgconn_start(const char *conninfo, const char *appname) { return open_conn(conninfo, appname, false, false); }

PGconn *pgconn_connect(const char *conninfo, const char *appname, err_t *e) {
    PGconn *conn = pgconn_open(conninfo, appname, false);
    if (!conn) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory connecting to PostgreSQL");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        pgconn_failure(conn, "cannot connect to PostgreSQL: ", e);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Waits (poll) until fd is ready for events or deadline_ms passed; false when it passed. */
static bool wait_fd(int fd, short events, int64_t deadline_ms) {
    for (;;) {
        int64_t left = deadline_ms - clock_now_ms();
        if (left <= 0 || fd < 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

PGconn *pgconn_connect_within(const char *conninfo, const char *appname, int timeout_ms, err_t *e) {
    int64_t deadline = clock_now_ms() + timeout_ms;
    PGconn *conn = pgconn_start(conninfo, appname);
    if (!conn) {
        err_set(e, ERR_TRANSIENT, "", NULL, "out of memory connecting to PostgreSQL");
        return NULL;
    }
    PostgresPollingStatusType st = PQstatus(conn) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
        if (!wait_fd(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline)) {
            err_set(e, ERR_TRANSIENT, "", NULL, "cannot connect to PostgreSQL within %d ms", timeout_ms);
            PQfinish(conn);
            return NULL;
        }
        st = PQconnectPoll(conn);
    }
    if (st != PGRES_POLLING_OK || PQstatus(conn) != CONNECTION_OK) {
        pgconn_failure(conn, "cannot connect to PostgreSQL: ", e);
        PQfinish(conn);
        return NULL;
    }
    PQsetErrorVerbosity(conn, PQERRORS_DEFAULT); /* pgconn_start asked for SQLSTATEs */
    return conn;
}

PGresult *pgconn_query_until(PGconn *conn, const char *sql, int64_t deadline_ms) {
    if (!PQsendQuery(conn, sql))
        return NULL;
    PGresult *last = NULL;
    for (;;) {
        while (!PQisBusy(conn)) {
            PGresult *r = PQgetResult(conn);
            if (!r)
                return last;
            PQclear(last);
            last = r;
        }
        if (!wait_fd(PQsocket(conn), POLLIN, deadline_ms) || !PQconsumeInput(conn)) {
            PQclear(last);
            return NULL;
        }
    }
}

/* ------------------------------------------------------------------ failure classification */

static bool is_sqlstate_at(const char *s) {
    for (int i = 0; i < 5; i++)
        if (!isdigit((unsigned char)s[i]) && !isupper((unsigned char)s[i]))
            return false;
    return s[5] == ':' && s[6] == ' ';
}

/* A verbose error's source location line: "LOCATION:  function, file.c:123" (the label may
 * be translated; the shape is libpq's: two spaces after the colon, ", ", ":" and digits). */
static bool is_location_line(const char *s, size_t n) {
    const char *sep = memchr(s, ':', n);
    if (!sep || (size_t)(sep - s) + 3 > n || sep[1] != ' ' || sep[2] != ' ')
        return false;
    const char *comma = memchr(sep, ',', n - (size_t)(sep - s));
    if (!comma)
        return false;
    size_t i = n;
    while (i > 0 && isdigit((unsigned char)s[i - 1]))
        i--;
    return i < n && i > 0 && s[i - 1] == ':' && &s[i - 1] > comma;
}

bool pgconn_sqlstate_is_permanent(const char *st) {
    return !strncmp(st, "28", 2)    /* invalid authorization: password, pg_hba.conf, role */
           || !strcmp(st, "3D000")  /* invalid_catalog_name: no such database */
           || !strcmp(st, "42501")  /* insufficient_privilege: no REPLICATION, no CONNECT */
           || !strcmp(st, "42704"); /* undefined_object */
}

void pgconn_strip_verbose(const char *msg, char *out, size_t size, char code[6]) {
    code[0] = '\0';
    bool have_permanent = false;
    size_t o = 0;
    const char *line = msg;
    while (*line && o + 1 < size) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (!is_location_line(line, len)) {
            for (size_t i = 0; i < len && o + 1 < size; i++) {
                if (i >= 3 && line[i - 1] == ' ' && line[i - 2] == ' ' && line[i - 3] == ':' && len - i >= 7 &&
                    is_sqlstate_at(line + i)) {
                    if (!have_permanent) {
                        memcpy(code, line + i, 5);
                        code[5] = '\0';
                        have_permanent = pgconn_sqlstate_is_permanent(code);
                    }
                    i += 6; /* the code, ':' and ' ' */
                    continue;
                }
                out[o++] = line[i];
            }
            if (nl && o + 1 < size)
                out[o++] = '\n';
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    out[o] = '\0';
}

/* The value of conn's option keyword into buf ("" when unset). */
static const char *conn_option(const PGconn *conn, const char *keyword, char *buf, size_t size) {
    PQconninfoOption *opts = PQconninfo((PGconn *)conn);
    buf[0] = '\0';
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, keyword) && o->val)
            snprintf(buf, size, "%s", o->val);
    PQconninfoFree(opts);
    return buf;
}

static bool is_replication_conn(const PGconn *conn) {
    char v[32];
    conn_option(conn, "replication", v, sizeof(v));
    return *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0 && strcmp(v, "off") != 0;
}

/* No pg_hba.conf line matched (28000) a connection that did not try TLS: the server may
 * accept this role only over TLS (hostssl lines). */
static bool refused_without_tls(const PGconn *conn, const char *sqlstate) {
    char mode[32];
    conn_option(conn, "sslmode", mode, sizeof(mode));
    return !strcmp(sqlstate, "28000") && (!strcmp(mode, "disable") || !strcmp(mode, "allow"));
}

const char *pgconn_fix_for(const char *sqlstate, const char *user, bool replication, char *buf, size_t size) {
    const char *u = user && *user ? user : "<user>";
    if (!sqlstate || !*sqlstate)
        return "start PostgreSQL, or fix host and port in postgres.conninfo";
    if (!strcmp(sqlstate, "28P01"))
        return "fix the password (~/.pgpass, PGPASSWORD or postgres.conninfo) or the user name";
    if (!strncmp(sqlstate, "28", 2))
        return "add a pg_hba.conf line for this database, role and host (a logical replication connection is "
               "matched by its database name, not by the replication keyword), then reload PostgreSQL; or fix "
               "the user in postgres.conninfo, or create that role";
    if (!strcmp(sqlstate, "3D000"))
        return "fix dbname or user in postgres.conninfo, or create them";
    if (!strcmp(sqlstate, "42501") && replication) {
        snprintf(buf, size, "run ALTER ROLE \"%s\" REPLICATION; as a superuser (see sql/roles.sql)", u);
        return buf;
    }
    if (!strcmp(sqlstate, "42501")) {
        snprintf(buf, size, "as the database owner run GRANT CONNECT ON DATABASE <dbname> TO \"%s\"", u);
        return buf;
    }
    if (!strcmp(sqlstate, "53300") && replication)
        return "raise max_wal_senders and restart PostgreSQL, or stop an unused replication client (SELECT pid, "
               "application_name, client_addr FROM pg_stat_replication)";
    if (!strcmp(sqlstate, "53300"))
        return "raise max_connections (or the role's CONNECTION LIMIT), or stop unused clients";
    if (!strcmp(sqlstate, "57P03"))
        return "wait: PostgreSQL is starting up, shutting down or in recovery";
    return "fix postgres.conninfo (docs/operations.md, \"Roles and connections\")";
}

void pgconn_failure(const PGconn *conn, const char *prefix, err_t *e) {
    char text[sizeof(e->msg)], code[6], fixbuf[256];
    const char *raw = conn ? PQerrorMessage(conn) : "out of memory";
    pgconn_strip_verbose(raw ? raw : "", text, sizeof(text), code);
    /* The verbosity tells whether libpq got as far as the network (see open_conn). */
    PGVerbosity v = PQsetErrorVerbosity((PGconn *)conn, PQERRORS_VERBOSE);
    PQsetErrorVerbosity((PGconn *)conn, v);
    bool before_network = conn && v != PQERRORS_VERBOSE;
    bool needs_password = conn && PQconnectionNeedsPassword(conn);
    const char *user = conn ? PQuser(conn) : NULL;
    bool repl = conn && is_replication_conn(conn);
    err_kind_t kind = ERR_TRANSIENT;
    const char *fix;
    if (before_network) {
        kind = ERR_PERMANENT;
        fix = "fix postgres.conninfo (docs/operations.md, \"Roles and connections\")";
    } else if (needs_password) {
        kind = ERR_PERMANENT;
        fix = pgconn_fix_for("28P01", user, repl, fixbuf, sizeof(fixbuf));
    } else if (!code[0] && pgtls_diagnose(conn, prefix, e)) {
        return; /* a TLS failure: the server's certificate, its CA, or no TLS at all */
    } else if (code[0] && refused_without_tls(conn, code)) {
        kind = ERR_PERMANENT;
        fix = "connect with TLS (sslmode=verify-full sslrootcert=/path/to/ca.pem in postgres.conninfo) if the "
              "server's pg_hba.conf has only hostssl lines for this role; else add a pg_hba.conf line for it";
    } else {
        kind = code[0] && pgconn_sqlstate_is_permanent(code) ? ERR_PERMANENT : ERR_TRANSIENT;
        fix = pgconn_fix_for(code, user, repl, fixbuf, sizeof(fixbuf));
    }
    err_set(e, kind, code, fix, "%s%s", prefix ? prefix : "", text);
}

bool pgconn_failure_line(const PGconn *conn, const char *prefix, char *errstr, size_t errstr_size) {
    err_t e;
    pgconn_failure(conn, prefix, &e);
    err_line(&e, errstr, errstr_size);
    return e.kind == ERR_PERMANENT;
}

/* ----------------------------------------------------------------------------- one line */

const char *pgconn_one_line(const char *s, char *buf, size_t size) { return err_one_line(s, buf, size); }

void pgconn_error(char *errstr, size_t errstr_size, const char *prefix, const char *msg) {
    char raw[4096];
    snprintf(raw, sizeof(raw), "%s%s", prefix, msg ? msg : "");
    err_one_line(raw, errstr, errstr_size);
}

void pgconn_result_failure(const PGresult *r, const PGconn *conn, const char *what, const char *fix, err_t *e) {
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char text[768];
    if (!primary || !*primary) /* no server error: libpq's own message (a broken connection) */
        primary = r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : conn ? PQerrorMessage(conn) : "no answer";
    err_one_line(primary, text, sizeof(text));
    bool transient = !code || !*code || !strncmp(code, "08", 2) || !strncmp(code, "57P", 3) ||
                     !strncmp(code, "53", 2) || !strncmp(code, "40", 2) || !strcmp(code, "55P03");
    if (code && *code)
        err_set(e, transient ? ERR_TRANSIENT : ERR_PERMANENT, code, fix, "%s: %s (SQLSTATE %s)", what, text, code);
    else
        err_set(e, ERR_TRANSIENT, "", fix, "%s: %s", what, text);
}
