#!/usr/bin/env bash
# Ingest benchmark of inboxd against a one-transaction-per-message baseline (bench.py).
#
# Usage: bench/inbox_ingest/run.sh [--messages N] [--baseline-messages N] [--repeats N] ...
#
# Needs the local stack (scripts/stack.sh start; OUTBOXD_STACK_* select which one), a
# built build/inboxd (or OUTBOXD_TEST_INBOXD_BIN) and the test venv (scripts/install-deps.sh).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${OUTBOXD_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/outboxd/venv}
eval "$("$REPO/scripts/stack.sh" env)"
exec "$VENV/bin/python" "$REPO/bench/inbox_ingest/bench.py" "$@"
