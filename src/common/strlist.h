/* strlist.h - NULL-terminated arrays of strings: a comma-separated list split into one, and
 * freeing one. Pure. */
#ifndef OUTBOXD_STRLIST_H
#define OUTBOXD_STRLIST_H

#include <stddef.h>

/* Splits a comma-separated list (borrowed), trimming blanks around each item; empty items
 * are skipped. Returns a new NULL-terminated array of new strings (free with strlist_free)
 * and *n, or NULL when out of memory. */
char **strlist_split(const char *s, size_t *n);

/* Frees every string of the NULL-terminated array list, then the array. Accepts NULL. */
void strlist_free(char **list);

#endif
