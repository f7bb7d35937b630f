"""outboxd end to end: committed outbox rows and outbox messages reach Kafka with the right
topic, key, value, headers and partition, in per-key commit order; rolled-back ones never do;
the slot is confirmed after the acks (also when the outbox is idle); SIGTERM stops cleanly.

Needs the local stack (scripts/stack.sh start) and a built outboxd (docs/testing.md).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import defaultdict

import psycopg
import pytest
from psycopg import sql

from harness import lsn_to_int, unique_name, wait_until

# Every test runs with both output plugins (conftest.py: pytest_generate_tests).
PLUGINS = ("wal2json", "pgoutput")

STREAMING = r"streaming slot"


# --------------------------------------------------------------------------- helpers


def slot_of(db) -> str:
    """The slot name the outboxd fixture configures by default."""
    return f"{db.dbname}_slot"


def start_streaming(outboxd, config=None, **kw):
    """Starts outboxd and waits until it streams the slot."""
    p = outboxd(config, **kw)
    p.wait_for_log(STREAMING, timeout=60)
    return p


def committed_rows(db, table: str = "public.outbox", cols=None) -> dict[str, dict]:
    """id -> the row's values as PostgreSQL renders them as text (payload::text etc.)."""
    cols = cols or {"id": "id", "aggregate_type": "aggregate_type", "aggregate_id": "aggregate_id",
                    "event_type": "event_type", "payload": "payload", "headers": "headers"}
    q = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(
            sql.SQL("{}::text AS {}").format(sql.Identifier(c), sql.Identifier(k)) if c else
            sql.SQL("NULL::text AS {}").format(sql.Identifier(k))
            for k, c in cols.items()),
        sql.SQL(table))
    cur = db.conn.execute(q)
    names = [d.name for d in cur.description]
    return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}


