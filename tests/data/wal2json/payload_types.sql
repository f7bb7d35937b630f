-- payload_types.sql - the scenario captured in payload_types.jsonl: one outbox-like table per
-- payload column type (bytea, a domain over bytea, json, text, int), one row each.
-- Captured from PostgreSQL 15.20 with wal2json 2.5, in a scratch database, with outboxd's
-- wal2json options (include-types=0):
--   PGOPTIONS="-c TimeZone=UTC" psql -X -q -At -d scratch -f payload_types.sql > payload_types.jsonl
CREATE DOMAIN blob AS bytea;
CREATE TABLE ob_bytea (id text PRIMARY KEY, aggregate_type text, aggregate_id text, event_type text, payload bytea);
CREATE TABLE ob_blob (id text PRIMARY KEY, aggregate_type text, aggregate_id text, event_type text, payload blob);
CREATE TABLE ob_json (id text PRIMARY KEY, aggregate_type text, aggregate_id text, event_type text, payload json);
CREATE TABLE ob_text (id text PRIMARY KEY, aggregate_type text, aggregate_id text, event_type text, payload text);
CREATE TABLE ob_int (id text PRIMARY KEY, aggregate_type text, aggregate_id text, event_type text, payload int);
\o /dev/null
SELECT pg_create_logical_replication_slot('cap', 'wal2json');
INSERT INTO ob_bytea VALUES ('b-1', 'bin', 'k1', 'Bin', '\x00ff00410a'::bytea);
INSERT INTO ob_bytea VALUES ('b-2', 'bin', 'k2', 'Empty', ''::bytea);
INSERT INTO ob_blob VALUES ('d-1', 'bin', 'k3', 'Domain', '\x00ff'::bytea);
INSERT INTO ob_json VALUES ('j-1', 'doc', 'k4', 'Json', '{"b": 1,  "a": [1, 2], "s": "é"}');
INSERT INTO ob_text VALUES ('t-1', 'doc', 'k5', 'Text', E'héllo 😀 "q"\n\\');
INSERT INTO ob_int VALUES ('i-1', 'num', 'k6', 'Int', -42);
\o
SELECT data FROM pg_logical_slot_get_changes('cap', NULL, NULL, 'format-version', '2', 'include-xids', '1',
       'include-timestamp', '1', 'include-lsn', '1', 'include-types', '0', 'actions', 'insert',
       'add-tables', 'public.ob_bytea,public.ob_blob,public.ob_json,public.ob_text,public.ob_int',
       'add-msg-prefixes', 'outbox');
\o /dev/null
SELECT pg_drop_replication_slot('cap');
