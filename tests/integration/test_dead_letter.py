"""outbox.on_invalid: the default stops the relay naming the event; dead-letter sends
invalid events to the dead-letter topic with the reason in outboxd.error and goes on,
without disturbing the order of other keys. Against the real PostgreSQL and Kafka."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

from harness import SANITIZER_REPORT, free_port, wait_metric

# Every test runs with both output plugins (conftest.py: pytest_generate_tests): an unroutable
# event's dead-letter value is a wal2json record with either.
PLUGINS = ("wal2json", "pgoutput")


def _dlq_config(topic_prefix: str, **extra) -> dict:
    cfg = {"outbox.on_invalid": "dead-letter", "outbox.dead_letter.topic": f"{topic_prefix}.dead"}
    cfg.update(extra)
    return cfg


def test_dead_letter_every_kind_of_invalid_event(db, kafka, outboxd, topic_prefix):
    """A bad topic name, a row too large for the client, a row the broker refuses
    (topic max.message.bytes) and a non-transactional message all land in the
    dead-letter topic, each with its reason and the LSN of its WAL record; valid events
    around them are published in order."""
    small = f"{topic_prefix}.small"
    kafka.create_topic(small, partitions=1, config={"max.message.bytes": "2000"})
    kafka.create_topic(f"{topic_prefix}.order", partitions=1)
    port = free_port()
    p = outboxd(_dlq_config(topic_prefix, **{"kafka.message.max.bytes": "20000", "http.listen": f"127.0.0.1:{port}"}))
    p.wait_for_log("streaming slot", timeout=30)

    ids, wal = {}, {}  # wal: name -> WAL insert positions before and after its statement

    def write(name, statement):
        # The insert position: a non-transactional message is not flushed, so
        # pg_current_wal_lsn() may not have passed it yet.
        before = db.scalar("SELECT pg_current_wal_insert_lsn()::text")
        ids[name] = statement()
        wal[name] = (before, db.scalar("SELECT pg_current_wal_insert_lsn()::text"))

    write("ok1", lambda: db.insert_event("order", "k", "e", {"seq": 1}))
    write("badtopic", lambda: db.insert_event("bad topic!", "k", "e", {"seq": 2}))
    write("ok2", lambda: db.insert_event("order", "k", "e", {"seq": 3}))
    write("client_big", lambda: db.insert_event("order", "k", "e", {"big": "x" * 30000}))
    write("broker_big", lambda: db.insert_event("small", "k", "e", {"big": "y" * 5000}))
    write("nt", lambda: db.emit_message('{"id": "nt-1"}', transactional=False))
    write("ok3", lambda: db.insert_event("order", "k", "e", {"seq": 4}))
    end = db.current_wal_lsn()

    dead = kafka.consume(f"{topic_prefix}.dead", n=4, timeout=60)
    assert len(dead) == 4, [r.headers for r in dead]
    by_id = {(r.header("id") or b"").decode(): r for r in dead}

    def assert_lsn_of(name, r):
        """Every dead-letter record names its event's WAL record in outboxd.lsn
        (docs/guarantees.md): a row's is the start of its INSERT record."""
        lsn = r.header("outboxd.lsn")
        assert lsn, f"{name}: no outboxd.lsn header in {r.headers}"
        before, after = wal[name]
        assert db.scalar("SELECT %s::pg_lsn >= %s::pg_lsn AND %s::pg_lsn < %s::pg_lsn",
                         (lsn.decode(), before, lsn.decode(), after)), (name, lsn, before, after)

    r = by_id[ids["badtopic"]]  # the router refused it
    assert b"not a valid Kafka topic name" in r.header("outboxd.error")
    assert r.header("outboxd.reason") == b"unroutable" and r.header("outboxd.topic") is None, r.headers
    assert_lsn_of("badtopic", r)
    row = json.loads(r.value)  # the wal2json record of the row itself
    assert row["action"] == "I" and row["table"] == "outbox"
    assert {c["name"]: c["value"] for c in row["columns"]}["aggregate_type"] == "bad topic!"

    r = by_id[ids["client_big"]]  # the producer refused it at once
    assert b"Message size too large" in r.header("outboxd.error")
    assert r.value in (None, b"") and int(r.header("outboxd.value.size")) > 30000
    assert r.key == b"k"
    assert (r.header("outboxd.reason"), r.header("outboxd.topic")) == (b"too-large", f"{topic_prefix}.order".encode())
    assert_lsn_of("client_big", r)

    r = by_id[ids["broker_big"]]  # the broker refused it: dead-lettered from the delivery report
    assert b"refused it for topic" in r.header("outboxd.error"), r.headers
    assert r.value in (None, b"") and int(r.header("outboxd.value.size")) > 5000
    assert r.key == b"k"
    assert (r.header("outboxd.reason"), r.header("outboxd.topic")) == (b"too-large", small.encode())
    assert_lsn_of("broker_big", r)

    nt = by_id[""]  # a message outside any transaction: no id to read
    assert b"non-transactional outbox message" in nt.header("outboxd.error")
    assert json.loads(nt.value)["action"] == "M"
    # wal2json streams a non-transactional message at its record's end: what emit returned.
    assert nt.header("outboxd.lsn").decode() == ids["nt"]

    # Valid events all published, in commit order, none of the invalid ones.
    ok = kafka.consume(f"{topic_prefix}.order", n=3, timeout=30)
    assert [json.loads(r.value)["seq"] for r in ok] == [1, 3, 4]
    assert not kafka.consume(small, n=None, timeout=5, settle=2)

    db.wait_slot_confirmed(f"{db.dbname}_slot", end, timeout=30)
    assert p.is_running()
    assert p.log_text().count("sent to dead-letter topic") == 4
    # Only the broker's refusal is a failed delivery report; the others never reached Kafka.
    m = wait_metric(port, f'outboxd_events_published_total{{topic="{topic_prefix}.dead"}}', lambda v: v == 4)
    assert m["outboxd_delivery_errors_total"] == 1, m
    wait_metric(port, "outboxd_events_in_flight", lambda v: v == 0)


