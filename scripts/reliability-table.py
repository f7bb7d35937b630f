#!/usr/bin/env python3
"""Prints the fault x outcome table of docs/reliability.md from the fault suite's results file.

Usage: scripts/reliability-table.py [RESULTS] [--update docs/reliability.md]

RESULTS defaults to $OUTBOXD_TEST_FAULT_RESULTS or build/fault-results.json (written by the
fault tests, tests/integration/harness/faultreport.py). With --update, the table replaces
the lines between `<!-- results:begin -->` and `<!-- results:end -->` in that file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def cell(v) -> str:
    if v is None:
        return "-"
    return str(v).replace("|", "\\|")


# Network faults first, then the servers'; a fault not listed goes last.
ORDER = ["delay-200ms", "loss-10pct", "partition-30s", "partition-90s", "half-open", "stop", "kill", "hung",
         "hung-90s", "disk-full", "restart", "crash", "walsender-terminated", "long-transaction",
         "restart-in-rebalance"]


def rank(r: dict) -> tuple:
    kind = r["fault"].split("-", 2)[-1]  # outboxd-kafka-<kind>
    return (r["daemon"] != "outboxd", r["link"], ORDER.index(kind) if kind in ORDER else len(ORDER), r["fault"])


def table(rows: dict) -> str:
    order = sorted(rows.values(), key=rank)
    out = ["| daemon | link | fault | committed | delivered | lost | duplicated | reordered | recover s | run (UTC), load | notes |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in order:
        out.append("| " + " | ".join(cell(x) for x in (
            r["daemon"], r["link"], r["what"], r["committed"], r["delivered"], r["lost"], r["duplicated"],
            r["reordered"], r["recover_s"], f"{r['at'][:16].replace('T', ' ')}, {r.get('loadavg_1m', '-')}",
            r.get("notes") or "")) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    update = None
    if "--update" in argv:
        i = argv.index("--update")
        update = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    path = Path(argv[0] if argv else os.environ.get("OUTBOXD_TEST_FAULT_RESULTS") or REPO / "build" / "fault-results.json")
    rows = json.loads(path.read_text())
    t = table(rows)
    if update is None:
        sys.stdout.write(t)
        return 0
    text = update.read_text()
    a, b = text.index(BEGIN), text.index(END)
    update.write_text(text[:a + len(BEGIN)] + "\n" + t + text[b:])
    print(f"reliability-table: {len(rows)} rows written to {update}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
