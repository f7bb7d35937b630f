"""A lost replication slot (dropped while outboxd is stopped, dropped while it streams,
invalidated by max_slot_wal_keep_size) is recovered without a person: outboxd republishes
the outbox rows the progress record (progress.table) cannot rule out, creates the slot again
and streams on. Nothing committed is lost; the duplicates are counted and bounded; what a
table cannot give back (logical messages) is named in an ERROR line. With
postgres.slot.on_lost = fail it stops with exit 2 and the runbook instead. Against the real
PostgreSQL and Kafka."""

from __future__ import annotations

import re
import signal
import threading
import time

import psycopg

from harness.db import lsn_to_int
from harness.ops import free_port, wait_metric
from harness.util import wait_until

# Every test runs with both output plugins (conftest.py: pytest_generate_tests).
PLUGINS = ("wal2json", "pgoutput")


def _ids(kafka, topic, n=None, timeout=60):
    recs = kafka.consume(topic, n=n, timeout=timeout, settle=3)
    return [r.header("id").decode() for r in recs]


def _republished(log: str) -> int:
    m = re.search(r"recovery: republished (\d+) outbox rows", log)
    assert m, log[-3000:]
    return int(m.group(1))


class Writer:
    """Inserts one event per transaction until stopped; .ids are the committed ones."""

    def __init__(self, db, aggregate_type="order", pause=0.003):
        self.db, self.type, self.pause = db, aggregate_type, pause
        self.ids: list[str] = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        with psycopg.connect(self.db.conninfo, autocommit=True) as c:
            n = 0
            while not self.stop.is_set():
                self.ids.append(str(c.execute(
                    "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
                    "VALUES (%s, %s, 'e', jsonb_build_object('n', %s::int)) RETURNING id",
                    (self.type, f"k{n % 13}", n)).fetchone()[0]))
                n += 1
                time.sleep(self.pause)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()


def test_slot_dropped_while_stopped_is_recovered(db, kafka, outboxd, topic_prefix):
    topic = f"{topic_prefix}.order"
    slot = f"{db.dbname}_slot"
    port = free_port()
    cfg = {"http.listen": f"127.0.0.1:{port}", "progress.interval.ms": 200}
    d = outboxd(cfg)
    d.wait_for_log("streaming slot")
    before = [db.insert_event("order", f"k{i % 5}", "Created", {"n": i}) for i in range(200)]
    end = db.current_wal_lsn()
    db.wait_slot_confirmed(slot, end, timeout=30)
    # the record follows the confirmed position (written after Kafka acknowledged). Not compared
    # with the slot's position of the moment: each write of the record is WAL of its own, which the
    # slot is confirmed past at once, so the slot is always a little ahead of the newest record.
    wait_until(lambda: db.scalar("SELECT confirmed_lsn >= %s::pg_lsn FROM outboxd_progress WHERE slot_name = %s",
                                 (end, slot)), 20, what="progress record")
    assert d.terminate() == 0

    db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    during = [db.insert_event("order", f"k{i % 5}", "Created", {"n": 1000 + i}) for i in range(300)]
    db.emit_message('{"lost": "a message only the WAL had"}')

    d = outboxd(cfg)
    d.wait_for_log("recovery: republished", timeout=60)
    d.wait_for_log("streaming slot", timeout=30)
    after = [db.insert_event("order", f"k{i % 5}", "Created", {"n": 2000 + i}) for i in range(100)]
    db.wait_slot_confirmed(slot, db.current_wal_lsn(), timeout=30)

    got = _ids(kafka, topic)
    want = set(before) | set(during) | set(after)
    assert want <= set(got), f"{len(want - set(got))} of {len(want)} events lost"
    log = d.log_text()
    n = _republished(log)
    assert n >= len(during), (n, len(during))
    # Duplicates: exactly the rows republished that Kafka had already.
    dups = len(got) - len(set(got))
    assert dups == n - len(during), (dups, n, len(during))
    assert 'replication slot "%s" is missing although outboxd published from this database' % slot in log
    m = re.search(r"ERROR: recovery: table-less events .* committed between (\d{4}-\d\d-\d\dT[\d:.]+Z) and now", log)
    assert m, log[-2000:]
    # the window starts at the record's horizon, before the slot was dropped (not at the new record)
    restart = re.search(r"^(\S+) outboxd\[\d+\] WARN: replication slot .* is missing", log, re.M).group(1)
    assert m.group(1) < restart, (m.group(1), restart)
    m = wait_metric(port, "outboxd_slot_recoveries_total", lambda v: v == 1)
    assert m["outboxd_recovery_republished_events_total"] == n
    assert m["outboxd_recovery_unrecoverable_since_seconds"] > time.time() - 600
    print(f"recovered: {len(during)} events committed while the slot was gone, {n} republished, {dups} duplicates")


