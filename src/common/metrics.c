/* metrics.c - counters, gauges and histograms with at most one label, rendered as Prometheus
 * text; single-threaded and pure (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

struct metrics_series {
    char *label_value; /* NULL in an unlabelled family */
    double value;      /* counter, gauge; histogram: sum */
    uint64_t count;    /* histogram */
    uint64_t *buckets; /* histogram: observations <= bounds[i] (not cumulative) */
    metrics_family_t *family;
};

struct metrics_family {
    metrics_type_t type;
    char *name, *help, *label;
    char *const_labels; /* 'a="x",b="y"' rendered and escaped, or NULL */
    double *bounds;
    size_t nbounds;
    metrics_series_t **series;
    size_t nseries, cap;
};

struct metrics {
    metrics_family_t **families;
    size_t n, cap;
};

static void put_escaped(FILE *out, const char *s, int quote);

metrics_t *metrics_new(void) { return calloc(1, sizeof(metrics_t)); }

static void series_free(metrics_series_t *s) {
    if (!s)
        return;
    free(s->label_value);
    free(s->buckets);
    free(s);
}

static void family_free(metrics_family_t *f) {
    if (!f)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f->series[i]);
    free(f->series);
    free(f->name);
    free(f->help);
    free(f->label);
    free(f->const_labels);
    free(f->bounds);
    free(f);
}

void metrics_destroy(metrics_t *m) {
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        family_free(m->families[i]);
    free(m->families);
    free(m);
}

static metrics_series_t *series_new(metrics_family_t *f, const char *label_value) {
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        metrics_series_t **v = realloc(f->series, cap * sizeof(*v));
        if (!v)
            return NULL;
        f->series = v;
        f->cap = cap;
    }
    metrics_series_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->family = f;
    if ((label_value && !(s->label_value = strdup(label_value))) ||
        (f->type == METRICS_HISTOGRAM && f->nbounds && !(s->buckets = calloc(f->nbounds, sizeof(uint64_t))))) {
        series_free(s);
        return NULL;
    }
    f->series[f->nseries++] = s;
    return s;
}

metrics_family_t *metrics_family(metrics_t *m, metrics_type_t type, const char *name, const char *help,
                                 const char *label, const double *buckets, size_t nbuckets) {
    if (!m)
        return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        metrics_family_t **v = realloc(m->families, cap * sizeof(*v));
        if (!v)
            return NULL;
        m->families = v;
        m->cap = cap;
    }
    metrics_family_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->label = label ? strdup(label) : NULL;
    if (type == METRICS_HISTOGRAM && nbuckets) {
        f->bounds = malloc(nbuckets * sizeof(double));
        if (f->bounds) {
            memcpy(f->bounds, buckets, nbuckets * sizeof(double));
            f->nbounds = nbuckets;
        }
    }
    if (!f->name || !f->help || (label && !f->label) || (type == METRICS_HISTOGRAM && nbuckets && !f->bounds) ||
        (!label && !series_new(f, NULL))) {
        family_free(f);
        return NULL;
    }
    m->families[m->n++] = f;
    return f;
}

int metrics_family_const_label(metrics_family_t *f, const char *name, const char *value) {
    if (!f || !name || !value)
        return -1;
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return -1;
    fprintf(out, "%s%s%s=\"", f->const_labels ? f->const_labels : "", f->const_labels ? "," : "", name);
    put_escaped(out, value, 1);
    fputc('"', out);
    if (fclose(out) != 0) {
        free(buf);
        return -1;
    }
    free(f->const_labels);
    f->const_labels = buf;
    return 0;
}

metrics_series_t *metrics_series(metrics_family_t *f, const char *label_value) {
    if (!f)
        return NULL;
    if (!f->label)
        return f->nseries ? f->series[0] : NULL;
    if (!label_value)
        label_value = "";
    for (size_t i = 0; i < f->nseries; i++)
        if (!strcmp(f->series[i]->label_value, label_value))
            return f->series[i];
    return series_new(f, label_value);
}

metrics_series_t *metrics_scalar(metrics_t *m, metrics_type_t type, const char *name, const char *help) {
    return metrics_series(metrics_family(m, type, name, help, NULL, NULL, 0), NULL);
}