def test_dead_letter_missing_topic_at_once(db, kafka, outboxd, topic_prefix):
    """A topic that does not exist and is not created (here the client may not create topics):
    a warning names it within seconds; the delivery report's error code (when librdkafka gives
    up on the topic) dead-letters the event with outboxd.reason = unknown-topic and its topic in
    outboxd.topic; the relay goes on."""
    kafka.create_topic(f"{topic_prefix}.dead", partitions=1)
    kafka.create_topic(f"{topic_prefix}.order", partitions=1)
    p = outboxd(_dlq_config(topic_prefix, **{"kafka.allow.auto.create.topics": "false"}))
    p.wait_for_log("streaming slot", timeout=30)
    t0 = time.monotonic()
    missing = db.insert_event("invoice", "k", "e", {"seq": 1})
    after = db.insert_event("order", "k", "e", {"seq": 2})
    p.wait_for_log(rf"WARN: topic {topic_prefix}\.invoice does not exist and is not created automatically .*: its "
                   r"events in flight go to the dead-letter topic .* \(outboxd replay --reason unknown-topic\)", 10)
    assert time.monotonic() - t0 < 10
    dead = kafka.consume(f"{topic_prefix}.dead", n=1, timeout=60)
    assert len(dead) == 1 and dead[0].header("id").decode() == missing, [r.headers for r in dead]
    r = dead[0]
    assert r.header("outboxd.reason") == b"unknown-topic", r.headers
    assert r.header("outboxd.topic") == f"{topic_prefix}.invoice".encode()
    assert json.loads(r.value) == {"seq": 1} and r.key == b"k"
    assert [x.header("id").decode() for x in kafka.consume(f"{topic_prefix}.order", n=1, timeout=30)] == [after]
    assert f"{topic_prefix}.invoice" not in kafka.topics(topic_prefix)
    assert p.is_running()


