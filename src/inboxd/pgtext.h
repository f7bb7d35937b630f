/* pgtext.h - bytes as PostgreSQL text: whether bytes are text that text and jsonb columns
 * accept, and the "\x"-hex form (bytea's output format) for bytes that are not. Pure. */
#ifndef OUTBOXD_PGTEXT_H
#define OUTBOXD_PGTEXT_H

#include <stdbool.h>
#include <stddef.h>

/* True when p[0..len) is valid UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF) without NUL bytes: text PostgreSQL accepts in text and jsonb. */
bool pgtext_is_text(const void *p, size_t len);

/* "\x" followed by the lower-case hex of data[0..len) (new string, caller frees; NULL when out
 * of memory). */
char *pgtext_hex(const void *data, size_t len);

#endif
