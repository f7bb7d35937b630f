/* lsn.h - PostgreSQL log sequence numbers: parse and format the "X/Y" text form. Pure. */
#ifndef OUTBOXD_LSN_H
#define OUTBOXD_LSN_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t lsn_t;

#define LSN_INVALID ((lsn_t)0)
/* "FFFFFFFF/FFFFFFFF" plus NUL */
#define LSN_FMT_SIZE 18

/* Parses "16/B374D848" into *out. Returns 0, or -1 when s is not an LSN. */
int lsn_parse(const char *s, lsn_t *out);

/* Writes the "X/Y" form of lsn into buf (at least LSN_FMT_SIZE bytes); returns buf. */
char *lsn_format(lsn_t lsn, char *buf);

#endif
