/* test_tls_verify.c - unit tests for tls_verify.c (OpenSSL verify codes as causes, the message
 * and fix of each, what a certificate names) and pgtls.c (the CA file libpq uses; the probe
 * against a server that refuses TLS, played by a thread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "pgtls.h"
#include "tls_verify.h"

static void test_causes(void **state) {
    (void)state;
    assert_int_equal(tls_verify_cause(X509_V_OK), TLS_CAUSE_NONE);
    assert_int_equal(tls_verify_cause(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY), TLS_CAUSE_UNTRUSTED);
    assert_int_equal(tls_verify_cause(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN), TLS_CAUSE_UNTRUSTED);
    assert_int_equal(tls_verify_cause(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), TLS_CAUSE_UNTRUSTED);
    assert_int_equal(tls_verify_cause(X509_V_ERR_HOSTNAME_MISMATCH), TLS_CAUSE_HOSTNAME);
    assert_int_equal(tls_verify_cause(X509_V_ERR_IP_ADDRESS_MISMATCH), TLS_CAUSE_HOSTNAME);
    assert_int_equal(tls_verify_cause(X509_V_ERR_CERT_HAS_EXPIRED), TLS_CAUSE_EXPIRED);
    assert_int_equal(tls_verify_cause(X509_V_ERR_CERT_NOT_YET_VALID), TLS_CAUSE_NOT_YET_VALID);
    assert_int_equal(tls_verify_cause(X509_V_ERR_CERT_REVOKED), TLS_CAUSE_OTHER);
}

static const tls_peer_t kafka_peer = {.server = "Kafka broker localhost:9093",
                                      .host = "localhost",
                                      .ca_file = "/etc/ca.pem",
                                      .ca_setting = "kafka.ssl.ca.location",
                                      .host_setting = "kafka.bootstrap.servers"};

static void test_messages(void **state) {
    (void)state;
    err_t e;
    tls_cert_info_t cert = {.names = "db.internal, 10.0.0.5", .not_after = "2020-01-02 00:00:00 UTC"};

    tls_verify_error(&e, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "x", &kafka_peer, &cert);
    assert_int_equal(e.kind, ERR_PERMANENT);
    assert_string_equal(e.msg, "TLS: the certificate of the Kafka broker localhost:9093 is not signed by a CA in the "
                               "CA file /etc/ca.pem (kafka.ssl.ca.location)");
    assert_non_null(strstr(e.fix, "set kafka.ssl.ca.location to the CA certificate"));

    tls_verify_error(&e, X509_V_ERR_HOSTNAME_MISMATCH, "x", &kafka_peer, &cert);
    assert_string_equal(e.msg, "TLS: the certificate of the Kafka broker localhost:9093 is not issued for the host "
                               "name \"localhost\" (it names db.internal, 10.0.0.5)");
    assert_non_null(strstr(e.fix, "set kafka.bootstrap.servers to a name the certificate holds"));

    tls_verify_error(&e, X509_V_ERR_CERT_HAS_EXPIRED, "x", &kafka_peer, &cert);
    assert_string_equal(e.msg, "TLS: the certificate of the Kafka broker localhost:9093 expired on 2020-01-02 "
                               "00:00:00 UTC");
    assert_non_null(strstr(e.fix, "renew the server's certificate"));

    tls_verify_error(&e, X509_V_ERR_CERT_HAS_EXPIRED, "x", &kafka_peer, NULL);
    assert_string_equal(e.msg, "TLS: the certificate of the Kafka broker localhost:9093 expired");

    tls_verify_error(&e, X509_V_ERR_CERT_REVOKED, "certificate revoked", &kafka_peer, NULL);
    assert_string_equal(e.msg, "TLS: the certificate of the Kafka broker localhost:9093 failed verification: "
                               "certificate revoked (OpenSSL X509 error 23)");

    tls_peer_t system = kafka_peer;
    system.ca_file = "";
    tls_verify_error(&e, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, NULL, &system, NULL);
    assert_non_null(strstr(e.msg, "the system's CA store (kafka.ssl.ca.location is not set)"));
}

/* A certificate for the names (subjectAltName) valid from not_before to not_after days from
 * now, self-signed; DER into *der (OPENSSL_free it). */
