"""delivery.guarantee = exactly-once against the real broker (docs/guarantees.md, "Exactly
once"): Kafka transactions around whole PostgreSQL transactions with a checkpoint record, the
checkpoint read back after a restart so that what Kafka has is skipped even when the slot is
behind, fencing of a second instance and of a paused zombie, faults of the broker, and the paths
that stay at least once (backfill, slot recovery). Consumers read with isolation.level =
read_committed; read_uncommitted readers show what was written and aborted."""

from __future__ import annotations

import json
import re

import pytest

from harness import lsn_to_int


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
    cfg = eos_config(topic_prefix, **{"status.interval.ms": 3600000, "progress.interval.ms": 3600000})
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
