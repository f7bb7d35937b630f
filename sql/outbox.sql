-- outbox.sql - the default outbox table read by outboxd (outbox.table = public.outbox).
--
-- A service inserts one row per event in the same transaction as its business
-- change; outboxd streams committed inserts from the WAL (wal2json) and publishes
-- each to Kafka: topic from outbox.topic (default outbox.event.${aggregate_type}),
-- key = aggregate_id, value = payload, headers = id, event_type and the keys of
-- `headers`. The table may be emptied at will (or rows deleted in the same
-- transaction): the relay reads the WAL, not the table.
CREATE TABLE IF NOT EXISTS public.outbox (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    event_type     text        NOT NULL,
    payload        jsonb       NOT NULL,
    headers        jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
