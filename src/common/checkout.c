/* checkout.c - lines, JSON and summary of the preflight commands (see checkout.h). */
#include "checkout.h"

#include <stdarg.h>

#include "cmdout.h"
#include "error.h"

#define LINE_SIZE 1536

static const char *const status_text[] = {"ok", "warn", "FAIL", "skip"};
static const char *const status_json[] = {"ok", "warn", "fail", "skip"};

int checkout_init(checkout_t *c, const char *prog, bool json, FILE *out) {
    *c = (checkout_t){.prog = prog, .json = json, .out = out};
    if (json && !(c->results = json_array()))
        return -1;
    return 0;
}

void checkout_report(checkout_t *c, checkout_status_t st, const char *name, const char *detail_in, const char *fix_in) {
    char detail[LINE_SIZE], fixbuf[LINE_SIZE];
    const char *fix = fix_in && *fix_in ? err_one_line(fix_in, fixbuf, sizeof(fixbuf)) : NULL;
    err_one_line(detail_in ? detail_in : "", detail, sizeof(detail));
    c->counts[st]++;
    if (c->json) {
        json_t *o = json_object();
        json_object_set_new(o, "check", cmdout_jstr(name));
        json_object_set_new(o, "status", json_string(status_json[st]));
        json_object_set_new(o, "detail", cmdout_jstr(detail));
        json_object_set_new(o, "fix", cmdout_jstr(fix));
        json_array_append_new(c->results, o);
        return;
    }
    fprintf(c->out, "%-4s  %-22s %s%s%s\n", status_text[st], name, detail, fix ? " -- fix: " : "", fix ? fix : "");
    fflush(c->out);
}

void checkout_reportf(checkout_t *c, checkout_status_t st, const char *name, const char *fix, const char *fmt, ...) {
    char detail[LINE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    checkout_report(c, st, name, detail, fix);
}

int checkout_finish(checkout_t *c) {
    int total = c->counts[CHECKOUT_OK] + c->counts[CHECKOUT_WARN] + c->counts[CHECKOUT_FAIL] + c->counts[CHECKOUT_SKIP];
    int warn = c->counts[CHECKOUT_WARN];
    if (c->json) {
        cmdout_print_json(c->out, c->results); /* takes it */
        c->results = NULL;
    } else if (c->counts[CHECKOUT_FAIL]) {
        fprintf(c->out, "\n%d of %d checks FAILED (%d warning%s, %d skipped): %s will not work until they are fixed\n",
                c->counts[CHECKOUT_FAIL], total, warn, warn == 1 ? "" : "s", c->counts[CHECKOUT_SKIP], c->prog);
    } else {
        fprintf(c->out, "\nall needed checks passed (%d ok, %d warning%s)\n", c->counts[CHECKOUT_OK], warn,
                warn == 1 ? "" : "s");
    }
    fflush(c->out);
    return c->counts[CHECKOUT_FAIL] ? CHECKOUT_EXIT_FAILED : 0;
}
