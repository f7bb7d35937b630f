"""The fault suite's results file: one row per fault with what survived it (docs/reliability.md).

Each fault test calls record() BEFORE it asserts, so a failing run still leaves its
figures. The file is JSON, an object keyed by fault id; a run replaces the rows of the
faults it ran and keeps the others (with their own timestamps), so a partial run updates
part of the table. scripts/reliability-table.py prints the table of docs/reliability.md
from it.

Path: $OUTBOXD_TEST_FAULT_RESULTS, default <repo>/build/fault-results.json.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from .stack import REPO


def results_path() -> Path:
    return Path(os.environ.get("OUTBOXD_TEST_FAULT_RESULTS") or REPO / "build" / "fault-results.json")


def record(fault: str, *, daemon: str, link: str, what: str, committed: int, delivered: int,
           lost: int, duplicated: int, reordered: int, recover_s: float | None,
           notes: str = "", **extra) -> dict:
    """Writes (replaces) the row of `fault`. committed: events committed (outboxd) or
    messages acknowledged by Kafka (inboxd); delivered: of those, how many arrived (in
    Kafka / in the inbox); lost = committed - delivered; duplicated: extra copies (outboxd:
    records in Kafka beyond the first of an event; inboxd: redeliveries the inbox
    deduplicated); reordered: events of a key that arrived after a later one of that key;
    recover_s: seconds from the end of the fault (link healed, server back) until every
    event committed before it had arrived."""
    row = {
        "fault": fault, "daemon": daemon, "link": link, "what": what,
        "committed": committed, "delivered": delivered, "lost": lost, "duplicated": duplicated,
        "reordered": reordered, "recover_s": None if recover_s is None else round(recover_s, 1),
        "notes": notes, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_1m": round(os.getloadavg()[0], 1), **extra,
    }
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            rows = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            rows = {}
        rows[fault] = row
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
    print(f"fault result: {json.dumps(row)}")
    return row
