"""A stream of ordered events for the exactly-once tests (its counter rows and writer also serve the
fault suite: faultload.py), and the check that a reader saw each committed event exactly once,
per key in commit order.

The load: transactions of 1..max_events events, each carrying the next sequence number of a
random aggregate (key) taken from a counter row the transaction updates, so the row lock makes
the commit order of one key the sequence order. A PL/pgSQL procedure commits them fast; a
background thread calls it in chunks with pauses, so the relay streams them live. The counter
rows say how many events each key has in the end: every committed event, nothing else.
(test_faults.py has its own, older copy of this idea for the at-least-once checks.)
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import psycopg

N_AGGS = 20

SETUP_SQL = f"""
CREATE TABLE seqs (agg text PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
INSERT INTO seqs (agg) SELECT 'a' || lpad(i::text, 2, '0') FROM generate_series(0, {N_AGGS - 1}) i;
CREATE PROCEDURE ordered_load(ntx int, agg_type text, max_events int) LANGUAGE plpgsql AS $$
DECLARE
  a text;
  s bigint;
BEGIN
  FOR t IN 1..ntx LOOP
    FOR e IN 1..(1 + floor(random() * max_events)::int) LOOP
      a := 'a' || lpad(floor(random() * {N_AGGS})::int::text, 2, '0');
      UPDATE seqs SET n = n + 1 WHERE agg = a RETURNING n INTO s;
      INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)
      VALUES (agg_type, a, 'e', jsonb_build_object('agg', a, 'seq', s));
    END LOOP;
    COMMIT;
  END LOOP;
END $$;
"""


def setup_ordered(db) -> None:
    db.conn.execute(SETUP_SQL)


def per_key_counts(db) -> dict[str, int]:
    """Committed events per key (the counter rows)."""
    return {a: int(n) for a, n in db.execute("SELECT agg, n FROM seqs WHERE n > 0")}


class OrderedLoad:
    """Calls ordered_load(chunk) every `pause` seconds in a thread until `events` events
    committed (or stop())."""

    def __init__(self, db, agg_type: str, events: int, chunk: int = 200, pause: float = 0.2,
                 max_events: int = 3):
        self.conninfo, self.agg_type, self.events = db.conninfo, agg_type, events
        self.chunk, self.pause, self.max_events = chunk, pause, max_events
        self.written = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ordered-load", daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as c:
                while not self._stop.is_set() and self.written < self.events:
                    c.execute("CALL ordered_load(%s, %s, %s)", (self.chunk, self.agg_type, self.max_events))
                    self.written = c.execute("SELECT sum(n) FROM seqs").fetchone()[0]
                    time.sleep(self.pause)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.errors.append(f"{type(e).__name__}: {e}")

    def start(self) -> "OrderedLoad":
        self._thread.start()
        return self

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self, timeout: float = 300) -> None:
        """Waits for the target (or stops early when stop_now() was called)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load did not finish"
        assert not self.errors, f"load: {self.errors}"

    def stop_now(self) -> None:
        self._stop.set()
        self.stop()


@dataclass
class Ev:
    partition: int
    offset: int
    key: str
    seq: int


def read_events(bootstrap: str, topic: str, isolation: str, expect: int | None = None, timeout: float = 120,
                settle: float = 3.0) -> list[Ev]:
    """Every record of topic from the beginning (all partitions, no consumer group), in
    partition/offset order; stops once `expect` records were read and nothing more came for
    `settle` seconds (or, without expect, after settle seconds without news), or at timeout."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ordered-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": isolation,
                  "enable.partition.eof": False})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        out: list[Ev] = []
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() - last_new >= settle and (expect is None or len(out) >= expect):
                break
            for m in c.consume(5000, 0.5):
                if m.error():
                    continue
                v = json.loads(m.value())
                out.append(Ev(m.partition(), m.offset(), m.key().decode(), int(v["seq"])))
                last_new = time.monotonic()
        out.sort(key=lambda e: (e.partition, e.offset))
        return out
    finally:
        c.close()


def check_exactly_once_in_order(events: list[Ev], counts: dict[str, int]) -> None:
    """Each key's sequence numbers, in partition offset order, are exactly 1..n: every
    committed event once, in commit order, nothing else."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for e in events:
        seqs[e.key].append(e.seq)
    extra = sorted(set(seqs) - set(counts))
    assert not extra, f"keys that never committed an event: {extra}"
    for k, n in counts.items():
        got, want = seqs.get(k, []), list(range(1, n + 1))
        if got != want:
            dups = len(got) - len(set(got))
            missing = sorted(set(want) - set(got))
            i = next((j for j, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
            raise AssertionError(
                f"key {k}: {len(got)} records for {n} events ({dups} duplicates, {len(missing)} missing, e.g. "
                f"{missing[:5]}); first difference at position {i}: got {got[max(0, i - 3):i + 4]}, want "
                f"{want[max(0, i - 3):i + 4]}")
