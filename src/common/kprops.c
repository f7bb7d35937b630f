/* kprops.c - checking kafka.* keys against librdkafka when the configuration is read. */
#include "kprops.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "suggest.h"

/* librdkafka's property names, read once from rd_kafka_conf_properties_show(): a Markdown
 * table per level ("Property | C/P | Range | Default | Importance | Description"); a row
 * starts with the name, then blanks and '|'. */
static char **names;
static char *roles; /* per name: 'C' consumer, 'P' producer, '*' both (the C/P column) */
static size_t nnames;
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void add_name(const char *line) {
    size_t n = strcspn(line, " |");
    if (n == 0 || line[n] == '\0' || strchr(line, '|') == NULL || !strncmp(line, "Property", n) || line[0] == '-')
        return;
    for (size_t i = 0; i < n; i++)
        if (!(line[i] == '.' || line[i] == '_' || (line[i] >= 'a' && line[i] <= 'z') ||
              (line[i] >= '0' && line[i] <= '9')))
            return;
    char **grown = realloc(names, (nnames + 1) * sizeof(*names));
    if (!grown)
        return;
    names = grown;
    char *grown_roles = realloc(roles, nnames + 1);
    if (!grown_roles)
        return;
    roles = grown_roles;
    const char *cp = strchr(line, '|') + 1; /* " C/P " column */
    while (*cp == ' ')
        cp++;
    roles[nnames] = *cp == 'C' || *cp == 'P' ? *cp : '*';
    if ((names[nnames] = strndup(line, n)) != NULL)
        nnames++;
}

static void load_names(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    rd_kafka_conf_properties_show(f);
    fclose(f);
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        add_name(line);
    }
    free(text);
}

size_t kprops_count(void) {
    pthread_once(&names_once, load_names);
    return nnames;
}

bool kprops_for_consumer(const char *name) {
    pthread_once(&names_once, load_names);
    for (size_t i = 0; i < nnames; i++)
        if (!strcmp(names[i], name))
            return roles[i] != 'P';
    return false;
}

bool kprops_known(const char *name) {
    pthread_once(&names_once, load_names);
    for (size_t i = 0; i < nnames; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

config_pt_verdict_t kprops_check(const char *name, const char *value, char *why, size_t why_size, char *suggestion,
                                 size_t suggestion_size) {
    why[0] = suggestion[0] = '\0';
    if (!strcmp(name, "plugin.library.paths"))
        return CONFIG_PT_OK;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf)
        return CONFIG_PT_OK; /* the client's own rd_kafka_conf_set says it later */
    char err[512] = "";
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, err, sizeof(err));
    if (res == RD_KAFKA_CONF_UNKNOWN) {
        /* A topic-level property is also accepted here (it becomes the default topic
         * configuration); so an unknown one is unknown at both levels. */
        snprintf(why, why_size, "librdkafka has no property \"%s\"", name);
        pthread_once(&names_once, load_names);
        int best = INT_MAX;
        for (size_t i = 0; i < nnames; i++)
            suggest_consider(name, names[i], &best, suggestion, suggestion_size);
    } else if (res != RD_KAFKA_CONF_OK) {
        snprintf(why, why_size, "%s", err);
    }
    rd_kafka_conf_destroy(conf);
    return res == RD_KAFKA_CONF_OK        ? CONFIG_PT_OK
           : res == RD_KAFKA_CONF_UNKNOWN ? CONFIG_PT_UNKNOWN
                                          : CONFIG_PT_INVALID;
}

const config_pt_check_t kprops_config_check = {kprops_check, kprops_known};
