"""Tests of the test harness itself: the stack, the fixtures and the Java partition oracle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from harness import (
    create_database,
    drop_database,
    int_to_lsn,
    lsn_to_int,
    murmur2,
    parse_env_file,
    python_partition,
    random_keys,
    unique_name,
    wait_until,
)


def test_pg_reachable_and_configured(stack, db):
    assert db.scalar("SELECT current_database()") == db.dbname
    assert db.scalar("SHOW wal_level") == "logical"
    assert int(db.scalar("SHOW max_replication_slots")) >= 20
    # PostgreSQL >= 15.20 only allows listed output plugins (stack.sh lists wal2json).
    opl = db.scalar("SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries'")
    assert opl is None or "wal2json" in opl
    # The default outbox table from sql/outbox.sql.
    cols = [r[0] for r in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = 'outbox' ORDER BY ordinal_position")]
    assert cols == ["id", "aggregate_type", "aggregate_id", "event_type", "payload", "headers", "created_at"]


def test_wal2json_slot_decodes_outbox_insert(db):
    slot = unique_name("s")
    db.create_slot(slot)
    info = db.slot_info(slot)
    assert info["plugin"] == "wal2json" and info["database"] == db.dbname and not info["active"]

    ev = db.insert_event("order", "o-1", "created", {"n": 1}, headers={"h": "v"})
    rows = db.execute(
        "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL, 'format-version', '2', "
        "'add-tables', 'public.outbox')", (slot,))
    actions = [json.loads(r[0])["action"] for r in rows]
    assert actions == ["B", "I", "C"]
    assert ev in rows[1][0]
    # get_changes consumed them: confirmed_flush moved past the insert.
    assert lsn_to_int(db.slot_info(slot)["confirmed_flush_lsn"]) > 0
    assert db.slots() == [slot]
    # (the db fixture drops the slot at teardown)


def test_db_fixture_cleans_up_slots_and_database(stack):
    d = create_database(stack)
    d.create_slot(unique_name("s"))
    # An active walsender holds the slot: teardown must terminate it first.
    slot = d.slots()[0]
    recv = subprocess.Popen(
        [f"{stack.env['OUTBOXD_STACK_PGBIN']}/pg_recvlogical", "-d", d.conninfo, "-S", slot,
         "--start", "-f", "/dev/null", "-o", "format-version=2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: d.slot_info(slot)["active"], 10, what="slot active")
        drop_database(d)
    finally:
        recv.kill()
        recv.wait()
    with stack.pg_connect() as c:
        assert c.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (d.dbname,)).fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()[0] == 0


def test_insert_event_in_transaction_and_lsn(db):
    before = db.current_wal_lsn()
    c = db.connect(autocommit=False)
    with c.transaction():
        a = db.insert_event("t", "k", "e", '{"raw": "json text"}', conn=c)
        b = db.insert_event("t", "k", "e", [1, 2, 3], conn=c)
    rows = dict(db.execute("SELECT id::text, payload FROM outbox"))
    assert rows == {a: {"raw": "json text"}, b: [1, 2, 3]}
    assert lsn_to_int(db.current_wal_lsn()) > lsn_to_int(before)
    assert int_to_lsn(lsn_to_int("16/B374D848")) == "16/B374D848"


def test_kafka_roundtrip(kafka, topic_prefix):
    topic = f"{topic_prefix}.roundtrip"
    kafka.create_topic(topic, partitions=4)
    assert kafka.partition_count(topic) == 4
    assert kafka.partition_count(f"{topic_prefix}.nope") is None
    sent = []
    for i in range(10):
        sent.append(kafka.produce(topic, f"v{i}".encode(), key=f"k{i}".encode(),
                                  headers=[("id", str(i).encode()), ("h", b"\x00\xff")]))
    recs = kafka.consume(topic, n=10, timeout=30)
    assert len(recs) == 10
    assert sorted((r.partition, r.offset) for r in recs) == sorted(sent)
    by_key = {r.key: r for r in recs}
    r3 = by_key[b"k3"]
    assert r3.value == b"v3" and r3.topic == topic
    assert r3.headers == [("id", b"3"), ("h", b"\x00\xff")] and r3.header("h") == b"\x00\xff"
    # settle mode: nothing more arrives.
    assert len(kafka.consume(topic, timeout=20, settle=1.0)) == 10
    assert topic in kafka.topics(topic_prefix)


def test_kafka_consume_picks_up_topic_created_later(kafka, topic_prefix):
    topic = f"{topic_prefix}.later"
    t = threading.Timer(1.5, lambda: kafka.produce(topic, b"late", key=b"k"))  # auto-created
    t.start()
    try:
        recs = kafka.consume([topic], n=1, timeout=30)
    finally:
        t.join()
    assert [(r.key, r.value) for r in recs] == [(b"k", b"late")]
    assert kafka.partition_count(topic) == 3  # the broker's num.partitions


def test_murmur2_known_values():
    # Values from Kafka's UtilsTest.testMurmur2.
    cases = {
        b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107,
    }
    for k, v in cases.items():
        assert murmur2(k) == v, k


def test_java_partition_matches_python_murmur2(java_partition):
    keys = random_keys(1000, seed=20260101)
    pairs = [(k, n) for n in (3, 7, 12) for k in keys]
    t0 = time.monotonic()
    got = java_partition.many(pairs)
    took = time.monotonic() - t0
    want = [python_partition(k, n) for k, n in pairs]
    bad = [(k.hex(), n, g, w) for (k, n), g, w in zip(pairs, got, want) if g != w]
    assert not bad, f"{len(bad)} mismatches, e.g. {bad[:5]}"
    assert took < 60
    assert java_partition(b"k1", 3) == python_partition(b"k1", 3) == 2


FAKE_OUTBOXD = textwrap.dedent("""\
    import os, signal, sys, time
    conf = dict(l.split(" = ", 1) for l in open(sys.argv[2]).read().splitlines() if " = " in l)
    print("fake outboxd: slot", conf.get("postgres.slot"), flush=True)
    print("env", sorted(k for k in os.environ if k.startswith("OUTBOXD_")), flush=True)
    def term(*_):
        print("fake outboxd: SIGTERM, bye", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    buf = bytearray(8 << 20)  # some RSS
    print("fake outboxd: ready", flush=True)
    while True:
        time.sleep(0.05)
""")


def test_outboxd_fixture_mechanics(outboxd, db, tmp_path, monkeypatch):
    """The factory fixture, with a stand-in binary (the harness, not outboxd, is under test)."""
    fake = tmp_path / "fake-outboxd"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_OUTBOXD)
    fake.chmod(0o755)
    monkeypatch.setenv("OUTBOXD_STACK_SOMETHING", "must not leak")

    p = outboxd({"status.interval.ms": 100}, binary=fake, env={"OUTBOXD_LOG_LEVEL": "debug"})
    m = p.wait_for_log(r"slot (\S+)", timeout=10)
    assert m.group(1) == f"{db.dbname}_slot" == p.config["postgres.slot"]
    p.wait_for_log("ready", timeout=10)
    assert "env ['OUTBOXD_LOG_LEVEL']" in p.log_text()
    assert p.rss_kb > 8 * 1024
    assert os.path.basename(p.config_path).endswith(".conf")
    assert "status.interval.ms = 100" in p.config_path.read_text()
    assert p.terminate(timeout=10) == 0
    assert "SIGTERM, bye" in p.log_text()

    p.start()  # restart with the same config; waits only see the new run
    p.wait_for_log("ready", timeout=10)
    assert p.log_text().count("ready") == 2 and p.log_text(all_runs=False).count("ready") == 1
    assert p.kill9() == -signal.SIGKILL
    with pytest.raises(AssertionError, match="exited"):
        p.wait_for_log("never printed", timeout=5)

    q = outboxd(binary=fake)  # left running: the fixture kills it at teardown
    q.wait_for_log("ready", timeout=10)
    with pytest.raises(AssertionError, match="still running"):
        q.wait_exit(timeout=0.5)


def test_stack_env_file(stack):
    env = parse_env_file(stack.dir / "stack.env")
    assert env["OUTBOXD_STACK_KAFKA"] == stack.kafka
    assert env["OUTBOXD_STACK_PG_CONNINFO"] == stack.pg_conninfo
    assert (stack.kafka_libs / "kafka-clients-3.9.1.jar").is_file()


@pytest.mark.fault
def test_fault_helpers_restart_pg_and_kafka(faults, db, kafka, topic_prefix):
    topic = f"{topic_prefix}.fault"
    kafka.produce(topic, b"before", key=b"k")

    faults.pg_restart()
    db.reconnect()
    assert db.scalar("SELECT 1") == 1

    faults.kafka_stop()
    faults.kafka_start()
    kafka.produce(topic, b"after", key=b"k")
    assert [r.value for r in kafka.consume(topic, n=2, timeout=30)] == [b"before", b"after"]

    faults.kafka_kill()
    faults.pg_kill()
    # restore() at teardown brings both back; the next tests need them.
