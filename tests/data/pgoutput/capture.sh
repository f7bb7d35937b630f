#!/bin/sh
# capture.sh - regenerates the pgoutput captures in this directory from a real PostgreSQL
# server, together with what wal2json sends for the same WAL: a pgoutput slot and a wal2json
# slot are created before the scenario runs, so both read the same transactions. The unit
# test (tests/unit/outboxd/test_pgo_decode.c) decodes both and checks that the router makes
# the same Kafka records of them.
#
# Usage: capture.sh CONNINFO [OUTDIR]
#   CONNINFO  libpq conninfo of a scratch database with wal_level=logical, wal2json installed
#             and allowed (output_plugin_libraries) and PostgreSQL 14+ (pgoutput's messages).
#             The script DROPS and recreates its tables, publication and slots there.
#   OUTDIR    where to write the files (default: this script's directory).
#
# Files written:
#   stream.pgo    what pgoutput sends with outboxd's options (proto_version 1, publication
#                 pgocap with publish = 'insert' and publish_via_partition_root, messages
#                 true), one message a line: its LSN, a tab, the message bytes in hex
#   stream.jsonl  what wal2json sends for the same WAL with outboxd's options (add-tables:
#                 the outbox, the partitions of the partitioned outbox, typed_values)
#
# The committed files come from PostgreSQL 15.20 with Debian 12's postgresql-15-wal2json 2.5.
# LSNs, xids and times differ on every run; event ids are fixed so that tests can find rows.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 CONNINFO [OUTDIR]" >&2
    exit 2
fi
CONN=$1
OUT=${2:-$(cd "$(dirname "$0")" && pwd)}
mkdir -p "$OUT"

# Commit timestamps and timestamptz values are rendered in the session time zone, as on
# outboxd's replication connection (TimeZone UTC, DateStyle ISO, bytea_output hex).
PGOPTIONS="${PGOPTIONS:-} -c TimeZone=UTC -c DateStyle=ISO -c bytea_output=hex -c client_min_messages=warning"
export PGOPTIONS

psql_run() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$CONN" "$@"
}

psql_run >/dev/null <<'SQL'
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
 WHERE slot_name IN ('pgocap_pgo', 'pgocap_w2j');
DROP PUBLICATION IF EXISTS pgocap;
DROP TABLE IF EXISTS public.outbox, public.outbox_part, public.orders, public.typed_values;
DROP DOMAIN IF EXISTS public.blob;

CREATE TABLE public.outbox (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    headers jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- A partitioned outbox: one partition per month, the primary key includes the partition key.
CREATE TABLE public.outbox_part (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    headers jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE public.outbox_part_2026_01 PARTITION OF public.outbox_part
    FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE public.outbox_part_2026_02 PARTITION OF public.outbox_part
    FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE public.orders (id bigserial PRIMARY KEY, customer text NOT NULL, total numeric(12,2));
CREATE DOMAIN public.blob AS bytea;
CREATE TABLE public.typed_values (
    id int PRIMARY KEY,
    t text,
    b bytea,
    d public.blob,
    i2 smallint,
    i8 bigint,
    flag bool,
    js jsonb,
    ts timestamptz,
    arr int[],
    u uuid,
    nothing text,
    n numeric(14,4),
    f8 double precision
);
CREATE PUBLICATION pgocap FOR TABLE public.outbox, public.outbox_part, public.typed_values
    WITH (publish = 'insert', publish_via_partition_root = true);
SELECT 'slot' FROM pg_create_logical_replication_slot('pgocap_pgo', 'pgoutput');
SELECT 'slot' FROM pg_create_logical_replication_slot('pgocap_w2j', 'wal2json');
SQL
psql_run -A -t -c "SELECT 'pgoutput capture: ' || version()" >&2

psql_run >/dev/null <<'SQL'
-- 1. simple event, NULL headers
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
VALUES ('00000000-0000-4000-8000-000000000001', 'order', 'o-1', 'OrderCreated',
        '{"total": 12.50, "items": [1, 2, 3]}');

-- 2. string escapes in text columns and inside the jsonb payload
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
VALUES ('00000000-0000-4000-8000-000000000002', 'order',
        E'q"uo\\te\nnl\ttab\x01ctl', E'Esc"aped\\',
        '{"s": "q\"uo\\te\nnl\ttab\u0001ctl", "slash": "a/b"}');

-- 3. unicode
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
VALUES ('00000000-0000-4000-8000-000000000003', 'customer', 'café-😀-東京', 'Renamed',
        '{"name": "é 😀 東京", "escaped": "\u00e9"}');

-- 4. non-null headers of every JSON type
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, headers)
VALUES ('00000000-0000-4000-8000-000000000004', 'order', 'o-4', 'OrderPaid',
        '{"paid": true, "coupon": null, "notes": [null, "x"]}',
        '{"traceparent": "00-abc-def-01", "retries": 3, "ratio": 0.25, "urgent": true,
          "nested": {"a": [1, "two", null]}, "absent": null, "empty": ""}');

-- 5. big payload (~300 KB: TOASTed)
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
SELECT '00000000-0000-4000-8000-000000000005', 'report', 'r-5', 'ReportGenerated',
       jsonb_build_object('rows', jsonb_agg(jsonb_build_object('i', g, 'name', 'item ' || g)))
  FROM generate_series(1, 9000) g;

-- 6. several events in one transaction, with a business row and a transactional message
BEGIN;
INSERT INTO orders (customer, total) VALUES ('alice', 99.90);
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, headers)
VALUES ('00000000-0000-4000-8000-000000000006', 'order', 'o-6', 'OrderCreated', '{"n": 1}',
        '{"k": "v"}');
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
VALUES ('00000000-0000-4000-8000-000000000007', 'order', 'o-6', 'OrderConfirmed', '{"n": 2}');
SELECT 'msg' FROM pg_logical_emit_message(true, 'outbox',
  '{"id":"00000000-0000-4000-8000-000000000008","aggregate_type":"order","aggregate_id":"o-6",'
  '"event_type":"OrderShipped","payload":{"carrier":"UPS","eta":null},"headers":{"h":"1","n":2}}');
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
VALUES ('00000000-0000-4000-8000-000000000009', 'order', 'o-6', 'OrderClosed', '[]');
COMMIT;

