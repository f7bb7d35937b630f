/* test_log.c - unit tests for log.c: text and JSON lines, level filter, one write per line,
 * conninfo password redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define TS_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

/* ---- stderr capture ----------------------------------------------------------------------- */

typedef struct {
    char path[64];
    int fd;
    int saved;
} capture_t;

static void capture_begin(capture_t *c) {
    snprintf(c->path, sizeof(c->path), "/tmp/test_log_XXXXXX");
    c->fd = mkostemp(c->path, O_APPEND);
    assert_true(c->fd >= 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr and returns everything written meanwhile (caller frees). */
static char *capture_end(capture_t *c) {
    struct stat st;
    char *buf;
    ssize_t n;

    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    assert_int_equal(fstat(c->fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    n = pread(c->fd, buf, (size_t)st.st_size, 0);
    assert_int_equal(n, st.st_size);
    buf[n] = '\0';
    close(c->fd);
    unlink(c->path);
    return buf;
}

static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

static void assert_matches(const char *text, const char *re) {
    regex_t rx;
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&rx, text, 0, NULL, 0) != 0) {
        regfree(&rx);
        fail_msg("'%s' does not match /%s/", text, re);
    }
    regfree(&rx);
}

static int reset_log(void **state) {
    (void)state;
    log_init("outboxd", LOG_INFO, LOG_FORMAT_TEXT);
    return 0;
}

/* ---- text format -------------------------------------------------------------------------- */

static void test_text_line(void **state) {
    (void)state;
    capture_t c;
    char *out, re[256];

    log_init("testprog", LOG_INFO, LOG_FORMAT_TEXT);
    capture_begin(&c);
    log_info("hello %s %d", "world", 42);
    log_error("boom");
    out = capture_end(&c);

    snprintf(re, sizeof(re),
             "^" TS_RE " testprog\\[%ld\\] INFO: hello world 42\n" TS_RE " testprog\\[%ld\\] ERROR: boom\n$",
             (long)getpid(), (long)getpid());
    assert_matches(out, re);
    free(out);
}

static void test_text_newlines_joined(void **state) {
    (void)state;
    capture_t c;
    char *out;

    capture_begin(&c);
    log_warn("line one\nline two\r\n");
    /* libpq's shape: a DETAIL line, a tab-indented continuation, a trailing newline */
    log_error("cannot connect: FATAL:  no\nDETAIL:  why \n\tIs the server running?\n");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, " WARN: line one line two\n"));
    assert_non_null(strstr(out, " ERROR: cannot connect: FATAL:  no DETAIL:  why Is the server running?\n"));
    free(out);
}

static void test_text_long_message(void **state) {
    (void)state;
    capture_t c;
    size_t len = 10000;
    char *big = malloc(len + 1), *out, *p;

    assert_non_null(big);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + i % 26);
    big[len] = '\0';
    capture_begin(&c);
    log_info("<%s>", big);
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 1);
    p = strstr(out, "INFO: <");
    assert_non_null(p);
    assert_memory_equal(p + 7, big, len);
    assert_string_equal(p + 7 + len, ">\n");
    free(out);
    free(big);
}

static void test_level_filter(void **state) {
    (void)state;
    capture_t c;
    char *out;

    log_init("outboxd", LOG_WARN, LOG_FORMAT_TEXT);
    assert_int_equal(log_get_level(), LOG_WARN);
    capture_begin(&c);
    log_debug("d1");
    log_info("i1");
    log_warn("w1");
    log_error("e1");
    log_set_level(LOG_DEBUG);
    log_debug("d2");
    log_set_level(LOG_ERROR);
    log_warn("w2");
    log_error("e2");
    out = capture_end(&c);

    assert_int_equal(count_lines(out), 4);
    assert_null(strstr(out, "d1"));
    assert_null(strstr(out, "i1"));
    assert_null(strstr(out, "w2"));
    assert_non_null(strstr(out, "WARN: w1\n"));
    assert_non_null(strstr(out, "ERROR: e1\n"));
    assert_non_null(strstr(out, "DEBUG: d2\n"));
    assert_non_null(strstr(out, "ERROR: e2\n"));
    free(out);
}

static void test_errno_preserved(void **state) {
    (void)state;
    capture_t c;

    capture_begin(&c);
    errno = ENOENT;
    log_info("x");
    assert_int_equal(errno, ENOENT);
    errno = EAGAIN;
    log_debug("filtered");
    assert_int_equal(errno, EAGAIN);
    free(capture_end(&c));
}

