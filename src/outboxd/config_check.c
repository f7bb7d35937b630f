/* config_check.c - outboxd's configuration checks that need no server (see config_check.h). */
#include "config_check.h"

#include "kproducer.h"
#include "router.h"

int config_check_options(const relay_options_t *o, err_t *e) {
    char err[1024];
    router_t *r = router_new(&o->router, err, sizeof(err));
    if (!r) {
        err_set(e, ERR_PERMANENT, "", NULL, "%s", err);
        return -1;
    }
    router_destroy(r);
    return kproducer_check_props(o->kafka_props, e);
}
