/* log.h - leveled logging to stderr as text or JSON lines, with secret redaction helpers. */
#ifndef OUTBOXD_LOG_H
#define OUTBOXD_LOG_H

#include <stddef.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level_t;
typedef enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 } log_format_t;

/* Sets the program name (borrowed: must outlive logging), level and format. */
void log_init(const char *progname, log_level_t level, log_format_t format);
void log_set_level(log_level_t level);
log_level_t log_get_level(void);

/* "error", "warn", "info", "debug" -> level. Returns 0 or -1 when unknown. */
int log_level_parse(const char *s, log_level_t *out);
/* "text", "json" -> format. Returns 0 or -1 when unknown. */
int log_format_parse(const char *s, log_format_t *out);

/* One line per call: "2026-11-23T06:21:17.123Z outboxd[pid] LEVEL: message" (text) or
 * {"ts":...,"level":...,"prog":...,"pid":...,"msg":...} (JSON). Never pass secrets. */
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Copies a libpq conninfo (key=value form or postgres:// URI) into out with the password
 * replaced by "***". Always NUL-terminates out (truncating if needed). */
void log_redact_conninfo(const char *conninfo, char *out, size_t out_size);

/* Copies a URL ("scheme://user:password@host/...") into out with the password of its
 * userinfo, and secret query parameters as in log_redact_conninfo, replaced by "***". Always
 * NUL-terminates out. */
void log_redact_url(const char *url, char *out, size_t out_size);

#endif