static int make_cert(const char *san, long not_before_days, long not_after_days, unsigned char **der) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), not_before_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), not_after_days * 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"the-cn", -1, -1,
                               0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    if (san) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, key, EVP_sha256());
    *der = NULL;
    int len = i2d_X509(x, der);
    X509_free(x);
    EVP_PKEY_free(key);
    return len;
}

static void test_cert_info(void **state) {
    (void)state;
    unsigned char *der;
    tls_cert_info_t info;
    int len = make_cert("DNS:localhost, IP:127.0.0.1, DNS:*.example.com", -2, -1, &der);
    assert_int_equal(tls_cert_info_der(der, (size_t)len, &info), 0);
    assert_string_equal(info.names, "localhost, 127.0.0.1, *.example.com");
    assert_int_equal(strlen(info.not_after), strlen("2020-01-02 00:00:00 UTC"));
    assert_non_null(strstr(info.not_after, " UTC"));
    OPENSSL_free(der);

    len = make_cert(NULL, 0, 1, &der); /* no subjectAltName: the CN */
    assert_int_equal(tls_cert_info_der(der, (size_t)len, &info), 0);
    assert_string_equal(info.names, "the-cn");
    OPENSSL_free(der);

    assert_int_equal(tls_cert_info_der("garbage", 7, &info), -1);
    assert_string_equal(info.names, "");
    assert_int_equal(tls_cert_info_der(NULL, 0, &info), -1);
}

static void test_ca_file(void **state) {
    (void)state;
    char buf[512];
    assert_string_equal(pgtls_ca_file("/etc/ca.pem", buf, sizeof(buf)), "/etc/ca.pem");
    setenv("HOME", "/home/someone", 1);
    assert_string_equal(pgtls_ca_file(NULL, buf, sizeof(buf)), "/home/someone/.postgresql/root.crt");
    assert_string_equal(pgtls_ca_file("", buf, sizeof(buf)), "/home/someone/.postgresql/root.crt");
}

/* A "server" that answers every SSLRequest with 'N' (ssl = off), for two connections: libpq's
 * and the probe's. */
static void *refuse_tls(void *arg) {
    int lfd = *(int *)arg;
    for (int i = 0; i < 2; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            break;
        unsigned char req[8];
        if (recv(fd, req, sizeof(req), MSG_WAITALL) == (ssize_t)sizeof(req))
            (void)!send(fd, "N", 1, MSG_NOSIGNAL);
        close(fd);
    }
    return NULL;
}

static void test_probe_server_without_tls(void **state) {
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    pthread_t t;
    pthread_create(&t, NULL, refuse_tls, &lfd);

    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d sslmode=verify-ca sslrootcert=%s connect_timeout=5",
             ntohs(a.sin_port), TEST_DATA_DIR "/config/good.conf" /* any file that exists */);
    PGconn *conn = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(conn), CONNECTION_BAD);
    err_t e;
    assert_true(pgtls_diagnose(conn, "cannot connect to PostgreSQL: ", &e));
    assert_int_equal(e.kind, ERR_PERMANENT);
    char want[200];
    snprintf(want, sizeof(want),
             "cannot connect to PostgreSQL: the PostgreSQL server 127.0.0.1:%d does not accept TLS connections, and "
             "sslmode=verify-ca requires TLS",
             ntohs(a.sin_port));
    assert_string_equal(e.msg, want);
    assert_non_null(strstr(e.fix, "ssl = on"));
    PQfinish(conn);
    pthread_join(t, NULL);

    /* Nothing listens any more: not a TLS problem, the caller's classification stands. */
    close(lfd);
    conn = PQconnectdb(conninfo);
    assert_false(pgtls_diagnose(conn, "", &e));
    PQfinish(conn);
    /* sslmode=prefer verifies nothing: no probe. */
    conn = PQconnectdb("host=127.0.0.1 port=1 sslmode=prefer");
    assert_false(pgtls_diagnose(conn, "", &e));
    PQfinish(conn);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_causes),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_cert_info),
        cmocka_unit_test(test_ca_file),
        cmocka_unit_test(test_probe_server_without_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
