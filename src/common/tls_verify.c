/* tls_verify.c - OpenSSL verify codes as causes, and the one-line message and fix for each. */
#include "tls_verify.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

tls_cause_t tls_verify_cause(long x509_error) {
    switch (x509_error) {
    case X509_V_OK:
        return TLS_CAUSE_NONE;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return TLS_CAUSE_UNTRUSTED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return TLS_CAUSE_HOSTNAME;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return TLS_CAUSE_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return TLS_CAUSE_NOT_YET_VALID;
    default:
        return TLS_CAUSE_OTHER;
    }
}

/* ---------------------------------------------------------------- certificate contents */

static void append(char *buf, size_t size, const char *s, size_t n) {
    size_t len = strlen(buf);
    if (len + 2 + n + 1 > size)
        return;
    if (len > 0) {
        memcpy(buf + len, ", ", 2);
        len += 2;
    }
    memcpy(buf + len, s, n);
    buf[len + n] = '\0';
}

/* The DNS and IP entries of the subjectAltName, else the CN. */
static void cert_names(X509 *x, char *buf, size_t size) {
    buf[0] = '\0';
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
            append(buf, size, (const char *)s, (size_t)ASN1_STRING_length(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
            char ip[64] = "";
            if (ASN1_STRING_length(g->d.iPAddress) == 4)
                snprintf(ip, sizeof(ip), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
            else
                snprintf(ip, sizeof(ip), "an IPv6 address");
            append(buf, size, ip, strlen(ip));
        }
    }
    GENERAL_NAMES_free(sans);
    if (buf[0])
        return;
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0)
        append(buf, size, cn, strlen(cn));
}

static void asn1_time_text(const ASN1_TIME *t, char *buf, size_t size) {
    struct tm tm;
    buf[0] = '\0';
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int tls_cert_info_der(const void *der, size_t len, tls_cert_info_t *info) {
    memset(info, 0, sizeof(*info));
    const unsigned char *p = der;
    X509 *x = der && len > 0 && len < (size_t)1 << 30 ? d2i_X509(NULL, &p, (long)len) : NULL;
    if (!x)
        return -1;
    cert_names(x, info->names, sizeof(info->names));
    asn1_time_text(X509_get0_notAfter(x), info->not_after, sizeof(info->not_after));
    asn1_time_text(X509_get0_notBefore(x), info->not_before, sizeof(info->not_before));
    X509_free(x);
    return 0;
}

/* ---------------------------------------------------------------- message and fix */

static const char * or (const char *s, const char *dflt) { return s && *s ? s : dflt; }

void tls_verify_error(err_t *e, long x509_error, const char *x509_text, const tls_peer_t *peer,
                      const tls_cert_info_t *cert) {
    const char *server = or (peer->server, "server");
    const char *host = or (peer->host, "?");
    const char *ca_setting = or (peer->ca_setting, "the CA file setting");
    const char *host_setting = or (peer->host_setting, "the host setting");
    char ca[600], names[300] = "", fix[768];
    if (peer->ca_file && *peer->ca_file)
        snprintf(ca, sizeof(ca), "the CA file %s (%s)", peer->ca_file, ca_setting);
    else
        snprintf(ca, sizeof(ca), "the system's CA store (%s is not set)", ca_setting);
    if (cert && cert->names[0])
        snprintf(names, sizeof(names), " (it names %s)", cert->names);

    switch (tls_verify_cause(x509_error)) {
    case TLS_CAUSE_NONE:
        err_set(e, ERR_NONE, "", NULL, "the certificate of the %s was verified", server);
        return;
    case TLS_CAUSE_UNTRUSTED:
        snprintf(fix, sizeof(fix),
                 "set %s to the CA certificate that signed the server's certificate (from the server's "
                 "administrator or the provider's CA bundle)",
                 ca_setting);
        err_set(e, ERR_PERMANENT, "", fix, "TLS: the certificate of the %s is not signed by a CA in %s", server, ca);
        return;
    case TLS_CAUSE_HOSTNAME:
        snprintf(fix, sizeof(fix),
                 "set %s to a name the certificate holds, or have the server's certificate reissued with \"%s\" "
                 "in its subjectAltName",
                 host_setting, host);
        err_set(e, ERR_PERMANENT, "", fix, "TLS: the certificate of the %s is not issued for the host name \"%s\"%s",
                server, host, names);
        return;
    case TLS_CAUSE_EXPIRED:
        err_set(e, ERR_PERMANENT, "", "renew the server's certificate (and check that this machine's clock is right)",
                "TLS: the certificate of the %s expired%s%s", server, cert && cert->not_after[0] ? " on " : "",
                cert ? cert->not_after : "");
        return;
    case TLS_CAUSE_NOT_YET_VALID:
        err_set(e, ERR_PERMANENT, "",
                "check the clocks of this machine and of the server, or give the server a certificate valid now",
                "TLS: the certificate of the %s is not valid before %s", server,
                cert && cert->not_before[0] ? cert->not_before : "a time still to come");
        return;
    case TLS_CAUSE_OTHER:
        break;
    }
    snprintf(fix, sizeof(fix), "check the server's certificate chain against %s", ca);
    err_set(e, ERR_PERMANENT, "", fix,
            "TLS: the certificate of the %s failed verification: %s (OpenSSL X509 error %ld)", server,
            or (x509_text, "unknown reason"), x509_error);
}