def test_dead_letter_during_backfill(db, kafka, outboxd, topic_prefix):
    """outbox.backfill.where: an existing row the router refuses is dead-lettered as the row's
    JSON, with its reason and, as its LSN, the new slot's start (the snapshot it was read in)."""
    kafka.create_topic(f"{topic_prefix}.order", partitions=1)
    good = db.insert_event("order", "k", "e", {"seq": 1})
    bad = db.insert_event("bad topic!", "k", "e", {"seq": 2})
    p = outboxd(_dlq_config(topic_prefix, **{"outbox.backfill.where": "true"}))
    m = p.wait_for_log(r'backfill: published \d+ rows; created replication slot "\S+" at (\S+)', timeout=60)
    p.wait_for_log("streaming slot", timeout=30)

    dead = kafka.consume(f"{topic_prefix}.dead", n=1, timeout=30)
    assert len(dead) == 1 and dead[0].header("id").decode() == bad, [r.headers for r in dead]
    assert b"not a valid Kafka topic name" in dead[0].header("outboxd.error")
    assert dead[0].header("outboxd.lsn").decode() == m.group(1)
    row = json.loads(dead[0].value)
    assert row["table"] == "outbox" and row["columns"]["aggregate_type"] == "bad topic!"
    ok = kafka.consume(f"{topic_prefix}.order", n=1, timeout=30)
    assert [r.header("id").decode() for r in ok] == [good]
    assert p.is_running()


def test_fail_policy_stops_before_the_invalid_event(db, kafka, outboxd, topic_prefix, plugin):
    """Default policy: exit 1 naming the event and its LSN; the slot stays before it; a
    restart with dead-letter continues from there and publishes what followed."""
    kafka.create_topic(f"{topic_prefix}.order", partitions=1)
    p = outboxd()
    p.wait_for_log("streaming slot", timeout=30)
    first = db.insert_event("order", "k", "e", {"seq": 1})
    kafka.consume(f"{topic_prefix}.order", n=1, timeout=30)
    slot = f"{db.dbname}_slot"
    before = db.current_wal_lsn()
    db.wait_slot_confirmed(slot, before, timeout=30)
    bad = db.insert_event("bad topic!", "k", "e", {"seq": 2})
    after = db.insert_event("order", "k", "e", {"seq": 3})
    assert p.wait_exit(timeout=30) == 1
    log = p.log_text()
    assert bad in log and "LSN" in log and "not a valid Kafka topic name" in log
    # The slot was not confirmed past the bad event's commit: PostgreSQL still has it to send.
    if plugin == "pgoutput":  # the binary protocol: the ids are in the Insert messages' bytes
        pending = [bytes(r[0]).decode("latin-1") for r in db.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, 'proto_version', '1', "
            "'publication_names', 'outboxd')", (slot,))]
    else:
        pending = [r[0] for r in db.execute(
            "SELECT data FROM pg_logical_slot_peek_changes(%s, NULL, NULL, 'format-version', '2', "
            "'add-tables', 'public.outbox', 'actions', 'insert')", (slot,))]
    assert any(bad in d for d in pending), pending
    assert not any(first in d for d in pending), "the acknowledged event must be confirmed"
    # Nothing after the bad event was confirmed: restarting with the same policy fails again.
    p2 = outboxd()
    assert p2.wait_exit(timeout=30) == 1 and bad in p2.log_text()
    # Switching the policy continues: the bad one is dead-lettered, the next one published.
    p3 = outboxd(_dlq_config(topic_prefix))
    recs = kafka.consume(f"{topic_prefix}.order", n=2, timeout=30)
    assert [json.loads(r.value)["seq"] for r in recs][:2] == [1, 3]
    assert {(r.header("id") or b"").decode() for r in recs} == {first, after}
    dead = kafka.consume(f"{topic_prefix}.dead", n=1, timeout=30)
    assert dead[0].header("id").decode() == bad
    assert p3.is_running()


