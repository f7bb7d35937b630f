"""inboxd against a real Kafka and PostgreSQL: messages recorded exactly once (bytes, headers,
ids), duplicates stored once, kill -9 during consumption, two instances with partitions
moving, PostgreSQL restarted and killed mid-stream, Kafka offsets committed after the
database, retention, startup errors.

Exactly once is checked by comparing the inbox with what the producer had acknowledged:
the same message ids, each at the partition/offset Kafka gave it, and per partition the
inbox ids in offset order.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import psycopg
import pytest

import helpers


# --------------------------------------------------------------------------- helpers


class BgProducer(threading.Thread):
    """Produces n records with unique id headers "<prefix>-<i>" and keys k0..k<keys-1> at
    about rate/s (idempotent, acks=all); .acked maps id -> (partition, offset)."""

    def __init__(self, bootstrap: str, topic: str, n: int, rate: float, keys: int = 25,
                 prefix: str | None = None, id_header: bool = True):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.n, self.rate, self.keys = bootstrap, topic, n, rate, keys
        self.prefix = prefix or helpers.unique_name("m")
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
    helpers.wait_until(ok, timeout, 0.2, f"{n} rows in the inbox")


def positions(db, group: str) -> dict[int, int]:
    with psycopg.connect(db.conninfo, autocommit=True) as c:
        return dict(c.execute("SELECT partition, next_offset FROM inbox_offsets WHERE consumer_group = %s",
                              (group,)).fetchall())


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


def group_of(d) -> str:
    return d.config["kafka.group.id"]


# --------------------------------------------------------------------------- basics


def test_records_messages_byte_for_byte(inboxd, inbox_db, inbox_topic, kafka, stack):
    recs = [
        # (key, value, headers, partition)
        (b"order-1", b'{"order_id": 1}', [("id", b"e-1"), ("event_type", b"OrderPlaced")], 0),
        (b"\x00\xffkey", b"\x00\x01\xfe\xff binary", [("id", b"e-2"), ("bin", b"\xff\x00"), ("n", None)], 1),
        (None, None, [("id", b"e-3")], 2),  # a tombstone without key
        ("ключ".encode(), "значение".encode(), [("id", "ид-4".encode()), ("x", b"1"), ("x", b"2")], 3),
        (b"k5", b"no id header", [("trace", b"t5")], 0),
        (b"k6", b"", [("id", b"")], 1),  # empty value; an empty id header does not count
    ]
    where = [kafka.produce(inbox_topic, v, key=k, headers=h, partition=p) for k, v, h, p in recs]
    d = inboxd()
    wait_count(inbox_db, len(recs), 30)
    rows = {r[0]: r[1:] for r in inbox_db.execute(
        'SELECT message_id, topic, partition, "offset", key, headers, payload, status, attempts, '
        "last_error, processed_at, received_at <= now() FROM inbox")}
    ids = ["e-1", "e-2", "e-3", "ид-4", f"{inbox_topic}/0/{where[4][1]}", f"{inbox_topic}/1/{where[5][1]}"]
    assert sorted(rows) == sorted(ids)
    for (key, value, _, _), (part, off), mid in zip(recs, where, ids):
        t, p, o, k, hdrs, payload, status, attempts, err, done, recv_ok = rows[mid]
        assert (t, p, o) == (inbox_topic, part, off)
        assert (bytes(k) if k is not None else None) == key
        assert (bytes(payload) if payload is not None else None) == value
        assert (status, attempts, err, done, recv_ok) == ("pending", 0, None, None, True)
    assert rows["e-1"][4] == {"id": "e-1", "event_type": "OrderPlaced"}
    assert rows["e-2"][4] == {"id": "e-2", "bin": "\\xff00", "n": None}
    assert rows["ид-4"][4] == {"id": "ид-4", "x": "2"}  # a repeated name: the last one
    assert rows[ids[4]][4] == {"trace": "t5"}

    # SIGTERM: exit 0; Kafka's committed offsets equal the stored positions (lag tools work).
    assert d.terminate() == 0
    d.wait_for_log(r"stopped: recorded 6 messages, 0 duplicates skipped", all_runs=True, timeout=1)
    pos = positions(inbox_db, group_of(d))
    assert pos == {p: max(o for pp, o in where if pp == p) + 1 for p in range(4)}
    assert helpers.kafka_committed(stack.kafka, group_of(d), inbox_topic, 4) == pos


def test_duplicates_are_stored_once(inboxd, inbox_db, inbox_topic, stack):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": stack.kafka, "acks": "all"})
    # 100 ids, each produced 3 times, to different partitions, with different payloads.
    for rnd in range(3):
        for i in range(100):
            p.produce(inbox_topic, key=f"k{i}", value=f"copy {rnd}".encode(), headers=[("id", f"dup-{i}")],
                      partition=(i + rnd) % 4)
    assert p.flush(30) == 0
    d = inboxd()
    helpers.wait_until(lambda: sum(positions(inbox_db, group_of(d)).values()) == 300, 30, 0.2,
                       "all 300 records consumed")
    assert inbox_count(inbox_db) == 100
    # The first copy that was recorded wins; every id once.
    assert inbox_db.scalar("SELECT count(DISTINCT message_id) FROM inbox") == 100
    assert d.terminate() == 0
    d.wait_for_log(r"stopped: recorded 100 messages, 200 duplicates skipped", all_runs=True, timeout=1)

    # Another consumer group re-reads everything: nothing new.
    d2 = inboxd({"kafka.group.id": group_of(d) + "_2"})
    helpers.wait_until(lambda: sum(positions(inbox_db, group_of(d2)).values()) == 300, 30, 0.2,
                       "300 records consumed again")
    assert inbox_count(inbox_db) == 100
    assert d2.terminate() == 0
    d2.wait_for_log(r"stopped: recorded 0 messages, 300 duplicates skipped", all_runs=True, timeout=1)


def test_restart_resumes_from_stored_positions_not_kafka(inboxd, inbox_db, inbox_topic, stack, kafka):
    """The offsets table wins over Kafka's committed offsets, both ways: redeliveries
    behind it are skipped even after retention deleted the rows (no id left to dedupe
    on), and a table that is behind (a database restored from a backup) is refilled."""
    from confluent_kafka import Consumer, TopicPartition

    prod = BgProducer(stack.kafka, inbox_topic, 200, rate=10000, id_header=False)
    prod.run()
    assert not prod.errors
    d = inboxd({"inbox.retention": "1s", "inbox.retention.interval.ms": 200})
    wait_count(inbox_db, 200, 30)
    acked = {f"{inbox_topic}/{p}/{o}": (p, o) for p, o in prod.acked.values()}
    # The service processed 150 of them an hour ago: retention deletes those.
    inbox_db.execute("UPDATE inbox SET status = 'done', processed_at = now() - interval '1 hour' "
                     "WHERE id IN (SELECT id FROM inbox ORDER BY id LIMIT 150)")
    helpers.wait_until(lambda: inbox_count(inbox_db) == 50, 20, 0.2, "retention to delete 150 done rows")
    d.wait_for_log(r"retention: deleted 150 done messages older than 1 s", timeout=5)
    assert d.terminate() == 0

    def rewind_kafka():
        c = Consumer({"bootstrap.servers": stack.kafka, "group.id": group_of(d), "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(inbox_topic, p, 0) for p in range(4)], asynchronous=False)
        c.close()

    # Kafka's offsets rewound to 0: nothing comes back (positions fence the redeliveries).
    rewind_kafka()
    d.start()
    d.wait_for_log(r"assigned .* starting at offset", timeout=30)
    time.sleep(3)
    assert inbox_count(inbox_db) == 50
    assert d.terminate() == 0

    # The table lost recent rows and positions (a restore): they are recorded again.
    inbox_db.execute("DELETE FROM inbox")
    inbox_db.execute("DELETE FROM inbox_offsets")
    rewind_kafka()
    d.start()
    wait_count(inbox_db, 200, 30)
    check_exactly_once(inbox_db, acked, inbox_topic, payload_has_id=False)


# --------------------------------------------------------------------------- crashes


@pytest.mark.timeout(240)
def test_kill9_during_consumption_loses_and_duplicates_nothing(inboxd, inbox_db, inbox_topic, stack):
    """kill -9 five times while records arrive. Static membership (group.instance.id) lets
    each restart take the partitions back at once, so the kills land mid-stream; partition
    moves after a session timeout are covered by test_two_instances_partitions_move."""
    n = 30000
    prod = BgProducer(stack.kafka, inbox_topic, n, rate=2000)
    d = inboxd({"inbox.batch.max": 300, "kafka.group.instance.id": "inboxd-kill9"})
    d.wait_for_log(r"assigned .*\[3\]", timeout=30)
    t0 = time.monotonic()
    prod.start()
    kills = []
    for _ in range(5):
        before = inbox_count(inbox_db)
        helpers.wait_until(lambda: inbox_count(inbox_db) > before + 1000 or not prod.is_alive(), 60, 0.02,
                           "progress before the kill")
        if not prod.is_alive():
            break
        d.kill9()
        kills.append(inbox_count(inbox_db))
        d.start()
    prod.join(120)
    assert not prod.errors, prod.errors[:5]
    assert len(prod.acked) == n
    assert len(kills) >= 3, f"only {len(kills)} kills while producing"
    wait_count(inbox_db, n, 90)
    elapsed = time.monotonic() - t0
    check_exactly_once(inbox_db, prod.acked, inbox_topic)
    print(f"{n} messages, kill -9 at inbox counts {kills}, {elapsed:.1f}s")
    assert d.terminate() == 0


@pytest.mark.timeout(240)
@pytest.mark.parametrize("strategy", ["range,roundrobin", "cooperative-sticky"])
def test_two_instances_partitions_move(inboxd, inbox_db, inbox_topic, stack, strategy):
    """Three instances join and leave one group (eager and incremental rebalancing) while
    records arrive: every record once."""
    n = 30000
    prod = BgProducer(stack.kafka, inbox_topic, n, rate=2500)
    cfg = {"inbox.batch.max": 300, "kafka.partition.assignment.strategy": strategy}
    a = inboxd(cfg)
    a.wait_for_log(r"assigned .*\[3\]", timeout=30)
    prod.start()
    time.sleep(2)
    b = inboxd(cfg)  # the group moves half of the partitions to b
    b.wait_for_log(r"assigned ", timeout=30)
    a.wait_for_log(r"(revoked|lost) \d+ partitions", timeout=30)
    time.sleep(2)
    c = inboxd(cfg)  # a third: another move
    c.wait_for_log(r"assigned ", timeout=30)
    time.sleep(2)
    a.kill9()  # a's partitions move to b and c after its session times out
    time.sleep(2)
    assert c.terminate() == 0  # a clean leave: c's partitions move to b at once
    prod.join(120)
    assert not prod.errors, prod.errors[:5]
    wait_count(inbox_db, n, 90)
    check_exactly_once(inbox_db, prod.acked, inbox_topic)
    assert b.is_running()
    # b ended up with every partition.
    b.wait_for_log(r"assigned .*\[0\]", timeout=1, all_runs=True)
    assert b.terminate() == 0


@pytest.mark.fault
@pytest.mark.timeout(240)
def test_postgres_restart_and_crash_midstream(inboxd, inbox_db, inbox_topic, stack, faults):
    n = 25000
    prod = BgProducer(stack.kafka, inbox_topic, n, rate=2500)
    d = inboxd({"inbox.batch.max": 500, "reconnect.backoff.max.ms": 1000})
    d.wait_for_log(r"assigned .*\[3\]", timeout=30)
    prod.start()
    wait_count(inbox_db, 2000, 30)
    faults.pg_restart()  # fast shutdown and start
    d.wait_for_log(r"PostgreSQL is back: consumption resumed", timeout=30)
    before = inbox_count(inbox_db)
    helpers.wait_until(lambda: inbox_count(inbox_db) > before + 2000, 30, 0.1, "progress after the restart")
    faults.pg_kill()  # a crash, down for 3 s while the producer goes on
    time.sleep(3)
    faults.pg_start()
    prod.join(120)
    assert not prod.errors, prod.errors[:5]
    wait_count(inbox_db, n, 90)
    check_exactly_once(inbox_db, prod.acked, inbox_topic)
    log = d.log_text()
    assert log.count("PostgreSQL is unavailable") >= 2
    assert log.count("PostgreSQL is back: consumption resumed") >= 2
    assert d.is_running()
    assert d.terminate() == 0


@pytest.mark.fault
def test_postgres_down_at_assignment(inboxd, inbox_db, inbox_topic, stack, faults):
    """inboxd started while PostgreSQL is down joins the group holding; its partitions start
    at the stored positions once PostgreSQL is back, not at Kafka's committed offsets."""
    prod = BgProducer(stack.kafka, inbox_topic, 400, rate=10000)
    prod.run()
    d = inboxd()
    wait_count(inbox_db, 400, 30)
    assert d.terminate() == 0
    # Kafka's committed offsets are behind the table (say, async commits were lost).
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": stack.kafka, "group.id": group_of(d), "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(inbox_topic, p, 0) for p in range(4)], asynchronous=False)
    c.close()
    inbox_db.execute("UPDATE inbox SET status = 'done', processed_at = now()")
    inbox_db.execute("DELETE FROM inbox")  # no ids left to dedupe on: only positions protect
    faults.pg_stop()
    d.start()
    d.wait_for_log(r"assigned 4 partitions; their positions are read when PostgreSQL is back", timeout=30)
    time.sleep(1)
    faults.pg_start()
    d.wait_for_log(r"PostgreSQL is back: consumption resumed", timeout=30)
    prod2 = BgProducer(stack.kafka, inbox_topic, 100, rate=10000)
    prod2.run()
    wait_count(inbox_db, 100, 30)
    check_exactly_once(inbox_db, prod2.acked, inbox_topic)


