#!/bin/sh
# init-orders.sh - first start of postgres-orders (docker-compose.yml): the outbox, the demo's
# orders table and least-privilege roles: outboxd (LOGIN REPLICATION, sql/roles.sql) and
# order_service (writes orders and outbox rows, nothing else). DEMO_PASSWORD may hold any
# character.
set -eu
SRC=${OUTBOXD_SRC:-/outboxd}  # sql/ and demo/ of the repository (mounted read-only)
run_psql() { psql -v ON_ERROR_STOP=1 -qX -U "${POSTGRES_USER:-postgres}" -d "$POSTGRES_DB" "$@"; }
# A value as an SQL string literal (for the password variables of sql/*roles.sql).
sql_literal() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }
run_psql -f "$SRC"/sql/outbox.sql -f "$SRC"/demo/orders/schema.sql
run_psql -v relay_password="$(sql_literal "$DEMO_PASSWORD")" -f "$SRC"/sql/roles.sql
run_psql -v pw="$DEMO_PASSWORD" <<'SQL'
CREATE ROLE order_service LOGIN PASSWORD :'pw' IN ROLE outbox_writer;
GRANT SELECT, INSERT ON public.orders TO order_service;
SQL
