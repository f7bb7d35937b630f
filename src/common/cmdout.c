/* cmdout.c - output of the operator commands: JSON documents and aligned text lines. */
#include "cmdout.h"

#include <stdarg.h>
#include <stdlib.h>

json_t *cmdout_jstr(const char *s) {
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    return j ? j : json_string("(not valid UTF-8)");
}

void cmdout_print_json(FILE *out, json_t *obj) {
    if (!obj)
        return;
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (text) {
        fprintf(out, "%s\n", text);
        free(text);
    }
    json_decref(obj);
}

void cmdout_line(FILE *out, const char *label, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(out, "%-20s ", label);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
}

void cmdout_missing(FILE *out, bool json, const char *kind, const char *name, const char *detail, const char *fix) {
    if (!json) {
        fprintf(out, "%s: %s\n", detail, fix);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, kind, cmdout_jstr(name));
    json_object_set_new(o, "exists", json_false());
    json_object_set_new(o, "detail", cmdout_jstr(detail));
    json_object_set_new(o, "fix", cmdout_jstr(fix));
    cmdout_print_json(out, o);
}
