#!/bin/sh
# init-inventory.sh - first start of postgres-inventory (docker-compose.yml): the inbox, the
# demo's stock tables and least-privilege roles: inboxd (writes the inbox and its offsets,
# docs/inboxd.md) and inventory_service (claims and settles inbox rows, updates the stock).
set -eu
SRC=${OUTBOXD_SRC:-/outboxd}  # sql/ and demo/ of the repository (mounted read-only)
run_psql() { psql -v ON_ERROR_STOP=1 -qX -U "${POSTGRES_USER:-postgres}" -d "$POSTGRES_DB" "$@"; }
run_psql -f "$SRC"/sql/inbox.sql -f "$SRC"/demo/inventory/schema.sql
run_psql -v pw="$DEMO_PASSWORD" <<'SQL'
CREATE ROLE inboxd LOGIN PASSWORD :'pw';
GRANT SELECT, INSERT, DELETE ON public.inbox TO inboxd;
GRANT SELECT, INSERT, UPDATE ON public.inbox_offsets TO inboxd;
CREATE ROLE inventory_service LOGIN PASSWORD :'pw';
GRANT SELECT, UPDATE ON public.inbox TO inventory_service;
GRANT SELECT, UPDATE ON public.stock TO inventory_service;
GRANT SELECT, INSERT ON public.stock_changes TO inventory_service;
SQL
