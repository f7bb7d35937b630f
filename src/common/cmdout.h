/* cmdout.h - output of the operator commands (outboxd status, inboxd status/requeue):
 * JSON documents and aligned "label  value" text lines. */
#ifndef OUTBOXD_CMDOUT_H
#define OUTBOXD_CMDOUT_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

/* A JSON string of s (new reference): null for NULL, a placeholder for text that is not
 * valid UTF-8. */
json_t *cmdout_jstr(const char *s);

/* Writes obj to out, indented, keys in insertion order, and a newline. Takes ownership of
 * obj (a NULL obj writes nothing). */
void cmdout_print_json(FILE *out, json_t *obj);

/* Writes "label" padded to 20 columns, the formatted value and a newline. */
/* Prints that the object a command reports on does not exist: as JSON
 * {"<kind>": name, "exists": false, "detail": ..., "fix": ...}, or as the line "detail: fix". */
void cmdout_missing(FILE *out, bool json, const char *kind, const char *name, const char *detail, const char *fix);

void cmdout_line(FILE *out, const char *label, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
