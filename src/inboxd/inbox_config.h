/* inbox_config.h - inboxd's configuration keys and their translation into inbox_options_t.
 * Pure: no I/O. */
#ifndef OUTBOXD_INBOX_CONFIG_H
#define OUTBOXD_INBOX_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "inbox_loop.h"

/* The key table of inboxd (name == NULL terminated); kafka.* keys are passthrough. */
extern const config_key_t inbox_config_keys[];

/* Everything inbox_run needs, derived from a loaded config. Owns the arrays it builds; the
 * strings in opts are borrowed from cfg (which must outlive it) or from this struct. */
typedef struct inbox_config {
    inbox_options_t opts;
    char **topics;                   /* owned, NULL-terminated */
    const char **kafka_props;        /* owned array; strings borrowed from cfg */
    inbox_deliver_options_t deliver; /* opts.deliver points here when deliver.url is set */
    char **static_headers;           /* owned, NULL-terminated: deliver.headers as lines */
} inbox_config_t;

/* Checks the values that the key table cannot (topics not empty, a valid retention, a
 * usable deliver.url, deliver.headers, deliver.header.prefix) and fills out. Returns 0, or -1 with
 * errstr naming the key. On success free with inbox_config_free. */
int inbox_config_build(const config_t *cfg, inbox_config_t *out, char *errstr, size_t errstr_size);
void inbox_config_free(inbox_config_t *c); /* accepts a zeroed struct */

#endif
