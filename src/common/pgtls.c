/* pgtls.c - repeats a failed PostgreSQL TLS handshake with OpenSSL to learn why it failed. */
#include "pgtls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls_verify.h"

const char *pgtls_ca_file(const char *sslrootcert, char *buf, size_t size) {
    if (sslrootcert && *sslrootcert) {
        snprintf(buf, size, "%s", sslrootcert);
        return buf;
    }
    const char *home = getenv("HOME");
    if (!home || !*home) {
        const struct passwd *pw = getpwuid(geteuid());
        home = pw ? pw->pw_dir : "~";
    }
    snprintf(buf, size, "%s/.postgresql/root.crt", home);
    return buf;
}

/* The settings of conn the probe needs (copied). */
typedef struct {
    char sslmode[16], rootcert[1024], hostaddr[256], sni[8];
    char host[256], port[16];
} probe_opts_t;

static void read_opts(const PGconn *conn, probe_opts_t *o) {
    memset(o, 0, sizeof(*o));
    PQconninfoOption *opts = PQconninfo((PGconn *)conn);
    for (PQconninfoOption *p = opts; p && p->keyword; p++) {
        const char *v = p->val ? p->val : "";
        if (!strcmp(p->keyword, "sslmode"))
            snprintf(o->sslmode, sizeof(o->sslmode), "%s", v);
        else if (!strcmp(p->keyword, "sslrootcert"))
            snprintf(o->rootcert, sizeof(o->rootcert), "%s", v);
        else if (!strcmp(p->keyword, "hostaddr"))
            snprintf(o->hostaddr, sizeof(o->hostaddr), "%.*s", (int)strcspn(v, ","), v);
        else if (!strcmp(p->keyword, "sslsni"))
            snprintf(o->sni, sizeof(o->sni), "%s", v);
    }
    PQconninfoFree(opts);
    const char *h = PQhost(conn), *port = PQport(conn);
    snprintf(o->host, sizeof(o->host), "%s", h ? h : "");
    snprintf(o->port, sizeof(o->port), "%s", port && *port ? port : "5432");
}

static bool is_ip_literal(const char *s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A TCP connection to host:port within PGTLS_TIMEOUT_MS per address, with send and receive
 * timeouts set; -1 when none answers. */
static int tcp_connect(const char *host, const char *port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t len = sizeof(err);
            rc = poll(&p, 1, PGTLS_TIMEOUT_MS) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && !err
                     ? 0
                     : -1;
        }
        if (rc != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        struct timeval tv = {.tv_sec = PGTLS_TIMEOUT_MS / 1000, .tv_usec = (PGTLS_TIMEOUT_MS % 1000) * 1000};
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

/* PostgreSQL's SSLRequest (protocol 3): Int32 length 8, Int32 code 80877103 (1234 << 16 | 5679).
 * The server answers one byte: 'S' (go on with the TLS handshake) or 'N' (no TLS). Returns the
 * byte, or 0 when the server said nothing. */
static char ssl_request(int fd) {
    static const unsigned char req[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    char answer = 0;
    if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req) || recv(fd, &answer, 1, 0) != 1)
        return 0;
    return answer;
}

/* The handshake on fd with the CA file and, for verify-full, the host name. Returns OpenSSL's
 * verify result, with the peer's certificate in *info; -1 when the handshake itself failed or
 * the CA file cannot be loaded (*ca_unreadable then true). */
static long handshake(int fd, const probe_opts_t *o, const char *ca, bool check_host, bool *ca_unreadable,
                      tls_cert_info_t *info) {
    long result = -1;
    SSL *ssl = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return -1;
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        *ca_unreadable = true;
        goto out;
    }
    /* No abort on a bad certificate: finish the handshake and read the verify result. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (!(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, fd) != 1)
        goto out;
    if (check_host && SSL_set1_host(ssl, o->host) != 1)
        goto out;
    if (!is_ip_literal(o->host) && strcmp(o->sni, "0") != 0)
        SSL_set_tlsext_host_name(ssl, o->host);
    if (SSL_connect(ssl) != 1)
        goto out;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer)
        goto out;
    unsigned char *der = NULL;
    int len = i2d_X509(peer, &der);
    if (len > 0)
        tls_cert_info_der(der, (size_t)len, info);
    OPENSSL_free(der);
    X509_free(peer);
    result = SSL_get_verify_result(ssl);
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error(); /* this thread's OpenSSL error queue: libpq reads it too */
    return result;
}

/* Whether o's sslmode makes libpq verify the server's certificate; *check_host for verify-full. */
static bool verifies(const probe_opts_t *o, const char *ca, bool *check_host) {
    *check_host = !strcmp(o->sslmode, "verify-full");
    if (*check_host || !strcmp(o->sslmode, "verify-ca"))
        return true;
    /* libpq: with sslmode=require and a CA file present, it verifies the chain as verify-ca. */
    return !strcmp(o->sslmode, "require") && access(ca, F_OK) == 0;
}

bool pgtls_diagnose(const PGconn *conn, const char *prefix, err_t *e) {
    probe_opts_t o;
    char ca[1100], server[400], msg[sizeof(e->msg)];
    bool check_host;
    if (!conn)
        return false;
    read_opts(conn, &o);
    pgtls_ca_file(o.rootcert, ca, sizeof(ca));
    if (!o.host[0] || o.host[0] == '/' || o.host[0] == '@' || !verifies(&o, ca, &check_host))
        return false;
    int fd = tcp_connect(o.hostaddr[0] ? o.hostaddr : o.host, o.port);
    if (fd < 0)
        return false;
    snprintf(server, sizeof(server), "PostgreSQL server %s:%s", o.host, o.port);
    char answer = ssl_request(fd);
    bool ca_unreadable = false, found = true;
    tls_cert_info_t info = {0};
    long result =
        answer == 'S' && access(ca, F_OK) == 0 ? handshake(fd, &o, ca, check_host, &ca_unreadable, &info) : -1;
    close(fd);
    if (answer == 'N') {
        err_set(e, ERR_PERMANENT, "",
                "turn TLS on in the server's postgresql.conf (ssl = on, ssl_cert_file, ssl_key_file) and reload it",
                "%sthe %s does not accept TLS connections, and sslmode=%s requires TLS", prefix, server, o.sslmode);
    } else if (answer == 'S' && access(ca, F_OK) != 0) {
        err_set(e, ERR_PERMANENT, "",
                "set sslrootcert=/path/to/ca.pem in postgres.conninfo: the CA certificate that signed the server's "
                "certificate",
                "%ssslmode=%s verifies the server's certificate, but the CA file %s does not exist", prefix, o.sslmode,
                ca);
    } else if (ca_unreadable) {
        err_set(e, ERR_PERMANENT, "",
                "point sslrootcert in postgres.conninfo at a readable PEM file with the CA certificate",
                "%scannot read CA certificates from %s (sslrootcert)", prefix, ca);
    } else if (result > 0) {
        tls_peer_t peer = {.server = server,
                           .host = o.host,
                           .ca_file = ca,
                           .ca_setting = "sslrootcert in postgres.conninfo",
                           .host_setting = "the host in postgres.conninfo"};
        tls_verify_error(e, result, X509_verify_cert_error_string(result), &peer, &info);
        snprintf(msg, sizeof(msg), "%s%s", prefix, e->msg);
        snprintf(e->msg, sizeof(e->msg), "%s", msg);
    } else {
        found = false;
    }
    return found;
}
