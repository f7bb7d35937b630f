"""outbox.cleanup = delete: published rows are deleted by primary key once the slot was
confirmed past them; rows whose events Kafka has not acknowledged stay. Against the real
PostgreSQL and Kafka."""

from __future__ import annotations

import time

from harness import free_port, wait_metric, wait_until

# Every test runs with both output plugins (conftest.py: pytest_generate_tests).
PLUGINS = ("wal2json", "pgoutput")


def _count(db):
    return db.scalar("SELECT count(*) FROM outbox")


def test_cleanup_deletes_only_confirmed_rows(db, kafka, outboxd, faults, topic_prefix):
    topic = f"{topic_prefix}.order"
    kafka.create_topic(topic, partitions=3)
    port = free_port()
    p = outboxd({"outbox.cleanup": "delete", "status.interval.ms": "200", "http.listen": f"127.0.0.1:{port}"})
    p.wait_for_log("streaming slot", timeout=30)
    ids = [db.insert_event("order", f"k{i % 5}", "e", {"i": i}) for i in range(300)]
    recs = kafka.consume(topic, n=300, timeout=60)
    assert {r.header("id").decode() for r in recs} == set(ids)
    wait_until(lambda: _count(db) == 0, 30, 0.2, "published rows deleted")

    # Kafka down: new rows are not acknowledged, so they must stay in the table.
    faults.kafka_stop()
    held = [db.insert_event("order", "k", "e", {"held": i}) for i in range(10)]
    # outboxd has read the 10 rows and handed them to Kafka, which cannot acknowledge them;
    # then a few status updates (every 200 ms) pass, after which a wrong delete would show.
    wait_metric(port, "outboxd_events_in_flight", lambda v: v == 10, timeout=30)
    time.sleep(1)
    left = {r[0] for r in db.execute("SELECT id::text FROM outbox")}
    assert set(held) <= left, "a row was deleted before Kafka acknowledged its event"
    faults.kafka_start()
    got = kafka.consume(topic, n=310, timeout=90)
    assert set(held) <= {r.header("id").decode() for r in got}
    wait_until(lambda: _count(db) == 0, 60, 0.2, "rows deleted after Kafka returned")
    assert p.is_running()


def test_cleanup_default_none_keeps_rows(db, kafka, outboxd, topic_prefix):
    topic = f"{topic_prefix}.order"
    p = outboxd()
    p.wait_for_log("streaming slot", timeout=30)
    for i in range(20):
        db.insert_event("order", "k", "e", {"i": i})
    kafka.consume(topic, n=20, timeout=60)
    db.wait_slot_confirmed(f"{db.dbname}_slot", db.current_wal_lsn(), timeout=30)
    # A clean stop runs whatever delete is queued (docs/operations.md): after it, no delete
    # can still be on its way.
    assert p.terminate() == 0
    assert _count(db) == 20
