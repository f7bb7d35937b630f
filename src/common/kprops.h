/* kprops.h - librdkafka's properties as configuration keys: checks a kafka.* key and its value
 * when the configuration is read (the same rd_kafka_conf_set the clients call later, on a
 * scratch configuration), and finds the property a misspelt name meant. */
#ifndef OUTBOXD_KPROPS_H
#define OUTBOXD_KPROPS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* The check config_set_passthrough_check takes for "kafka.": librdkafka's verdict on name
 * (without "kafka.") = value. UNKNOWN: why = 'librdkafka has no property "name"', suggestion
 * = the closest property librdkafka knows ("" if none is close); INVALID: why = librdkafka's
 * reason. plugin.library.paths is not tried (setting it loads the plugins). Thread-safe. */
config_pt_verdict_t kprops_check(const char *name, const char *value, char *why, size_t why_size, char *suggestion,
                                 size_t suggestion_size);

/* true when librdkafka has a property called name (global or topic level). Thread-safe. */
bool kprops_known(const char *name);

/* true when librdkafka's table marks name as a consumer property or one of both kinds (not a
 * producer-only one): for a consumer made from a producer's configuration. Thread-safe. */
bool kprops_for_consumer(const char *name);

/* { kprops_check, kprops_known } */
extern const config_pt_check_t kprops_config_check;

/* How many property names librdkafka listed (rd_kafka_conf_properties_show), 0 when the
 * list could not be read (then suggestions are off, checks still work). For tests. */
size_t kprops_count(void);

#endif
