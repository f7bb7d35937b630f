/* headers_json.c - Kafka headers as the JSON object of inbox.headers (jansson). */
#include "headers_json.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pgtext.h"

char *headers_json_encode(const kmsg_header_t *h, size_t n) {
    json_t *obj = json_object();
    char *out = NULL;
    if (!obj)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name ? h[i].name : "";
        size_t nlen = strlen(name);
        char *hexname = NULL;
        json_t *v;
        if (!pgtext_is_text(name, nlen) && !(hexname = pgtext_hex(name, nlen)))
            goto out;
        if (!h[i].value)
            v = json_null();
        else if (pgtext_is_text(h[i].value, h[i].len))
            v = json_stringn(h[i].value, h[i].len);
        else {
            char *hx = pgtext_hex(h[i].value, h[i].len);
            v = hx ? json_string(hx) : NULL;
            free(hx);
        }
        int rc = v ? json_object_set_new(obj, hexname ? hexname : name, v) : -1;
        free(hexname);
        if (rc != 0)
            goto out;
    }
    out = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(obj);
    return out;
}
