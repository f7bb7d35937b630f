/* metrics.h - a registry of counters, gauges and histograms (each family unlabelled or with
 * one label, e.g. topic, plus labels of fixed value) rendered in the Prometheus text exposition format 0.0.4.
 * Pure: no I/O, no clock, no locks.
 *
 * Thread ownership: a registry and everything in it belong to ONE thread (the daemon's loop),
 * which updates and renders it. Other threads never touch it: they get rendered text (see
 * http_server_publish). That keeps updates on the hot path plain stores, without atomics. */
#ifndef OUTBOXD_METRICS_H
#define OUTBOXD_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_type_t;

typedef struct metrics metrics_t;
typedef struct metrics_family metrics_family_t;
typedef struct metrics_series metrics_series_t;

metrics_t *metrics_new(void);
void metrics_destroy(metrics_t *m); /* accepts NULL; frees every family and series */

/* Adds a family. name and help are copied; label: the label's name (copied), or NULL for an
 * unlabelled family, whose single series exists (at 0) from now on. buckets: histogram upper
 * bounds, ascending, copied (+Inf is implicit); ignored for counters and gauges. The registry
 * owns the family. Returns NULL when out of memory. */
metrics_family_t *metrics_family(metrics_t *m, metrics_type_t type, const char *name, const char *help,
                                 const char *label, const double *buckets, size_t nbuckets);

/* Adds a label with one fixed value to every series of f, rendered before the family's own
 * label: the consumer group of an inboxd process (group="inventory"), or the labels of a
 * *_build_info gauge. name and value are copied; value is escaped as label values are; name
 * must be a valid label name. Call before rendering. Returns 0, or -1 when out of memory or f is
 * NULL (f unchanged). */
int metrics_family_const_label(metrics_family_t *f, const char *name, const char *value);

/* The series of label_value (copied) in f, created at 0 when new; label_value is ignored for an
 * unlabelled family. The family owns it; the pointer stays valid until metrics_destroy.
 * Returns NULL when out of memory (or f is NULL). */
metrics_series_t *metrics_series(metrics_family_t *f, const char *label_value);

/* An unlabelled counter or gauge in one call: metrics_series(metrics_family(...), NULL). */
metrics_series_t *metrics_scalar(metrics_t *m, metrics_type_t type, const char *name, const char *help);

/* Updates; each accepts a NULL series (a failed allocation then only loses the metric). */
void metrics_add(metrics_series_t *s, double v);     /* counter (or gauge) += v */
void metrics_set(metrics_series_t *s, double v);     /* gauge = v; or a counter mirroring a running total */
void metrics_observe(metrics_series_t *s, double v); /* histogram: one observation */
/* A histogram mirroring one kept elsewhere (e.g. by a poller thread): buckets[0..nbuckets) are
 * the observations per bound (not cumulative, as metrics_observe counts them; nbuckets must
 * equal the family's), count and sum of all observations. Accepts NULL; ignores other types
 * and a bucket count that does not match. */
void metrics_histogram_set(metrics_series_t *s, const uint64_t *buckets, size_t nbuckets, uint64_t count, double sum);
/* Sets every series of a gauge family to 0 (e.g. before re-adding the current per-label
 * values, so that labels no longer reported show 0). Accepts NULL; ignores other types. */
void metrics_family_zero(metrics_family_t *f);
double metrics_value(const metrics_series_t *s); /* counter/gauge value; histogram: count */

/* Renders every family in the order added: "# HELP", "# TYPE", then one line per series
 * ("name{label=\"value\"} 12"), histograms as cumulative _bucket{le=...} lines plus _sum and
 * _count. Label values and help text are escaped as the format requires. Returns a new
 * NUL-terminated string (the caller frees it) and its length in *len, or NULL when out of
 * memory. */
char *metrics_render(const metrics_t *m, size_t *len);

#endif
