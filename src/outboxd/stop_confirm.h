/* stop_confirm.h - the relay's last line at a stop, made true: the final status update is
 * only a request, and a walsender busy streaming a large transaction reads it only once its
 * socket blocks; a connection closed before then loses it. So, before the replication
 * connection closes, wait (bounded) until pg_replication_slots shows the position sent,
 * then log the slot's confirmed_flush_lsn as PostgreSQL holds it. */
#ifndef OUTBOXD_STOP_CONFIRM_H
#define OUTBOXD_STOP_CONFIRM_H

#include <stdbool.h>

#include "lsn.h"

/* Logs "stopped; slot "S" confirmed at X" with X read from pg_replication_slots over a new
 * ordinary connection (conninfo, slot: borrowed). wait: the replication connection is still
 * open after the final status update that sent `sent`: poll (every 50 ms, at most
 * timeout_ms in all) until the slot shows it; else one look, within at most 500 ms. When the slot stays behind, the
 * line says what was sent and that it is published again from the slot's position at the next start; when the slot
 * cannot be read, the line says outboxd's own position is not verified. */
void stop_confirm_report(const char *conninfo, const char *slot, lsn_t sent, bool wait, int timeout_ms);

#endif
