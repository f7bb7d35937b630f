/* strlist.c - NULL-terminated arrays of strings: splitting a comma-separated list, freeing. */
#include "strlist.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

char **strlist_split(const char *s, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        if (*p == ',')
            cap++;
    char **v = calloc(cap + 1, sizeof(char *));
    *n = 0;
    if (!v)
        return NULL;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *z = end;
        while (a < z && isspace((unsigned char)*a))
            a++;
        while (z > a && isspace((unsigned char)z[-1]))
            z--;
        if (z > a) {
            if (!(v[*n] = strndup(a, (size_t)(z - a)))) {
                strlist_free(v);
                *n = 0;
                return NULL;
            }
            (*n)++;
        }
        if (!*end)
            break;
        p = end + 1;
    }
    return v;
}

void strlist_free(char **list) {
    if (!list)
        return;
    for (size_t i = 0; list[i]; i++)
        free(list[i]);
    free(list);
}