# --------------------------------------------------------------------------- configuration


def test_startup_errors(inboxd, inbox_db, inbox_topic, inboxd_bin, stack):
    cases = [
        ({"inbox.table": "public.nope"}, r"inbox table public\.nope does not exist in database"),
        ({"deliver.url": "127.0.0.1:1/inbox"}, r"invalid deliver\.url '127\.0\.0\.1:1/inbox'"),
        ({"kafka.enable.auto.commit": "true"}, r"kafka\.enable\.auto\.commit=true is not allowed"),
        ({"inbox.topics": None}, r"inbox\.topics is not set"),
        ({"inbox.retention": "soon"}, r"invalid value 'soon' for inbox\.retention"),
        ({"kafka.no.such.property": "1"}, r"kafka\.no\.such\.property: No such configuration property"),
        ({"postgres.conninfo": inbox_db.conninfo + " user=nobody_here"}, r"cannot connect to PostgreSQL: .*nobody_here"),
    ]
    for cfg, rx in cases:
        d = inboxd(cfg)
        assert d.wait_exit(30) == 2, (cfg, d.log_tail())
        assert re.search(rx, d.log_text()), (cfg, d.log_tail())

    d = inboxd(env={"INBOXD_INBOX_TOPIC": "x"})
    assert d.wait_exit(30) == 2
    assert "did you mean INBOXD_INBOX_TOPICS?" in d.log_text()

    r = subprocess.run([str(inboxd_bin), "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and re.fullmatch(r"inboxd \d+\.\d+\.\d+\n", r.stdout)
    r = subprocess.run([str(inboxd_bin), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "inbox.topics" in r.stdout and "INBOXD_POSTGRES_CONNINFO" in r.stdout
    r = subprocess.run([str(inboxd_bin), "--bogus"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "unknown or incomplete argument '--bogus'" in r.stderr


def test_environment_and_print_config(inboxd, inbox_db, inbox_topic, stack):
    d = inboxd({"inbox.topics": None, "postgres.conninfo": None},
               env={"INBOXD_INBOX_TOPICS": inbox_topic,
                    "INBOXD_POSTGRES_CONNINFO": inbox_db.conninfo + " password=s3cret"},
               args=["--print-config"])
    assert d.wait_exit(10) == 0
    out = d.log_text()
    assert f"inbox.topics = {inbox_topic}" in out
    assert "password=***" in out and "s3cret" not in out
