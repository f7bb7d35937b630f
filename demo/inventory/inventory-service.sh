#!/usr/bin/env bash
# inventory-service.sh - the demo inventory service: processes the order events that inboxd
# recorded in its inbox, exactly once, and prints each stock change.
#
# Usage: demo/inventory/inventory-service.sh [--interval SECONDS]
#   --interval SECONDS  pause when the inbox has nothing to claim (default 0.5)
# Environment: INVENTORY_DB  libpq conninfo of the inventory database (sql/inbox.sql and
#                            demo/inventory/schema.sql loaded)
# Each round is one transaction: inventory_process() claims messages with inbox_claim(),
# updates the stock and marks them done with inbox_complete(); COMMIT makes all of it
# visible at once. A crash before COMMIT undoes the stock change and the claim together.
set -euo pipefail

INTERVAL=0.5
while (($#)); do
  case $1 in
    --interval) INTERVAL=$2; shift 2 ;;
    -h|--help) sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "inventory-service: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
: "${INVENTORY_DB:?inventory-service: set INVENTORY_DB to the conninfo of the inventory database}"

stop=0
trap 'stop=1' TERM INT

while ((!stop)); do
  out=$(psql "$INVENTORY_DB" -qAtX -v ON_ERROR_STOP=1 -F '|' <<'SQL'
BEGIN;
SELECT message_id, order_id, sku, qty, before, after, outcome FROM inventory_process(100);
COMMIT;
SQL
  )
  if [[ -z $out ]]; then
    sleep "$INTERVAL"
    continue
  fi
  while IFS='|' read -r message_id order_id sku qty before after outcome; do
    if [[ $outcome == "done" ]]; then
      printf 'order %s: %s %s -> %s (-%s), message %s done\n' \
        "$order_id" "$sku" "$before" "$after" "$qty" "${message_id:0:8}"
    else
      printf 'order %s: unknown SKU %s, message %s %s\n' "$order_id" "$sku" "${message_id:0:8}" "$outcome"
    fi
  done <<<"$out"
done