/* ---- JSON format -------------------------------------------------------------------------- */

/* Parses one JSON line and checks the fixed fields. Returns the object (caller decrefs). */
static json_t *parse_json_line(const char *line, size_t len, const char *level) {
    json_error_t err;
    json_t *o = json_loadb(line, len, 0, &err);

    if (o == NULL)
        fail_msg("not JSON: %.*s (%s)", (int)len, line, err.text);
    assert_true(json_is_object(o));
    assert_int_equal(json_object_size(o), 5);
    assert_string_equal(json_string_value(json_object_get(o, "level")), level);
    assert_string_equal(json_string_value(json_object_get(o, "prog")), "jprog");
    assert_true(json_is_integer(json_object_get(o, "pid")));
    assert_int_equal(json_integer_value(json_object_get(o, "pid")), getpid());
    assert_non_null(json_string_value(json_object_get(o, "ts")));
    assert_matches(json_string_value(json_object_get(o, "ts")), "^" TS_RE "$");
    return o;
}

static void test_json_lines(void **state) {
    (void)state;
    capture_t c;
    char *out, *nl;
    json_t *o;
    const char *tricky = "quote \" backslash \\ tab \t newline \n unicode \xc3\xa9\xe2\x82\xac";

    log_init("jprog", LOG_DEBUG, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_info("relay started on slot %s", "outboxd");
    log_debug("%s", tricky);
    out = capture_end(&c);

    assert_int_equal(count_lines(out), 2);
    nl = strchr(out, '\n');
    o = parse_json_line(out, (size_t)(nl - out), "info");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "relay started on slot outboxd");
    json_decref(o);

    o = parse_json_line(nl + 1, strlen(nl + 1) - 1, "debug");
    /* one line: the line break and the blanks around it became one space */
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "quote \" backslash \\ tab \t newline unicode \xc3\xa9\xe2\x82\xac");
    json_decref(o);
    free(out);
}

static void test_json_invalid_utf8(void **state) {
    (void)state;
    capture_t c;
    char *out;
    json_t *o;

    log_init("jprog", LOG_INFO, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_warn("bad \xff\xfe bytes");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 1);
    o = parse_json_line(out, strlen(out) - 1, "warn");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "bad ?? bytes");
    json_decref(o);
    free(out);
}

static void test_json_level_filter(void **state) {
    (void)state;
    capture_t c;
    char *out;
    json_t *o;

    log_init("jprog", LOG_ERROR, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_warn("no");
    log_error("yes");
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 1);
    o = parse_json_line(out, strlen(out) - 1, "error");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "yes");
    json_decref(o);
    free(out);
}

static void test_json_long_message(void **state) {
    (void)state;
    capture_t c;
    size_t len = 50000;
    char *big = malloc(len + 1), *out;
    json_t *o;

    assert_non_null(big);
    memset(big, 'x', len);
    big[len] = '\0';
    log_init("jprog", LOG_INFO, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_info("%s", big);
    out = capture_end(&c);
    assert_int_equal(count_lines(out), 1);
    o = parse_json_line(out, strlen(out) - 1, "info");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), big);
    json_decref(o);
    free(out);
    free(big);
}

/* Several processes logging to one O_APPEND file: each line must arrive whole. */
static void test_concurrent_processes(void **state) {
    (void)state;
    enum { PROCS = 4, LINES = 300 };
    capture_t c;
    char *out, *line, *save = NULL;
    size_t n = 0;
    char re[256];
    regex_t rx;

    log_init("outboxd", LOG_INFO, LOG_FORMAT_TEXT);
    capture_begin(&c);
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (int i = 0; i < LINES; i++)
                log_info("proc %d line %d %s", p, i, "padding padding padding padding padding padding padding padding");
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    out = capture_end(&c);

    snprintf(re, sizeof(re), "^" TS_RE " outboxd\\[[0-9]+\\] INFO: proc [0-9] line [0-9]+ (padding ){7}padding$");
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (regexec(&rx, line, 0, NULL, 0) != 0) {
            regfree(&rx);
            fail_msg("torn line: '%s'", line);
        }
        n++;
    }
    regfree(&rx);
    assert_int_equal(n, PROCS * LINES);
    free(out);
}

