-- outbox.sql - the default outbox table read by outboxd (outbox.table = public.outbox).
--
-- A service inserts one row per event in the same transaction as its business
-- change; outboxd streams committed inserts from the WAL (wal2json) and publishes
-- each to Kafka: topic from outbox.topic (default outbox.event.${aggregate_type}),
-- key = aggregate_id, value = payload, headers = id, event_type and the keys of
-- `headers`. The table may be emptied at will (or rows deleted in the same
-- transaction): the relay reads the WAL, not the table. The payload column may also be
-- json, text or bytea (sent as raw bytes); see docs/dropin.md.
CREATE TABLE IF NOT EXISTS public.outbox (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    event_type     text        NOT NULL,
    payload        jsonb       NOT NULL,
    headers        jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- outbox_emit - a table-less outbox event. Builds the JSON envelope outboxd reads from
-- logical messages and emits it with pg_logical_emit_message(true, 'outbox', ...) inside the
-- caller's transaction: published if and only if that transaction commits, and nothing is
-- written to any table (nothing to vacuum or purge). Returns the event id (the id header).
--
--   SELECT outbox_emit('order', '42', 'OrderShipped', '{"carrier": "UPS"}', '{"trace": "abc"}');
--
-- The payload travels as a JSON string holding payload::text, so the record value is
-- byte-for-byte what a jsonb payload column would publish ({"a": 1, "b": [1, 2]}, keys in
-- jsonb order), not a re-rendering. headers: a JSON object (or NULL) whose members become
-- record headers, as with the headers column. The prefix is fixed to 'outbox' (outboxd's
-- default outbox.message.prefix); with another prefix, call pg_logical_emit_message yourself
-- (see docs/dropin.md).
--
-- SECURITY DEFINER with a fixed search_path, and no EXECUTE for PUBLIC: sql/roles.sql grants
-- it to outbox_writer. pg_logical_emit_message itself needs no privilege (on PostgreSQL 15 it
-- is executable by PUBLIC); sql/roles.sql can revoke that (-v restrict_messages=on) so that
-- outbox_emit becomes the only way for writers to emit outbox messages.
CREATE OR REPLACE FUNCTION public.outbox_emit(
    aggregate_type text,
    aggregate_id   text,
    event_type     text,
    payload        jsonb,
    headers        jsonb DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    event_id uuid := gen_random_uuid();
BEGIN
    -- NULLs would make outboxd stop at this event (or dead-letter it): refuse them here,
    -- in the writer's transaction, as the outbox table's NOT NULL constraints do.
    IF aggregate_type IS NULL OR aggregate_id IS NULL OR event_type IS NULL OR payload IS NULL THEN
        RAISE EXCEPTION 'outbox_emit: aggregate_type, aggregate_id, event_type and payload must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF headers IS NOT NULL AND jsonb_typeof(headers) <> 'object' THEN
        RAISE EXCEPTION 'outbox_emit: headers must be a JSON object or NULL, not %', jsonb_typeof(headers)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_logical_emit_message(true, 'outbox', jsonb_build_object(
        'id', event_id,
        'aggregate_type', aggregate_type,
        'aggregate_id', aggregate_id,
        'event_type', event_type,
        'payload', payload::text,
        'headers', headers)::text);
    RETURN event_id;
END
$$;
REVOKE ALL ON FUNCTION public.outbox_emit(text, text, text, jsonb, jsonb) FROM PUBLIC;

-- outboxd_progress - outboxd's durable record of what it published (progress.table), one
-- row per replication slot, written about once a second after Kafka acknowledged. It lives
-- here, with the outbox rows, so a promoted standby has it: when the slot is lost (dropped,
-- invalidated, or not on the new primary after a failover), outboxd republishes the rows
-- whose transactions may have committed after confirmed_lsn (xmin >= horizon_xid) and goes
-- on from a new slot: duplicates, never a gap (docs/guarantees.md). outboxd creates the table
-- itself when its role may; sql/roles.sql grants what it needs.
CREATE TABLE IF NOT EXISTS public.outboxd_progress (
    slot_name         text        PRIMARY KEY,
    system_identifier text        NOT NULL,
    timeline          integer     NOT NULL,
    confirmed_lsn     pg_lsn      NOT NULL,
    horizon_xid       bigint      NOT NULL,
    horizon_time      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