-- 7. a transaction touching only another table (wal2json: B and C; pgoutput 15+: nothing)
INSERT INTO orders (customer, total) VALUES ('bob', 1.00);

-- 8. rolled back: absent from both streams
BEGIN;
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
VALUES ('00000000-0000-4000-8000-0000000000ff', 'order', 'o-rb', 'RolledBack', '{}');
ROLLBACK;

-- 9. transactional outbox message alone, with a string payload and no headers
SELECT 'msg' FROM pg_logical_emit_message(true, 'outbox',
  '{"id":"00000000-0000-4000-8000-00000000000a","aggregate_type":"invoice","aggregate_id":"i-10",'
  '"event_type":"InvoiceText","payload":"plain \"text\" é","headers":null}');

-- 10. non-transactional message (outbox prefix) and a message with another prefix
SELECT 'msg' FROM pg_logical_emit_message(false, 'outbox',
  '{"id":"00000000-0000-4000-8000-00000000000b","aggregate_type":"x","aggregate_id":"x-11",'
  '"event_type":"NonTx","payload":{}}');
SELECT 'msg' FROM pg_logical_emit_message(true, 'other', 'not for us');

-- 11. insert then delete of the same outbox row in one transaction: the insert is decoded
BEGIN;
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
VALUES ('00000000-0000-4000-8000-00000000000c', 'order', 'o-12', 'Transient', '{"t": 1}');
DELETE FROM outbox WHERE id = '00000000-0000-4000-8000-00000000000c';
COMMIT;

-- 12. update and delete of outbox rows: filtered (publish = 'insert'; actions = insert)
UPDATE outbox SET event_type = 'Changed' WHERE id = '00000000-0000-4000-8000-000000000001';
DELETE FROM outbox WHERE id = '00000000-0000-4000-8000-000000000001';

-- 13. default id and headers that are an empty object
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers)
VALUES ('order', 'o-13', 'DefaultId', '"just a json string"', '{}');

-- 14. the partitioned outbox: rows in two partitions, one transaction across both
INSERT INTO outbox_part (id, aggregate_type, aggregate_id, event_type, payload, created_at)
VALUES ('00000000-0000-4000-8000-000000000101', 'order', 'p-1', 'InJanuary', '{"m": 1}', '2026-01-15');
BEGIN;
INSERT INTO outbox_part (id, aggregate_type, aggregate_id, event_type, payload, created_at)
VALUES ('00000000-0000-4000-8000-000000000102', 'order', 'p-2', 'InFebruary', '{"m": 2}', '2026-02-15');
INSERT INTO outbox_part (id, aggregate_type, aggregate_id, event_type, payload, headers, created_at)
VALUES ('00000000-0000-4000-8000-000000000103', 'order', 'p-1', 'AlsoJanuary', '{"m": 1}', '{"x": "y"}',
        '2026-01-16');
COMMIT;

-- 15. a partition created after the slots, and a row in it in the same transaction
BEGIN;
CREATE TABLE public.outbox_part_2026_03 PARTITION OF public.outbox_part
    FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
INSERT INTO outbox_part (id, aggregate_type, aggregate_id, event_type, payload, created_at)
VALUES ('00000000-0000-4000-8000-000000000104', 'order', 'p-3', 'InMarch', '{"m": 3}', '2026-03-15');
COMMIT;

-- 16. typed values, for outbox.header.columns of every kind
INSERT INTO typed_values VALUES
 (1, E'text with "quotes", \\ and\nnewline', '\x00ff10'::bytea, '\x0a0b'::bytea, -32768,
  9223372036854775807, true, '{"a": 1, "b": [true, null]}', '2024-02-29 12:34:56.789+00',
  '{1,2,NULL}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL, 1234567890.1234, 2.5),
 (2, '', '\x'::bytea, '\x'::bytea, 0, -1, false, 'null', '1999-12-31 23:59:59+00', '{}', NULL, NULL,
  0, -0.25);
SQL

psql_run -A -t -c "SELECT lsn || E'\t' || encode(data, 'hex') FROM pg_logical_slot_get_binary_changes('pgocap_pgo',
    NULL, NULL, 'proto_version', '1', 'publication_names', 'pgocap', 'messages', 'true')" >"$OUT/stream.pgo"
psql_run -A -t -c "SELECT data FROM pg_logical_slot_get_changes('pgocap_w2j', NULL, NULL,
    'format-version', '2', 'include-xids', '1', 'include-timestamp', '1', 'include-lsn', '1',
    'include-types', '0', 'actions', 'insert', 'add-msg-prefixes', 'outbox',
    'add-tables', 'public.outbox,public.outbox_part_2026_01,public.outbox_part_2026_02,public.outbox_part_2026_03,public.typed_values')" \
    >"$OUT/stream.jsonl"

psql_run >/dev/null <<'SQL'
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
 WHERE slot_name IN ('pgocap_pgo', 'pgocap_w2j');
DROP PUBLICATION pgocap;
SQL
wc -l "$OUT/stream.pgo" "$OUT/stream.jsonl"
