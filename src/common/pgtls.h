/* pgtls.h - why a PostgreSQL connection failed in TLS. libpq reports certificate problems as
 * text only (they happen before the server speaks, so there is no SQLSTATE), and outboxd never
 * decides by the words of a message. So when a connection that asks for certificate
 * verification failed without a SQLSTATE, pgtls repeats its first steps with OpenSSL - the
 * SSLRequest, then the TLS handshake with the same CA file and host name - and reads OpenSSL's
 * verify code (tls_verify.h). */
#ifndef OUTBOXD_PGTLS_H
#define OUTBOXD_PGTLS_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "error.h"

/* How long the probe waits for the TCP connection, and then for the whole handshake. */
#define PGTLS_TIMEOUT_MS 3000

/* conn: a failed connection (borrowed). Returns true and fills *e (ERR_PERMANENT, e->msg
 * starting with prefix) when conn asked for verification (sslmode verify-ca or verify-full, or
 * require with a CA file, which libpq then verifies too) and the server refuses TLS, the CA
 * file is missing or unreadable, or the server's certificate fails verification. Returns false
 * when none of that is so (the server cannot be reached, sslmode asks for no verification, the
 * certificate passes): the caller keeps its own classification. Blocks for at most about
 * 2 * PGTLS_TIMEOUT_MS per address of the host. */
bool pgtls_diagnose(const PGconn *conn, const char *prefix, err_t *e);

/* The CA file libpq uses for conn's settings: sslrootcert, else ~/.postgresql/root.crt (HOME,
 * else the password database), into buf. Pure apart from reading HOME. Returns buf. */
const char *pgtls_ca_file(const char *sslrootcert, char *buf, size_t size);

#endif
