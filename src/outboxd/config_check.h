/* config_check.h - the checks outboxd makes on its options before it connects anywhere: the
 * routing options (tables, topic template, columns) and the Kafka producer's properties
 * (enforced settings, bootstrap.servers). The daemon and --print-config both run them, so
 * --print-config fails exactly when the daemon would stop at once on its configuration. */
#ifndef OUTBOXD_CONFIG_CHECK_H
#define OUTBOXD_CONFIG_CHECK_H

#include "error.h"
#include "relay.h"

/* Returns 0, or -1 with *e (ERR_PERMANENT: a configuration error). o: borrowed. */
int config_check_options(const relay_options_t *o, err_t *e);

#endif
