/* kmsg_fixture.h - for the unit tests: a consumed message to feed message_id.c and
 * inbox_batch.c (key "k", value "v", the given headers). */
#ifndef OUTBOXD_TEST_KMSG_FIXTURE_H
#define OUTBOXD_TEST_KMSG_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "kmsg.h"

static kmsg_t msg(const char *topic, int32_t partition, int64_t offset, const kmsg_header_t *h, size_t nh) {
    return (kmsg_t){.topic = topic,
                    .partition = partition,
                    .offset = offset,
                    .key = "k",
                    .key_len = 1,
                    .value = "v",
                    .value_len = 1,
                    .headers = h,
                    .nheaders = nh};
}

#endif
