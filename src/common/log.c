/* log.c - leveled text or JSON-lines logging to stderr, one write(2) per line, and conninfo
 * password redaction. */
#include "log.h"
#include "hex.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Lines up to this size are built on the stack; longer ones are allocated. */
#define LOG_STACK_LINE 2048
/* "2026-11-23T06:21:17.123Z" plus NUL */
#define LOG_TS_SIZE 32

/* Read by every thread that logs (librdkafka's and the pollers' too) while SIGHUP's reload
 * rewrites them on the main thread: atomics, relaxed (each is independent; a line may use the
 * old format or level around a reload). */
static _Atomic(const char *) log_progname = "outboxd";
static atomic_int log_level = LOG_INFO;
static atomic_int log_format = LOG_FORMAT_TEXT;

static const char *progname_now(void) { return atomic_load_explicit(&log_progname, memory_order_relaxed); }

static const char *const level_upper[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const level_lower[] = {"error", "warn", "info", "debug"};

void log_init(const char *progname, log_level_t level, log_format_t format) {
    if (progname != NULL && progname[0] != '\0')
        atomic_store_explicit(&log_progname, progname, memory_order_relaxed);
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

void log_set_level(log_level_t level) { atomic_store_explicit(&log_level, (int)level, memory_order_relaxed); }

log_level_t log_get_level(void) { return (log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed); }

int log_level_parse(const char *s, log_level_t *out) {
    if (s == NULL)
        return -1;
    for (int i = LOG_ERROR; i <= LOG_DEBUG; i++) {
        if (strcasecmp(s, level_lower[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -1;
}

int log_format_parse(const char *s, log_format_t *out) {
    if (s == NULL)
        return -1;
    if (strcasecmp(s, "text") == 0) {
        *out = LOG_FORMAT_TEXT;
        return 0;
    }
    if (strcasecmp(s, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

/* UTC timestamp with milliseconds: "2026-11-23T06:21:17.123Z". */
static void format_timestamp(char *buf, size_t size) {
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL) {
        snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* Writes all of buf to stderr. One write(2) unless the kernel writes short or a signal
 * interrupts it, so concurrent writers (O_APPEND files, pipes up to PIPE_BUF) do not
 * interleave within a line. */
static void write_all(const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Formats fmt/ap into a string: buf when it fits, else a malloc'ed one (*heap set, caller
 * frees). Never returns NULL: falls back to the truncated buf when out of memory. */
static char *format_message(char *buf, size_t size, char **heap, const char *fmt, va_list ap) {
    va_list ap2;
    int n;

    *heap = NULL;
    va_copy(ap2, ap);
    n = vsnprintf(buf, size, fmt, ap);
    if (n < 0) {
        snprintf(buf, size, "(log format error)");
    } else if ((size_t)n >= size) {
        char *p = malloc((size_t)n + 1);
        if (p != NULL) {
            vsnprintf(p, (size_t)n + 1, fmt, ap2);
            *heap = p;
            va_end(ap2);
            return p;
        }
    }
    va_end(ap2);
    return buf;
}

/* Text line: the message with trailing newlines dropped and inner CR/LF written as "\r" / "\n"
 * so one record stays one line. */
static void emit_text(log_level_t level, const char *ts, const char *msg) {
    char stack[LOG_STACK_LINE];
    char head[128];
    size_t mlen = strlen(msg);
    size_t extra = 0, hlen, cap, pos;
    char *line = stack;

    while (mlen > 0 && (msg[mlen - 1] == '\n' || msg[mlen - 1] == '\r'))
        mlen--;
    for (size_t i = 0; i < mlen; i++)
        if (msg[i] == '\n' || msg[i] == '\r')
            extra++;

    snprintf(head, sizeof(head), "%s %s[%ld] %s: ", ts, progname_now(), (long)getpid(), level_upper[level]);
    hlen = strlen(head);
    cap = hlen + mlen + extra + 2;
    if (cap > sizeof(stack)) {
        line = malloc(cap);
        if (line == NULL) {
            /* Out of memory: log a truncated line rather than nothing. hlen < sizeof(head)
             * is far below sizeof(stack); assume every kept byte might need escaping. */
            line = stack;
            mlen = (sizeof(stack) - hlen - 1) / 2;
        }
    }
    memcpy(line, head, hlen);
    pos = hlen;
    for (size_t i = 0; i < mlen; i++) {
        if (msg[i] == '\n' || msg[i] == '\r') {
            line[pos++] = '\\';
            line[pos++] = msg[i] == '\n' ? 'n' : 'r';
        } else {
            line[pos++] = msg[i];
        }
    }
    line[pos++] = '\n';
    write_all(line, pos);
    if (line != stack)
        free(line);
}

/* Copy of s with every byte >= 0x80 replaced by '?', for messages that are not valid UTF-8
 * (jansson refuses those). Caller frees; NULL when out of memory. */
static char *ascii_copy(const char *s) {
    char *c = strdup(s);
    if (c == NULL)
        return NULL;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    return c;
}

static void emit_json(log_level_t level, const char *ts, const char *msg) {
    json_t *obj, *jmsg;
    char *text = NULL;

    jmsg = json_string(msg);
    if (jmsg == NULL) {
        char *c = ascii_copy(msg);
        if (c != NULL) {
            jmsg = json_string(c);
            free(c);
        }
    }
    obj = json_object();
    if (obj == NULL || jmsg == NULL)
        goto fallback;
    if (json_object_set_new(obj, "ts", json_string(ts)) != 0 ||
        json_object_set_new(obj, "level", json_string(level_lower[level])) != 0 ||
        json_object_set_new(obj, "prog", json_string(progname_now())) != 0 ||
        json_object_set_new(obj, "pid", json_integer((json_int_t)getpid())) != 0 ||
        json_object_set(obj, "msg", jmsg) != 0)
        goto fallback;
    text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        goto fallback;
    {
        /* json_dumps output has no newline; add it so the line goes out in one write. */
        size_t len = strlen(text);
        char *line = realloc(text, len + 2);
        if (line == NULL)
            goto fallback;
        text = line;
        text[len] = '\n';
        text[len + 1] = '\0';
        write_all(text, len + 1);
    }
    free(text);
    json_decref(jmsg);
    json_decref(obj);
    return;

fallback:
    free(text);
    json_decref(jmsg);
    json_decref(obj);
    emit_text(level, ts, msg);
}

/* Joins a multi-line message (libpq's have a DETAIL or HINT line, often indented with a tab)
 * into one line in place: each line break with the blanks around it becomes one space;
 * trailing line breaks go. */
static void fold_lines(char *msg) {
    char *w = msg;
    for (const char *r = msg; *r;) {
        if (*r == '\n' || *r == '\r') {
            while (w > msg && (w[-1] == ' ' || w[-1] == '\t'))
                w--;
            while (*r == '\n' || *r == '\r' || *r == ' ' || *r == '\t')
                r++;
            if (*r && w > msg)
                *w++ = ' ';
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
}

void log_msg(log_level_t level, const char *fmt, ...) {
    char buf[LOG_STACK_LINE];
    char ts[LOG_TS_SIZE];
    char *heap, *msg;
    va_list ap;
    int saved_errno = errno;

    if ((int)level < LOG_ERROR)
        level = LOG_ERROR;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;

    va_start(ap, fmt);
    msg = format_message(buf, sizeof(buf), &heap, fmt, ap);
    va_end(ap);
    fold_lines(msg);
    format_timestamp(ts, sizeof(ts));
    if (atomic_load_explicit(&log_format, memory_order_relaxed) == LOG_FORMAT_JSON)
        emit_json(level, ts, msg);
    else
        emit_text(level, ts, msg);
    free(heap);
    errno = saved_errno;
}

/* ---- conninfo redaction ------------------------------------------------------------------ */

/* Bounded output that always stays NUL-terminated. */
typedef struct {
    char *buf;
    size_t size;
    size_t len;
} outbuf_t;

static void out_mem(outbuf_t *o, const char *s, size_t n) {
    if (o->size == 0)
        return;
    if (n > o->size - 1 - o->len)
        n = o->size - 1 - o->len;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void out_str(outbuf_t *o, const char *s) { out_mem(o, s, strlen(s)); }

static void out_char(outbuf_t *o, char c) { out_mem(o, &c, 1); }

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Secret-bearing parameter names: libpq's "password" and "sslpassword" (any case, to err on
 * the safe side). */
static bool is_secret_param(const char *name, size_t len) {
    static const char pw[] = "password";
    size_t pwlen = sizeof(pw) - 1;

    for (size_t i = 0; i + pwlen <= len; i++)
        if (strncasecmp(name + i, pw, pwlen) == 0)
            return true;
    return false;
}

static bool has_uri_prefix(const char *s, size_t *prefix_len) {
    if (strncasecmp(s, "postgresql://", 13) == 0) {
        *prefix_len = 13;
        return true;
    }
    if (strncasecmp(s, "postgres://", 11) == 0) {
        *prefix_len = 11;
        return true;
    }
    return false;
}

/* Percent-decodes s[0..n) into dst (at least n+1 bytes), as libpq does for URI query keys. */
static size_t percent_decode(const char *s, size_t n, char *dst) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hex_digit_value(s[i + 1])) >= 0 && (l = hex_digit_value(s[i + 2])) >= 0) {
            dst[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            dst[o++] = s[i];
        }
    }
    dst[o] = '\0';
    return o;
}

/* URI query name is secret (after percent-decoding). */
static bool is_secret_query_name(const char *s, size_t n) {
    char small[64];
    char *dec = n < sizeof(small) ? small : malloc(n + 1);
    bool r;

    if (dec == NULL)
        return true; /* cannot tell: treat as secret */
    r = is_secret_param(dec, percent_decode(s, n, dec));
    if (dec != small)
        free(dec);
    return r;
}

/* postgres[ql]://[user[:password]@][hosts][/dbname][?name=value&...]
 *
 * The userinfo ends at the last '@' before the query ('?'), so a password holding a raw '@'
 * or '/' (invalid, but seen in the wild) is still hidden whole; the password is everything
 * between the first ':' of the userinfo and that '@'. Query parameters whose name contains
 * "password" have their value (up to the next '&') replaced. */
static void redact_uri(const char *s, size_t prefix_len, outbuf_t *o) {
    const char *auth = s + prefix_len;
    const char *query = strchr(auth, '?');
    const char *end_auth = query != NULL ? query : auth + strlen(auth);
    const char *at = NULL;
    const char *p;

    for (p = auth; p < end_auth; p++)
        if (*p == '@')
            at = p;
    out_mem(o, s, prefix_len);
    if (at != NULL) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon != NULL) {
            out_mem(o, auth, (size_t)(colon - auth) + 1);
            out_str(o, "***");
            out_mem(o, at, (size_t)(end_auth - at));
        } else {
            out_mem(o, auth, (size_t)(end_auth - auth));
        }
    } else {
        out_mem(o, auth, (size_t)(end_auth - auth));
    }
    if (query == NULL)
        return;

    out_char(o, '?');
    p = query + 1;
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        const char *pend = amp != NULL ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(pend - p));

        if (eq != NULL && is_secret_query_name(p, (size_t)(eq - p))) {
            out_mem(o, p, (size_t)(eq - p) + 1);
            out_str(o, "***");
        } else {
            out_mem(o, p, (size_t)(pend - p));
        }
        if (amp == NULL)
            break;
        out_char(o, '&');
        p = amp + 1;
    }
}

static void redact_kv(const char *s, outbuf_t *o, int depth);

/* Writes value v (unescaped) as a single-quoted conninfo value. */
static void out_quoted(outbuf_t *o, const char *v) {
    out_char(o, '\'');
    for (; *v; v++) {
        if (*v == '\'' || *v == '\\')
            out_char(o, '\\');
        out_char(o, *v);
    }
    out_char(o, '\'');
}

/* libpq expands a dbname that is itself a connection string (URI or key=value); redact the
 * inner string too. raw/rlen: the value as written (maybe quoted, with escapes). Returns true
 * when it wrote the value. */
static bool redact_dbname(const char *raw, size_t rlen, outbuf_t *o, int depth) {
    char *val, *red;
    size_t vlen = 0, pfx, red_size;
    bool quoted = rlen > 0 && raw[0] == '\'';

    val = malloc(rlen + 1);
    if (val == NULL) {
        out_str(o, "***");
        return true;
    }
    for (size_t i = quoted ? 1 : 0; i < rlen; i++) {
        if (raw[i] == '\\' && i + 1 < rlen) {
            val[vlen++] = raw[++i];
        } else if (quoted && raw[i] == '\'') {
            break;
        } else {
            val[vlen++] = raw[i];
        }
    }
    val[vlen] = '\0';
    if (!has_uri_prefix(val, &pfx) && strchr(val, '=') == NULL) {
        free(val);
        return false;
    }
    red_size = 4 * vlen + 64;
    red = malloc(red_size);
    if (red == NULL) {
        free(val);
        out_str(o, "***");
        return true;
    }
    {
        outbuf_t inner = {red, red_size, 0};
        red[0] = '\0';
        if (has_uri_prefix(val, &pfx))
            redact_uri(val, pfx, &inner);
        else
            redact_kv(val, &inner, depth + 1);
    }
    out_quoted(o, red);
    free(red);
    free(val);
    return true;
}

/* key = value pairs separated by whitespace, as libpq's conninfo_parse reads them: a value is
 * either 'single-quoted' (backslash escapes any character) or runs to the next whitespace
 * (backslash escapes there too). Secret values become ***; everything else is copied as
 * written, spacing included. Malformed text after a secret-looking name is hidden whole. */
static void redact_kv(const char *s, outbuf_t *o, int depth) {
    const char *p = s;

    while (*p != '\0') {
        const char *name, *name_end, *val, *val_end;
        bool secret;

        while (is_space(*p))
            out_char(o, *p++);
        if (*p == '\0')
            break;
        name = p;
        while (*p != '\0' && *p != '=' && !is_space(*p))
            p++;
        name_end = p;
        secret = is_secret_param(name, (size_t)(name_end - name));
        while (is_space(*p))
            p++;
        if (*p != '=') {
            /* Not "name=value": libpq would reject it. Copy the word, unless it looks like
             * a password name, in which case whatever follows may be the password. */
            if (secret) {
                out_mem(o, name, (size_t)(name_end - name));
                out_str(o, " ***");
                return;
            }
            out_mem(o, name, (size_t)(p - name));
            continue;
        }
        p++;
        while (is_space(*p))
            p++;
        val = p;
        if (*p == '\'') {
            p++;
            while (*p != '\0' && *p != '\'') {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                p++;
            }
            if (*p == '\'')
                p++;
        } else {
            while (*p != '\0' && !is_space(*p)) {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                p++;
            }
        }
        val_end = p;
        out_mem(o, name, (size_t)(val - name)); /* name, '=' and the spacing around it */
        if (secret) {
            out_str(o, "***");
        } else if (depth == 0 && name_end - name == 6 && strncasecmp(name, "dbname", 6) == 0 &&
                   redact_dbname(val, (size_t)(val_end - val), o, depth)) {
            /* written by redact_dbname */
        } else {
            out_mem(o, val, (size_t)(val_end - val));
        }
    }
}

void log_redact_conninfo(const char *conninfo, char *out, size_t out_size) {
    outbuf_t o = {out, out_size, 0};
    size_t pfx;

    if (out == NULL || out_size == 0)
        return;
    out[0] = '\0';
    if (conninfo == NULL)
        return;
    if (has_uri_prefix(conninfo, &pfx))
        redact_uri(conninfo, pfx, &o);
    else
        redact_kv(conninfo, &o, 0);
}

void log_redact_url(const char *url, char *out, size_t out_size) {
    outbuf_t o = {out, out_size, 0};
    if (out == NULL || out_size == 0)
        return;
    out[0] = '\0';
    if (url == NULL)
        return;
    const char *sep = strstr(url, "://");
    if (sep != NULL && strcspn(url, "/?#@") > (size_t)(sep - url))
        redact_uri(url, (size_t)(sep - url) + 3, &o);
    else
        out_str(&o, url);
}
