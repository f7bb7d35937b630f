#!/usr/bin/env bash
# order-service.sh - the demo order service: writes each order and its outbox event in ONE transaction.
#
# Usage: demo/orders/order-service.sh [--orders N] [--interval SECONDS]
#   --orders N          orders to write, then exit (default 0: write until stopped)
#   --interval SECONDS  pause between orders (default 1)
# Environment: ORDERS_DB  libpq conninfo of the orders database (sql/outbox.sql and
#                         demo/orders/schema.sql loaded), e.g. "host=db dbname=orders"
# Prints one line per committed order. outboxd publishes the event once the
# transaction has committed; a rolled-back order never leaves the database.
set -euo pipefail

ORDERS=0
INTERVAL=1
while (($#)); do
  case $1 in
    --orders) ORDERS=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    -h|--help) sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "order-service: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $ORDERS =~ ^[0-9]+$ ]] || { echo "order-service: --orders needs a number" >&2; exit 2; }
ORDERS=$((10#$ORDERS))
: "${ORDERS_DB:?order-service: set ORDERS_DB to the conninfo of the orders database}"

CUSTOMERS=(alice bob carol dave erin)
SKUS=(A-100 B-200 C-300)

stop=0
trap 'stop=1' TERM INT

n=0
while ((ORDERS == 0 || n < ORDERS)) && ((!stop)); do
  n=$((n + 1))
  customer=${CUSTOMERS[RANDOM % ${#CUSTOMERS[@]}]}
  sku=${SKUS[RANDOM % ${#SKUS[@]}]}
  qty=$((RANDOM % 3 + 1))
  # One transaction: the order row and its outbox event commit together, or neither does.
  out=$(psql "$ORDERS_DB" -qAtX -v ON_ERROR_STOP=1 \
          -v customer="$customer" -v sku="$sku" -v qty="$qty" <<'SQL'
BEGIN;
INSERT INTO orders (customer, sku, qty) VALUES (:'customer', :'sku', :qty) RETURNING id AS order_id \gset
SELECT gen_random_uuid() AS event_id \gset
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, headers)
VALUES (:'event_id', 'order', :'order_id', 'OrderPlaced',
        jsonb_build_object('order_id', :order_id, 'customer', :'customer', 'sku', :'sku', 'qty', :qty),
        '{"source": "order-service"}');
SELECT :order_id, :'event_id';
COMMIT;
SQL
  )
  IFS='|' read -r order_id event_id <<<"$out"
  printf 'order %s: %d x %s for %s, committed with outbox event %s\n' \
    "$order_id" "$qty" "$sku" "$customer" "${event_id:0:8}"
  ((ORDERS != 0 && n >= ORDERS)) || sleep "$INTERVAL"
done
