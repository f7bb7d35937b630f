/* topic_warm.c - a thread that fetches the metadata of topics new to the producer until they
 * have partitions (see topic_warm.h). */
#include "topic_warm.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SET_CAP 4096 /* names remembered (open addressing); beyond, new names are not warmed */
#define QUEUE_CAP 64
#define TRY_EVERY_MS 20
#define GIVE_UP_MS 5000

struct topic_warm {
    rd_kafka_t *rk;
    char *set[SET_CAP]; /* loop thread only */
    size_t nset;
    const char *last; /* the name seen last (in set) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *queue[QUEUE_CAP]; /* under mu: names for the thread (owned) */
    size_t nqueue;
    bool stop;
    pthread_t thread;
};

static uint64_t hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* Whether the topic has partitions, each with a leader, per a fresh metadata request. */
static bool usable(rd_kafka_t *rk, rd_kafka_topic_t *rkt) {
    const struct rd_kafka_metadata *md = NULL;
    bool ok = false;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
        !md->topics[0].err && md->topics[0].partition_cnt > 0) {
        ok = true;
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            ok = ok && md->topics[0].partitions[i].leader >= 0;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}

static void warm(topic_warm_t *w, const char *name) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->rk, name, NULL);
    if (!rkt)
        return;
    for (int waited = 0; waited < GIVE_UP_MS; waited += TRY_EVERY_MS) {
        pthread_mutex_lock(&w->mu);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop || usable(w->rk, rkt))
            break;
        struct timespec ts = {0, TRY_EVERY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    rd_kafka_topic_destroy(rkt);
}

static void *run(void *arg) {
    topic_warm_t *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        if (!w->nqueue) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        char *name = w->queue[0];
        memmove(w->queue, w->queue + 1, --w->nqueue * sizeof(char *));
        pthread_mutex_unlock(&w->mu);
        warm(w, name);
        free(name);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

topic_warm_t *topic_warm_new(rd_kafka_t *rk) {
    topic_warm_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->rk = rk;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

void topic_warm_destroy(topic_warm_t *w) {
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->nqueue; i++)
        free(w->queue[i]);
    for (size_t i = 0; i < SET_CAP; i++)
        free(w->set[i]);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

void topic_warm_seen(topic_warm_t *w, const char *topic) {
    if (!w || !topic || (w->last && !strcmp(w->last, topic)))
        return;
    if (w->nset >= SET_CAP / 2) /* full enough: stop remembering (and warming) new names */
        return;
    size_t i = hash(topic) % SET_CAP;
    for (; w->set[i]; i = (i + 1) % SET_CAP)
        if (!strcmp(w->set[i], topic)) {
            w->last = w->set[i];
            return;
        }
    char *name = strdup(topic), *copy = strdup(topic);
    if (!name || !copy) {
        free(name);
        free(copy);
        return;
    }
    w->set[i] = name;
    w->nset++;
    w->last = name;
    pthread_mutex_lock(&w->mu);
    if (w->nqueue < QUEUE_CAP) {
        w->queue[w->nqueue++] = copy;
        copy = NULL;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    free(copy);
}
