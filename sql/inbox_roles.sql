-- inbox_roles.sql - least-privilege roles for inboxd (the inbox sidecar) and the services that
-- process the inbox; the receiving side's counterpart of sql/roles.sql.
-- Run as a superuser (or the owner of the inbox tables) in the database that holds the inbox,
-- after sql/inbox.sql:
--   psql -d app -v inboxd_password="'change-me'" -f sql/inbox_roles.sql
--   psql -d app -v inboxd_password="'change-me'" -v inbox_push=on -f sql/inbox_roles.sql
-- Optional: -v inboxd_role=NAME (default inboxd) and -v processor_role=NAME (default
-- inbox_processor), e.g. one inboxd role per receiving service in a shared cluster.
-- Idempotent: run it again after sql/inbox.sql, or to add inbox_push.
--
-- inboxd needs: LOGIN; SELECT, INSERT on the inbox (the batch insert, ON CONFLICT DO NOTHING)
-- and DELETE (inbox.retention removes done rows); SELECT, INSERT, UPDATE on inbox_offsets
-- (it locks, creates and advances the partitions' positions). It checks these at startup and
-- names what is missing. Its operator commands run as the same role: `inboxd status` reads the
-- inbox (SELECT), `inboxd requeue` calls inbox_requeue_dead(), which updates the columns status,
-- attempts, next_attempt_at and processed_at of dead rows (a column-level UPDATE, so the role
-- still cannot rewrite messages). With HTTP push (deliver.url; grant it with inbox_push=on) it also
-- claims and settles messages itself: UPDATE on the inbox and EXECUTE on inbox_claim,
-- inbox_complete and inbox_fail.
--
-- The processor role (NOLOGIN) is for the services that take messages with SQL: SELECT,
-- UPDATE on the inbox, EXECUTE on the handoff functions and SELECT on the views. Grant it to
-- each service's login role: GRANT inbox_processor TO orders_app;
--
-- The functions of sql/inbox.sql run with the caller's privileges (none is SECURITY
-- DEFINER), so the table privileges above are what they need. EXECUTE is PUBLIC's by
-- default; it is granted here as well so that the roles keep it where PUBLIC's was revoked.

\if :{?inboxd_role}
\else
\set inboxd_role inboxd
\endif
\if :{?processor_role}
\else
\set processor_role inbox_processor
\endif

SELECT format('CREATE ROLE %I LOGIN', :'inboxd_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'inboxd_role') \gexec
ALTER ROLE :"inboxd_role" LOGIN;
SELECT format('CREATE ROLE %I NOLOGIN', :'processor_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'processor_role') \gexec

\if :{?inboxd_password}
ALTER ROLE :"inboxd_role" PASSWORD :inboxd_password;
\endif

GRANT SELECT, INSERT, DELETE ON public.inbox TO :"inboxd_role";
GRANT SELECT, INSERT, UPDATE ON public.inbox_offsets TO :"inboxd_role";
-- inboxd requeue (dead messages back to pending).
GRANT UPDATE (status, attempts, next_attempt_at, processed_at) ON public.inbox TO :"inboxd_role";
GRANT EXECUTE ON FUNCTION public.inbox_requeue_dead(text) TO :"inboxd_role";

\if :{?inbox_push}
\else
\set inbox_push off
\endif
\if :inbox_push
-- deliver.url: inboxd claims (inbox_claim), settles (inbox_complete, inbox_fail) and
-- requeues or postpones (UPDATE) the messages it pushes.
GRANT UPDATE ON public.inbox TO :"inboxd_role";
GRANT EXECUTE ON FUNCTION public.inbox_claim(integer, interval),
                          public.inbox_complete(text),
                          public.inbox_fail(text, text, integer, interval, interval)
   TO :"inboxd_role";
\endif

GRANT SELECT, UPDATE ON public.inbox TO :"processor_role";
GRANT EXECUTE ON FUNCTION public.inbox_claim(integer, interval),
                          public.inbox_complete(text),
                          public.inbox_fail(text, text, integer, interval, interval),
                          public.inbox_requeue_dead(text)
   TO :"processor_role";
GRANT SELECT ON public.inbox_messages, public.inbox_status, public.inbox_dead TO :"processor_role";
