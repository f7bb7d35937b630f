"""The event load and the checks of the fault tests (test_faults*.py): writers that commit
outbox events with per-aggregate sequence numbers, the oracle slot, reading a topic back,
and the outcome of a run (committed, delivered, lost, duplicated, reordered).

How correctness is checked:
- Writers commit transactions of 1-3 events. Each event carries a per-aggregate sequence
  number taken inside its transaction from a counter row (`seqs`) that the transaction
  updates, so the row lock makes the commit order of one aggregate the sequence order.
  A transaction whose COMMIT outcome is unknown (connection lost) is resolved by
  looking its event ids up after reconnecting.
- Kafka is read up to the high watermarks taken after the slot confirmed past the last
  commit (everything acknowledged is below them). Per key, the sequence numbers in
  order of FIRST arrival (partition offset order, duplicates skipped) must be exactly
  1..n: strictly increasing and gap-free. Duplicates are allowed and reported.
- Exact commit LSNs come from an "oracle" wal2json slot in the same database that is
  only peeked (pg_logical_slot_peek_changes), never consumed.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg

from .db import int_to_lsn, lsn_to_int
from .ordered import N_AGGS
from .ordered import SETUP_SQL as ORDERED_SQL
from .util import unique_name

AGG_TYPE = "agg"
AGGS = [f"a{i:02d}" for i in range(N_AGGS)]

# Fast status updates make every confirmation visible in the slot quickly (more chances
# to catch a premature one); a short reconnect backoff keeps restarts quick.
BASE_CFG = {
    # Hold the replication connection through Kafka outages (the tests watch the
    # walsender); the release after a stall is tested by the *-release variants and
    # test_pg_fast_shutdown_while_kafka_down.
    "relay.stall.timeout.ms": 0,
    "status.interval.ms": 200,
    "reconnect.backoff.max.ms": 2000,
    "log.level": "debug",
}


def seed_for(name: str) -> int:
    s = os.environ.get("OUTBOXD_FAULTS_SEED")
    seed = int(s) if s else random.randrange(1 << 30)
    print(f"{name}: seed {seed} (replay with OUTBOXD_FAULTS_SEED={seed})")
    return seed


# --------------------------------------------------------------------------- database side


# The counter rows and the fast PL/pgSQL writer, ordered_load(ntx, agg_type, max_events):
# ntx committed transactions of 1..max_events events each (the same as the exactly-once tests').
COUNTERS_SQL = ORDERED_SQL


def setup_counters(db) -> None:
    db.conn.execute(COUNTERS_SQL)


def committed_from_table(db) -> dict[str, tuple[str, int]]:
    """Every event in the outbox table (all committed): id -> (aggregate_id, seq)."""
    return {r[0]: (r[1], int(r[2])) for r in db.execute(
        "SELECT id::text, aggregate_id, payload->>'seq' FROM outbox")}


_EVENT_SQL = """
WITH s AS (UPDATE seqs SET n = n + 1 WHERE agg = %(a)s RETURNING n)
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
SELECT %(id)s, %(t)s, %(a)s, 'e', jsonb_build_object('agg', %(a)s::text, 'seq', s.n) FROM s
RETURNING (payload->>'seq')::bigint
"""

_EVENT_PAD_SQL = """
WITH s AS (UPDATE seqs SET n = n + 1 WHERE agg = %(a)s RETURNING n)
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload)
SELECT %(id)s, %(t)s, %(a)s, 'e', jsonb_build_object('agg', %(a)s::text, 'seq', s.n, 'pad', %(pad)s::text)
FROM s RETURNING (payload->>'seq')::bigint
"""


@dataclass
class Txn:
    t_begin: float  # time.monotonic() before BEGIN
    t_end: float  # after COMMIT returned (or after the outcome was resolved)
    ids: list[str]


@dataclass
class Writer:
    """Commits transactions of min_events..max_events outbox events, each with the next
    sequence number of a random aggregate. Tolerates PostgreSQL going away: reconnects,
    and resolves a transaction whose outcome is unknown by looking for its ids.
    Only transactions known to have committed end up in `committed` / `txns`."""

    conninfo: str
    seed: int
    agg_type: str = AGG_TYPE
    min_events: int = 1
    max_events: int = 3
    pad_bytes: int = 0
    pause: float = 0.0
    committed: dict = field(default_factory=dict)  # id -> (agg, seq)
    txns: list = field(default_factory=list)
    unknown: int = 0  # transactions whose COMMIT outcome was unknown
    unknown_committed: int = 0  # ... of which had committed
    conn_errors: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # anything that should fail the test

    def __post_init__(self):
        self.rnd = random.Random(self.seed)
        self.conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- one transaction -------------------------------------------------------------

    def _connect(self) -> bool:
        try:
            self.conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=3)
            return True
        except psycopg.Error as e:
            self.conn = None
            self.conn_errors.append(str(e).strip().splitlines()[0] if str(e).strip() else repr(e))
            return False

    def _drop_conn(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def _resolve(self, t_begin: float, ids: list[str], aggs: list[str]) -> None:
        """After a lost connection: did the transaction commit? Look for its ids."""
        while not self._connect():
            if self._stop.is_set() and time.monotonic() > t_begin + 120:
                self.errors.append(f"cannot reconnect to resolve transaction {ids}")
                return
            time.sleep(0.1)
        rows = self.conn.execute(
            "SELECT id::text, aggregate_id, (payload->>'seq')::bigint FROM outbox WHERE id = ANY(%s::uuid[])",
            (ids,)).fetchall()
        if rows and len(rows) != len(ids):
            self.errors.append(f"transaction {ids} committed partially: {rows}")
        if len(rows) == len(ids):
            self.unknown_committed += 1
            self._record(t_begin, {r[0]: (r[1], int(r[2])) for r in rows}, ids)

    def _record(self, t_begin: float, evs: dict, ids: list[str]):
        with self._lock:
            self.committed.update(evs)
            self.txns.append(Txn(t_begin, time.monotonic(), list(ids)))

    def one(self) -> bool:
        """Commits one transaction; returns whether it is known to have committed."""
        if self.conn is None and not self._connect():
            time.sleep(0.1)
            return False
        k = self.rnd.randint(self.min_events, self.max_events)
        aggs = sorted(self.rnd.choice(AGGS) for _ in range(k))  # sorted: no deadlocks between writers
        ids = [str(uuid.uuid4()) for _ in aggs]
        pad = os.urandom(self.pad_bytes // 2).hex() if self.pad_bytes else None
        t_begin = time.monotonic()
        evs = {}
        try:
            with self.conn.transaction():
                for i, a in zip(ids, aggs):
                    q = _EVENT_PAD_SQL if pad else _EVENT_SQL
                    seq = self.conn.execute(q, {"a": a, "id": i, "t": self.agg_type, "pad": pad}).fetchone()[0]
                    evs[i] = (a, int(seq))
        except psycopg.Error as e:
            # Connection lost (or the server is shutting down): the outcome is unknown.
            self.conn_errors.append(f"{type(e).__name__}: {str(e).strip()[:200]}")
            self.unknown += 1
            self._drop_conn()
            self._resolve(t_begin, ids, aggs)
            return False
        self._record(t_begin, evs, ids)
        return True

    def commit_events(self, n: int) -> None:
        """Synchronously commits transactions until at least n more events committed."""
        target = len(self.committed) + n
        while len(self.committed) < target:
            self.one()
            if self.errors:
                raise AssertionError(f"writer: {self.errors}")

    # --- background ----------------------------------------------------------------------

    def start(self) -> "Writer":
        def loop():
            try:
                while not self._stop.is_set():
                    self.one()
                    if self.pause:
                        time.sleep(self.pause)
            except Exception as e:  # noqa: BLE001 - reported by stop()
                self.errors.append(f"writer crashed: {type(e).__name__}: {e}")

        self._thread = threading.Thread(target=loop, name="writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(180)
            assert not self._thread.is_alive(), "writer thread did not stop"
        self._drop_conn()
        assert not self.errors, f"writer: {self.errors}"


# --------------------------------------------------------------------------- oracle slot


@dataclass
class OracleTxn:
    xid: int
    lsn: int  # start of the commit record (C.lsn)
    nextlsn: int  # end of the commit record (C.nextlsn)
    ids: list[str]


def oracle_create(db) -> str:
    slot = unique_name("oracle")
    db.create_slot(slot)
    return slot


def oracle_txns(db, slot: str) -> tuple[list[OracleTxn], dict[str, OracleTxn]]:
    """The outbox transactions decoded by the (peeked, never consumed) oracle slot:
    commit order list, and event id -> its transaction."""
    with db.stack.pg_connect(db.dbname) as c:
        rows = c.execute(
            "SELECT data FROM pg_logical_slot_peek_changes(%s, NULL, NULL, 'format-version', '2', "
            "'include-lsn', '1', 'include-xids', '1', 'add-tables', 'public.outbox', 'actions', 'insert')",
            (slot,)).fetchall()
    txns, by_id, cur = [], {}, []
    for (data,) in rows:
        r = json.loads(data)
        a = r["action"]
        if a == "B":
            cur = []
        elif a == "I":
            cur.append(next(col["value"] for col in r["columns"] if col["name"] == "id"))
        elif a == "C":
            if cur:
                t = OracleTxn(r["xid"], lsn_to_int(r["lsn"]), lsn_to_int(r["nextlsn"]), cur)
                txns.append(t)
                for i in cur:
                    by_id[i] = t
            cur = []
    return txns, by_id


# --------------------------------------------------------------------------- Kafka side


@dataclass
class Ev:
    partition: int
    offset: int
    key: str
    id: str
    seq: int


def _consumer(bootstrap: str):
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique_name("faults"),
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
        "socket.connection.setup.timeout.ms": 1000,
        "reconnect.backoff.max.ms": 200,
    })


class Watermarks:
    """High watermarks of one topic's partitions (a record acknowledged with acks=all
    on this one-broker cluster is below its partition's high watermark)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.bootstrap = bootstrap
        self.c = _consumer(bootstrap)
        self.topic = topic
        self.partitions = partitions

    def high(self, timeout: float = 5.0) -> dict[int, int] | None:
        from confluent_kafka import KafkaException, TopicPartition

        out = {}
        try:
            for p in range(self.partitions):
                out[p] = self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout,
                                                      cached=False)[1]
        except KafkaException:
            # After a broker restart this client may keep answering "Unknown partition"
            # from stale metadata: start afresh for the next call.
            try:
                self.c.close()
            except Exception:
                pass
            self.c = _consumer(self.bootstrap)
            return None
        return out

    def total(self, timeout: float = 5.0) -> int | None:
        h = self.high(timeout)
        return None if h is None else sum(h.values())

    def close(self):
        self.c.close()


