/* suggest.h - "did you mean": the edit distance between a mistyped name and the names that
 * exist, and when a candidate is close enough to suggest. Pure. */
#ifndef OUTBOXD_SUGGEST_H
#define OUTBOXD_SUGGEST_H

#include <stdbool.h>
#include <stddef.h>

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-
 * insensitive. INT_MAX when out of memory or a string is longer than 256 bytes. */
int suggest_distance(const char *a, const char *b);

/* A candidate d edits away is close when at most a third of it (1..3 edits) differs. */
bool suggest_close(int d, const char *candidate);

/* Keeps the closest candidate: when name is close to candidate and nearer than *best, copies
 * candidate to buf (size bytes) and lowers *best. Start with *best = INT_MAX and buf "". */
void suggest_consider(const char *name, const char *candidate, int *best, char *buf, size_t size);

#endif