static void test_parse_names(void **state) {
    (void)state;
    log_level_t l = LOG_ERROR;
    log_format_t f = LOG_FORMAT_TEXT;

    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_ERROR);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("INFO", &l), 0);
    assert_int_equal(l, LOG_INFO);
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(l, LOG_WARN);
    l = LOG_INFO;
    assert_int_equal(log_level_parse("verbose", &l), -1);
    assert_int_equal(log_level_parse("", &l), -1);
    assert_int_equal(log_level_parse(NULL, &l), -1);
    assert_int_equal(l, LOG_INFO);

    assert_int_equal(log_format_parse("json", &f), 0);
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_format_parse("text", &f), 0);
    assert_int_equal(f, LOG_FORMAT_TEXT);
    assert_int_equal(log_format_parse("xml", &f), -1);
    assert_int_equal(log_format_parse(NULL, &f), -1);
}

/* ---- conninfo redaction ------------------------------------------------------------------- */

static void check_redact(const char *in, const char *expected, const char *secret) {
    char out[1024];

    memset(out, 'Z', sizeof(out));
    log_redact_conninfo(in, out, sizeof(out));
    if (strcmp(out, expected) != 0)
        fail_msg("redact(%s)\n  got      %s\n  expected %s", in, out, expected);
    if (secret != NULL && strstr(out, secret) != NULL)
        fail_msg("redact(%s) leaks '%s': %s", in, secret, out);
}

static void test_redact_keyvalue(void **state) {
    (void)state;
    check_redact("host=db port=5432 user=app password=s3cret dbname=orders",
                 "host=db port=5432 user=app password=*** dbname=orders", "s3cret");
    check_redact("password=s3cret", "password=***", "s3cret");
    check_redact("password=s3cret host=db", "password=*** host=db", "s3cret");
    /* spacing around '=' is kept, the value is not */
    check_redact("host=db password = s3cret user=u", "host=db password = *** user=u", "s3cret");
    check_redact("host=db  password  =s3cret", "host=db  password  =***", "s3cret");
    check_redact("host=db password=\ts3cret\tuser=u", "host=db password=\t***\tuser=u", "s3cret");
    /* quoted with escaped quote and spaces */
    check_redact("host=db password='it\\'s a s3cret' user=u", "host=db password=*** user=u", "s3cret");
    check_redact("password='a\\\\b c' user=u", "password=*** user=u", "b c");
    check_redact("password = 'spaced s3cret'", "password = ***", "s3cret");
    /* unterminated quote: everything after is hidden */
    check_redact("host=db password='never ends user=u", "host=db password=***", "never");
    /* unquoted value with a backslash-escaped space (libpq reads "a b") */
    check_redact("host=db password=a\\ s3cret user=u", "host=db password=*** user=u", "s3cret");
    /* sslpassword and case variants */
    check_redact("sslpassword=keypw host=h", "sslpassword=*** host=h", "keypw");
    check_redact("PASSWORD=s3cret", "PASSWORD=***", "s3cret");
    /* libpq skips blanks after "=", so the value here is "user=u" */
    check_redact("host=db password= user=u", "host=db password= ***", "user=u");
    /* nothing to hide */
    check_redact("host=db port=5432 dbname=orders", "host=db port=5432 dbname=orders", NULL);
    check_redact("host='my db' application_name=outboxd", "host='my db' application_name=outboxd", NULL);
    check_redact("", "", NULL);
    /* malformed: a bare "password" word hides the rest */
    check_redact("host=db password s3cret", "host=db password ***", "s3cret");
}

static void test_redact_uri(void **state) {
    (void)state;
    check_redact("postgres://app:s3cret@db:5432/orders", "postgres://app:***@db:5432/orders", "s3cret");
    check_redact("postgresql://app:s3cret@db/orders?sslmode=require", "postgresql://app:***@db/orders?sslmode=require",
                 "s3cret");
    check_redact("postgresql://app:s3cret@h1:5432,h2:5433/orders", "postgresql://app:***@h1:5432,h2:5433/orders",
                 "s3cret");
    check_redact("postgresql://app:s3cret@", "postgresql://app:***@", "s3cret");
    check_redact("postgresql://app:@db/orders", "postgresql://app:***@db/orders", NULL);
    /* user only / no userinfo: unchanged */
    check_redact("postgresql://app@db/orders", "postgresql://app@db/orders", NULL);
    check_redact("postgresql://db:5432/orders", "postgresql://db:5432/orders", NULL);
    check_redact("postgresql://", "postgresql://", NULL);
    /* percent-encoded password */
    check_redact("postgresql://app:s3%40cr%2Fet@db/orders", "postgresql://app:***@db/orders", "cr%2Fet");
    /* raw '@' and '/' in the password (invalid URI, still hidden whole) */
    check_redact("postgres://app:p@ss/w0rd@db/orders", "postgres://app:***@db/orders", "ss/w0rd");
    /* query parameter passwords */
    check_redact("postgresql://db/orders?user=app&password=s3cret&sslmode=require",
                 "postgresql://db/orders?user=app&password=***&sslmode=require", "s3cret");
    check_redact("postgresql://db/orders?password=s3cret", "postgresql://db/orders?password=***", "s3cret");
    check_redact("postgresql:///orders?host=/tmp&sslpassword=kpw", "postgresql:///orders?host=/tmp&sslpassword=***",
                 "kpw");
    check_redact("postgresql://db/orders?pass%77ord=s3cret", "postgresql://db/orders?pass%77ord=***", "s3cret");
    /* both at once */
    check_redact("postgresql://u:one@db/x?password=two&a=b", "postgresql://u:***@db/x?password=***&a=b", "one");
    check_redact("postgresql://u:one@db/x?password=two&a=b", "postgresql://u:***@db/x?password=***&a=b", "two");
}

