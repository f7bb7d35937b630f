/* clock.h - the monotonic millisecond clock every loop, timer and deadline of both daemons uses,
 * and the wall clock latencies against other hosts' timestamps are measured with. */
#ifndef OUTBOXD_CLOCK_H
#define OUTBOXD_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: only differences mean anything. */
int64_t clock_now_ms(void);

/* Microseconds of CLOCK_REALTIME since the Unix epoch: wall time, comparable with timestamps
 * from other hosts (commit times), skew included. */
int64_t clock_wall_us(void);

#endif
