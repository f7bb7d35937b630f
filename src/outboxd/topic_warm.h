/* topic_warm.h - makes a topic that the broker auto-creates usable at once. librdkafka asks
 * for a new topic's metadata when the first record for it is produced; if the broker answers
 * "unknown topic" (it is creating it), librdkafka asks again only on its one-second topic
 * scan, so the first records of every auto-created topic wait about a second. topic_warm asks
 * for the metadata of each topic the relay produces to for the first time, on a thread of its
 * own, every 20 ms until it has partitions (at most 5 s), which puts librdkafka's cache (and
 * the waiting records) right as soon as the topic exists. */
#ifndef OUTBOXD_TOPIC_WARM_H
#define OUTBOXD_TOPIC_WARM_H

#include <librdkafka/rdkafka.h>

typedef struct topic_warm topic_warm_t;

/* rk: borrowed (thread-safe); must outlive the object. Returns NULL when out of memory or the
 * thread cannot start. */
topic_warm_t *topic_warm_new(rd_kafka_t *rk);
/* Stops and joins the thread (an ongoing metadata request ends within its timeout). Accepts NULL. */
void topic_warm_destroy(topic_warm_t *w);

/* A record for topic was just produced: the first time a name is seen, it is queued for the
 * thread. Cheap for names seen before (the last one is compared first). Loop thread only. */
void topic_warm_seen(topic_warm_t *w, const char *topic);

#endif
