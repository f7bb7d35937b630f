/* notify.c - sd_notify readiness, stopping and watchdog pings when built with libsystemd;
 * no-ops otherwise (see notify.h). */
#include "notify.h"

#ifdef OUTBOXD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static bool ready_sent;
static int64_t watchdog_half_ms = -1; /* -1: not asked yet; 0: no watchdog */
static int64_t last_ping_ms;

bool notify_available(void) { return true; }

void notify_ready(const char *status) {
    sd_notifyf(0, "%sSTATUS=%s", ready_sent ? "" : "READY=1\n", status ? status : "");
    ready_sent = true;
}

void notify_stopping(void) { sd_notify(0, "STOPPING=1"); }

void notify_watchdog(int64_t now_ms) {
    if (watchdog_half_ms < 0) {
        uint64_t usec = 0;
        watchdog_half_ms = sd_watchdog_enabled(0, &usec) > 0 ? (int64_t)(usec / 2000) : 0;
    }
    if (watchdog_half_ms > 0 && now_ms - last_ping_ms >= watchdog_half_ms) {
        sd_notify(0, "WATCHDOG=1");
        last_ping_ms = now_ms;
    }
}
#else
bool notify_available(void) { return false; }
void notify_ready(const char *status) { (void)status; }
void notify_stopping(void) {}
void notify_watchdog(int64_t now_ms) { (void)now_ms; }
#endif
