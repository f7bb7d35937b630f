-- inbox.sql - the inbox table written by inboxd (inbox.table = public.inbox), its offsets
-- table and the SQL handoff to the receiving service: claim, complete, fail, status and
-- requeue. Idempotent: run it again after an upgrade (psql -d app -f sql/inbox.sql).
--
-- inboxd consumes Kafka topics in a consumer group and records every message here exactly
-- once: one transaction per batch inserts the messages (ON CONFLICT (message_id) DO
-- NOTHING) and moves the partitions' positions in public.inbox_offsets; Kafka offsets are
-- committed only after that transaction. The service then takes messages with
-- inbox_claim() in per-key order, and settles each with inbox_complete() or inbox_fail().
-- See docs/inboxd.md.
--
-- Every object lives in schema public. For another schema, replace "public." throughout
-- (and set inbox.table / inbox.offsets.table accordingly).

-- One row per Kafka message. `id` is the order of arrival: within a partition it follows
-- the offsets (inboxd serialises the writers of a partition on its inbox_offsets row), and
-- the claim order of one key is by id.
CREATE TABLE IF NOT EXISTS public.inbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      text        NOT NULL UNIQUE,  -- the `id` header, else topic/partition/offset
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    "offset"        bigint      NOT NULL,
    key             bytea,                        -- record key bytes; NULL: no key (no ordering)
    headers         jsonb,                        -- {"name": "value", ...}; see docs/inboxd.md
    payload         bytea,                        -- record value, byte for byte; NULL: tombstone
    received_at     timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending'
                    CONSTRAINT inbox_status_check
                    CHECK (status IN ('pending', 'processing', 'done', 'failed', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0, -- claims so far
    next_attempt_at timestamptz NOT NULL DEFAULT now(), -- failed: retry time; processing: lease end
    last_error      text,
    processed_at    timestamptz                   -- when it became done or dead
);

-- The claim scan: active rows in arrival order.
CREATE INDEX IF NOT EXISTS inbox_claim_idx ON public.inbox (id)
    WHERE status IN ('pending', 'processing', 'failed');
-- "Is an earlier message of this key still open?": active rows by key.
CREATE INDEX IF NOT EXISTS inbox_key_open_idx ON public.inbox (key, id)
    WHERE status IN ('pending', 'processing', 'failed');
-- Retention (inboxd deletes done rows older than inbox.retention).
CREATE INDEX IF NOT EXISTS inbox_done_idx ON public.inbox (processed_at)
    WHERE status = 'done';
-- The dead-letter list.
CREATE INDEX IF NOT EXISTS inbox_dead_idx ON public.inbox (id)
    WHERE status = 'dead';

-- Position of each partition per consumer group: every message before next_offset is
-- recorded in the inbox (or was, until retention removed it). Written in the same
-- transaction as the messages; inboxd seeks here when a partition is assigned.
CREATE TABLE IF NOT EXISTS public.inbox_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    next_offset    bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- ---- NOTIFY ---------------------------------------------------------------------------
-- After each INSERT statement that added rows: NOTIFY inbox, '<schema>.<table>'. PostgreSQL
-- delivers it when the transaction commits (once per transaction and payload), so a
-- service that runs LISTEN inbox wakes up when messages are there to claim. Retries that
-- become due later send no notification: poll inbox_claim() on a timer as well.
CREATE OR REPLACE FUNCTION public.inbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted) THEN
        PERFORM pg_notify(COALESCE(TG_ARGV[0], 'inbox'), TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER inbox_notify AFTER INSERT ON public.inbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION public.inbox_notify('inbox');

-- ---- handoff --------------------------------------------------------------------------

-- inbox_claim - up to n messages for the caller, oldest first, and at most one per key:
-- a message is claimable only when every earlier message (by id) with the same key is
-- done or dead, so one key's messages are processed one at a time, in order. Messages
-- without a key (NULL) are independent. Claimable: pending, failed whose retry time has
-- come, processing whose lease ran out (its claimer died). Claiming sets status =
-- processing, attempts + 1 and next_attempt_at = now() + lease. Rows locked by another
-- claimer are skipped (FOR UPDATE SKIP LOCKED), so claimers never wait for each other.
--
-- Process in the claiming transaction (the exactly-once way: the effects and the done
-- mark commit together; a crash rolls the claim back):
--   BEGIN;
--   SELECT * FROM inbox_claim(10);
--   -- ... apply each message ...
--   SELECT inbox_complete(message_id);      -- or inbox_fail(message_id, 'reason')
--   COMMIT;
-- Or claim in one transaction and settle in later ones (at least once: if the claimer
-- dies, the message is claimed again once the lease has run out).
CREATE OR REPLACE FUNCTION public.inbox_claim(n integer DEFAULT 1, lease interval DEFAULT '5 minutes')
RETURNS SETOF public.inbox
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (
        SELECT i.id
          FROM public.inbox i
         WHERE i.status IN ('pending', 'processing', 'failed')
           AND i.next_attempt_at <= now()
           AND NOT EXISTS (SELECT 1
                             FROM public.inbox e
                            WHERE e.key = i.key
                              AND e.id < i.id
                              AND e.status IN ('pending', 'processing', 'failed'))
         ORDER BY i.id
         LIMIT greatest(n, 0)
           FOR UPDATE OF i SKIP LOCKED
    ), u AS (
        UPDATE public.inbox i
           SET status = 'processing',
               attempts = i.attempts + 1,
               next_attempt_at = now() + lease
          FROM c
         WHERE i.id = c.id
        RETURNING i.*
    )
    SELECT * FROM u ORDER BY id
$$;

-- inbox_complete - marks a message done (processed_at = now()). Returns false when there
-- is no such message or it is already done or dead (a second completion is harmless).
CREATE OR REPLACE FUNCTION public.inbox_complete(message_id text)
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH u AS (
        UPDATE public.inbox i
           SET status = 'done', processed_at = now(), next_attempt_at = now()
         WHERE i.message_id = inbox_complete.message_id
           AND i.status IN ('pending', 'processing', 'failed')
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM u)
$$;

-- inbox_fail - records a failed attempt with its reason. After max_attempts claims the
-- message is dead (status dead, processed_at = now()); before that it is failed and
-- claimable again after an exponential backoff with jitter: base * 2^(attempts-1),
-- capped at max_backoff, then a random 50-100 % of it. Later messages of its key wait
-- until it is done or dead. max_attempts NULL: the setting inbox.max_attempts (ALTER
-- DATABASE app SET inbox.max_attempts = 5), else 10. Returns the new status, or NULL when
-- there is no such message or it is already done or dead.
CREATE OR REPLACE FUNCTION public.inbox_fail(message_id text, reason text,
                                             max_attempts integer DEFAULT NULL,
                                             base interval DEFAULT '1 second',
                                             max_backoff interval DEFAULT '1 hour')
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lim integer := coalesce(max_attempts,
                            nullif(current_setting('inbox.max_attempts', true), '')::integer,
                            10);
    r record;
    delay interval;
BEGIN
    SELECT i.id, i.attempts INTO r
      FROM public.inbox i
     WHERE i.message_id = inbox_fail.message_id
       AND i.status IN ('pending', 'processing', 'failed')
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF greatest(r.attempts, 1) >= lim THEN
        UPDATE public.inbox
           SET status = 'dead', last_error = reason, processed_at = now(), next_attempt_at = now()
         WHERE id = r.id;
        RETURN 'dead';
    END IF;
    delay := least(max_backoff, base * power(2, least(greatest(r.attempts, 1) - 1, 40)));
    delay := delay * (0.5 + random() / 2);
    UPDATE public.inbox
       SET status = 'failed', last_error = reason, next_attempt_at = now() + delay
     WHERE id = r.id;
    RETURN 'failed';
END
$$;

-- inbox_requeue_dead - makes dead messages pending again (attempts = 0; last_error is
-- kept until the next failure). message_id NULL: every dead message. Returns how many.
-- A requeued message is claimed after the messages of its key that were already done:
-- requeueing gives up the per-key order for it. Sends NOTIFY inbox with the payload the
-- insert trigger uses, '<schema>.<table>' of the table it updated (taken from the rows, so
-- it stays right when the table is renamed or moved with this file).
CREATE OR REPLACE FUNCTION public.inbox_requeue_dead(message_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
    t oid;
    payload text;
BEGIN
    WITH u AS (
        UPDATE public.inbox i
           SET status = 'pending', attempts = 0, next_attempt_at = now(), processed_at = NULL
         WHERE i.status = 'dead'
           AND (inbox_requeue_dead.message_id IS NULL OR i.message_id = inbox_requeue_dead.message_id)
        RETURNING i.tableoid
    )
    SELECT count(*), min(u.tableoid) INTO n, t FROM u;
    IF n > 0 THEN
        -- As TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME in inbox_notify (of the partitioned
        -- table when the rows are in partitions).
        SELECT ns.nspname || '.' || c.relname INTO payload
          FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
         WHERE c.oid = coalesce(pg_partition_root(t), t);
        PERFORM pg_notify('inbox', payload);
    END IF;
    RETURN n;
END
$$;

-- inbox_schema_version - the version of this file's tables and functions. `inboxd check`
-- compares it with the version its inboxd expects and says when to run this file again.
-- Raised whenever a release changes a table or function here.
CREATE OR REPLACE FUNCTION public.inbox_schema_version() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'SELECT 1';

-- ---- visibility -----------------------------------------------------------------------

-- inbox_text - bytes as text when they are valid in the database encoding, else NULL.
-- For reading keys and payloads: SELECT inbox_text(payload) FROM inbox.
CREATE OR REPLACE FUNCTION public.inbox_text(b bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN convert_from(b, current_setting('server_encoding'));
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- inbox_json - bytes as jsonb when they are JSON text, else NULL.
CREATE OR REPLACE FUNCTION public.inbox_json(b bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN convert_from(b, current_setting('server_encoding'))::jsonb;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

-- The inbox with key and payload readable: key_text / payload_text (NULL when not text),
-- payload_json (NULL when not JSON).
CREATE OR REPLACE VIEW public.inbox_messages AS
SELECT id, message_id, topic, partition, "offset",
       public.inbox_text(key) AS key_text, headers,
       public.inbox_text(payload) AS payload_text, public.inbox_json(payload) AS payload_json,
       received_at, status, attempts, next_attempt_at, last_error, processed_at
  FROM public.inbox;

-- Counts per status, with the oldest message of each (age = now() - received_at): the
-- oldest_age of 'pending' is how far the service is behind.
CREATE OR REPLACE VIEW public.inbox_status AS
SELECT s.status,
       count(i.id)                 AS messages,
       min(i.received_at)          AS oldest_received_at,
       now() - min(i.received_at)  AS oldest_age
  FROM (VALUES ('pending', 1), ('processing', 2), ('failed', 3), ('dead', 4), ('done', 5)) AS s(status, ord)
  LEFT JOIN public.inbox i ON i.status = s.status
 GROUP BY s.status, s.ord
 ORDER BY s.ord;

-- Dead messages with their last error, oldest first.
CREATE OR REPLACE VIEW public.inbox_dead AS
SELECT id, message_id, topic, partition, "offset", public.inbox_text(key) AS key_text,
       attempts, last_error, received_at, processed_at AS died_at
  FROM public.inbox
 WHERE status = 'dead'
 ORDER BY id;