def test_slot_dropped_while_streaming_under_writes_loses_nothing(db, kafka, outboxd, topic_prefix, stack):
    topic = f"{topic_prefix}.order"
    slot = f"{db.dbname}_slot"
    d = outboxd({"progress.interval.ms": 200})
    d.wait_for_log("streaming slot")
    with Writer(db) as w:
        time.sleep(2)
        # Drop the slot under the relay: end its walsender, then drop before it reconnects.
        with stack.pg_connect() as admin:
            def dropped():
                admin.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                              "WHERE slot_name = %s AND active_pid IS NOT NULL", (slot,))
                try:
                    admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    return True
                except psycopg.errors.ObjectInUse:
                    return False
            wait_until(dropped, 20, what="slot dropped")
        d.wait_for_log("recovery: republished", timeout=60)
        d.wait_for_log(r"resumed streaming|streaming slot", timeout=30)
        time.sleep(1)
    db.wait_slot_confirmed(slot, db.current_wal_lsn(), timeout=60)
    got = _ids(kafka, topic)
    missing = set(w.ids) - set(got)
    assert not missing, f"{len(missing)} of {len(w.ids)} committed events lost"
    n = _republished(d.log_text())
    dups = len(got) - len(set(got))
    assert dups <= n, (dups, n)
    print(f"{len(w.ids)} events committed, slot dropped mid-stream: {n} republished, {dups} duplicates, 0 lost")


def _invalidate(db, stack, slot):
    """Writes WAL past max_slot_wal_keep_size (1MB, set by the test) and checkpoints until the
    slot (not streamed now) is invalidated."""
    with stack.pg_connect() as admin:
        db.execute("CREATE TABLE IF NOT EXISTS filler (x text)")
        for _ in range(6):
            db.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 3000)")
            admin.execute("SELECT pg_switch_wal()")
        admin.execute("CHECKPOINT")
        wait_until(lambda: db.slot_info(slot)["wal_status"] == "lost", 30, what="slot invalidated")


def test_invalidated_slot_is_recovered(db, kafka, outboxd, topic_prefix, stack):
    """Events committed while outboxd was away, then the slot invalidated
    (max_slot_wal_keep_size): the next start recovers them."""
    topic = f"{topic_prefix}.order"
    slot = f"{db.dbname}_slot"
    admin = stack.pg_connect()
    try:
        admin.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        admin.execute("SELECT pg_reload_conf()")
        cfg = {"slot.poll.interval.ms": 500, "progress.interval.ms": 200}
        d = outboxd(cfg)
        d.wait_for_log("streaming slot")
        first = [db.insert_event("order", "a1", "Created", {"n": i}) for i in range(20)]
        db.wait_slot_confirmed(slot, db.current_wal_lsn(), timeout=30)
        time.sleep(1)  # the record catches up
        assert d.terminate() == 0
        lost = [db.insert_event("order", "a1", "Created", {"n": 100 + i}) for i in range(50)]
        _invalidate(db, stack, slot)
        d = outboxd(cfg)
        d.wait_for_log("recovery: republished", timeout=60)
        d.wait_for_log("streaming slot", timeout=30)
        last = [db.insert_event("order", "a1", "Created", {"n": 200 + i}) for i in range(20)]
    finally:
        admin.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
        admin.execute("SELECT pg_reload_conf()")
        admin.close()
    db.wait_slot_confirmed(slot, db.current_wal_lsn(), timeout=30)
    recs = kafka.consume(topic, n=None, timeout=60, settle=3)
    got = [r.header("id").decode() for r in recs]
    want = set(first) | set(lost) | set(last)
    assert want <= set(got), f"{len(want - set(got))} of {len(want)} lost"
    log = d.log_text()
    assert "was invalidated (wal_status = lost" in log
    print(f"\ninvalidated: {len(lost)} events committed while away, {_republished(log)} republished, "
          f"{len(got) - len(set(got))} duplicates, 0 lost")
    assert db.slot_info(slot)["wal_status"] != "lost"
    # One key: the last occurrence of each event is in commit order (republished rows come
    # before the new ones; ORDER BY outbox.backfill.order within the republished ones).
    last_pos = {}
    for i, r in enumerate(sorted(recs, key=lambda r: (r.partition, r.offset))):
        last_pos[r.header("id").decode()] = i
    order = [last_pos[i] for i in lost + last]
    assert order == sorted(order)


