"""delivery.guarantee = exactly-once against the real broker (docs/guarantees.md, "Exactly
once"): Kafka transactions around whole PostgreSQL transactions with a checkpoint record, the
checkpoint read back after a restart so that what Kafka has is skipped even when the slot is
behind, fencing of a second instance and of a paused zombie, faults of the broker, and the paths
that stay at least once (backfill, slot recovery). Consumers read with isolation.level =
read_committed; read_uncommitted readers show what was written and aborted."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time

import pytest

from harness import (
    OrderedLoad,
    check_exactly_once_in_order,
    lsn_to_int,
    per_key_counts,
    read_events,
    setup_ordered,
    wait_until,
)

# The checkpoint's skip and the at-least-once paths run with both output plugins; the long fault
# tests and dead-lettering (its values are wal2json records) with wal2json only.
PLUGINS = ("wal2json", "pgoutput")


def eos_config(topic_prefix: str, **extra) -> dict:
    cfg = {
        "delivery.guarantee": "exactly-once",
        "delivery.checkpoint.topic": f"{topic_prefix}.ckpt",
        "status.interval.ms": 200,
        "reconnect.backoff.max.ms": 1000,
    }
    cfg.update(extra)
    return cfg


def committed(kafka, topic: str, n: int | None = None, timeout: float = 30, settle: float | None = None):
    return kafka.consume(topic, n=n, timeout=timeout, settle=settle, isolation="read_committed")


def checkpoints(kafka, topic_prefix: str) -> list[dict]:
    """The committed checkpoint records, oldest first."""
    return [json.loads(r.value) | {"key": r.key.decode()}
            for r in committed(kafka, f"{topic_prefix}.ckpt", settle=2)]


def written_records(bootstrap: str, topic: str) -> int:
    """Records written to topic (high watermarks: also those of open or aborted transactions)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks", "isolation.level": "read_uncommitted"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in parts)
    finally:
        c.close()


def seqs(records) -> list[int]:
    return [json.loads(r.value)["seq"] for r in records]


def test_publishes_in_transactions_with_a_checkpoint(db, kafka, outboxd, topic_prefix):
    """Events of committed transactions reach read_committed consumers once, in order; every
    Kafka transaction carries a checkpoint (key: the transactional.id) naming the end of its
    last PostgreSQL commit on this server; the slot is confirmed after the commits."""
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, 1)
    p = outboxd(eos_config(topic_prefix))
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    with db.connect() as c:
        for t in range(10):
            with c.transaction():
                for i in range(5):
                    db.insert_event("order", "k", "e", {"seq": t * 5 + i}, conn=c)
    end = db.current_wal_lsn()
    got = committed(kafka, topic, n=50)
    assert seqs(got) == list(range(50))
    slot = f"{db.dbname}_slot"
    db.wait_slot_confirmed(slot, end, timeout=30)
    cks = checkpoints(kafka, topic_prefix)
    assert cks, "no checkpoint record"
    last = cks[-1]
    assert last["key"] == f"outboxd-{db.dbname}-{slot}"
    assert last["database"] == db.dbname and last["slot"] == slot and last["timeline"] == 1
    assert last["system_id"] == db.scalar("SELECT system_identifier::text FROM pg_control_system()")
    assert lsn_to_int(last["lsn"]) >= lsn_to_int(end) - 200  # the last commit's end (end: after it)
    # read_uncommitted sees nothing more: no transaction was aborted.
    assert len(kafka.consume(topic, n=None, settle=1)) == 50
    assert p.terminate() == 0


def test_restart_skips_what_kafka_has_while_the_slot_is_behind(db, kafka, outboxd, topic_prefix):
    """With the slot held far behind Kafka (a long status interval), a kill -9 and a restart
    re-send every transaction from the slot's position; the checkpoint makes the relay skip
    them: nothing is produced twice, not even into aborted transactions."""
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, 1)
    cfg = eos_config(topic_prefix, **{"status.interval.ms": 3600000, "status.confirm.ms": 3600000,
                                       "progress.interval.ms": 3600000})
    p = outboxd(cfg)
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    slot = f"{db.dbname}_slot"
    before = db.slot_info(slot)["confirmed_flush_lsn"]
    for i in range(30):
        db.insert_event("order", "k", "e", {"seq": i})
    assert seqs(committed(kafka, topic, n=30)) == list(range(30))
    assert db.slot_info(slot)["confirmed_flush_lsn"] == before, "the slot moved: the test proves nothing"
    p.kill9()
    p.start()
    p.wait_for_log(r"exactly-once: transactional.id .* ready .*checkpoint", timeout=60)
    for i in range(30, 40):
        db.insert_event("order", "k", "e", {"seq": i})
    assert seqs(committed(kafka, topic, n=40)) == list(range(40))
    m = p.wait_for_log(r"skipped (\d+) transactions that Kafka already had", timeout=30)
    assert int(m.group(1)) >= 30  # and the transactions without events among them
    # Not even written into an aborted transaction: read_uncommitted sees each record once.
    assert seqs(kafka.consume(topic, n=None, settle=2)) == list(range(40))


