/* test_kconf_sec.c - unit tests for kconf.c's security failures: which settings it reads, what
 * the certificate verify step records, and how librdkafka's error codes are classified. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/x509_vfy.h>

#include "kconf.h"

static int dummy_cb(rd_kafka_t *rk, const char *broker_name, int32_t broker_id, int *x509_error, int depth,
                    const char *buf, size_t size, char *errstr, size_t errstr_size, void *opaque) {
    (void)rk, (void)broker_name, (void)broker_id, (void)x509_error, (void)depth, (void)buf, (void)size;
    (void)errstr, (void)errstr_size, (void)opaque;
    return 1;
}

static rd_kafka_conf_t *conf_with(const char *const *kv) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    err_t e;
    for (int i = 0; kv[i]; i += 2)
        assert_int_equal(kconf_set(conf, kv[i], kv[i + 1], &e), 0);
    return conf;
}

static void test_init_reads_settings(void **state) {
    (void)state;
    static const char *const kv[] = {"bootstrap.servers",
                                     "kafka1:9093",
                                     "security.protocol",
                                     "SASL_SSL",
                                     "sasl.mechanisms",
                                     "SCRAM-SHA-512",
                                     "sasl.username",
                                     "relay",
                                     "sasl.password",
                                     "the-secret",
                                     NULL};
    rd_kafka_conf_t *conf = conf_with(kv);
    kconf_sec_t s;
    kconf_sec_init(&s, conf, dummy_cb);
    assert_true(s.verify);
    assert_string_equal(s.bootstrap, "kafka1:9093");
    assert_string_equal(s.mechanism, "SCRAM-SHA-512");
    assert_string_equal(s.username, "relay");
    assert_null(memmem(&s, sizeof(s), "the-secret", 10)); /* the password is not kept */
    kconf_sec_destroy(&s);
    rd_kafka_conf_destroy(conf);

    static const char *const plain[] = {"bootstrap.servers", "k:9092", NULL};
    conf = conf_with(plain);
    kconf_sec_init(&s, conf, dummy_cb);
    assert_false(s.verify); /* PLAINTEXT: no certificates to verify */
    kconf_sec_destroy(&s);
    rd_kafka_conf_destroy(conf);

    static const char *const off[] = {"security.protocol", "ssl", "enable.ssl.certificate.verification", "false", NULL};
    conf = conf_with(off);
    kconf_sec_init(&s, conf, dummy_cb);
    assert_false(s.verify);
    kconf_sec_destroy(&s);
    rd_kafka_conf_destroy(conf);
}

static void test_classify(void **state) {
    (void)state;
    static const char *const kv[] = {"bootstrap.servers",
                                     "kafka1:9093",
                                     "security.protocol",
                                     "sasl_ssl",
                                     "sasl.mechanisms",
                                     "SCRAM-SHA-512",
                                     "sasl.username",
                                     "relay",
                                     "ssl.ca.location",
                                     "/etc/kafka-ca.pem",
                                     NULL};
    rd_kafka_conf_t *conf = conf_with(kv);
    kconf_sec_t s;
    err_t e;
    char errstr[256];
    kconf_sec_init(&s, conf, dummy_cb);

    assert_true(kconf_sec_classify(&s, RD_KAFKA_RESP_ERR__AUTHENTICATION, &e));
    assert_int_equal(e.kind, ERR_PERMANENT);
    assert_string_equal(e.msg, "Kafka at bootstrap.servers=kafka1:9093 refused the SASL authentication (mechanism "
                               "SCRAM-SHA-512, user \"relay\")");
    assert_non_null(strstr(e.fix, "kafka.sasl.password"));

    /* An SSL error without a failed verification: the handshake broke off, retry. */
    assert_false(kconf_sec_classify(&s, RD_KAFKA_RESP_ERR__SSL, &e));
    assert_false(kconf_sec_classify(&s, RD_KAFKA_RESP_ERR__TRANSPORT, &e));

    int x509 = X509_V_ERR_HOSTNAME_MISMATCH;
    assert_int_equal(kconf_sec_verify(&s, "10.1.2.3:9093", &x509, 0, "not DER", 7, errstr, sizeof(errstr)), 0);
    assert_true(errstr[0] != '\0');
    assert_true(kconf_sec_classify(&s, RD_KAFKA_RESP_ERR__SSL, &e));
    assert_string_equal(e.msg, "TLS: the certificate of the Kafka broker 10.1.2.3:9093 is not issued for the host "
                               "name \"10.1.2.3\"");
    /* Transport errors stay transient even after a failed verification. */
    assert_false(kconf_sec_classify(&s, RD_KAFKA_RESP_ERR__TRANSPORT, &e));

    x509 = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
    kconf_sec_verify(&s, "[::1]:9093", &x509, 1, NULL, 0, errstr, sizeof(errstr));
    assert_true(kconf_sec_classify(&s, RD_KAFKA_RESP_ERR__SSL, &e));
    assert_non_null(strstr(e.msg, "Kafka broker [::1]:9093 is not signed by a CA in the CA file /etc/kafka-ca.pem"));

    /* A later handshake that verifies clears the record. */
    x509 = X509_V_OK;
    assert_int_equal(kconf_sec_verify(&s, "[::1]:9093", &x509, 0, NULL, 0, errstr, sizeof(errstr)), 1);
    assert_false(kconf_sec_classify(&s, RD_KAFKA_RESP_ERR__SSL, &e));

    kconf_sec_destroy(&s);
    kconf_sec_destroy(NULL);
    rd_kafka_conf_destroy(conf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_reads_settings),
        cmocka_unit_test(test_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
