/* fuzz_inbox_message.c - libFuzzer target: a consumed Kafka message's id and headers, as
 * inboxd records and pushes them: message_id_of (header id, topic/partition/offset, SHA-256
 * of long ids), headers_json_encode (inbox.headers) and inbox_http_kafka_headers (the HTTP
 * header lines made from that JSON). Checks what the inbox relies on: every id and the
 * headers JSON are text PostgreSQL accepts, an id from a header fits the unique index, the
 * JSON is an object, and no HTTP header line can carry a line break.
 *
 * Input: the topic up to the first NUL byte (mapped onto the characters Kafka allows in topic
 * names), then headers as [name length][name][value length, 255 = null header][value] while
 * bytes last. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "headers_json.h"
#include "inbox_http.h"
#include "kmsg.h"
#include "message_id.h"
#include "pgtext.h"
#include "strlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 64

/* Reads the headers; names are copied to NUL-terminated strings in names. */
static size_t parse_headers(const uint8_t *p, size_t n, kmsg_header_t *h, char names[][256]) {
    size_t i = 0, nh = 0;
    while (i < n && nh < MAX_HEADERS) {
        size_t nl = p[i++];
        if (nl > n - i)
            break;
        memcpy(names[nh], p + i, nl);
        names[nh][nl] = '\0';
        i += nl;
        if (i >= n)
            break;
        size_t vl = p[i++];
        h[nh].name = names[nh];
        if (vl == 255) {
            h[nh].value = NULL;
            h[nh].len = 0;
        } else {
            if (vl > n - i)
                vl = n - i;
            h[nh].value = p + i;
            h[nh].len = vl;
            i += vl;
        }
        nh++;
    }
    return nh;
}

static void check_id(const kmsg_t *m, const char *id_header) {
    char *id = message_id_of(m, id_header);
    if (!id)
        return;
    if (!pgtext_is_text(id, strlen(id)))
        abort(); /* inbox.message_id is text */
    bool from_header = false;
    for (size_t i = 0; id_header && *id_header && i < m->nheaders; i++)
        if (!strcmp(m->headers[i].name, id_header))
            from_header = m->headers[i].value && m->headers[i].len > 0;
    if (from_header && strlen(id) > MESSAGE_ID_MAX)
        abort(); /* would break the unique index */
    free(id);
}

static void check_headers(const kmsg_header_t *h, size_t nh) {
    char *js = headers_json_encode(h, nh);
    if (!js)
        return;
    json_error_t jerr;
    json_t *doc = json_loads(js, 0, &jerr);
    if (!doc || !json_is_object(doc) || !pgtext_is_text(js, strlen(js)))
        abort(); /* inbox.headers is jsonb */
    json_decref(doc);
    size_t nl = 0;
    bool ctype = false;
    static const char *const skip[] = {"X-Static"};
    char **lines = inbox_http_kafka_headers(js, "Kafka-Header-", skip, 1, &nl, &ctype);
    for (size_t i = 0; lines && i < nl; i++) {
        const char *sep = strpbrk(lines[i], ":;");
        if (strpbrk(lines[i], "\r\n") || !sep || sep == lines[i])
            abort(); /* header injection, or a line that is not "Name: value" / "Name;" */
    }
    strlist_free(lines);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t tl = nul ? (size_t)(nul - data) : size;
    char topic[250];
    if (tl >= sizeof(topic))
        tl = sizeof(topic) - 1;
    /* A topic name as the broker allows it: 1..249 of [a-zA-Z0-9._-]. */
    static const char legal[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    for (size_t i = 0; i < tl; i++)
        topic[i] = legal[data[i] % (sizeof(legal) - 1)];
    if (tl == 0)
        topic[tl++] = 't';
    topic[tl] = '\0';
    size_t rest = nul ? size - (size_t)(nul - data) - 1 : 0;
    static char names[MAX_HEADERS][256];
    kmsg_header_t h[MAX_HEADERS];
    size_t nh = parse_headers(nul ? nul + 1 : data + size, rest, h, names);
    kmsg_t m = {.topic = topic,
                .partition = (int32_t)(size * 7919),
                .offset = (int64_t)size * 104729 - 3,
                .headers = h,
                .nheaders = nh};
    check_id(&m, "id");
    check_id(&m, NULL);
    check_id(&m, nh ? h[0].name : "");
    check_headers(h, nh);
    return 0;
}