def read_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 120) -> list[Ev]:
    """All records of topic up to the current high watermarks, in partition offset order."""
    from confluent_kafka import TopicPartition

    c = _consumer(bootstrap)
    try:
        ends = {}
        for p in range(partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)
            if hi > lo:
                ends[p] = hi
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        out: list[Ev] = []
        pos = {p: -1 for p in ends}
        deadline = time.monotonic() + timeout
        while any(pos[p] + 1 < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"reading {topic}: timed out at {pos} of {ends}"
            for m in c.consume(5000, 1.0):
                if m.error():
                    continue
                p = m.partition()
                if m.offset() <= pos[p] or m.offset() >= ends[p]:
                    continue
                pos[p] = m.offset()
                hid = dict(m.headers() or []).get("id")
                v = json.loads(m.value())
                out.append(Ev(p, m.offset(), m.key().decode(), hid.decode() if hid else None, int(v["seq"])))
        out.sort(key=lambda e: (e.partition, e.offset))
        return out
    finally:
        c.close()



def measure(records: list[Ev], committed: dict[str, tuple[str, int]]) -> dict:
    """The outcome of a run, counted without asserting anything: committed events,
    delivered (committed events found in Kafka), lost (committed, not in Kafka),
    duplicated (records beyond the first of an event), reordered (events whose first
    arrival came after that of a later event of the same key), phantom (events in Kafka
    that never committed)."""
    first: dict[str, Ev] = {}
    top: dict[str, int] = {}
    dups = reordered = 0
    for e in records:  # partition, offset order
        if e.id in first:
            dups += 1
            continue
        first[e.id] = e
        if e.seq < top.get(e.key, 0):
            reordered += 1
        top[e.key] = max(top.get(e.key, 0), e.seq)
    delivered = sum(1 for i in committed if i in first)
    return {"committed": len(committed), "delivered": delivered, "lost": len(committed) - delivered,
            "duplicated": dups, "reordered": reordered,
            "phantom": sum(1 for i in first if i not in committed)}


def verify(records: list[Ev], committed: dict[str, tuple[str, int]]) -> dict:
    """Checks at-least-once, only-committed and per-key first-arrival order; returns stats."""
    first: dict[str, Ev] = {}
    seqs = defaultdict(list)
    parts = defaultdict(set)
    dups = 0
    bad = []
    for e in records:  # partition, offset order
        parts[e.key].add(e.partition)
        if e.id in first:
            dups += 1
            continue
        first[e.id] = e
        seqs[e.key].append(e.seq)
        want = committed.get(e.id)
        if want is not None and want != (e.key, e.seq):
            bad.append((e.id, want, (e.key, e.seq)))
    assert not bad, f"records whose key/seq differ from the committed row: {bad[:5]}"
    missing = [i for i in committed if i not in first]
    assert not missing, (
        f"{len(missing)} of {len(committed)} committed events never reached Kafka, e.g. "
        f"{[(i, committed[i]) for i in missing[:10]]}")
    extra = [i for i in first if i not in committed]
    assert not extra, f"{len(extra)} events in Kafka that never committed, e.g. {extra[:5]}"
    split = {k: sorted(v) for k, v in parts.items() if len(v) > 1}
    assert not split, f"keys spread over several partitions: {split}"
    per_key = defaultdict(int)
    for a, _ in committed.values():
        per_key[a] += 1
    for k, got in seqs.items():
        want = list(range(1, per_key[k] + 1))
        if got != want:
            i = next((j for j, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
            raise AssertionError(
                f"key {k}: sequence numbers in order of first arrival are not 1..{per_key[k]}: first "
                f"difference at position {i}: got {got[max(0, i - 3):i + 4]}, want {want[max(0, i - 3):i + 4]}")
    return {"records": len(records), "events": len(first), "duplicates": dups}


# --------------------------------------------------------------------------- misc


def slot_of(outboxd_proc) -> str:
    return outboxd_proc.config["postgres.slot"]


def confirmed(db, slot: str) -> int:
    i = db.slot_info(slot)
    return lsn_to_int(i["confirmed_flush_lsn"]) if i and i["confirmed_flush_lsn"] else 0


def wait_confirmed(db, slot: str, lsn: int, timeout: float = 90) -> None:
    db.wait_slot_confirmed(slot, int_to_lsn(lsn), timeout)


def current_lsn(db) -> int:
    with db.stack.pg_connect(db.dbname) as c:
        return lsn_to_int(c.execute("SELECT pg_current_wal_lsn()").fetchone()[0])


def topic_for(topic_prefix: str, agg_type: str = AGG_TYPE) -> str:
    return f"{topic_prefix}.{agg_type}"


STREAMING = r'(streaming|resumed streaming) slot "'


def wait_caught_up(db, slot: str, lsn: int, timeout: float, proc=None) -> float | None:
    """Seconds until the slot's confirmed_flush_lsn reaches lsn (polled every 0.1 s on a
    connection of its own, reopened when PostgreSQL went away); None if it did not within
    timeout or if proc (a daemon) exited first."""
    t0 = time.monotonic()
    conn = None
    try:
        while time.monotonic() - t0 < timeout:
            try:
                if conn is None:
                    conn = db.stack.pg_connect(db.dbname, connect_timeout=3)
                r = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                                 (slot,)).fetchone()
                if r and r[0] and lsn_to_int(r[0]) >= lsn:
                    return time.monotonic() - t0
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
            if proc is not None and not proc.is_running():
                return None
            time.sleep(0.1)
        return None
    finally:
        if conn is not None:
            conn.close()


def settle_and_record(fault: str, *, db, kafka_bootstrap: str, topic: str, proc, writers: list, link: str,
                      what: str, recover_s: float | None, notes: str = "", seed: int | None = None,
                      committed: dict | None = None, partitions: int = 3) -> dict:
    """The end of an outboxd fault test: stops the writers, waits until the slot confirmed
    everything, reads the topic back, records the outcome (before asserting anything) and
    then verifies it (at least once, only committed, per-key order). committed: the events
    to expect (default: what the writers committed)."""
    from .faultreport import record

    for w in writers:
        w.stop()
    if committed is None:
        committed = {}
        for w in writers:
            committed.update(w.committed)
    slot = proc.config["postgres.slot"]
    caught_up = wait_caught_up(db, slot, current_lsn(db), 120, proc)
    recs = read_topic(kafka_bootstrap, topic, partitions)
    m = measure(recs, committed)
    if caught_up is None:
        notes += "; the slot did not catch up within 120 s after the writers stopped"
    record(fault, daemon="outboxd", link=link, what=what, recover_s=recover_s, notes=notes.lstrip("; "),
           seed=seed, **{k: m[k] for k in ("committed", "delivered", "lost", "duplicated", "reordered")})
    verify(recs, committed)
    assert recover_s is not None, f"{fault}: did not recover in time:\n{proc.log_tail()}"
    assert caught_up is not None, f"{fault}: slot not caught up:\n{proc.log_tail()}"
    return m