def header_text(v) -> bytes | None:
    """How outboxd renders one member of the headers jsonb as a Kafka header value
    (src/outboxd/router.c): a JSON string as its content, JSON null as a null
    header, anything else as compact JSON (no spaces, members in the parsed order)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def expected_headers(row: dict) -> list[tuple[str, bytes | None]]:
    """[("id", ...), ("event_type", ...), then each member of the headers column]."""
    hs = [("id", row["id"].encode()), ("event_type", row["event_type"].encode())]
    if row.get("headers") is not None:
        hs += [(k, header_text(v)) for k, v in json.loads(row["headers"]).items()]  # jsonb's key order
    return hs


def consume_exactly(kafka, topics, n: int, timeout: float = 90, settle: float = 2.0):
    """Waits until at least n records are in topics, then reads everything again and
    keeps reading until nothing new arrived for `settle` s: returns all records (so
    extra records, e.g. rolled-back events, show up in the result)."""
    first = kafka.consume(topics, n=n, timeout=timeout)
    assert len(first) >= n, f"only {len(first)} of {n} records arrived in {timeout}s"
    return kafka.consume(topics, timeout=timeout, settle=settle)


def by_id(records) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for r in records:
        out[r.header("id").decode()].append(r)
    return out


COMMIT_TIME = "outboxd.commit_time_us"


def own_headers(rec) -> list:
    """The record's headers without outboxd's commit time header, which must be the last one
    and a time of the last hour (microseconds since the epoch)."""
    hs = list(rec.headers)
    assert hs and hs[-1][0] == COMMIT_TIME, (rec.header("id"), hs)
    age = time.time() - int(hs[-1][1]) / 1e6
    assert -60 < age < 3600, (rec.header("id"), hs[-1])
    return hs[:-1]


def assert_record_matches_row(rec, row: dict, topic: str):
    assert rec.topic == topic, (row["id"], rec.topic, topic)
    assert rec.key == row["aggregate_id"].encode(), (row["id"], rec.key)
    assert rec.value == row["payload"].encode(), (row["id"], rec.value[:200], row["payload"][:200])
    assert own_headers(rec) == expected_headers(row), (row["id"], rec.headers)


def assert_no_duplicates(records):
    dups = {i: len(rs) for i, rs in by_id(records).items() if len(rs) > 1}
    assert not dups, f"duplicated events in a clean run: {dups}"


# --------------------------------------------------------------------------- 1. mixed workload


@pytest.mark.timeout(600)
def test_mixed_workload_topics_keys_values_headers_partitions_order(outboxd, db, kafka, topic_prefix,
                                                                   java_partition):
    rnd = random.Random(4711)
    parts = {"order": 3, "customer": 5}
    for agg_type, n in parts.items():
        kafka.create_topic(f"{topic_prefix}.{agg_type}", partitions=n)
    db.execute("CREATE TABLE unrelated (id bigserial PRIMARY KEY, note text, payload jsonb)")
    aggregates = [("order", f"order-{i}") for i in range(13)] + \
                 [("customer", f"cust-{i}") for i in range(14)] + \
                 [("order", "ключ-1"), ("customer", "客户/7 😀"), ("order", "")]  # "": an empty, not a null, key
    assert len(aggregates) == 30

    p = start_streaming(outboxd)

    seq: dict[tuple[str, str], int] = defaultdict(int)
    rolled_back: list[str] = []
    n_committed = 0
    c1 = db.connect(autocommit=False)
    c2 = db.connect(autocommit=False)

    def plan_events():
        return [rnd.choice(aggregates) for _ in range(rnd.randint(1, 5))]

    def payload_for(agg, s, t):
        body = {"seq": s, "agg": agg[1], "txn": t,
                "amount": rnd.choice([1, 2.5, 0.1, -7, 1e-7, 12345678901234]),
                "tags": rnd.sample(["a", "b", "c", "dé", "z"], rnd.randint(0, 3)),
                "nested": {"zeta": None, "alpha": True, "mid": [1, {"x": "y"}]}}
        return body

    def headers_for():
        r = rnd.random()
        if r < 0.4:
            return None
        if r < 0.8:
            return {"trace": f"tr-{rnd.randrange(10**6)}", "n": 2, "nested": {"a": 1}}
        return {"trace": "t", "flag": True, "f": 1.5, "none": None, "arr": [1, "x"], "s": "ü \"q\""}

    def insert_all(conn, events, t, seqs):
        for agg, s in zip(events, seqs):
            db.insert_event(agg[0], agg[1], rnd.choice(["created", "updated", "deleted"]),
                            payload_for(agg, s, t), headers=headers_for(), conn=conn)

    def unrelated(conn, t):
        conn.execute("INSERT INTO unrelated (note, payload) VALUES (%s, %s)",
                     (f"txn {t}", json.dumps({"aggregate_type": "order", "t": t})))

    def next_seqs(events):
        out = []
        for agg in events:
            seq[agg] += 1
            out.append(seq[agg])
        return out

    t = 0
    while t < 150:
        t += 1
        kind = rnd.random()
        if kind < 0.1:  # only the unrelated table
            unrelated(c1, t)
            c1.commit()
        elif kind < 0.15:  # rolled back: its events must never appear
            events = plan_events()
            ids = [db.insert_event(a[0], a[1], "rolledback", {"seq": -1, "txn": t}, conn=c1) for a in events]
            unrelated(c1, t)
            c1.rollback()
            rolled_back += ids
        elif kind < 0.30:  # two interleaved transactions; the one that began later commits first
            t2 = t + 1
            t += 1
            ev1, ev2 = plan_events(), plan_events()
            seqs2 = next_seqs(ev2)  # commit order decides the per-aggregate order
            seqs1 = next_seqs(ev1)
            insert_all(c1, ev1, t, seqs1)
            insert_all(c2, ev2, t2, seqs2)
            if rnd.random() < 0.5:
                unrelated(c2, t2)
            c2.commit()
            c1.commit()
            n_committed += len(ev1) + len(ev2)
        else:
            events = plan_events()
            insert_all(c1, events, t, next_seqs(events))
            if rnd.random() < 0.4:
                unrelated(c1, t)
            c1.commit()
            n_committed += len(events)
    end_lsn = db.current_wal_lsn()

    rows = committed_rows(db)
    assert len(rows) == n_committed
    assert rolled_back and not set(rolled_back) & set(rows)
    topics = [f"{topic_prefix}.{a}" for a in parts]
    records = consume_exactly(kafka, topics, n_committed)

    got = by_id(records)
    assert not set(rolled_back) & set(got), "events of a rolled-back transaction were published"
    assert set(got) == set(rows), (f"missing: {sorted(set(rows) - set(got))[:10]}, "
                                   f"unexpected: {sorted(set(got) - set(rows))[:10]}")
    assert_no_duplicates(records)
    for i, row in rows.items():
        assert_record_matches_row(got[i][0], row, f"{topic_prefix}.{row['aggregate_type']}")
    # Headers of both shapes were really exercised.
    assert any(len(own_headers(r)) == 2 for r in records) and any(r.header("nested") == b'{"a":1}' for r in records)
    assert any(r.header("none") is None and any(k == "none" for k, _ in r.headers) for r in records)

    # Partition: the one Java's default partitioner picks for the key.
    want = java_partition.many([(r.key, parts[r.topic.rsplit(".", 1)[1]]) for r in records])
    wrong = [(r.key, r.topic, r.partition, w) for r, w in zip(records, want) if r.partition != w]
    assert not wrong, f"{len(wrong)} records in another partition than Java's, e.g. {wrong[:5]}"

    # Per aggregate: one partition, offsets in commit order (the payload's seq).
    per_key: dict[tuple[str, bytes], list] = defaultdict(list)
    for r in records:
        per_key[(r.topic, r.key)].append(r)
    assert len(per_key) == len(seq)
    for (topic, key), rs in per_key.items():
        assert len({r.partition for r in rs}) == 1, (topic, key)
        rs.sort(key=lambda r: r.offset)
        seqs = [json.loads(r.value)["seq"] for r in rs]
        agg = (topic.rsplit(".", 1)[1], key.decode())
        assert seqs == list(range(1, seq[agg] + 1)), f"{topic} key {key!r}: order {seqs}"

    db.wait_slot_confirmed(slot_of(db), end_lsn, timeout=10)
    assert p.is_running()


# --------------------------------------------------------------------------- 2. rollbacks


def test_rolled_back_transactions_and_savepoints_are_not_published(outboxd, db, kafka, topic_prefix):
    start_streaming(outboxd)
    topic = f"{topic_prefix}.agg"
    published, never = [], []
    c = db.connect(autocommit=False)

    # committed
    published.append(db.insert_event("agg", "k1", "committed", {"n": 1}, conn=c))
    c.commit()
    # rolled back (many events, a big one too)
    for i in range(50):
        never.append(db.insert_event("agg", f"k{i % 3}", "rolledback", {"n": i, "pad": "x" * 1000}, conn=c))
    c.rollback()
    # savepoint rolled back inside a committed transaction
    published.append(db.insert_event("agg", "k1", "outer-before", {"n": 2}, conn=c))
    c.execute("SAVEPOINT s1")
    never.append(db.insert_event("agg", "k1", "inner-rolledback", {"n": 3}, conn=c))
    c.execute("SAVEPOINT s2")
    never.append(db.insert_event("agg", "k2", "inner-inner-rolledback", {"n": 4}, conn=c))
    c.execute("ROLLBACK TO SAVEPOINT s1")
    published.append(db.insert_event("agg", "k1", "outer-after", {"n": 5}, conn=c))
    c.execute("SAVEPOINT s3")
    published.append(db.insert_event("agg", "k2", "inner-released", {"n": 6}, conn=c))
    c.execute("RELEASE SAVEPOINT s3")
    c.commit()
    # a committed subtransaction inside a transaction that rolls back
    never.append(db.insert_event("agg", "k3", "outer-rolledback", {"n": 7}, conn=c))
    c.execute("SAVEPOINT s4")
    never.append(db.insert_event("agg", "k3", "released-then-rolledback", {"n": 8}, conn=c))
    c.execute("RELEASE SAVEPOINT s4")
    c.rollback()
    # inserted and deleted in one committed transaction: the WAL still carries the insert
    # (sql/outbox.sql: "rows deleted in the same transaction" are published)
    deleted = db.insert_event("agg", "k4", "insert-then-delete", {"n": 9}, conn=c)
    c.execute("DELETE FROM outbox WHERE id = %s", (deleted,))
    c.commit()
    published.append(deleted)
    # sentinel: once it is confirmed, everything before it was decoded
    published.append(db.insert_event("agg", "k1", "sentinel", {"n": 10}))
    end_lsn = db.current_wal_lsn()

    db.wait_slot_confirmed(slot_of(db), end_lsn, timeout=30)
    records = consume_exactly(kafka, topic, len(published))
    got = [r.header("id").decode() for r in records]
    assert sorted(got) == sorted(published), {
        "missing": [i for i in published if i not in got],
        "unexpected (rolled back)": [i for i in got if i in never]}
    k1 = [r.header("event_type") for r in sorted(records, key=lambda r: r.offset) if r.key == b"k1"]
    assert k1 == [b"committed", b"outer-before", b"outer-after", b"sentinel"]


# --------------------------------------------------------------------------- 3. payload text


def test_unicode_escapes_and_large_payloads_are_published_byte_exact(outboxd, db, kafka, topic_prefix):
    start_streaming(outboxd)
    rnd = random.Random(1)
    big = {"blob": "".join(rnd.choice("abcdefghij\"\\\n\u00e9\u6f22\U0001F600") for _ in range(400_000)),
           "list": list(range(5000))}
    payloads = [
        {"q": "double \" quote", "b": "back\\slash", "nl": "line1\nline2\r\n", "tab": "\t",
         "ctl": "\u0001\u001f", "emoji": "😀🎉", "cjk": "漢字かなカナ", "rtl": "עברית", "nul_escape": "a\\u0000b"},
        '{"escaped": "\\u00e9\\u6f22\\ud83d\\ude00", "slash": "a\\/b"}',  # PostgreSQL normalises
        '"just a string with \\"quotes\\""',
        "[1, 2.50, 1e3, -0, 0.1, 123456789012345678901234567890]",
        "null",
        "true",
        '{"b": 1, "a": 2, "aa": {"z": [], "y": {}}}',  # jsonb reorders keys
        big,
    ]
    ids = [db.insert_event("txt", "k-é😀", "ünïcode-type", pl,
                           headers={"h": "välue \"x\" \\ 😀", "j": {"k": "ü"}}) for pl in payloads]
    rows = committed_rows(db)
    assert len(rows[ids[-1]]["payload"].encode()) > 500_000
    db.wait_slot_confirmed(slot_of(db), db.current_wal_lsn(), timeout=30)
    records = consume_exactly(kafka, f"{topic_prefix}.txt", len(ids))
    got = by_id(records)
    assert set(got) == set(ids)
    assert_no_duplicates(records)
    for i in ids:
        assert_record_matches_row(got[i][0], rows[i], f"{topic_prefix}.txt")
    assert got[ids[-1]][0].value == rows[ids[-1]]["payload"].encode()
    assert got[ids[0]][0].header("j") == '{"k":"ü"}'.encode()


# --------------------------------------------------------------------------- 4. slot confirmation


def test_slot_is_confirmed_after_acks_and_restart_does_not_resend(outboxd, db, kafka, topic_prefix):
    slot = slot_of(db)
    p = start_streaming(outboxd)
    start_confirmed = lsn_to_int(db.slot_info(slot)["confirmed_flush_lsn"])
    ids = [db.insert_event("acks", f"k{i % 4}", "e", {"i": i}) for i in range(20)]
    end_lsn = db.current_wal_lsn()
    assert lsn_to_int(end_lsn) > start_confirmed

    records = consume_exactly(kafka, f"{topic_prefix}.acks", len(ids))
    assert sorted(r.header("id").decode() for r in records) == sorted(ids)
    t0 = time.monotonic()
    info = db.wait_slot_confirmed(slot, end_lsn, timeout=5)  # status.interval.ms = 1000
    took = time.monotonic() - t0
    assert lsn_to_int(info["confirmed_flush_lsn"]) <= lsn_to_int(db.current_wal_lsn())
    print(f"slot confirmed past the last commit {took:.2f}s after the events were consumed")

    # A clean restart resumes after the confirmed position: the last transaction (whose
    # commit end - wal2json's nextlsn - was confirmed) must not be sent again.
    assert p.terminate(timeout=10) == 0
    p.start()
    p.wait_for_log(STREAMING, timeout=60)
    more = db.insert_event("acks", "k0", "after-restart", {"i": 99})
    records = consume_exactly(kafka, f"{topic_prefix}.acks", len(ids) + 1)
    assert sorted(r.header("id").decode() for r in records) == sorted(ids + [more]), \
        "events confirmed before a clean restart were published again"


# --------------------------------------------------------------------------- 5. no WAL hoarding


@pytest.mark.timeout(600)
def test_idle_outbox_slot_advances_while_another_database_is_busy(outboxd, db, stack):
    slot = slot_of(db)
    start_streaming(outboxd)
    other = unique_name("busy")
    with stack.pg_connect() as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(other)))
    try:
        before = db.current_wal_lsn()
        with stack.pg_connect(other, autocommit=False) as c:
            c.execute("CREATE TABLE filler (id bigserial PRIMARY KEY, pad text)")
            c.commit()
            for _ in range(2000):  # 20k rows in 2000 transactions
                c.execute("INSERT INTO filler (pad) SELECT repeat('x', 200) FROM generate_series(1, 10)")
                c.commit()
        after = db.current_wal_lsn()
        assert lsn_to_int(after) - lsn_to_int(before) > 4_000_000  # > 4 MB of WAL
        t0 = time.monotonic()
        db.wait_slot_confirmed(slot, before, timeout=20)
        info = db.wait_slot_confirmed(slot, after, timeout=30)
        print(f"idle slot confirmed past the busy database's WAL in {time.monotonic() - t0:.2f}s; "
              f"lag now {info['lag_bytes']} bytes")
    finally:
        with stack.pg_connect() as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other)))


def test_idle_outbox_slot_advances_while_other_tables_of_its_database_are_busy(outboxd, db):
    slot = slot_of(db)
    start_streaming(outboxd)
    db.execute("CREATE TABLE busy (id bigserial PRIMARY KEY, pad text)")
    before = db.current_wal_lsn()
    c = db.connect(autocommit=False)
    for _ in range(1000):
        c.execute("INSERT INTO busy (pad) SELECT repeat('y', 200) FROM generate_series(1, 10)")
        c.commit()
    after = db.current_wal_lsn()
    assert lsn_to_int(after) > lsn_to_int(before)
    db.wait_slot_confirmed(slot, after, timeout=20)


def test_slot_reaches_wal_end_when_the_last_acks_come_after_the_keepalive(outboxd, db, kafka, stack,
                                                                            topic_prefix):
    """The keepalive that carries the server's WAL end can arrive while the last events are
    still waiting for Kafka, and the server sends no other until new WAL is written. The
    slot must still reach that end once the acks come, not stay at the last commit."""
    slot = slot_of(db)
    # Acks come 1.5 s after each send; status replies every 200 ms make the walsender send
    # its keepalive for the other database's commit inside that window.
    p = outboxd({"kafka.linger.ms": "1500", "status.interval.ms": "200"})
    p.wait_for_log(STREAMING, timeout=30)
    db.insert_event("order", "k", "e", {"i": 1})
    with stack.pg_connect() as c:  # a commit record the slot's database does not decode
        c.execute("SELECT txid_current()")
        # The insert position: pg_current_wal_lsn() may still be before that commit record.
        target = c.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
    kafka.consume(f"{topic_prefix}.order", n=1, timeout=30)
    # Well under the 15 s after which PostgreSQL may log a standby snapshot, whose WAL
    # would bring a new keepalive and hide the bug.
    db.wait_slot_confirmed(slot, target, timeout=5)


# --------------------------------------------------------------------------- 6. SIGTERM


class Writer(threading.Thread):
    """Inserts outbox events (one per transaction, keys k0..k7, per-key seq) until stopped."""

    def __init__(self, db, agg_type: str):
        super().__init__(daemon=True)
        self.conn = psycopg.connect(db.conninfo, autocommit=True)
        self.db = db
        self.agg_type = agg_type
        self.stop_flag = threading.Event()
        self.count = 0
        self.seq: dict[str, int] = defaultdict(int)
        self.events: list[tuple[str, int]] = []  # (id, WAL position after its commit)
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop_flag.is_set():
                k = f"k{self.count % 8}"
                self.seq[k] += 1
                i = self.db.insert_event(self.agg_type, k, "tick", {"seq": self.seq[k]}, conn=self.conn)
                after = self.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
                self.events.append((i, lsn_to_int(after)))
                self.count += 1
                time.sleep(0.002)
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.conn.close()

    def stop(self):
        self.stop_flag.set()
        self.join(30)
        assert not self.is_alive()
        if self.error:
            raise self.error


def test_sigterm_with_events_flowing_exits_0_and_restart_loses_nothing(outboxd, db, kafka, topic_prefix):
    topic = f"{topic_prefix}.flow"
    p = start_streaming(outboxd)
    w = Writer(db, "flow")
    w.start()
    try:
        wait_until(lambda: w.count >= 300, 30, what="300 events written")
        wait_until(lambda: len(kafka.consume(topic, n=100, timeout=10)) >= 100, 30,
                   what="events flowing to Kafka")
        t0 = time.monotonic()
        rc = p.terminate(timeout=15)
        took = time.monotonic() - t0
        at_stop = w.count
        assert rc == 0, p.log_tail()
        assert took < 5, f"SIGTERM took {took:.1f}s"
        m = re.search(r"stopped; slot \"[^\"]+\" confirmed at ([0-9A-F]+/[0-9A-F]+)", p.log_text())
        assert m, p.log_tail()
        # Everything the slot was confirmed past is in Kafka already (no loss at the stop).
        confirmed = db.slot_info(slot_of(db))["confirmed_flush_lsn"]
        assert lsn_to_int(confirmed) == lsn_to_int(m.group(1))
        must = {i for i, after in list(w.events) if after <= lsn_to_int(confirmed)}
        assert len(must) >= 100, f"the final status update confirmed only {len(must)} events"
        before_restart = {r.header("id").decode() for r in kafka.consume(topic, timeout=30, settle=2)}
        assert must <= before_restart, f"{len(must - before_restart)} events confirmed but not in Kafka"
        wait_until(lambda: w.count >= at_stop + 200, 30, what="events committed while outboxd is down")
    finally:
        w.stop()
    end_lsn = db.current_wal_lsn()
    rows = committed_rows(db)
    assert len(rows) == w.count

    p.start()
    p.wait_for_log(STREAMING, timeout=60)
    db.wait_slot_confirmed(slot_of(db), end_lsn, timeout=60)
    records = consume_exactly(kafka, topic, len(rows), timeout=120)
    got = by_id(records)
    assert set(got) == set(rows), f"lost: {len(set(rows) - set(got))}, e.g. {sorted(set(rows) - set(got))[:5]}"
    dups = sum(len(v) - 1 for v in got.values())
    print(f"{len(rows)} events, {dups} duplicates after SIGTERM + restart; SIGTERM took {took:.2f}s")
    # Per key: first occurrences in commit order, nothing skipped (duplicates from a
    # replay after restart are allowed: at-least-once).
    per_key = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        per_key[r.key].append(json.loads(r.value)["seq"])
    for k, seqs in per_key.items():
        firsts = list(dict.fromkeys(seqs))
        assert firsts == list(range(1, w.seq[k.decode()] + 1)), (k, seqs)
    assert p.is_running()


# --------------------------------------------------------------------------- 7. logical messages


def test_logical_message_outbox_events(outboxd, db, kafka, topic_prefix):
    start_streaming(outboxd)
    c = db.connect(autocommit=False)
    m1 = '{"id":"m-1","aggregate_type":"order","aggregate_id":"a1","event_type":"created","payload":{"x":1}}'
    db.emit_message(m1, conn=c)
    c.commit()
    # rolled back: never published
    db.emit_message('{"id":"m-2","aggregate_type":"order","aggregate_id":"a1","event_type":"rb",'
                    '"payload":{"x":2}}', conn=c)
    c.rollback()
    # other prefixes are not outbox events (transactional or not)
    db.emit_message('{"id":"m-3","aggregate_type":"order","aggregate_id":"a1","event_type":"other",'
                    '"payload":{"x":3}}', prefix="not-outbox", conn=c)
    db.emit_message("not even json", prefix="outbox2", transactional=False, conn=c)
    # a message and a row in one transaction; headers, integer ids, string payload, member order
    db.emit_message(json.dumps({"id": 42, "aggregate_type": "order", "aggregate_id": 7, "event_type": "int-ids",
                                "payload": {"b": 1, "a": [1.5, "é"]},
                                "headers": {"trace": "tr-1", "n": 2, "nested": {"a": 1}, "nul": None}}), conn=c)
    row_id = db.insert_event("order", "a1", "row", {"x": 4}, conn=c)
    db.emit_message(json.dumps({"id": "m-5", "aggregate_type": "order", "aggregate_id": "a1",
                                "event_type": "text", "payload": "plain \"text\" 😀"}, ensure_ascii=False), conn=c)
    c.commit()
    end_lsn = db.current_wal_lsn()
    db.wait_slot_confirmed(slot_of(db), end_lsn, timeout=30)

    records = consume_exactly(kafka, [f"{topic_prefix}.order"], 4)
    got = by_id(records)
    assert sorted(got) == sorted(["m-1", "42", row_id, "m-5"]), sorted(got)
    r1 = got["m-1"][0]
    assert (r1.topic, r1.key, r1.value) == (f"{topic_prefix}.order", b"a1", b'{"x":1}')
    assert own_headers(r1) == [("id", b"m-1"), ("event_type", b"created")]
    r42 = got["42"][0]
    assert (r42.key, r42.value) == (b"7", '{"b":1,"a":[1.5,"é"]}'.encode())
    assert own_headers(r42) == [("id", b"42"), ("event_type", b"int-ids"), ("trace", b"tr-1"), ("n", b"2"),
                           ("nested", b'{"a":1}'), ("nul", None)]
    r5 = got["m-5"][0]
    assert r5.value == 'plain "text" 😀'.encode()
    # commit order inside the transaction is kept for the key
    a1 = [r.header("id").decode() for r in sorted(records, key=lambda r: r.offset) if r.key == b"a1"]
    assert a1 == ["m-1", row_id, "m-5"]


# --------------------------------------------------------------------------- 8. column mapping


def test_custom_column_mapping_and_topic_template(outboxd, db, kafka, topic_prefix):
    db.execute("CREATE SCHEMA app")
    db.execute("""CREATE TABLE app.outboxevent (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        aggregatetype varchar(255) NOT NULL,
        aggregateid varchar(255) NOT NULL,
        type varchar(255) NOT NULL,
        payload jsonb,
        created_at timestamptz DEFAULT now())""")
    p = start_streaming(outboxd, {
        "outbox.table": "app.outboxevent",
        "outbox.column.id": "id",
        "outbox.column.aggregate_type": "aggregatetype",
        "outbox.column.aggregate_id": "aggregateid",
        "outbox.column.event_type": "type",
        "outbox.column.payload": "payload",
        "outbox.header.event_type": "eventType",
        "outbox.topic": f"{topic_prefix}.${{aggregate_type}}.${{event_type}}",
    })
    assert 'has no "headers" column' in p.log_text()
    c = db.connect(autocommit=False)
    ids = []
    for agg, key, typ, pl in [("Order", "o-1", "OrderCreated", {"total": 10}),
                              ("Order", "o-1", "OrderShipped", {"carrier": "ups"}),
                              ("Customer", "c-1", "CustomerCreated", {"name": "Zoë"}),
                              ("Order", "o-2", "OrderCreated", {"total": 3.25})]:
        ids.append(str(c.execute(
            "INSERT INTO app.outboxevent (aggregatetype, aggregateid, type, payload) VALUES (%s, %s, %s, %s) "
            "RETURNING id", (agg, key, typ, json.dumps(pl))).fetchone()[0]))
        c.commit()
    # the default outbox table is not configured here
    db.insert_event("Order", "o-1", "OrderCreated", {"from": "public.outbox"})
    rows = committed_rows(db, "app.outboxevent", {"id": "id", "aggregate_type": "aggregatetype",
                                                   "aggregate_id": "aggregateid", "event_type": "type",
                                                   "payload": "payload", "headers": None})
    topics = [f"{topic_prefix}.Order.OrderCreated", f"{topic_prefix}.Order.OrderShipped",
              f"{topic_prefix}.Customer.CustomerCreated"]
    db.wait_slot_confirmed(slot_of(db), db.current_wal_lsn(), timeout=30)
    records = consume_exactly(kafka, topics, len(ids))
    got = by_id(records)
    assert sorted(got) == sorted(ids)
    for i in ids:
        row = rows[i]
        rec = got[i][0]
        assert rec.topic == f"{topic_prefix}.{row['aggregate_type']}.{row['event_type']}"
        assert rec.key == row["aggregate_id"].encode()
        assert rec.value == row["payload"].encode()
        assert own_headers(rec) == [("id", i.encode()), ("eventType", row["event_type"].encode())]


# --------------------------------------------------------------------------- 9. several tables


def test_several_outbox_tables(outboxd, db, kafka, topic_prefix):
    db.execute("CREATE SCHEMA app")
    db.execute("CREATE TABLE app.outbox2 (LIKE public.outbox INCLUDING ALL)")
    db.execute("CREATE TABLE public.outbox3 (LIKE public.outbox INCLUDING ALL)")  # not listed
    start_streaming(outboxd, {"outbox.table": "public.outbox, app.outbox2"})
    c = db.connect(autocommit=False)
    a = db.insert_event("multi", "k1", "from-outbox", {"t": 1}, conn=c)
    b = db.insert_event("multi", "k1", "from-outbox2", {"t": 2}, headers={"h": "2"}, conn=c, table="app.outbox2")
    x = db.insert_event("multi", "k1", "from-outbox3", {"t": 3}, conn=c, table="public.outbox3")
    c.commit()
    b2 = db.insert_event("multi", "k2", "from-outbox2", {"t": 4}, table="app.outbox2")
    x2 = db.insert_event("multi", "k2", "from-outbox3", {"t": 5}, table="public.outbox3")
    db.wait_slot_confirmed(slot_of(db), db.current_wal_lsn(), timeout=30)
    records = consume_exactly(kafka, f"{topic_prefix}.multi", 3)
    got = by_id(records)
    assert sorted(got) == sorted([a, b, b2]), f"unlisted table published: {set(got) & {x, x2}}"
    rows = {**committed_rows(db), **committed_rows(db, "app.outbox2")}
    for i in (a, b, b2):
        assert_record_matches_row(got[i][0], rows[i], f"{topic_prefix}.multi")
    k1 = [r.header("id").decode() for r in sorted(records, key=lambda r: r.offset) if r.key == b"k1"]
    assert k1 == [a, b]


def test_outbox_tables_with_quoted_names(outboxd, db, kafka, topic_prefix):
    """Names needing quotes (space, dot, upper case, comma) are matched exactly,
    not as wal2json add-tables wildcards or separators."""
    db.execute('CREATE SCHEMA "My Schema"')
    db.execute('CREATE TABLE "My Schema"."Out.Box, v2" (LIKE public.outbox INCLUDING ALL)')
    db.execute('CREATE TABLE "My Schema"."OutXBox, v2" (LIKE public.outbox INCLUDING ALL)')  # '.' not a wildcard
    db.execute('CREATE TABLE "My Schema".outbox (LIKE public.outbox INCLUDING ALL)')
    # A config value starting with '"' is a quoted string (src/config.c): quote it whole.
    start_streaming(outboxd, {"outbox.table": r'"\"My Schema\".\"Out.Box, v2\""'})
    a = db.insert_event("q", "k", "quoted", {"t": 1}, table='"My Schema"."Out.Box, v2"')
    db.insert_event("q", "k", "similar", {"t": 2}, table='"My Schema"."OutXBox, v2"')
    db.insert_event("q", "k", "lower", {"t": 3}, table='"My Schema".outbox')
    db.insert_event("q", "k", "default", {"t": 4})
    db.wait_slot_confirmed(slot_of(db), db.current_wal_lsn(), timeout=30)
    records = consume_exactly(kafka, f"{topic_prefix}.q", 1)
    assert [r.header("id").decode() for r in records] == [a]


# --------------------------------------------------------------------------- only inserts


def test_updates_deletes_and_truncates_of_the_outbox_are_not_published(outboxd, db, kafka, topic_prefix):
    start_streaming(outboxd)
    a = db.insert_event("ins", "k", "created", {"v": 1})
    db.execute("UPDATE outbox SET payload = '{\"v\": 2}', event_type = 'updated' WHERE id = %s", (a,))
    db.execute("DELETE FROM outbox WHERE id = %s", (a,))
    b = db.insert_event("ins", "k", "created", {"v": 3})
    db.execute("TRUNCATE outbox")
    c = db.insert_event("ins", "k", "created", {"v": 4})
    db.wait_slot_confirmed(slot_of(db), db.current_wal_lsn(), timeout=30)
    records = consume_exactly(kafka, f"{topic_prefix}.ins", 3)
    assert [(r.header("id").decode(), r.value) for r in sorted(records, key=lambda r: r.offset)] == [
        (a, b'{"v": 1}'), (b, b'{"v": 3}'), (c, b'{"v": 4}')]


# --------------------------------------------------------------------------- partitioned outbox

PARTITIONED_OUTBOX = """
DROP TABLE outbox;
CREATE TABLE outbox (
    id uuid NOT NULL DEFAULT gen_random_uuid(), aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    event_type text NOT NULL, payload jsonb NOT NULL, headers jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
CREATE TABLE outbox_2026_01 PARTITION OF outbox FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
"""


def _insert_at(conn, day: str, n: int) -> str:
    return str(conn.execute(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, created_at) "
        "VALUES ('part', %s, 'P', jsonb_build_object('n', %s::int), %s) RETURNING id", (f"k{n % 7}", n, day)
    ).fetchone()[0])


@pytest.mark.timeout(240)
def test_partitioned_outbox_with_partitions_created_while_running(outboxd, db, kafka, topic_prefix, plugin):
    """A partitioned outbox named by its parent is published with both plugins, also rows of
    partitions created while outboxd runs - in the transaction that creates the partition, or
    right after it - while a writer keeps inserting into an older partition; a dropped
    partition goes unnoticed; outbox.cleanup = delete deletes through the parent. wal2json
    reads the partitions (outboxd restarts its stream from the confirmed position when one
    appears); pgoutput publishes through the root (publish_via_partition_root)."""
    db.execute(PARTITIONED_OUTBOX)
    p = start_streaming(outboxd, {"outbox.cleanup": "delete", "status.interval.ms": 200})
    ids: list[str] = []
    stop = threading.Event()

    def writer():
        with psycopg.connect(db.conninfo, autocommit=True) as c:
            n = 0
            while not stop.is_set():
                ids.append(_insert_at(c, "2026-01-15", n))
                n += 1
                time.sleep(0.002)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        late = []
        with psycopg.connect(db.conninfo) as c:  # one transaction: the partition and a row in it
            c.execute("CREATE TABLE outbox_2026_02 PARTITION OF outbox FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')")
            late.append(_insert_at(c, "2026-02-10", 1000))
            c.commit()
        with psycopg.connect(db.conninfo, autocommit=True) as c:
            late += [_insert_at(c, "2026-02-11", 1001 + i) for i in range(20)]
            time.sleep(0.5)
            c.execute("CREATE TABLE outbox_2026_03 PARTITION OF outbox FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')")
            late += [_insert_at(c, "2026-03-01", 2000 + i) for i in range(20)]
            time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    want = set(ids) | set(late)
    got: set[str] = set()

    def all_there():  # restarts of the stream send some events twice: count distinct ids
        got.update(r.header("id").decode() for r in kafka.consume(f"{topic_prefix}.part", timeout=5, settle=1))
        return want <= got

    if not all_there():
        wait_until(all_there, 60, 1, f"all {len(want)} events in Kafka")
    if plugin == "wal2json":
        assert "partitions of an outbox table changed" in p.log_text(), p.log_tail()
    wait_until(lambda: db.scalar("SELECT count(*) FROM outbox") == 0, 60, 0.2, "published rows deleted")
    db.execute("DROP TABLE outbox_2026_01")
    more = [_insert_at(db.conn, "2026-03-02", 3000)]
    got = {r.header("id").decode() for r in kafka.consume(f"{topic_prefix}.part", timeout=30, settle=2)}
    assert set(more) <= got
    assert p.is_running()


# --------------------------------------------------------------------------- known gaps (outboxd bugs)


def test_header_with_a_big_integer_is_published(outboxd, db, kafka, topic_prefix):
    p = start_streaming(outboxd)
    ev = db.insert_event("bigint", "k", "e", {"n": 1}, headers='{"big": 12345678901234567890}')
    db.wait_slot_confirmed(slot_of(db), db.current_wal_lsn(), timeout=5)  # fails fast if outboxd stopped
    assert p.is_running(), p.log_tail()
    records = kafka.consume(f"{topic_prefix}.bigint", n=1, timeout=10)
    assert [r.header("id").decode() for r in records] == [ev]
    assert records[0].header("big") == b"12345678901234567890"