AGG = "agg"


@pytest.mark.plugins("wal2json")
@pytest.mark.fault
@pytest.mark.timeout(420)
def test_kill9_at_random_moments_exactly_once(stack, db, kafka, outboxd, topic_prefix):
    """outboxd is SIGKILLed at random moments while a 30k-event stream commits, and restarted
    each time: a read_committed consumer sees every committed event exactly once, per key in
    commit order (confirming only with the 1 s status update keeps the slot behind the
    checkpoints, so restarts re-read transactions that Kafka has and must skip)."""
    seed = int(os.environ.get("OUTBOXD_FAULTS_SEED") or random.randrange(1 << 30))
    print(f"kill9 exactly-once: seed {seed} (replay with OUTBOXD_FAULTS_SEED={seed})")
    rnd = random.Random(seed)
    setup_ordered(db)
    topic = f"{topic_prefix}.{AGG}"
    kafka.create_topic(topic, 3)
    p = outboxd(eos_config(topic_prefix, **{"status.interval.ms": 1000, "status.confirm.ms": 1000}))
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    load = OrderedLoad(db, AGG, events=30000, chunk=150, pause=0.1).start()
    kills = 0
    while not load.done():
        time.sleep(rnd.uniform(0.3, 2.5))
        if load.done():
            break
        assert p.is_running(), f"outboxd exited ({p.returncode}):\n{p.log_tail()}"
        p.kill9()
        kills += 1
        p.start()
    load.stop()
    counts = per_key_counts(db)
    total = sum(counts.values())
    end = db.current_wal_lsn()
    db.wait_slot_confirmed(f"{db.dbname}_slot", end, timeout=180)
    assert p.is_running()
    events = read_events(stack.kafka, topic, "read_committed", expect=total)
    written = read_events(stack.kafka, topic, "read_uncommitted", expect=total, settle=1.0)
    check_exactly_once_in_order(events, counts)
    log = p.log_text()
    skipped = sum(int(n) for n in re.findall(r"skipped (\d+) transactions that Kafka already had", log))
    print(f"kill9 exactly-once: {kills} kills, {total} events; read_committed saw {len(events)}, "
          f"read_uncommitted {len(written)} (aborted or replayed: {len(written) - len(events)}); "
          f"restarts skipped {skipped} transactions Kafka already had")
    assert kills >= 5, "the stream ended before outboxd was killed often enough: the test proved little"
    assert skipped > 0, "no restart had to skip anything: the test proved little"


@pytest.mark.plugins("wal2json")
@pytest.mark.fault
@pytest.mark.timeout(300)
def test_kill9_while_draining_a_backlog(stack, db, kafka, outboxd, topic_prefix):
    """A backlog drained in long Kafka transactions (open 1.5-2 s) with status updates every
    100 ms: the slot must never be confirmed past a Kafka transaction that has not committed,
    or a kill -9 loses what it held. Killed three times during the drain."""
    seed = int(os.environ.get("OUTBOXD_FAULTS_SEED") or random.randrange(1 << 30))
    print(f"kill9 backlog: seed {seed} (replay with OUTBOXD_FAULTS_SEED={seed})")
    rnd = random.Random(seed)
    setup_ordered(db)
    topic = f"{topic_prefix}.{AGG}"
    kafka.create_topic(topic, 3)
    cfg = eos_config(topic_prefix, **{"status.interval.ms": 100, "delivery.batch.max.ms": 2000,
                                      "delivery.batch.linger.ms": 1500, "delivery.batch.max.transactions": 1000000,
                                      "relay.max.inflight.events": 100000})
    p = outboxd(cfg)
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    p.terminate()
    OrderedLoad(db, AGG, events=60000, chunk=5000, pause=0).start().stop()
    kills = 0
    for _ in range(3):
        base = written_records(stack.kafka, topic)
        p.start()
        p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
        # Kill while a transaction holds written records (each stays open 1.5 s or more).
        deadline = time.monotonic() + 20
        while written_records(stack.kafka, topic) < base + 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        if time.monotonic() >= deadline:
            break  # nothing left to drain (or lost: the check below tells)
        time.sleep(rnd.uniform(0, 0.5))
        p.kill9()
        kills += 1
    if not p.is_running():
        p.start()
    counts = per_key_counts(db)
    total = sum(counts.values())
    db.wait_slot_confirmed(f"{db.dbname}_slot", db.current_wal_lsn(), timeout=120)
    events = read_events(stack.kafka, topic, "read_committed", expect=total)
    check_exactly_once_in_order(events, counts)
    written = read_events(stack.kafka, topic, "read_uncommitted", expect=total, settle=1.0)
    print(f"kill9 backlog: {kills} kills, {total} events; read_uncommitted {len(written)} "
          f"(aborted: {len(written) - total})")
    assert kills >= 2 and len(written) > total, "kills did not hit open Kafka transactions: the test proved nothing"


