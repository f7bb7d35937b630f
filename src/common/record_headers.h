/* record_headers.h - names of the Kafka record headers that outboxd writes and inboxd reads:
 * the one contract between the two daemons' ends of a delivery (docs/operations.md,
 * "Delivery latency across services"). */
#ifndef OUTBOXD_RECORD_HEADERS_H
#define OUTBOXD_RECORD_HEADERS_H

/* The commit time of the event's PostgreSQL transaction (wal2json's commit timestamp, the
 * database server's clock) as decimal microseconds since the Unix epoch, e.g.
 * "1795414925190386". outboxd adds it to every record it streams from the WAL (not to backfilled
 * rows, whose commit time is unknown); inboxd measures commit -> recorded and
 * commit -> processed from it. */
#define RECORD_HEADER_COMMIT_TIME "outboxd.commit_time_us"

/* W3C Trace Context (https://www.w3.org/TR/trace-context/): the headers OpenTelemetry's Kafka
 * and HTTP instrumentations read. outboxd passes them through from the headers column or
 * outbox.header.columns like any header; inboxd's HTTP push sends them under these names
 * whatever deliver.header.prefix says. */
#define RECORD_HEADER_TRACEPARENT "traceparent"
#define RECORD_HEADER_TRACESTATE "tracestate"

#endif
