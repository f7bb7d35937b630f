#!/bin/sh
# init-inventory.sh - first start of postgres-inventory (docker-compose.yml): the inbox, the
# demo's stock tables and least-privilege roles: inboxd (writes the inbox and its offsets,
# sql/inbox_roles.sql) and inventory_service (claims and settles inbox rows as a member of
# inbox_processor, updates the stock). DEMO_PASSWORD may hold any character.
set -eu
SRC=${OUTBOXD_SRC:-/outboxd}  # sql/ and demo/ of the repository (mounted read-only)
run_psql() { psql -v ON_ERROR_STOP=1 -qX -U "${POSTGRES_USER:-postgres}" -d "$POSTGRES_DB" "$@"; }
# A value as an SQL string literal (for the password variables of sql/*roles.sql).
sql_literal() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }
run_psql -f "$SRC"/sql/inbox.sql -f "$SRC"/demo/inventory/schema.sql
run_psql -v inboxd_password="$(sql_literal "$DEMO_PASSWORD")" -f "$SRC"/sql/inbox_roles.sql
run_psql -v pw="$DEMO_PASSWORD" <<'SQL'
CREATE ROLE inventory_service LOGIN PASSWORD :'pw' IN ROLE inbox_processor;
GRANT SELECT, UPDATE ON public.stock TO inventory_service;
GRANT SELECT, INSERT ON public.stock_changes TO inventory_service;
SQL