static void test_redact_dbname_expansion(void **state) {
    (void)state;
    /* libpq expands a dbname holding a connection string */
    check_redact("dbname='postgresql://u:s3cret@h/db' application_name=x",
                 "dbname='postgresql://u:***@h/db' application_name=x", "s3cret");
    check_redact("dbname='host=h password=s3cret'", "dbname='host=h password=***'", "s3cret");
    check_redact("dbname=postgres://u:s3cret@h/db", "dbname='postgres://u:***@h/db'", "s3cret");
    check_redact("dbname=orders", "dbname=orders", NULL);
}

static void test_redact_truncation(void **state) {
    (void)state;
    char out[16];

    memset(out, 'Z', sizeof(out));
    log_redact_conninfo("host=db password=s3cret", out, 12);
    assert_string_equal(out, "host=db pas");
    log_redact_conninfo("password=s3cret dbname=x", out, 13);
    assert_string_equal(out, "password=***");
    log_redact_conninfo("password=s3cret", out, 11);
    assert_string_equal(out, "password=*");
    log_redact_conninfo("postgres://u:s3cret@h", out, sizeof(out));
    assert_string_equal(out, "postgres://u:**");
    out[0] = 'Z';
    log_redact_conninfo("password=s3cret", out, 1);
    assert_string_equal(out, "");
    log_redact_conninfo(NULL, out, sizeof(out));
    assert_string_equal(out, "");
    log_redact_conninfo("x", out, 0); /* must not touch out */
    assert_string_equal(out, "");
}

