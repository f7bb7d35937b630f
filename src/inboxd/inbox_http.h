/* inbox_http.h - the pure rules of inboxd's HTTP push: how an HTTP status or a transport
 * error settles a message, how Kafka headers (as stored in inbox.headers) become HTTP
 * headers, how the static deliver.headers are parsed, the text stored in last_error, and
 * which failed PostgreSQL statements are worth a retry. No I/O. */
#ifndef OUTBOXD_INBOX_HTTP_H
#define OUTBOXD_INBOX_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    INBOX_HTTP_DONE = 0,  /* 2xx: the service has the message */
    INBOX_HTTP_RETRY = 1, /* no response (timeout, connection error), 408, 429, 5xx: try again later */
    INBOX_HTTP_DEAD = 2   /* any other status (3xx, 4xx, ...): a retry gives the same answer */
} inbox_http_verdict_t;

/* status: the HTTP status of the response, or 0 when there was none (curl error). */
inbox_http_verdict_t inbox_http_classify(long status);

/* True for the header names inboxd never takes from a Kafka header (case-insensitive):
 * transport headers (Host, Content-Length, Transfer-Encoding, Connection, Keep-Alive,
 * Upgrade, TE, Trailer, Expect, Proxy-*), credentials (Authorization, Cookie) and the ones
 * inboxd sets itself (Idempotency-Key, Kafka-Topic, Kafka-Partition, Kafka-Offset,
 * Kafka-Key, Kafka-Tombstone, Inbox-Attempt). */
bool inbox_http_reserved(const char *name);
/* (Exported, like inbox_http_name, for test_inbox_http.c, which checks these rules one name at a
 * time; inboxd itself reaches them through inbox_http_kafka_headers and
 * inbox_http_static_headers.) */

/* True when s is a non-empty HTTP token (RFC 9110 tchar: letters, digits and
 * !#$%&'*+-.^_`|~), i.e. usable as a header name. */
bool inbox_http_is_token(const char *s);

/* A header value for bytes v[0..len) (new string, caller frees; NULL when out of memory):
 * as is when it is UTF-8 text (pgtext_is_text) without control characters (below 0x20, 0x7F)
 * and without leading or trailing spaces, else "\x" followed by the bytes in lower-case
 * hex - the same form inbox.headers uses for bytes that are not text. "" stays "". */
char *inbox_http_value(const void *v, size_t len);

/* A header name for a Kafka header name (new string, caller frees; NULL when out of
 * memory): prefix (a token or "") followed by the name, in which every byte that is not a
 * token character, and '%' itself, is written %XX (upper-case hex); so the mapping is
 * reversible and never yields a separator, a space or a control character. */
char *inbox_http_name(const char *prefix, const char *kname);

/* The HTTP header lines for the Kafka headers of a message, given as inbox.headers holds
 * them (a JSON object: name -> string or null; NULL or "" = none), in libcurl's
 * CURLOPT_HTTPHEADER form: "Name: value", or "Name;" for an empty value (a null header is
 * sent empty). Names are mapped with inbox_http_name(prefix, ...), except traceparent and
 * tracestate (W3C Trace Context, which OpenTelemetry reads), which keep their names whatever the
 * prefix; values with inbox_http_value. Left out: empty names, names that are reserved (inbox_http_reserved)
 * or equal (case-insensitively) to one of skip[0..nskip) (the static headers). Returns a
 * new NULL-terminated array of new strings (free with strlist_free of strlist.h), *n lines, and
 * *has_content_type when one of them is Content-Type; NULL when out of memory or json is
 * not an object. */
char **inbox_http_kafka_headers(const char *json, const char *prefix, const char *const *skip, size_t nskip, size_t *n,
                                bool *has_content_type);

/* Parses deliver.headers: "Name: value; Name2: value2" (';' separates, spaces around
 * names and values are trimmed; a value cannot contain ';'). Returns a new NULL-terminated
 * array of "Name: value" lines ("Name;" when the value is empty; free with strlist_free) and *n, or NULL with
 * errstr saying what is wrong (a name that is not a token, a missing ':', a reserved name,
 * a control character). spec "" or NULL: an empty array. */
char **inbox_http_static_headers(const char *spec, size_t *n, char *errstr, size_t errstr_size);

/* The last_error text of a response: "HTTP <status>" then ": <snippet>" when the body is
 * not empty. The snippet is the start of the body, at most max_snippet bytes, cut at a
 * character boundary, with control characters as spaces and bytes that are not UTF-8 as
 * '?', followed by "..." when cut. Always NUL-terminates out. */
void inbox_http_error_text(long status, const char *body, size_t body_len, size_t max_snippet, char *out,
                           size_t out_size);

/* The wait a response's Retry-After asks for (libcurl's CURLINFO_RETRY_AFTER: seconds, 0 or
 * less = none) in seconds, at most backoff_max_ms (rounded down to seconds). */
long long inbox_http_retry_after_secs(long long retry_after, int backoff_max_ms);

/* How the push thread treats a failed PostgreSQL statement, by its SQLSTATE. */
typedef enum {
    INBOX_PG_RETRY = 0, /* the server is away, restarting, busy or read-only (a failover), the
                         * transaction lost a race, or an error a fix cannot be derived for:
                         * reconnect and try again with backoff */
    INBOX_PG_FATAL = 1  /* the same statement would fail the same way until someone fixes the
                         * database: a missing privilege (42501), column (42703), function
                         * (42883), table (42P01), any other class 42 error, a missing schema
                         * (3F000) */
} inbox_pg_verdict_t;

/* sqlstate: PG_DIAG_SQLSTATE of the failed result; NULL or "" (no server error: the
 * connection broke) is INBOX_PG_RETRY. */
inbox_pg_verdict_t inbox_http_pg_classify(const char *sqlstate);

#endif
