/* test_pgconn.c - unit tests for pgconn.c's failure classification: SQLSTATEs out of libpq's
 * verbose connection errors, and the fix for each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgconn.h"

static void test_strip_one_error(void **state) {
    (void)state;
    char out[512], code[6];
    pgconn_strip_verbose("connection to server at \"127.0.0.1\", port 15432 failed: FATAL:  28P01: password "
                         "authentication failed for user \"x\"\nLOCATION:  auth_failed, auth.c:335\n",
                         out, sizeof(out), code);
    assert_string_equal(code, "28P01");
    assert_string_equal(out, "connection to server at \"127.0.0.1\", port 15432 failed: FATAL:  password "
                             "authentication failed for user \"x\"\n");
}

static void test_strip_translated_severity(void **state) {
    (void)state;
    char out[512], code[6];
    /* lc_messages = de_DE: the words change, the SQLSTATE and the shape do not */
    pgconn_strip_verbose("FATAL:  3D000: Datenbank \xc2\xbbx\xc2\xab existiert nicht\nORT:  InitPostgres, "
                         "postinit.c:948\n",
                         out, sizeof(out), code);
    assert_string_equal(code, "3D000");
    assert_string_equal(out, "FATAL:  Datenbank \xc2\xbbx\xc2\xab existiert nicht\n");
}

static void test_strip_multi_host_prefers_permanent(void **state) {
    (void)state;
    char out[1024], code[6];
    pgconn_strip_verbose("connection to server at \"a\", port 1 failed: FATAL:  28000: no pg_hba.conf entry\n"
                         "LOCATION:  ClientAuthentication, auth.c:526\n"
                         "connection to server at \"b\", port 2 failed: FATAL:  57P03: the database system is "
                         "starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2455\n",
                         out, sizeof(out), code);
    assert_string_equal(code, "28000");
    assert_null(strstr(out, "LOCATION"));
    assert_null(strstr(out, "57P03"));
    assert_non_null(strstr(out, "starting up"));
}

static void test_strip_client_side(void **state) {
    (void)state;
    char out[512], code[6];
    const char *msg = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server "
                      "running on that host and accepting TCP/IP connections?\n";
    pgconn_strip_verbose(msg, out, sizeof(out), code);
    assert_string_equal(code, "");
    assert_string_equal(out, msg); /* nothing looked like a SQLSTATE or a location */
}

static void test_strip_ignores_lookalikes(void **state) {
    (void)state;
    char out[512], code[6];
    /* a code after one space is message text, not libpq's "SEVERITY:  CODE: " */
    pgconn_strip_verbose("ERROR: ABCDE: not a code", out, sizeof(out), code);
    assert_string_equal(code, "");
    assert_string_equal(out, "ERROR: ABCDE: not a code");
}

static void test_permanent_sqlstates(void **state) {
    (void)state;
    assert_true(pgconn_sqlstate_is_permanent("28P01"));
    assert_true(pgconn_sqlstate_is_permanent("28000"));
    assert_true(pgconn_sqlstate_is_permanent("3D000"));
    assert_true(pgconn_sqlstate_is_permanent("42501"));
    assert_false(pgconn_sqlstate_is_permanent("57P03"));
    assert_false(pgconn_sqlstate_is_permanent("53300"));
    assert_false(pgconn_sqlstate_is_permanent("08006"));
}

static void test_fixes(void **state) {
    (void)state;
    char buf[256];
    assert_non_null(strstr(pgconn_fix_for("28P01", "u", false, buf, sizeof(buf)), "password"));
    assert_non_null(strstr(pgconn_fix_for("28000", "u", false, buf, sizeof(buf)), "pg_hba.conf"));
    assert_non_null(strstr(pgconn_fix_for("3D000", "u", false, buf, sizeof(buf)), "dbname"));
    assert_string_equal(pgconn_fix_for("42501", "app", true, buf, sizeof(buf)),
                        "run ALTER ROLE \"app\" REPLICATION; as a superuser (see sql/roles.sql)");
    assert_non_null(strstr(pgconn_fix_for("42501", "app", false, buf, sizeof(buf)), "GRANT CONNECT"));
    assert_non_null(strstr(pgconn_fix_for("53300", "u", true, buf, sizeof(buf)), "max_wal_senders"));
    assert_non_null(strstr(pgconn_fix_for("53300", "u", false, buf, sizeof(buf)), "max_connections"));
    assert_non_null(strstr(pgconn_fix_for("", "u", false, buf, sizeof(buf)), "start PostgreSQL"));
    assert_non_null(strstr(pgconn_fix_for(NULL, NULL, false, buf, sizeof(buf)), "host and port"));
}

static void test_error_one_line(void **state) {
    (void)state;
    err_t e;
    char line[2048];
    err_set(&e, ERR_PERMANENT, "28P01", "fix\nit", "FATAL:  no\nDETAIL:  %s\n", "why");
    assert_string_equal(e.msg, "FATAL:  no DETAIL:  why");
    assert_string_equal(e.fix, "fix it");
    assert_string_equal(e.code, "28P01");
    assert_string_equal(err_line(&e, line, sizeof(line)), "FATAL:  no DETAIL:  why: fix it");
    err_set(&e, ERR_TRANSIENT, NULL, NULL, "down");
    assert_string_equal(err_line(&e, line, sizeof(line)), "down");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strip_one_error),
        cmocka_unit_test(test_strip_translated_severity),
        cmocka_unit_test(test_strip_multi_host_prefers_permanent),
        cmocka_unit_test(test_strip_client_side),
        cmocka_unit_test(test_strip_ignores_lookalikes),
        cmocka_unit_test(test_permanent_sqlstates),
        cmocka_unit_test(test_fixes),
        cmocka_unit_test(test_error_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
