"""The inboxd tests' load and checks: a background producer with id headers, inbox counts,
the exactly-once check against what the producer had acknowledged, and the outcome of a
fault run (measure_inbox) for the results file (harness/faultreport.py)."""

from __future__ import annotations

import threading
import time

import psycopg

from .util import unique_name, wait_until


class BgProducer(threading.Thread):
    """Produces n records with unique id headers "<prefix>-<i>" and keys k0..k<keys-1> at
    about rate/s (idempotent, acks=all); .acked maps id -> (partition, offset)."""

    def __init__(self, bootstrap: str, topic: str, n: int, rate: float, keys: int = 25,
                 prefix: str | None = None, id_header: bool = True):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.n, self.rate, self.keys = bootstrap, topic, n, rate, keys
        self.prefix = prefix or unique_name("m")
        self.id_header = id_header
        self.acked: dict[str, tuple[int, int]] = {}
        self.errors: list[str] = []

    def run(self):
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5})

        def cb(err, msg):
            mid = msg.value().decode().split("|")[0]
            if err is not None:
                self.errors.append(f"{mid}: {err}")
            else:
                self.acked[mid] = (msg.partition(), msg.offset())

        t0 = time.monotonic()
        for i in range(self.n):
            mid = f"{self.prefix}-{i}"
            headers = [("id", mid.encode())] if self.id_header else []
            p.produce(self.topic, key=f"k{i % self.keys}", value=f"{mid}|payload {i}".encode(),
                      headers=headers, on_delivery=cb)
            p.poll(0)
            ahead = (i + 1) / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        if p.flush(60) != 0:
            self.errors.append("flush timed out")


def inbox_count(db) -> int:
    """Rows in the inbox, on a fresh connection (PostgreSQL may have been restarted)."""
    with psycopg.connect(db.conninfo, autocommit=True, connect_timeout=5) as c:
        return c.execute("SELECT count(*) FROM inbox").fetchone()[0]


def wait_count(db, n: int, timeout: float = 60) -> None:
    def ok():
        try:
            return inbox_count(db) >= n
        except psycopg.OperationalError:
            return False
    wait_until(ok, timeout, 0.2, f"{n} rows in the inbox")


def check_exactly_once(db, acked: dict[str, tuple[int, int]], topic: str, settle: float = 2.0,
                       payload_has_id: bool = True) -> None:
    """The inbox holds exactly the acknowledged records, each at its partition/offset, and
    within a partition the inbox ids follow the offsets."""
    time.sleep(settle)  # anything extra would show up now
    with psycopg.connect(db.conninfo, autocommit=True) as c:
        rows = c.execute('SELECT id, message_id, topic, partition, "offset", payload FROM inbox').fetchall()
    got = {r[1]: r for r in rows}
    assert len(got) == len(rows)
    missing = set(acked) - set(got)
    extra = set(got) - set(acked)
    assert not missing, f"{len(missing)} acknowledged messages missing from the inbox, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} unexpected rows, e.g. {sorted(extra)[:5]}"
    for mid, (part, off) in acked.items():
        _, _, t, p, o, payload = got[mid]
        assert (t, p, o) == (topic, part, off), mid
        if payload_has_id:
            assert bytes(payload).startswith(mid.encode() + b"|")
    by_part: dict[int, list[tuple[int, int]]] = {}
    for iid, _, _, p, o, _ in rows:
        by_part.setdefault(p, []).append((iid, o))
    for p, pairs in by_part.items():
        pairs.sort()
        offs = [o for _, o in pairs]
        assert offs == sorted(offs), f"partition {p}: inbox ids not in offset order"


def positions(db, group: str) -> dict[int, int]:
    with psycopg.connect(db.conninfo, autocommit=True) as c:
        return dict(c.execute("SELECT partition, next_offset FROM inbox_offsets WHERE consumer_group = %s",
                              (group,)).fetchall())


def wait_assignment(kafka, group: str, topic: str, members: set[str], timeout: float = 60) -> dict:
    """Waits until the group is stable with exactly these members (client.id), each holding
    at least one partition and all 4 partitions of topic assigned; returns the assignment."""
    def ok():
        a = kafka.group_assignment(group)
        if a is None or set(a) != members or not all(a.values()):
            return None
        held = sorted(tp for tps in a.values() for tp in tps)
        return a if held == [(topic, p) for p in range(4)] else None
    return wait_until(ok, timeout, 0.3, f"group {group}: {sorted(members)} sharing the 4 partitions")


def measure_inbox(db, acked: dict[str, tuple[int, int]]) -> dict:
    """The outcome of a run, counted without asserting: committed (messages Kafka
    acknowledged to the producer), delivered (of those, recorded in the inbox), lost,
    phantom (rows nobody produced), misplaced (rows at another partition/offset than Kafka
    gave), reordered (rows of a key recorded before a row of the same key with a lower
    offset: inbox ids must follow the offsets within a key)."""
    with psycopg.connect(db.conninfo, autocommit=True, connect_timeout=10) as c:
        rows = c.execute('SELECT id, message_id, partition, "offset", key FROM inbox ORDER BY id').fetchall()
    got = {r[1]: r for r in rows}
    delivered = sum(1 for m in acked if m in got)
    misplaced = sum(1 for m, (part, off) in acked.items() if m in got and (got[m][2], got[m][3]) != (part, off))
    top: dict = {}
    reordered = 0
    for _, _, part, off, key in rows:  # id order
        k = (part, bytes(key) if key is not None else None)
        if off < top.get(k, -1):
            reordered += 1
        top[k] = max(top.get(k, -1), off)
    return {"committed": len(acked), "delivered": delivered, "lost": len(acked) - delivered,
            "phantom": sum(1 for m in got if m not in acked), "misplaced": misplaced, "reordered": reordered,
            "rows": len(rows)}


def wait_recorded(db, group: str, acked: dict[str, tuple[int, int]], timeout: float) -> float | None:
    """Seconds until the inbox offsets table shows every message of `acked` recorded (each
    partition's stored position past the highest acknowledged offset); None if not within
    timeout. PostgreSQL may be restarting: errors count as not yet."""
    want: dict[int, int] = {}
    for part, off in acked.values():
        want[part] = max(want.get(part, -1), off)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            pos = positions(db, group)
            if all(pos.get(part, 0) > off for part, off in want.items()):
                return time.monotonic() - t0
        except psycopg.Error:
            pass
        time.sleep(0.1)
    return None


def duplicates_skipped(log: str) -> int:
    """The duplicates inboxd reported skipping, summed over the clean stops in its log
    (a run ended by kill -9 reports nothing)."""
    import re

    return sum(int(m) for m in re.findall(r"stopped: recorded \d+ messages, (\d+) duplicates skipped", log))
