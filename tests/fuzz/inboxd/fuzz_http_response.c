/* fuzz_http_response.c - libFuzzer target: what inboxd's HTTP push does with a service's
 * response: the verdict of its status, the last_error text made of its body, the wait its
 * Retry-After asks for; and the parser of deliver.headers. Checks that the stored text is
 * valid UTF-8 without control characters and fits, and that the wait stays within the cap.
 *
 * Input: 2 bytes status (0..65535, as a long), 8 bytes Retry-After (signed, as libcurl's
 * curl_off_t), 4 bytes backoff.max.ms, 1 byte snippet length; the rest is the body (and, as
 * text, a deliver.headers value). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inbox_http.h"
#include "pgtext.h"
#include "strlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t take(const uint8_t **p, size_t *n, size_t k) {
    uint64_t v = 0;
    for (size_t i = 0; i < k; i++) {
        v = v << 8 | (*n ? **p : 0);
        if (*n) {
            (*p)++;
            (*n)--;
        }
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *p = data;
    size_t n = size;
    long status = (long)take(&p, &n, 2);
    long long retry_after = (long long)take(&p, &n, 8);
    int backoff_max_ms = (int)(take(&p, &n, 4) % 86400001u); /* deliver.backoff.max.ms: 1..86400000 */
    if (backoff_max_ms < 1)
        backoff_max_ms = 1;
    size_t snippet = (size_t)take(&p, &n, 1);

    inbox_http_verdict_t v = inbox_http_classify(status);
    if (v != INBOX_HTTP_DONE && v != INBOX_HTTP_RETRY && v != INBOX_HTTP_DEAD)
        abort();

    char out[300];
    inbox_http_error_text(status, (const char *)p, n, snippet, out, sizeof(out));
    size_t ol = strlen(out);
    if (ol >= sizeof(out) || !pgtext_is_text(out, ol))
        abort(); /* inbox.last_error is text */
    for (size_t i = 0; i < ol; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            abort();
    char tiny[8];
    inbox_http_error_text(status, (const char *)p, n, snippet, tiny, sizeof(tiny));
    if (strlen(tiny) >= sizeof(tiny))
        abort();

    long long secs = inbox_http_retry_after_secs(retry_after, backoff_max_ms);
    if (secs < 0 || secs * 1000 > backoff_max_ms || (retry_after <= 0 && secs != 0))
        abort();

    char *spec = malloc(n + 1);
    if (spec) {
        memcpy(spec, p, n);
        spec[n] = '\0';
        size_t nh;
        char err[512];
        char **lines = inbox_http_static_headers(spec, &nh, err, sizeof(err));
        for (size_t i = 0; lines && i < nh; i++)
            if (strpbrk(lines[i], "\r\n"))
                abort(); /* header injection */
        strlist_free(lines);
        free(spec);
    }
    return 0;
}
