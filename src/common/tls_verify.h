/* tls_verify.h - a server certificate that failed verification, as a typed cause taken from
 * OpenSSL's verify code (X509_V_ERR_*), with one line saying what is wrong and one saying what
 * to do. Shared by the PostgreSQL handshake probe (pgtls) and the Kafka clients (kconf). Pure:
 * no I/O. */
#ifndef OUTBOXD_TLS_VERIFY_H
#define OUTBOXD_TLS_VERIFY_H

#include <stddef.h>

#include "error.h"

typedef enum {
    TLS_CAUSE_NONE = 0,      /* X509_V_OK */
    TLS_CAUSE_UNTRUSTED,     /* no CA in the client's CA file signed the chain */
    TLS_CAUSE_HOSTNAME,      /* the certificate names other hosts than the one connected to */
    TLS_CAUSE_EXPIRED,       /* a certificate of the chain is past its notAfter */
    TLS_CAUSE_NOT_YET_VALID, /* a certificate of the chain is before its notBefore */
    TLS_CAUSE_OTHER          /* anything else: revoked, bad signature, wrong purpose, ... */
} tls_cause_t;

/* The cause of an OpenSSL verify result (X509_V_ERR_*; 0 = X509_V_OK). */
tls_cause_t tls_verify_cause(long x509_error);

/* What the peer's certificate says, for the message: both "" when unknown. */
typedef struct {
    char names[256];     /* its subjectAltName DNS/IP entries (else its CN), ", "-separated */
    char not_after[40];  /* "2020-01-02 00:00:00 UTC" */
    char not_before[40]; /* same form */
} tls_cert_info_t;

/* Reads names and validity from a DER certificate (der/len borrowed) into *info. Returns 0, or
 * -1 when it does not parse (info then holds ""). */
int tls_cert_info_der(const void *der, size_t len, tls_cert_info_t *info);

/* Who the client talked to and which settings choose the CA and the host, for the message. All
 * borrowed; NULL or "" where there is nothing to say. */
typedef struct {
    const char *server;       /* "PostgreSQL server localhost:5432", "Kafka broker localhost:9093" */
    const char *host;         /* the host name the certificate was checked against */
    const char *ca_file;      /* the CA file the client trusts; "" = the system's CA store */
    const char *ca_setting;   /* "sslrootcert in postgres.conninfo", "kafka.ssl.ca.location" */
    const char *host_setting; /* "the host in postgres.conninfo", "kafka.bootstrap.servers" */
} tls_peer_t;

/* Fills *e (ERR_PERMANENT, code "") for a certificate that failed with x509_error: the cause,
 * the server, what the certificate says (cert may be NULL) and the fix. x509_text is OpenSSL's
 * own words for the code (X509_verify_cert_error_string; NULL = none), quoted for the causes
 * that are not one of the four above. */
void tls_verify_error(err_t *e, long x509_error, const char *x509_text, const tls_peer_t *peer,
                      const tls_cert_info_t *cert);

#endif
