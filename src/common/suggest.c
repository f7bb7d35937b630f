/* suggest.c - edit distance and closeness for "did you mean" suggestions. */
#include "suggest.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int suggest_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int *rows, *prev2, *prev, *cur, d;

    if (la > 256 || lb > 256)
        return INT_MAX;
    rows = malloc(3 * (lb + 1) * sizeof(int));
    if (rows == NULL)
        return INT_MAX;
    prev2 = rows;
    prev = rows + (lb + 1);
    cur = rows + 2 * (lb + 1);
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int ca = tolower((unsigned char)a[i - 1]);
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cb = tolower((unsigned char)b[j - 1]);
            int cost = ca == cb ? 0 : 1;
            int v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v)
                v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == cb &&
                prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    d = prev[lb];
    free(rows);
    return d;
}

bool suggest_close(int d, const char *candidate) {
    int limit = (int)(strlen(candidate) / 3);
    if (limit < 1)
        limit = 1;
    if (limit > 3)
        limit = 3;
    return d <= limit;
}

void suggest_consider(const char *name, const char *candidate, int *best, char *buf, size_t size) {
    int d = suggest_distance(name, candidate);
    if (d < *best && suggest_close(d, candidate)) {
        *best = d;
        snprintf(buf, size, "%s", candidate);
    }
}