def test_slot_lost_with_on_lost_fail_stops_with_the_runbook(db, outboxd):
    slot = f"{db.dbname}_slot"
    d = outboxd({"progress.interval.ms": 200})
    d.wait_for_log("streaming slot")
    db.insert_event("order", "a1", "Created", {"n": 1})
    db.wait_slot_confirmed(slot, db.current_wal_lsn(), timeout=30)
    time.sleep(1)
    assert d.terminate() == 0
    db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    d = outboxd({"postgres.slot.on_lost": "fail"})
    assert d.wait_exit(30) == 2
    log = d.log_text()
    assert "postgres.slot.on_lost = fail" in log and 'docs/operations.md, "Slot lost"' in log
    assert db.slot_info(slot) is None, "the slot was created although on_lost = fail"


def test_first_start_without_record_creates_the_slot_and_writes_the_record(db, outboxd):
    """A first start is told apart from a loss by the record: no record, no slot -> create
    both (the record at the slot's position, its horizon sampled before)."""
    slot = f"{db.dbname}_slot"
    d = outboxd()
    d.wait_for_log("created replication slot")
    d.wait_for_log("streaming slot")
    row = db.execute("SELECT system_identifier, timeline, confirmed_lsn::text, horizon_xid, horizon_time IS NOT NULL "
                     "FROM outboxd_progress WHERE slot_name = %s", (slot,))
    assert row, "no progress record after the slot was created"
    sysid, tl, lsn, horizon, has_time = row[0]
    assert sysid == str(db.scalar("SELECT system_identifier FROM pg_control_system()"))
    assert tl >= 1 and horizon > 0 and has_time
    assert lsn_to_int(lsn) <= lsn_to_int(db.slot_info(slot)["confirmed_flush_lsn"])


def test_progress_table_not_writable_is_said_and_publishing_goes_on(db, kafka, outboxd, topic_prefix, login_role,
                                                                   plugin):
    """A role that may read but not write progress.table: outboxd publishes as usual and
    says, once, what is missing (the grant), both when the slot is created and from the
    background writer."""
    db.execute(f'ALTER ROLE "{login_role}" REPLICATION')
    if plugin == "pgoutput":  # the role does not own the outbox: the owner made the publication
        db.execute("CREATE PUBLICATION outboxd FOR TABLE outbox WITH (publish = 'insert', "
                   "publish_via_partition_root = true)")
    db.execute(f'GRANT SELECT ON outboxd_progress TO "{login_role}"')
    try:
        conninfo = psycopg.conninfo.make_conninfo(db.conninfo, user=login_role)
        d = outboxd({"postgres.conninfo": conninfo, "progress.interval.ms": 200})
        d.wait_for_log("streaming slot")
        ids = [db.insert_event("order", "a1", "Created", {"n": i}) for i in range(10)]
        d.wait_for_log(r"WARN: progress record: progress table public\.outboxd_progress: cannot write it: "
                       r"permission denied .*GRANT SELECT, INSERT, UPDATE ON public\.outboxd_progress", timeout=20)
        got = {r.header("id").decode() for r in kafka.consume(f"{topic_prefix}.order", n=10, timeout=30)}
        assert set(ids) <= got
        log = d.log_text()
        assert re.search(r"WARN: progress table public\.outboxd_progress: cannot write it: .*\(without the record, "
                         r"outboxd cannot recover a lost slot by itself\)", log), log[-3000:]
        assert log.count("WARN: progress record:") == 1, "logged once, not per poll"
        assert d.terminate() == 0
    finally:
        db.execute(f'REVOKE ALL ON outboxd_progress FROM "{login_role}"')
