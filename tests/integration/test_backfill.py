"""outbox.backfill.where: migrating from a polling relay. When outboxd creates its slot it
first publishes the rows matching the predicate as of the slot's snapshot, then streams
from the slot's start: nothing committed around the switch is lost or published twice.
Against the real PostgreSQL and Kafka."""

from __future__ import annotations

import json
import threading
import time

import psycopg

# Every test runs with both output plugins (conftest.py: pytest_generate_tests).
PLUGINS = ("wal2json", "pgoutput")


def _add_processed_column(db):
    db.execute("ALTER TABLE outbox ADD COLUMN processed boolean NOT NULL DEFAULT false")


def _insert(db, n, processed=False, conn=None):
    """One committed row with a distinct created_at; returns its id."""
    c = conn or db.conn
    return str(c.execute(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, processed, created_at) "
        "VALUES ('order', %s, 'e', %s::jsonb, %s, clock_timestamp()) RETURNING id",
        (f"k{n % 7}", json.dumps({"n": n}), processed)).fetchone()[0])


def test_backfill_then_stream_with_writes_during_slot_creation(db, kafka, outboxd, topic_prefix):
    _add_processed_column(db)
    done_before = [_insert(db, n, processed=True) for n in range(5)]  # the old relay sent these
    pending_before = [_insert(db, n) for n in range(5, 300)]
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, partitions=3)

    committed, stop = [], threading.Event()

    def writer():
        with psycopg.connect(db.conninfo, autocommit=True) as c:
            n = 1000
            while not stop.is_set():
                committed.append(_insert(db, n, conn=c))
                n += 1
                time.sleep(0.002)

    t = threading.Thread(target=writer)
    t.start()
    try:
        p = outboxd({"outbox.backfill.where": "processed = false"})
        p.wait_for_log(r"backfill: published \d+ rows", timeout=60)
        p.wait_for_log("streaming slot", timeout=30)
        time.sleep(1.0)  # keep writing while streaming
    finally:
        stop.set()
        t.join()
    end = db.current_wal_lsn()
    db.wait_slot_confirmed(f"{db.dbname}_slot", end, timeout=60)

    want = set(pending_before) | set(committed)
    recs = kafka.consume(topic, n=None, timeout=60, settle=3)
    got = [r.header("id").decode() for r in recs]
    assert set(got) == want, (len(set(got)), len(want), len(want - set(got)))
    assert len(got) == len(set(got)), "a row was published twice"
    assert not set(done_before) & set(got), "rows the old relay had sent were published again"
    assert len(committed) > 0
    # Per key, the backfilled rows come first and in created_at order, then the streamed ones.
    seq = {}
    for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
        seq.setdefault(r.key, []).append(json.loads(r.value)["n"])
    for key, ns in seq.items():
        assert ns == sorted(ns), (key, ns)
    assert not db.scalar("SELECT count(*) FROM pg_replication_slots WHERE temporary")


def test_backfill_interrupted_by_kill9_is_redone(db, kafka, outboxd, topic_prefix):
    """kill -9 during the backfill leaves no slot: the next start backfills again
    (duplicates allowed, no row missing) and then streams."""
    _add_processed_column(db)
    db.execute("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, created_at) "
               "SELECT 'order', 'k' || (i % 7), 'e', jsonb_build_object('n', i, 'pad', repeat('x', 200)), "
               "now() + i * interval '1 microsecond' FROM generate_series(1, 30000) i")
    ids = {r[0] for r in db.execute("SELECT id::text FROM outbox")}
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, partitions=3)
    cfg = {"outbox.backfill.where": "processed = false", "relay.max.inflight.events": "200",
           "kafka.linger.ms": "20"}
    p = outboxd(cfg)
    p.wait_for_log("backfill: publishing rows", timeout=60)
    time.sleep(0.3)
    p.kill9()
    slot = f"{db.dbname}_slot"
    time.sleep(0.5)
    assert db.slot_info(slot) is None, "no permanent slot may exist after an interrupted backfill"
    p2 = outboxd(cfg)
    p2.wait_for_log(r"backfill: published 30000 rows", timeout=120)
    p2.wait_for_log("streaming slot", timeout=30)
    late = _insert(db, 99999)
    db.wait_slot_confirmed(slot, db.current_wal_lsn(), timeout=60)
    recs = kafka.consume(topic, n=None, timeout=120, settle=3)
    got = {r.header("id").decode() for r in recs}
    assert ids | {late} <= got
    assert p2.is_running()


def test_backfill_bad_predicate_is_a_clear_error(db, kafka, outboxd):
    p = outboxd({"outbox.backfill.where": "no_such_column = 1"})
    assert p.wait_exit(timeout=60) == 2
    log = p.log_text()
    assert "outbox.backfill.where" in log and "no_such_column" in log
    assert db.slot_info(f"{db.dbname}_slot") is None
