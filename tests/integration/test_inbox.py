"""inboxd against a real Kafka and PostgreSQL: messages recorded exactly once (bytes, headers,
ids), duplicates stored once, kill -9 during consumption, two instances with partitions
moving, Kafka offsets committed after the database (never past it, frozen while writes
are blocked), seek to the stored position on assignment, a recreated topic (offset regression), long ids, a message PostgreSQL refuses,
reconnects after retryable errors, the lag metric, retention, startup errors. (PostgreSQL
restarted and crashed mid-stream, and the network faults: test_faults_inbox.py.)

Exactly once is checked by comparing the inbox with what the producer had acknowledged:
the same message ids, each at the partition/offset Kafka gave it, and per partition the
inbox ids in offset order.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import psycopg
import pytest

from harness import free_port, http_get, kafka_committed, scrape, wait_until
from harness.inboxload import BgProducer, check_exactly_once, inbox_count, positions, wait_assignment, wait_count


# --------------------------------------------------------------------------- helpers


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
    assert kafka_committed(stack.kafka, group_of(d), inbox_topic, 4) == pos


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
    wait_until(lambda: sum(positions(inbox_db, group_of(d)).values()) == 300, 30, 0.2,
               "all 300 records consumed")
    assert inbox_count(inbox_db) == 100
    # The first copy that was recorded wins; every id once.
    assert inbox_db.scalar("SELECT count(DISTINCT message_id) FROM inbox") == 100
    assert d.terminate() == 0
    d.wait_for_log(r"stopped: recorded 100 messages, 200 duplicates skipped", all_runs=True, timeout=1)

    # Another consumer group re-reads everything: nothing new.
    d2 = inboxd({"kafka.group.id": group_of(d) + "_2"})
    wait_until(lambda: sum(positions(inbox_db, group_of(d2)).values()) == 300, 30, 0.2,
               "300 records consumed again")
    assert inbox_count(inbox_db) == 100
    assert d2.terminate() == 0
    d2.wait_for_log(r"stopped: recorded 0 messages, 300 duplicates skipped", all_runs=True, timeout=1)


def test_aborted_kafka_transactions_never_enter_the_inbox(inboxd, inbox_db, inbox_topic, stack):
    """inboxd reads with isolation.level = read_committed: records of an aborted Kafka
    transaction (what a replayed or fenced exactly-once outboxd leaves behind) are never
    recorded, and the stored positions go past them."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": stack.kafka, "transactional.id": f"{inbox_topic}-txn"})
    p.init_transactions(30)
    for name, commit in (("aborted", False), ("committed", True)):
        p.begin_transaction()
        for i in range(5):
            p.produce(inbox_topic, key=b"k", value=f"{name} {i}".encode(), headers=[("id", f"{name}-{i}")],
                      partition=0)
        p.flush(30)
        p.commit_transaction(30) if commit else p.abort_transaction(30)
    d = inboxd()
    wait_until(lambda: positions(inbox_db, group_of(d)).get(0, 0) >= 11, 30, 0.2, "partition 0 read past both")
    ids = sorted(r[0] for r in inbox_db.execute("SELECT message_id FROM inbox"))
    assert ids == [f"committed-{i}" for i in range(5)]
    assert d.terminate() == 0


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
    wait_until(lambda: inbox_count(inbox_db) == 50, 20, 0.2, "retention to delete 150 done rows")
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
        wait_until(lambda: inbox_count(inbox_db) > before + 1000 or not prod.is_alive(), 60, 0.02,
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


def wait_progress(db, more: int, prod: BgProducer, timeout: float = 30) -> None:
    """Waits until `more` further rows are in the inbox, or until prod has finished (and so
    no more may come)."""
    before = inbox_count(db)
    wait_until(lambda: inbox_count(db) >= before + more or not prod.is_alive(), timeout, 0.05,
               f"{more} more rows in the inbox")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("strategy", ["range,roundrobin", "cooperative-sticky"])
def test_two_instances_partitions_move(inboxd, inbox_db, inbox_topic, stack, kafka, strategy):
    """Three instances join and leave one group (eager and incremental rebalancing) while
    records arrive: every record once. Each move is waited for as the broker shows it (the
    group stable with the expected members), then some records go through the new owners."""
    n = 30000
    prod = BgProducer(stack.kafka, inbox_topic, n, rate=2500)
    cfg = {"inbox.batch.max": 300, "kafka.partition.assignment.strategy": strategy}
    a = inboxd({**cfg, "kafka.client.id": "inboxd-a"})
    group = group_of(a)
    a.wait_for_log(r"assigned .*\[3\]", timeout=30)
    prod.start()
    wait_progress(inbox_db, 1000, prod)  # a is consuming
    b = inboxd({**cfg, "kafka.client.id": "inboxd-b"})  # the group moves half of the partitions to b
    b.wait_for_log(r"assigned ", timeout=30)
    a.wait_for_log(r"(revoked|lost) \d+ partitions", timeout=30)
    wait_assignment(kafka, group, inbox_topic, {"inboxd-a", "inboxd-b"})
    wait_progress(inbox_db, 500, prod)
    c = inboxd({**cfg, "kafka.client.id": "inboxd-c"})  # a third: another move
    c.wait_for_log(r"assigned ", timeout=30)
    wait_assignment(kafka, group, inbox_topic, {"inboxd-a", "inboxd-b", "inboxd-c"})
    wait_progress(inbox_db, 500, prod)
    a.kill9()  # a's partitions move to b and c after its session times out
    wait_assignment(kafka, group, inbox_topic, {"inboxd-b", "inboxd-c"})
    assert c.terminate() == 0  # a clean leave: c's partitions move to b at once
    wait_assignment(kafka, group, inbox_topic, {"inboxd-b"}, timeout=30)
    prod.join(120)
    assert not prod.errors, prod.errors[:5]
    wait_count(inbox_db, n, 90)
    check_exactly_once(inbox_db, prod.acked, inbox_topic)
    assert b.is_running()
    # b ended up with every partition.
    b.wait_for_log(r"assigned .*\[0\]", timeout=1, all_runs=True)
    assert b.terminate() == 0


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


# --------------------------------------------------------------------------- offsets


def produce_many(bootstrap: str, topic: str, records) -> list[tuple[int, int]]:
    """Produces (value, headers, partition) records with one producer (acks=all), in order;
    returns their (partition, offset)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    where: list = [None] * len(records)
    errors: list = []

    def cb(i):
        def f(err, msg):
            if err is not None:
                errors.append(err)
            else:
                where[i] = (msg.partition(), msg.offset())
        return f

    for i, (value, headers, part) in enumerate(records):
        p.produce(topic, value=value, headers=headers, partition=part, on_delivery=cb(i))
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors
    return where


def recreate_topic(kafka, topic: str, partitions: int) -> None:
    kafka.delete_topics([topic])
    wait_until(lambda: kafka.partition_count(topic) is None, 30, 0.2, f"topic {topic} deleted")

    def create():
        try:
            kafka.create_topic(topic, partitions)
            return True
        except Exception:  # noqa: BLE001 - "marked for deletion" until the broker is done
            return False
    wait_until(create, 60, 1, f"topic {topic} created again")


def test_recreated_topic_is_never_skipped_silently(inboxd, inbox_db, inbox_topic, stack, kafka):
    """The topic is deleted and created again while inboxd is stopped: its new offsets start
    below the stored positions. Default: inboxd stops (exit 1) naming the partition, both
    offsets and the UPDATE that resets the position, instead of skipping the new messages as
    "already recorded". inbox.on_offset_regression = reset records them."""
    old = produce_many(stack.kafka, inbox_topic,
                       [(f"old {i}".encode(), [("id", f"old-{i}".encode())], i % 4) for i in range(40)])
    d = inboxd()
    wait_count(inbox_db, 40, 30)
    assert d.terminate() == 0
    assert positions(inbox_db, group_of(d)) == {p: 10 for p in range(4)}

    recreate_topic(kafka, inbox_topic, 4)
    new = produce_many(stack.kafka, inbox_topic,
                       [(f"new {i}".encode(), [("id", f"new-{i}".encode())], i % 4) for i in range(12)])
    assert sorted(new) == sorted((p, o) for p in range(4) for o in range(3))
    assert old  # offsets 0..9 per partition before

    d.start()
    assert d.wait_exit(60) == 1, d.log_tail()
    log = d.log_text(all_runs=False)
    m = re.search(r"partition (\S+) \[(\d)\]: Kafka returned offset 0, below the stored position 10: the topic was "
                  r"deleted and recreated", log)
    assert m and m.group(1) == inbox_topic, log[-3000:]
    part = m.group(2)
    assert (f"UPDATE public.inbox_offsets SET next_offset = 0 WHERE consumer_group = '{group_of(d)}' AND "
            f"topic = '{inbox_topic}' AND partition = {part};") in log
    assert "inbox.on_offset_regression = reset" in log
    assert inbox_count(inbox_db) == 40  # nothing recorded, nothing skipped
    assert positions(inbox_db, group_of(d)) == {p: 10 for p in range(4)}

    port = free_port()
    d2 = inboxd({"inbox.on_offset_regression": "reset", "http.listen": f"127.0.0.1:{port}"})
    wait_count(inbox_db, 52, 30)
    with psycopg.connect(inbox_db.conninfo, autocommit=True) as c:
        got = dict(c.execute("SELECT message_id, \"offset\" FROM inbox WHERE message_id LIKE 'new-%'").fetchall())
    assert got == {f"new-{i}": i // 4 for i in range(12)}
    wait_until(lambda: positions(inbox_db, group_of(d)) == {p: 3 for p in range(4)}, 10, 0.2,
               "positions reset to the new offsets")
    d2.wait_for_log(r"below the stored position 10 \(topic recreated or log truncated\); "
                    r"inbox.on_offset_regression = reset: recording the partition from offset 0", timeout=5)
    wait_until(lambda: scrape(port).get("inboxd_offset_regressions_total") == 4, 10, 0.2,
               "inboxd_offset_regressions_total = 4")
    assert d2.terminate() == 0
    # Kafka's committed offsets followed the table down.
    assert kafka_committed(stack.kafka, group_of(d), inbox_topic, 4) == {p: 3 for p in range(4)}


def test_seek_on_assign_records_messages_behind_kafka(inboxd, inbox_db, inbox_topic, stack):
    """A stored position behind Kafka's committed offset (a database restored from a backup):
    inboxd starts at the table's position, so the messages in between are recorded again."""
    prod = BgProducer(stack.kafka, inbox_topic, 200, rate=10000)
    prod.run()
    d = inboxd()
    wait_count(inbox_db, 200, 30)
    assert d.terminate() == 0
    committed = kafka_committed(stack.kafka, group_of(d), inbox_topic, 4)
    assert committed == positions(inbox_db, group_of(d))
    # The restore: rows after offset 20 of each partition are gone, and so are their positions.
    inbox_db.execute('DELETE FROM inbox WHERE "offset" >= 20')
    inbox_db.execute("UPDATE inbox_offsets SET next_offset = 20")
    d.start()
    wait_count(inbox_db, 200, 30)
    check_exactly_once(inbox_db, prod.acked, inbox_topic)
    assert positions(inbox_db, group_of(d)) == committed
    assert d.terminate() == 0
    assert kafka_committed(stack.kafka, group_of(d), inbox_topic, 4) == committed


# --------------------------------------------------------------------------- refused messages


def test_long_message_id_is_hashed(inboxd, inbox_db, inbox_topic, stack):
    """An id header too long for the unique index (SQLSTATE 54000 before) is stored as
    sha256:<hex>; copies of it still deduplicate."""
    import hashlib
    import secrets

    long_id = secrets.token_urlsafe(4000).encode()  # random: PostgreSQL cannot compress it
    recs = [(b"a", [("id", long_id)], 0), (b"b", [("id", long_id)], 1), (b"c", [("id", b"short")], 2)]
    produce_many(stack.kafka, inbox_topic, recs)
    d = inboxd()
    wait_until(lambda: sum(positions(inbox_db, group_of(d)).values()) == 3, 30, 0.2, "3 records consumed")
    ids = sorted(r[0] for r in inbox_db.execute("SELECT message_id FROM inbox"))
    assert ids == sorted(["sha256:" + hashlib.sha256(long_id).hexdigest(), "short"])
    assert d.is_running()
    assert d.terminate() == 0
    d.wait_for_log(r"stopped: recorded 2 messages, 1 duplicates skipped", all_runs=True, timeout=1)


def test_refused_message_is_named(inboxd, inbox_db, inbox_topic, stack):
    """PostgreSQL refuses one message for good (here a CHECK constraint): inboxd records the
    messages before it, exits 1 naming it (topic, partition, offset, id) and the UPDATE that
    skips it; after that UPDATE it goes on with the rest."""
    inbox_db.execute("ALTER TABLE inbox ADD CONSTRAINT no_poison CHECK (payload IS DISTINCT FROM 'poison'::bytea)")
    recs = [(b"good", [("id", f"p0-{i}".encode())], 0) for i in range(5)]
    recs.append((b"poison", [("id", b"the-poison")], 0))
    recs += [(b"good", [("id", f"p0-{i}".encode())], 0) for i in range(6, 9)]
    recs += [(b"good", [("id", f"p1-{i}".encode())], 1) for i in range(4)]
    produce_many(stack.kafka, inbox_topic, recs)
    d = inboxd()
    assert d.wait_exit(30) == 1, d.log_tail()
    log = d.log_text()
    assert re.search(rf"PostgreSQL refuses the message at {re.escape(inbox_topic)} \[0\] offset 5 \(message id "
                     r"'the-poison', 10 bytes\): new row for relation \"inbox\" violates check constraint "
                     r"\"no_poison\" \(SQLSTATE 23514\); the \d+ messages before it in the batch are recorded", log), \
        log[-3000:]
    fix = re.search(r"stop inboxd and run (UPDATE public\.inbox_offsets SET next_offset = 6 WHERE .*;)", log)
    assert fix, log[-3000:]
    # Everything of partition 0 before it is recorded, and its position stops right there.
    ids = {r[0] for r in inbox_db.execute("SELECT message_id FROM inbox")}
    assert {f"p0-{i}" for i in range(5)} <= ids and "the-poison" not in ids and "p0-6" not in ids
    assert positions(inbox_db, group_of(d))[0] == 5

    inbox_db.execute(fix.group(1))
    d.start()
    wait_count(inbox_db, 12, 30)
    ids = {r[0] for r in inbox_db.execute("SELECT message_id FROM inbox")}
    assert ids == {f"p0-{i}" for i in range(9) if i != 5} | {f"p1-{i}" for i in range(4)}
    assert d.is_running()
    assert d.terminate() == 0


# --------------------------------------------------------------------------- reconnects


def lock_offsets(db):
    """A connection holding ACCESS EXCLUSIVE on inbox_offsets (inboxd's writes wait for it),
    and the positions as of the lock; release with .rollback(), close with .close()."""
    c = psycopg.connect(db.conninfo)
    c.execute("LOCK TABLE inbox_offsets IN ACCESS EXCLUSIVE MODE")
    pos = dict(c.execute("SELECT partition, next_offset FROM inbox_offsets").fetchall())
    return c, pos


def test_retryable_error_while_connecting_reconnects(inboxd, inbox_db, inbox_topic, stack):
    """Preparing the statements runs into lock_timeout (55P03, retryable) at startup: inboxd
    holds and connects again, instead of going on with a connection that lacks its prepared
    statements (which ended in 26000 and exit 1). Meanwhile the group assigns the partitions
    and they start at Kafka's committed offsets, which are behind the table here: those
    redeliveries are dropped until the partitions seek to the stored positions (no offset
    regression is reported), and nothing is recorded twice."""
    from confluent_kafka import Consumer, TopicPartition

    first = BgProducer(stack.kafka, inbox_topic, 50, rate=10000)
    first.run()
    d = inboxd({"postgres.conninfo": inbox_db.conninfo + " options='-c lock_timeout=300'",
                "reconnect.backoff.max.ms": 500})
    wait_count(inbox_db, 50, 30)
    assert d.terminate() == 0
    k = Consumer({"bootstrap.servers": stack.kafka, "group.id": group_of(d), "enable.auto.commit": False})
    k.commit(offsets=[TopicPartition(inbox_topic, p, 0) for p in range(4)], asynchronous=False)
    k.close()
    inbox_db.execute("DELETE FROM inbox")  # only the positions keep the first 50 out

    c, _ = lock_offsets(inbox_db)
    try:
        d.start()
        d.wait_for_log(r"PostgreSQL is unavailable \(cannot prepare the statements .*lock timeout", timeout=30)
        d.wait_for_log(r"assigned 4 partitions; their positions are read when PostgreSQL is back", timeout=30)
        second = BgProducer(stack.kafka, inbox_topic, 50, rate=10000)
        second.run()
        # several attempts while the lock is held
        wait_until(lambda: d.log_text(all_runs=False).count("PostgreSQL is still unavailable") >= 3
                   or not d.is_running(), 30, 0.1, "3 more failed attempts to prepare the statements")
        assert d.is_running(), d.log_tail()
    finally:
        c.rollback()
        c.close()
    d.wait_for_log(r"PostgreSQL is back: consumption resumed", timeout=30)
    wait_count(inbox_db, 50, 30)
    check_exactly_once(inbox_db, second.acked, inbox_topic)
    assert d.is_running()
    assert d.terminate() == 0


def test_read_only_database_reconnects(inboxd, inbox_db, inbox_topic, stack):
    """A read-only session (a standby after a failover: SQLSTATE 25006) is dropped, not kept:
    once the database accepts writes again, inboxd's next connection writes."""
    d = inboxd({"reconnect.backoff.max.ms": 500})
    first = BgProducer(stack.kafka, inbox_topic, 20, rate=10000)
    first.run()
    wait_count(inbox_db, 20, 30)
    inbox_db.execute(f"ALTER DATABASE {inbox_db.dbname} SET default_transaction_read_only = on")
    try:
        # inboxd's connection goes (as in a failover); its next session is read-only.
        inbox_db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND application_name = 'inboxd'")
        second = BgProducer(stack.kafka, inbox_topic, 20, rate=10000)
        second.run()
        d.wait_for_log(r"read-only transaction", timeout=30)
        time.sleep(2)
        assert inbox_count(inbox_db) == 20
    finally:
        inbox_db.execute(f"ALTER DATABASE {inbox_db.dbname} RESET default_transaction_read_only")
    wait_count(inbox_db, 40, 30)
    acked = {**first.acked, **second.acked}
    check_exactly_once(inbox_db, acked, inbox_topic)
    assert d.is_running()
    assert d.terminate() == 0


# --------------------------------------------------------------------------- lag and commits


@pytest.mark.timeout(180)
def test_lag_and_kafka_commits_while_writes_are_blocked(inboxd, inbox_db, inbox_topic, stack):
    """While inboxd cannot write (inbox_offsets locked, writes run into lock_timeout), it holds:
    Kafka's committed offsets stay frozen and never pass the table's positions, and the lag
    metric shows the backlog; afterwards everything is recorded, the lag returns to 0 and the
    committed offsets catch up. The periodic progress line carries the rate and the lag."""
    port = free_port()
    d = inboxd({"postgres.conninfo": inbox_db.conninfo + " options='-c lock_timeout=300'",
                "http.listen": f"127.0.0.1:{port}", "inbox.commit.interval.ms": 200,
                "reconnect.backoff.max.ms": 500})
    lag = f'inboxd_consumer_lag_messages{{topic="{inbox_topic}"}}'
    first = BgProducer(stack.kafka, inbox_topic, 400, rate=10000)
    first.run()
    wait_count(inbox_db, 400, 30)
    wait_until(lambda: scrape(port).get(lag) == 0, 20, 0.2, "lag 0")

    c, table = lock_offsets(inbox_db)
    try:
        prod = BgProducer(stack.kafka, inbox_topic, 1000, rate=250)
        prod.start()
        d.wait_for_log(r"PostgreSQL is unavailable", timeout=30)
        time.sleep(1)
        samples = []
        for _ in range(4):
            samples.append(kafka_committed(stack.kafka, group_of(d), inbox_topic, 4))
            time.sleep(0.5)
        wait_until(lambda: scrape(port).get(lag, 0) > 0, 20, 0.2, "lag > 0 while holding")
        assert scrape(port)["inboxd_consuming"] == 0
    finally:
        c.rollback()
        c.close()
    assert all(s == samples[0] for s in samples), samples  # frozen during the outage
    for p, off in samples[0].items():
        assert off <= table.get(p, -1), (p, off, table)  # never past the database
    prod.join(60)
    assert not prod.errors
    wait_count(inbox_db, 1400, 60)
    check_exactly_once(inbox_db, {**first.acked, **prod.acked}, inbox_topic)
    wait_until(lambda: scrape(port).get(lag) == 0, 30, 0.2, "lag back to 0")
    pos = positions(inbox_db, group_of(d))
    wait_until(lambda: kafka_committed(stack.kafka, group_of(d), inbox_topic, 4) == pos, 30, 0.5,
               "committed offsets caught up with the table")
    d.wait_for_log(r"recorded \d+ messages \(\d+ msgs/s, \d+ duplicates skipped\) in the last \d+ s; "
                   r"consumer lag \d+ messages; \d+ in total", timeout=15)
    assert d.terminate() == 0


def test_lag_metric_is_zeroed_when_the_partitions_go_away(inboxd, inbox_db, inbox_topic, stack, kafka):
    """Issue 6: a topic's lag series does not freeze at its last value when its partitions
    leave the assignment (here the assignment becomes empty: the topic is deleted while
    inboxd holds with a backlog)."""
    port = free_port()
    lag = f'inboxd_consumer_lag_messages{{topic="{inbox_topic}"}}'
    d = inboxd({"postgres.conninfo": inbox_db.conninfo + " options='-c lock_timeout=300'",
                "http.listen": f"127.0.0.1:{port}", "reconnect.backoff.max.ms": 500,
                "kafka.topic.metadata.refresh.interval.ms": 1000})
    BgProducer(stack.kafka, inbox_topic, 50, rate=10000).run()
    wait_count(inbox_db, 50, 30)
    c, _ = lock_offsets(inbox_db)
    try:
        BgProducer(stack.kafka, inbox_topic, 200, rate=10000).run()
        d.wait_for_log(r"PostgreSQL is unavailable", timeout=30)
        wait_until(lambda: scrape(port).get(lag, 0) > 0, 20, 0.2, "lag > 0 while holding")
        kafka.delete_topics([inbox_topic])
        d.wait_for_log(r"(revoked|lost) 4 partitions", timeout=60)
        wait_until(lambda: scrape(port).get(lag) == 0, 20, 0.2, "the lag of the revoked topic at 0")
        assert d.is_running()
    finally:
        c.rollback()
        c.close()
    # No SIGTERM: with a subscribed topic deleted, librdkafka 2.0.2's rd_kafka_destroy() hangs
    # (the build before these changes too); the fixture kills it.


# --------------------------------------------------------------------------- configuration


def test_startup_errors(inboxd, inbox_db, inbox_topic, inboxd_bin, stack):
    cases = [
        ({"inbox.table": "public.nope"}, r"inbox table public\.nope does not exist in database"),
        ({"deliver.url": "127.0.0.1:1/inbox"}, r"invalid deliver\.url '127\.0\.0\.1:1/inbox'"),
        ({"kafka.enable.auto.commit": "true"}, r"kafka\.enable\.auto\.commit=true is not allowed"),
        ({"kafka.isolation.level": "read_uncommitted"}, r"kafka\.isolation\.level=read_uncommitted is not allowed"),
        ({"inbox.topics": None}, r"inbox\.topics is not set"),
        ({"inbox.retention": "soon"}, r"invalid value 'soon' for inbox\.retention"),
        ({"kafka.no.such.property": "1"}, r"unknown config key 'kafka\.no\.such\.property' \(\S+:\d+\): librdkafka has no property"),
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


def test_kafka_unreachable_at_startup(inboxd, inbox_db, inbox_topic, stack):
    """No broker answers: inboxd waits in short slices (its loop heartbeat and readiness go on;
    SIGTERM stops it at once), then exits 1, an outage systemd restarts (not 2, a
    configuration error it would not)."""
    port = free_port()
    d = inboxd({"kafka.bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 4000,
                "http.listen": f"127.0.0.1:{port}"})
    d.wait_for_log("serving /metrics", timeout=10)
    wait_until(lambda: http_get(port, "/readyz") == (503, "not ready: starting: waiting for Kafka\n"), 5, 0.1,
               "/readyz says it waits for Kafka")
    assert http_get(port, "/healthz")[0] == 200
    assert d.wait_exit(30) == 1, d.log_tail()
    assert re.search(r"Kafka is not reachable at bootstrap\.servers=127\.0\.0\.1:1 \(.*\): start the broker or fix "
                     r"kafka\.bootstrap\.servers \(gave up after startup\.timeout\.ms=4000\)", d.log_text()), d.log_tail()

    d2 = inboxd({"kafka.bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 60000})
    d2.wait_for_log("consuming|starting", timeout=10)
    time.sleep(1.5)
    d2.signal(signal.SIGTERM)
    assert d2.wait_exit(5) == 0, d2.log_tail()
    assert "stopped before consuming" in d2.log_text()


def test_environment_and_print_config(inboxd, inbox_db, inbox_topic, stack):
    d = inboxd({"inbox.topics": None, "postgres.conninfo": None},
               env={"INBOXD_INBOX_TOPICS": inbox_topic,
                    "INBOXD_POSTGRES_CONNINFO": inbox_db.conninfo + " password=s3cret"},
               args=["--print-config"])
    assert d.wait_exit(10) == 0
    out = d.log_text()
    assert f"inbox.topics = {inbox_topic}" in out
    assert "password=***" in out and "s3cret" not in out