/* Deterministic pseudo-random numbers for the property tests. */
static uint32_t rng_next(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Passwords are drawn from upper case letters, digits and punctuation that the templates
 * below never use in upper case or as digits: if any upper case letter or digit shows up in
 * the output, part of a password leaked. */
static void test_redact_never_leaks(void **state) {
    (void)state;
    static const char upper_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static const char quoted_extra[] = " '\\=@#/?&:";
    uint32_t seed = 12345;
    char pw[40], enc[200], in[400], out[600];

    for (int iter = 0; iter < 4000; iter++) {
        size_t len = 1 + rng_next(&seed) % 30, e = 0;
        int form = (int)(rng_next(&seed) % 6);

        for (size_t i = 0; i < len; i++) {
            if (form == 1 && rng_next(&seed) % 3 == 0)
                pw[i] = quoted_extra[rng_next(&seed) % (sizeof(quoted_extra) - 1)];
            else
                pw[i] = upper_digits[rng_next(&seed) % (sizeof(upper_digits) - 1)];
        }
        pw[len] = '\0';
        switch (form) {
        case 0:
            snprintf(in, sizeof(in), "host=db password=%s user=app", pw);
            break;
        case 1: /* quoted, escaping ' and \ */
            for (size_t i = 0; i < len; i++) {
                if (pw[i] == '\'' || pw[i] == '\\')
                    enc[e++] = '\\';
                enc[e++] = pw[i];
            }
            enc[e] = '\0';
            snprintf(in, sizeof(in), "host=db  password = '%s' user=app", enc);
            break;
        case 2: /* URI userinfo; some characters percent-encoded */
            for (size_t i = 0; i < len; i++) {
                if (rng_next(&seed) % 4 == 0)
                    e += (size_t)snprintf(enc + e, sizeof(enc) - e, "%%%02X", (unsigned char)pw[i]);
                else
                    enc[e++] = pw[i];
            }
            enc[e] = '\0';
            snprintf(in, sizeof(in), "postgresql://app:%s@db/orders?sslmode=require", enc);
            break;
        case 3:
            snprintf(in, sizeof(in), "postgres://db/orders?user=app&password=%s&sslmode=require", pw);
            break;
        case 4:
            snprintf(in, sizeof(in), "dbname='postgresql://app:%s@db/orders' user=app", pw);
            break;
        default:
            snprintf(in, sizeof(in), "sslpassword=%s password=%s", pw, pw);
            break;
        }
        log_redact_conninfo(in, out, sizeof(out));
        for (const char *p = out; *p; p++)
            if ((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
                fail_msg("leak: '%s' -> '%s'", in, out);
        assert_non_null(strstr(out, "***"));
        /* every truncation is NUL-terminated inside the buffer and leaks nothing */
        for (size_t n = 1; n < 64; n += 7) {
            memset(out, 'x', sizeof(out));
            log_redact_conninfo(in, out, n);
            assert_true(memchr(out, '\0', n) != NULL);
            for (const char *p = out; *p; p++)
                assert_false((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'));
        }
    }
}

/* Arbitrary bytes: no crash, no read or write out of bounds (run under ASan/valgrind). Each
 * output ends inside its buffer and, cut short, is the start of the whole output; text with
 * nothing that looks like a password (no "password" in any case, no URI userinfo '@', no
 * percent-encoding, no dbname holding a connection string) comes back unchanged. */
static void test_redact_garbage(void **state) {
    (void)state;
    static const char alphabet[] = "password=' \\\"@:/?&%=pgstrqlu\t\x01\xff";
    static const char *const starts[] = {"", "postgresql://", "postgres://", "password=", "dbname='"};
    uint32_t seed = 99;
    char in[128], out[256], whole[256];
    int unchanged = 0;

    for (int iter = 0; iter < 20000; iter++) {
        const char *start = starts[rng_next(&seed) % 5];
        size_t len = strlen(start), n = rng_next(&seed) % 60;
        memcpy(in, start, len);
        for (size_t i = 0; i < n; i++)
            in[len + i] = alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];
        in[len + n] = '\0';
        size_t size = 1 + rng_next(&seed) % sizeof(out);
        memset(out, 'x', sizeof(out));
        log_redact_conninfo(in, out, size);
        assert_non_null(memchr(out, '\0', size));
        log_redact_conninfo(in, whole, sizeof(whole));
        assert_int_equal(strncmp(out, whole, strlen(out)), 0);
        if (strcasestr(in, "password") == NULL && strpbrk(in, "@%") == NULL && strncmp(in, "dbname", 6) != 0) {
            assert_string_equal(whole, in);
            unchanged++;
        }
    }
    assert_true(unchanged > 1000); /* the last check did run */
}

static void test_redact_url(void **state) {
    (void)state;
    char out[256];
    log_redact_url("https://bob:hunter2@svc.example:8443/inbox?x=1", out, sizeof(out));
    assert_string_equal(out, "https://bob:***@svc.example:8443/inbox?x=1");
    log_redact_url("http://svc.example/inbox", out, sizeof(out));
    assert_string_equal(out, "http://svc.example/inbox");
    log_redact_url("http://bob@svc/", out, sizeof(out));
    assert_string_equal(out, "http://bob@svc/");
    log_redact_url("not a url: a:b@c", out, sizeof(out));
    assert_string_equal(out, "not a url: a:b@c");
    log_redact_url(NULL, out, sizeof(out));
    assert_string_equal(out, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_text_line, reset_log),
        cmocka_unit_test_setup(test_text_newlines_joined, reset_log),
        cmocka_unit_test_setup(test_text_long_message, reset_log),
        cmocka_unit_test_setup(test_level_filter, reset_log),
        cmocka_unit_test_setup(test_errno_preserved, reset_log),
        cmocka_unit_test_setup(test_json_lines, reset_log),
        cmocka_unit_test_setup(test_json_invalid_utf8, reset_log),
        cmocka_unit_test_setup(test_json_level_filter, reset_log),
        cmocka_unit_test_setup(test_json_long_message, reset_log),
        cmocka_unit_test_setup(test_concurrent_processes, reset_log),
        cmocka_unit_test(test_parse_names),
        cmocka_unit_test(test_redact_keyvalue),
        cmocka_unit_test(test_redact_uri),
        cmocka_unit_test(test_redact_dbname_expansion),
        cmocka_unit_test(test_redact_truncation),
        cmocka_unit_test(test_redact_never_leaks),
        cmocka_unit_test(test_redact_garbage),
        cmocka_unit_test(test_redact_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
