/* test_pgpoll.c - unit tests for pgpoll.c against a fake PostgreSQL server on 127.0.0.1:
 * pgpoll_stop returns at once while a connect or a query hangs (the daemons' stop budget),
 * and failed polls are counted and reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pgpoll.h"

#define HANG_MS 5000     /* the fake server gives up (closes) after this: a reverted fix waits that long */
#define STOP_MAX_MS 1000 /* pgpoll_stop must return well before */

typedef enum { FAKE_SILENT, FAKE_ANSWER_STARTUP } fake_mode_t;

/* A one-connection fake server: SILENT accepts and never answers (a connect that hangs);
 * ANSWER_STARTUP completes the startup (AuthenticationOk, ReadyForQuery) and then never
 * answers a query. Either way it closes after HANG_MS or when told to quit. */
typedef struct fake {
    fake_mode_t mode;
    int lfd, port;
    pthread_t thread;
    atomic_bool quit, got_query;
} fake_t;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads n bytes within the fake's time budget. Returns 0, or -1 (closed, quit, timed out). */
static int read_n(fake_t *f, int fd, char *buf, size_t n, int64_t until) {
    while (n > 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (atomic_load(&f->quit) || now_ms() >= until)
            return -1;
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t got = read(fd, buf, n);
        if (got <= 0)
            return -1;
        buf += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Reads the StartupMessage (int32 length, itself included, then the rest), answers
 * AuthenticationOk and ReadyForQuery, and notes whether a query ('Q') follows. */
static void answer_startup(fake_t *f, int fd, int64_t until) {
    char buf[1024];
    uint32_t n;
    if (read_n(f, fd, buf, 4, until) != 0)
        return;
    memcpy(&n, buf, 4);
    n = ntohl(n);
    if (n < 8 || n - 4 > sizeof(buf) || read_n(f, fd, buf, n - 4, until) != 0)
        return;
    static const char reply[] = {'R', 0, 0, 0, 8, 0,  0, 0, 0, /* AuthenticationOk */
                                 'Z', 0, 0, 0, 5, 'I'};        /* ReadyForQuery, idle */
    if (write(fd, reply, sizeof(reply)) == (ssize_t)sizeof(reply) && read_n(f, fd, buf, 1, until) == 0)
        atomic_store(&f->got_query, buf[0] == 'Q');
}

static void *fake_run(void *arg) {
    fake_t *f = arg;
    int64_t until = now_ms() + HANG_MS;
    int fd = -1;
    while (fd < 0 && !atomic_load(&f->quit) && now_ms() < until) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            fd = accept(f->lfd, NULL, NULL);
    }
    if (fd >= 0 && f->mode == FAKE_ANSWER_STARTUP)
        answer_startup(f, fd, until);
    while (fd >= 0 && !atomic_load(&f->quit) && now_ms() < until) /* hang */
        poll(NULL, 0, 50);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void fake_start(fake_t *f, fake_mode_t mode) {
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(fake_t *f) {
    atomic_store(&f->quit, true);
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

static void conninfo_of(const fake_t *f, char *buf, size_t size) {
    /* connect_timeout=30: a blocking connect would wait for the fake's HANG_MS */
    snprintf(buf, size, "host=127.0.0.1 port=%d user=u dbname=d sslmode=disable gssencmode=disable connect_timeout=30",
             f->port);
}

typedef struct snap {
    int n;
} snap_t;

static int query_select1(PGconn *conn, void *snapshot, void *arg, char *errstr, size_t errstr_size) {
    (void)arg;
    PGresult *res = PQexec(conn, "SELECT 1");
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0)
        snprintf(errstr, errstr_size, "%s", PQerrorMessage(conn));
    ((snap_t *)snapshot)->n = 1;
    PQclear(res);
    return rc;
}

static void stop_within_limit(pgpoll_t *p) {
    int64_t t0 = now_ms();
    pgpoll_stop(p);
    int64_t took = now_ms() - t0;
    if (took > STOP_MAX_MS)
        fail_msg("pgpoll_stop took %lld ms", (long long)took);
}

static void test_stop_while_connect_hangs(void **state) {
    (void)state;
    fake_t f;
    char ci[256];
    fake_start(&f, FAKE_SILENT);
    conninfo_of(&f, ci, sizeof(ci));
    pgpoll_t *p = pgpoll_start(ci, "test", 60000, sizeof(snap_t), query_select1, NULL);
    assert_non_null(p);
    poll(NULL, 0, 300); /* the connect is under way: the fake accepted and says nothing */
    snap_t s;
    assert_int_equal(pgpoll_get(p, &s, NULL, 0), 0);
    stop_within_limit(p);
    fake_stop(&f);
}

static void test_stop_while_query_hangs(void **state) {
    (void)state;
    fake_t f;
    char ci[256];
    fake_start(&f, FAKE_ANSWER_STARTUP);
    conninfo_of(&f, ci, sizeof(ci));
    pgpoll_t *p = pgpoll_start(ci, "test", 60000, sizeof(snap_t), query_select1, NULL);
    assert_non_null(p);
    for (int64_t until = now_ms() + 3000; !atomic_load(&f.got_query) && now_ms() < until;)
        poll(NULL, 0, 20);
    assert_true(atomic_load(&f.got_query)); /* connected; the query waits for an answer */
    stop_within_limit(p);
    fake_stop(&f);
}

static void test_failures_are_counted(void **state) {
    (void)state;
    /* A bound port nobody listens on: connection refused at once. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char ci[256], err[1024] = "";
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=u dbname=d sslmode=disable", ntohs(a.sin_port));
    pgpoll_t *p = pgpoll_start(ci, "test", 20, sizeof(snap_t), query_select1, NULL);
    assert_non_null(p);
    for (int64_t until = now_ms() + 3000; pgpoll_failures(p, NULL, 0) < 3 && now_ms() < until;)
        poll(NULL, 0, 10);
    assert_true(pgpoll_failures(p, err, sizeof(err)) >= 3);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
    snap_t s;
    err[0] = '\0';
    assert_int_equal(pgpoll_get(p, &s, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
    pgpoll_stop(p);
    close(fd);
    assert_int_equal(pgpoll_failures(NULL, err, sizeof(err)), 0);
    assert_string_equal(err, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_while_connect_hangs),
        cmocka_unit_test(test_stop_while_query_hangs),
        cmocka_unit_test(test_failures_are_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
