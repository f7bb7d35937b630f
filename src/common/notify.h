/* notify.h - systemd service notifications (sd_notify): READY=1, STOPPING=1, STATUS= and
 * WATCHDOG=1 when the unit sets WatchdogSec. Without libsystemd at build time (or outside
 * systemd: no NOTIFY_SOCKET) every call does nothing. Call from the daemon's loop thread. */
#ifndef OUTBOXD_NOTIFY_H
#define OUTBOXD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* True when built with libsystemd. */
bool notify_available(void);
/* READY=1 with a STATUS= line (once; later calls only update STATUS). */
void notify_ready(const char *status);
/* STOPPING=1. */
void notify_stopping(void);
/* WATCHDOG=1 at half the unit's WatchdogSec, when it sets one; now_ms: CLOCK_MONOTONIC ms.
 * Call on every loop turn: a stuck loop stops the pings and systemd restarts the daemon. */
void notify_watchdog(int64_t now_ms);

#endif
