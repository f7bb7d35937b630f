-- roles.sql - least-privilege roles for outboxd (the relay) and the services writing the outbox.
-- Run as a superuser in the database that holds the outbox, after sql/outbox.sql:
--   psql -v relay_password="'change-me'" -f sql/roles.sql
--   psql -v relay_password="'change-me'" -v restrict_messages=on -v relay_cleanup=on -f sql/roles.sql
--   psql -v relay_password="'change-me'" -v pgoutput=on -f sql/roles.sql   (postgres.plugin = pgoutput)
-- outboxd needs: LOGIN, REPLICATION (to stream the slot) and read access to the catalog
-- (every role has it); SELECT on the outbox for outbox.backfill.where, and DELETE only for
-- outbox.cleanup = delete (granted with relay_cleanup=on). The writer role only inserts
-- outbox rows and calls outbox_emit().
--
-- restrict_messages=on also revokes EXECUTE on pg_logical_emit_message from PUBLIC in this
-- database. PostgreSQL lets every role call it, so without this any role that can connect
-- can emit a message with the 'outbox' prefix and outboxd publishes it. After it, writers
-- emit outbox messages only through outbox_emit() (SECURITY DEFINER; its owner keeps
-- EXECUTE). Other users of logical messages in this database then need their own GRANT.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'outboxd') THEN
    CREATE ROLE outboxd LOGIN REPLICATION;
  ELSE
    ALTER ROLE outboxd LOGIN REPLICATION;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'outbox_writer') THEN
    CREATE ROLE outbox_writer NOLOGIN;
  END IF;
END
$$;

\if :{?relay_password}
ALTER ROLE outboxd PASSWORD :relay_password;
\endif

GRANT INSERT ON public.outbox TO outbox_writer;
-- outboxd checks the table's columns at startup through the catalog; SELECT lets the
-- relay's role inspect rows too (not needed to stream) and is what the backfill reads with.
GRANT SELECT ON public.outbox TO outboxd;
-- The progress record (sql/outbox.sql): outboxd reads and writes its slot's row.
GRANT SELECT, INSERT, UPDATE ON public.outboxd_progress TO outboxd;

\if :{?relay_cleanup}
\else
\set relay_cleanup off
\endif
\if :relay_cleanup
-- outbox.cleanup = delete: outboxd deletes the rows it published, by primary key.
GRANT DELETE ON public.outbox TO outboxd;
\endif

\if :{?pgoutput}
\else
\set pgoutput off
\endif
\if :pgoutput
-- postgres.plugin = pgoutput: the publication outboxd streams through (postgres.publication,
-- default outboxd). Created here, by the tables' owner or a superuser, because the outboxd role
-- does not own the outbox and may not create a publication of it. Add further outbox tables
-- with ALTER PUBLICATION outboxd ADD TABLE ...
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'outboxd') THEN
    CREATE PUBLICATION outboxd FOR TABLE public.outbox
      WITH (publish = 'insert', publish_via_partition_root = true);
  END IF;
END
$$;
\endif

-- The table-less outbox (sql/outbox.sql): outbox_emit() has no EXECUTE for PUBLIC.
GRANT EXECUTE ON FUNCTION public.outbox_emit(text, text, text, jsonb, jsonb) TO outbox_writer;

\if :{?restrict_messages}
\else
\set restrict_messages off
\endif
\if :restrict_messages
-- Every overload (PostgreSQL 17 added a flush argument), by signature.
DO $$
DECLARE
  f regprocedure;
  fn_owner name := (SELECT pg_get_userbyid(proowner) FROM pg_proc
                  WHERE oid = 'public.outbox_emit(text, text, text, jsonb, jsonb)'::regprocedure);
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc
            WHERE proname = 'pg_logical_emit_message' AND pronamespace = 'pg_catalog'::regnamespace LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, fn_owner);
  END LOOP;
END
$$;
\endif