def replay(p, *args: str) -> subprocess.CompletedProcess:
    """`outboxd replay ARGS -c <p's config file>`: the relay's own configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOXD_")}
    r = subprocess.run([str(p.binary), "replay", "-c", str(p.config_path), *args], capture_output=True, text=True,
                       timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert not SANITIZER_REPORT.search(r.stdout + r.stderr), r.stdout + r.stderr
    return r


def test_replay_dead_lettered_events(db, kafka, outboxd, topic_prefix):
    """outboxd replay: a dry run says what it would do and sends nothing; once the cause is
    fixed, --reason sends the records of a missing topic back as they were (same key, value,
    headers, plus outboxd.replayed), --id routes a record the router could not build again
    with today's configuration; a record whose value was dropped cannot be replayed; an id not
    in the dead-letter topic is said; the dead-letter topic keeps its records."""
    dead, order = f"{topic_prefix}.dead", f"{topic_prefix}.order"
    kafka.create_topic(dead, partitions=2)
    kafka.create_topic(order, partitions=1)
    p = outboxd(_dlq_config(topic_prefix, **{"kafka.allow.auto.create.topics": "false",
                                             "kafka.message.max.bytes": "20000"}))
    p.wait_for_log("streaming slot", timeout=30)
    missing = db.insert_event("invoice", "k1", "Billed", {"n": 1}, headers={"trace": "t-1"})
    bad = db.insert_event("bad topic!", "k2", "e", {"n": 2})
    big = db.insert_event("order", "k3", "e", {"big": "x" * 30000})
    assert len(kafka.consume(dead, n=3, timeout=60)) == 3
    assert p.terminate() == 0

    r = replay(p, "--dry-run", "--all")
    assert r.returncode == 1, r  # two of them cannot be replayed as things are
    lines = {re.search(r"event (\S+)", line).group(1): line for line in r.stdout.splitlines()[:-1]}
    assert lines[missing].startswith("would-replay ") and f"(unknown-topic) -> {topic_prefix}.invoice" in lines[missing]
    assert "the topic does not exist now" in lines[missing]
    assert lines[bad].startswith("not-replayed ") and "still cannot be published" in lines[bad], r.stdout
    assert lines[big].startswith("not-replayed ") and "its value was not kept" in lines[big], r.stdout
    assert r.stdout.splitlines()[-1].startswith(f"would replay 1 of 3 selected dead-letter records of {dead} (dry run")
    assert f"{topic_prefix}.invoice" not in kafka.topics(topic_prefix)

    kafka.create_topic(f"{topic_prefix}.invoice", partitions=3)
    r = replay(p, "--reason", "unknown-topic", "--json")
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert (doc["selected"], doc["replayed"], doc["dry_run"]) == (1, 1, False), doc
    rec = doc["records"][0]
    assert (rec["id"], rec["reason"], rec["status"], rec["topic"]) == (missing, "unknown-topic", "replayed",
                                                                        f"{topic_prefix}.invoice"), rec
    got = kafka.consume(f"{topic_prefix}.invoice", n=1, timeout=30)
    assert len(got) == 1 and got[0].key == b"k1" and json.loads(got[0].value) == {"n": 1}
    assert got[0].partition == rec["to_partition"] and got[0].offset == rec["to_offset"]
    names = [n for n, _ in got[0].headers]
    assert names == ["id", "event_type", "trace", "outboxd.replayed"], got[0].headers
    assert got[0].header("id").decode() == missing and got[0].header("trace") == b"t-1"
    assert got[0].header("outboxd.replayed").decode() == f"{dead}/{rec['partition']}/{rec['offset']}"

    # The router could not build it: routed again with today's template, once its topic exists.
    r = replay(p, "-X", f"outbox.topic={topic_prefix}.fixed", "--id", bad)
    assert r.returncode == 1, r
    assert f"Kafka refused it for topic {topic_prefix}.fixed: Broker: Unknown topic or partition: the topic does " \
           f"not exist: create it (kafka-topics.sh --bootstrap-server ... --create --topic {topic_prefix}.fixed " \
           "--partitions N), then replay again" in r.stdout, r.stdout
    kafka.create_topic(f"{topic_prefix}.fixed", partitions=1)
    r = replay(p, "-X", f"outbox.topic={topic_prefix}.fixed", "--id", bad, "nope-id")
    assert r.returncode == 1, r  # nope-id is not there
    assert re.search(rf"^replayed +{re.escape(dead)} \[\d\] offset \d+, event {bad} \(unroutable\) -> "
                     rf"{re.escape(topic_prefix)}\.fixed \[0\] offset 0$", r.stdout, re.M), r.stdout
    assert f"not-found    event nope-id: no dead-letter record with that id in {dead}" in r.stdout
    fixed = kafka.consume(f"{topic_prefix}.fixed", n=1, timeout=30)
    assert fixed[0].header("id").decode() == bad and json.loads(fixed[0].value) == {"n": 2} and fixed[0].key == b"k2"

    assert len(kafka.consume(dead, n=None, timeout=10, settle=1)) == 3  # nothing taken away
    for args, words in ((("--all", "--id", "x"), "say which"), (("--reason", "bogus"), "unknown reason 'bogus'"),
                        ((), "say which")):
        r = replay(p, *args)
        assert r.returncode == 2 and words in r.stderr and r.stdout == "", (args, r)
