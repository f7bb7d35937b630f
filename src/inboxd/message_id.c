/* message_id.c - the message id of a consumed message (SHA-256 for ids too long to index). */
#include "message_id.h"

#include <openssl/evp.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgtext.h"

#define SHA256_LEN 32
#define SHA256_PREFIX "sha256:"

/* "sha256:" and the lower-case hex SHA-256 of data (libcrypto): the id of a header value too
 * long to index. NULL when out of memory. */
static char *hashed_id(const void *data, size_t len) {
    unsigned char d[SHA256_LEN];
    unsigned int n = 0;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1 || n != SHA256_LEN)
        return NULL;
    char *hex = pgtext_hex(d, sizeof(d)); /* "\x" and 64 digits */
    char *s = hex ? malloc(strlen(SHA256_PREFIX) + 2 * SHA256_LEN + 1) : NULL;
    if (s) {
        memcpy(s, SHA256_PREFIX, strlen(SHA256_PREFIX));
        memcpy(s + strlen(SHA256_PREFIX), hex + 2, 2 * SHA256_LEN + 1);
    }
    free(hex);
    return s;
}

char *message_id_of(const kmsg_t *m, const char *id_header) {
    const kmsg_header_t *found = NULL;
    if (id_header && *id_header)
        for (size_t i = 0; i < m->nheaders; i++)
            if (m->headers[i].name && !strcmp(m->headers[i].name, id_header) && m->headers[i].value &&
                m->headers[i].len > 0)
                found = &m->headers[i];
    if (found) {
        bool text = pgtext_is_text(found->value, found->len);
        size_t idlen = text ? found->len : 2 + 2 * found->len;
        if (idlen > MESSAGE_ID_MAX)
            return hashed_id(found->value, found->len);
        /* Text has no NUL byte: strndup copies all of it. */
        return text ? strndup(found->value, found->len) : pgtext_hex(found->value, found->len);
    }
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "/%" PRId32 "/%" PRId64, m->partition, m->offset);
    size_t tl = m->topic ? strlen(m->topic) : 0;
    char *s = malloc(tl + (size_t)n + 1);
    if (!s)
        return NULL;
    if (tl)
        memcpy(s, m->topic, tl);
    memcpy(s + tl, buf, (size_t)n + 1);
    return s;
}