@pytest.mark.plugins("wal2json")
@pytest.mark.fault
@pytest.mark.timeout(300)
def test_zombie_is_fenced_and_the_standby_takes_over(stack, db, kafka, outboxd, topic_prefix):
    """The active instance is paused (SIGSTOP) while events flow; its walsender times out, the
    standby takes the slot, fences it (init_transactions) and publishes; the zombie resumed
    (SIGCONT) still has WAL in its socket and records in its producer: nothing it sends becomes
    visible, it says it was fenced and stops with exit code 1."""
    setup_ordered(db)
    topic = f"{topic_prefix}.{AGG}"
    kafka.create_topic(topic, 3)
    cfg = eos_config(topic_prefix, **{
        # The paused instance's walsender gives up after 3 s: the slot is free for the standby.
        "postgres.conninfo": db.conninfo + " options='-c wal_sender_timeout=3000'",
        "status.interval.ms": 500,
    })
    a = outboxd(cfg)
    a.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    b = outboxd(cfg)
    b.wait_for_log("standing by", timeout=30)
    load = OrderedLoad(db, AGG, events=10**9, chunk=20, pause=0.02).start()
    time.sleep(2)
    a.signal(signal.SIGSTOP)
    paused_at = load.written
    b.wait_for_log(r"exactly-once: transactional.id .* ready", timeout=60)
    wait_until(lambda: load.written > paused_at + 2000, 60, 0.1, "the standby publishing")
    a.signal(signal.SIGCONT)
    assert a.wait_exit(60) == 1, a.log_tail()
    assert re.search(r"exactly-once: .*fenced", a.log_text()), a.log_tail()
    time.sleep(1)
    load.stop_now()
    counts = per_key_counts(db)
    total = sum(counts.values())
    db.wait_slot_confirmed(f"{db.dbname}_slot", db.current_wal_lsn(), timeout=120)
    assert b.is_running()
    events = read_events(stack.kafka, topic, "read_committed", expect=total)
    check_exactly_once_in_order(events, counts)
    written = read_events(stack.kafka, topic, "read_uncommitted", expect=total, settle=1.0)
    fenced = next(line for line in a.log_text().splitlines() if re.search("ERROR: exactly-once.*fenced", line))
    print(f"zombie: {total} events exactly once; {len(written) - total} records written and never visible; "
          f"the zombie: {fenced}")


def finish_and_check(stack, db, p, load, topic: str, what: str) -> None:
    """Stops the load, waits for the relay to confirm the end of the WAL and checks that a
    read_committed reader sees every committed event once, per key in order."""
    load.stop_now()
    counts = per_key_counts(db)
    total = sum(counts.values())
    db.wait_slot_confirmed(f"{db.dbname}_slot", db.current_wal_lsn(), timeout=180)
    assert p.is_running(), p.log_tail()
    events = read_events(stack.kafka, topic, "read_committed", expect=total)
    check_exactly_once_in_order(events, counts)
    written = read_events(stack.kafka, topic, "read_uncommitted", expect=total, settle=1.0)
    print(f"{what}: {total} events exactly once; {len(written) - total} records written in aborted transactions")


