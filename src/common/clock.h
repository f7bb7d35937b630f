/* clock.h - the monotonic millisecond clock every loop, timer and deadline of both daemons uses. */
#ifndef OUTBOXD_CLOCK_H
#define OUTBOXD_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: only differences mean anything. */
int64_t clock_now_ms(void);

#endif
