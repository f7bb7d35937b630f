-- roles.sql - least-privilege roles for outboxd (the relay) and the services writing the outbox.
-- Run as a superuser in the database that holds the outbox, after sql/outbox.sql:
--   psql -v relay_password="'change-me'" -f sql/roles.sql
-- outboxd needs: LOGIN, REPLICATION (to stream the slot) and read access to the catalog
-- (every role has it); it reads no table rows through SQL. The writer role only inserts.

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
-- relay's role inspect rows too (not needed to stream).
GRANT SELECT ON public.outbox TO outboxd;