@pytest.mark.plugins("wal2json")
@pytest.mark.fault
@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["kill", "stop"])
def test_broker_restart_in_the_middle_of_a_transaction(stack, db, kafka, outboxd, topic_prefix, faults, how):
    """The broker is killed (or stopped) while Kafka transactions are open (each lingers 500 ms
    while events flow) and started again: outboxd goes on by itself; every committed event is
    seen once, per key in order."""
    setup_ordered(db)
    topic = f"{topic_prefix}.{AGG}"
    kafka.create_topic(topic, 3)
    p = outboxd(eos_config(topic_prefix, **{"delivery.batch.linger.ms": 500, "delivery.batch.max.ms": 1000}))
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    load = OrderedLoad(db, AGG, events=10**9, chunk=20, pause=0.02).start()
    base = written_records(stack.kafka, topic)
    wait_until(lambda: written_records(stack.kafka, topic) >= base + 500, 60, 0.05, "records being written")
    faults.kafka_kill() if how == "kill" else faults.kafka_stop()
    time.sleep(2)
    faults.kafka_start()
    mark = load.written
    wait_until(lambda: load.written > mark + 2000, 60, 0.1, "more events after the broker is back")
    finish_and_check(stack, db, p, load, topic, f"broker {how}")


@pytest.mark.plugins("wal2json")
@pytest.mark.fault
@pytest.mark.timeout(300)
def test_transaction_timeout_exceeded_while_kafka_is_down(stack, db, kafka, outboxd, topic_prefix, faults):
    """Kafka stays down three times longer than transaction.timeout.ms while a Kafka transaction
    is open and PostgreSQL keeps committing: the broker aborts the transaction when it is back,
    outboxd replays it under a new producer and goes on by itself; every committed event is
    seen once, per key in order."""
    setup_ordered(db)
    topic = f"{topic_prefix}.{AGG}"
    kafka.create_topic(topic, 3)
    p = outboxd(eos_config(topic_prefix, **{"kafka.transaction.timeout.ms": 5000, "delivery.batch.linger.ms": 500,
                                             "relay.stall.timeout.ms": 0}))
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    load = OrderedLoad(db, AGG, events=10**9, chunk=20, pause=0.02).start()
    base = written_records(stack.kafka, topic)
    wait_until(lambda: written_records(stack.kafka, topic) >= base + 500, 60, 0.05, "records being written")
    faults.kafka_stop()
    time.sleep(15)
    faults.kafka_start()
    mark = load.written
    wait_until(lambda: load.written > mark + 2000, 60, 0.1, "more events after the broker is back")
    finish_and_check(stack, db, p, load, topic, "transaction timeout")


@pytest.mark.plugins("wal2json")
def test_dead_letter_keeps_working(db, kafka, outboxd, topic_prefix):
    """outbox.on_invalid = dead-letter under exactly-once: an event the router refuses and one
    the client refuses go to the dead-letter topic inside the Kafka transaction; one the broker
    refuses (after it was produced) makes that transaction abort, and its replay dead-letters
    it. read_committed readers see each valid event and each dead-letter record once."""
    small, order, dead = f"{topic_prefix}.small", f"{topic_prefix}.order", f"{topic_prefix}.dead"
    kafka.create_topic(small, 1, config={"max.message.bytes": "2000"})
    kafka.create_topic(order, 1)
    p = outboxd(eos_config(topic_prefix, **{"outbox.on_invalid": "dead-letter", "outbox.dead_letter.topic": dead,
                                             "kafka.message.max.bytes": "20000"}))
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    ids = {}
    with db.connect() as c, c.transaction():  # one PostgreSQL transaction: one Kafka transaction
        ids["ok1"] = db.insert_event("order", "k", "e", {"seq": 1}, conn=c)
        ids["badtopic"] = db.insert_event("bad topic!", "k", "e", {"seq": 2}, conn=c)
        ids["client_big"] = db.insert_event("order", "k", "e", {"big": "x" * 30000}, conn=c)
        ids["broker_big"] = db.insert_event("small", "k", "e", {"big": "y" * 5000}, conn=c)
        ids["ok2"] = db.insert_event("order", "k", "e", {"seq": 3}, conn=c)
    ids["ok3"] = db.insert_event("order", "k", "e", {"seq": 4})
    end = db.current_wal_lsn()
    db.wait_slot_confirmed(f"{db.dbname}_slot", end, timeout=60)
    got = committed(kafka, order, settle=2)
    assert seqs(got) == [1, 3, 4]
    dl = committed(kafka, dead, settle=2)
    by_id = {(r.header("id") or b"").decode(): r for r in dl}
    assert sorted(by_id) == sorted([ids["badtopic"], ids["client_big"], ids["broker_big"]]) and len(dl) == 3
    assert b"refused it for topic" in by_id[ids["broker_big"]].header("outboxd.error")
    assert int(by_id[ids["broker_big"]].header("outboxd.value.size")) > 5000
    assert not committed(kafka, small, settle=1)
    assert re.search(r"event .* was refused by Kafka for topic .*small.*: the Kafka transaction is aborted and "
                     r"replayed with the event dead-lettered", p.log_text())
    assert p.is_running()


