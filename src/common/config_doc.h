/* config_doc.h - the reference of a daemon's configuration keys, generated from its key table
 * (config.h), so that what is shipped cannot drift from what the binary accepts: an example
 * configuration file with every key commented, and the key list of the man page (roff). Pure:
 * writes to a FILE. */
#ifndef OUTBOXD_CONFIG_DOC_H
#define OUTBOXD_CONFIG_DOC_H

#include <stdio.h>

#include "config.h"

/* The example file: a header naming prog and how the file was made, then per key its help
 * text, type, range or choices and environment variable as comments, and the key with its
 * default as a commented-out "#key = default" line; then passthrough_doc (already commented
 * text, may be NULL) for the passthrough keys. Loading the file with every "#key = default"
 * line uncommented gives the defaults. keys and env_prefix as for config_new. */
void config_doc_example(const config_key_t *keys, const char *prog, const char *env_prefix, const char *passthrough_doc,
                        FILE *out);

/* The keys as man(7) paragraphs: ".TP", the key in bold, its type, default and environment
 * variable, and its help text; roff's special characters escaped. */
void config_doc_man_keys(const config_key_t *keys, const char *env_prefix, FILE *out);

#endif