void metrics_add(metrics_series_t *s, double v) {
    if (s)
        s->value += v;
}

void metrics_set(metrics_series_t *s, double v) {
    if (s)
        s->value = v;
}

void metrics_family_zero(metrics_family_t *f) {
    if (!f || f->type != METRICS_GAUGE)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        f->series[i]->value = 0;
}

void metrics_observe(metrics_series_t *s, double v) {
    if (!s || s->family->type != METRICS_HISTOGRAM)
        return;
    s->value += v;
    s->count++;
    for (size_t i = 0; i < s->family->nbounds; i++)
        if (v <= s->family->bounds[i]) {
            s->buckets[i]++;
            break;
        }
}

void metrics_histogram_set(metrics_series_t *s, const uint64_t *buckets, size_t nbuckets, uint64_t count, double sum) {
    if (!s || s->family->type != METRICS_HISTOGRAM || nbuckets != s->family->nbounds)
        return;
    if (nbuckets)
        memcpy(s->buckets, buckets, nbuckets * sizeof(uint64_t));
    s->count = count;
    s->value = sum;
}

double metrics_value(const metrics_series_t *s) {
    if (!s)
        return 0;
    return s->family->type == METRICS_HISTOGRAM ? (double)s->count : s->value;
}

/* A sample value or bucket bound: integers without a fraction, +Inf/-Inf/NaN as the format
 * spells them, anything else as the shortest text that reads back as the same double
 * (0.963018, not 0.9630179999999999: jsonw_format_real). */
static void format_number(double v, char *buf, size_t size) {
    if (isnan(v))
        snprintf(buf, size, "NaN");
    else if (isinf(v))
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        snprintf(buf, size, "%.0f", v);
    else if (jsonw_format_real(v, buf, size) < 0)
        snprintf(buf, size, "%.17g", v);
}

static void put_number(FILE *out, double v) {
    char buf[64];
    format_number(v, buf, sizeof(buf));
    fputs(buf, out);
}

/* Escapes \ and newline (help) and also " (label values). */
static void put_escaped(FILE *out, const char *s, int quote) {
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* name{const labels,label="value"[,le="bound"]} */
static void put_name(FILE *out, const metrics_family_t *f, const metrics_series_t *s, const char *suffix,
                     const char *le) {
    fprintf(out, "%s%s", f->name, suffix);
    if (!f->label && !le && !f->const_labels)
        return;
    const char *sep = "";
    fputc('{', out);
    if (f->const_labels) {
        fputs(f->const_labels, out);
        sep = ",";
    }
    if (f->label) {
        fprintf(out, "%s%s=\"", sep, f->label);
        put_escaped(out, s->label_value, 1);
        fputc('"', out);
        sep = ",";
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", sep, le);
    fputc('}', out);
}

static void render_series(FILE *out, const metrics_family_t *f, const metrics_series_t *s) {
    if (f->type != METRICS_HISTOGRAM) {
        put_name(out, f, s, "", NULL);
        fputc(' ', out);
        put_number(out, s->value);
        fputc('\n', out);
        return;
    }
    uint64_t cum = 0;
    char le[64];
    for (size_t i = 0; i < f->nbounds; i++) {
        cum += s->buckets[i];
        format_number(f->bounds[i], le, sizeof(le));
        put_name(out, f, s, "_bucket", le);
        fprintf(out, " %llu\n", (unsigned long long)cum);
    }
    put_name(out, f, s, "_bucket", "+Inf");
    fprintf(out, " %llu\n", (unsigned long long)s->count);
    put_name(out, f, s, "_sum", NULL);
    fputc(' ', out);
    put_number(out, s->value);
    fputc('\n', out);
    put_name(out, f, s, "_count", NULL);
    fprintf(out, " %llu\n", (unsigned long long)s->count);
}

char *metrics_render(const metrics_t *m, size_t *len) {
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    for (size_t i = 0; m && i < m->n; i++) {
        const metrics_family_t *f = m->families[i];
        fprintf(out, "# HELP %s ", f->name);
        put_escaped(out, f->help, 0);
        fprintf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (size_t j = 0; j < f->nseries; j++)
            render_series(out, f, f->series[j]);
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    if (len)
        *len = size;
    return buf;
}