def test_backfill_is_at_least_once_and_says_so(db, kafka, outboxd, topic_prefix):
    """A backfill under exactly-once publishes the existing rows in Kafka transactions, logs
    that it is at least once, then streams exactly once."""
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, 1)
    for i in range(20):
        db.insert_event("order", "k", "e", {"seq": i})
    p = outboxd(eos_config(topic_prefix, **{"outbox.backfill.where": "true", "outbox.backfill.order": "created_at, id",
                                             "delivery.batch.max.transactions": 7}))
    p.wait_for_log(r"backfill: at least once even with delivery.guarantee = exactly-once", timeout=60)
    p.wait_for_log(r"streaming slot", timeout=60)
    for i in range(20, 30):
        db.insert_event("order", "k", "e", {"seq": i})
    assert seqs(committed(kafka, topic, settle=3)) == list(range(30))


def test_slot_recovery_is_at_least_once_and_says_so(db, kafka, outboxd, topic_prefix):
    """A slot lost while outboxd is stopped is recovered under exactly-once too: the rows the
    progress record cannot rule out are republished (at least once, said in the log), then
    streaming goes on exactly once."""
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, 1)
    slot = f"{db.dbname}_slot"
    p = outboxd(eos_config(topic_prefix, **{"progress.interval.ms": 200}))
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    for i in range(10):
        db.insert_event("order", "k", "e", {"seq": i})
    db.wait_slot_confirmed(slot, db.current_wal_lsn(), timeout=30)
    time.sleep(1)  # the progress record follows
    assert p.terminate() == 0
    db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    for i in range(10, 20):
        db.insert_event("order", "k", "e", {"seq": i})
    p.start()
    p.wait_for_log(r"recovery: at least once even with delivery.guarantee = exactly-once", timeout=60)
    p.wait_for_log(r"exactly-once: transactional.id .* ready .*checkpoint", timeout=60)
    for i in range(20, 30):
        db.insert_event("order", "k", "e", {"seq": i})
    got = seqs(committed(kafka, topic, settle=3))
    assert sorted(set(got)) == list(range(30)), got  # nothing lost
    first = sorted(set(got), key=got.index)
    assert first == list(range(30))  # first arrivals in order
    assert got[-10:] == list(range(20, 30))  # the stream after the recovery: once each


def test_sigterm_commits_the_open_transaction_and_confirms(db, kafka, outboxd, topic_prefix):
    """SIGTERM while a Kafka transaction lingers open: it is committed, the slot confirmed to
    its end, exit 0; the next start has nothing to skip or publish again."""
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, 1)
    p = outboxd(eos_config(topic_prefix, **{"delivery.batch.linger.ms": 60000, "delivery.batch.max.ms": 60000}))
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    for i in range(10):
        db.insert_event("order", "k", "e", {"seq": i})
    end = db.current_wal_lsn()
    wait_until(lambda: written_records(kafka.bootstrap, topic) >= 10, 30, 0.05, "records written")
    assert committed(kafka, topic, settle=1) == []  # open: nothing visible yet
    assert p.terminate() == 0
    assert seqs(committed(kafka, topic, settle=2)) == list(range(10))
    assert lsn_to_int(db.slot_info(f"{db.dbname}_slot")["confirmed_flush_lsn"]) >= lsn_to_int(end)
    p.start()
    p.wait_for_log("exactly-once: transactional.id .* ready", timeout=60)
    db.insert_event("order", "k", "e", {"seq": 10})
    wait_until(lambda: written_records(kafka.bootstrap, topic) >= 11, 30, 0.05, "the new record written")
    assert p.terminate() == 0
    assert seqs(committed(kafka, topic, settle=2)) == list(range(11))
    assert seqs(kafka.consume(topic, settle=1)) == list(range(11))  # nothing written twice
