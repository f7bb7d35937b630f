#!/usr/bin/env python3
"""Ingest benchmark of inboxd: messages/s from a Kafka topic into the inbox table, against
a one-transaction-per-message baseline consumer, in the same run, on the local stack.

  bench/inbox_ingest/run.sh [--messages 200000] [--baseline-messages 20000] [--repeats 3]

1. Preloads --messages records (--size bytes of payload, two headers: id and event_type,
   25 keys) into a new topic with --partitions partitions. Not timed.
2. inboxd: for each repeat, a fresh database with sql/inbox.sql and a new consumer group;
   the time from starting the process until every record is a row in the inbox (startup
   and the group join included). Rate = messages / time.
3. Baseline (baseline_consumer below): a plain confluent-kafka consumer that, for each
   message, runs one transaction: INSERT ... ON CONFLICT (message_id) DO NOTHING into the
   inbox, UPDATE its partition's position in inbox_offsets, COMMIT - the naive way to get
   the same exactly-once guarantee. It reads the first --baseline-messages records (it is
   slow; its rate does not depend on the count), timed the same way.
4. Prints every run, the medians and the ratio inboxd / baseline.

Needs the stack (scripts/stack.sh start) and build/inboxd; run.sh sets the environment.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
INBOX_SQL = REPO / "sql" / "inbox.sql"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def preload(bootstrap: str, topic: str, n: int, partitions: int, size: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20,
                  "compression.type": "none", "enable.idempotence": True,
                  "queue.buffering.max.messages": 1000000})
    pad = b"x" * max(0, size - 40)
    t0 = time.monotonic()
    for i in range(n):
        mid = f"{topic}-{i}"
        while True:
            try:
                p.produce(topic, key=f"k{i % 25}", value=b'{"n": %d, "pad": "%s"}' % (i, pad),
                          headers=[("id", mid.encode()), ("event_type", b"OrderPlaced")])
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    if p.flush(120) != 0:
        raise SystemExit("preload: records not acknowledged in 120 s")
    log(f"preloaded {n} records into {topic} ({partitions} partitions) in {time.monotonic() - t0:.1f} s")


def create_db(admin_conninfo: str) -> str:
    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_conninfo, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(conninfo_for(admin_conninfo, name), autocommit=True) as c:
        c.execute(INBOX_SQL.read_text())
    return name


def drop_db(admin_conninfo: str, name: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def conninfo_for(admin_conninfo: str, dbname: str) -> str:
    return f"{admin_conninfo} dbname={dbname}"


def recorded(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as c:
        return c.execute("SELECT coalesce(sum(next_offset), 0) FROM inbox_offsets").fetchone()[0]


def run_inboxd(inboxd: str, conninfo: str, bootstrap: str, topic: str, n: int, batch_max: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "inboxd.conf"
        conf.write_text(f"postgres.conninfo = {conninfo}\ninbox.topics = {topic}\n"
                        f"kafka.bootstrap.servers = {bootstrap}\nkafka.group.id = bench-{uuid.uuid4().hex[:8]}\n"
                        f"inbox.batch.max = {batch_max}\nlog.level = warn\n")
        t0 = time.monotonic()
        proc = subprocess.Popen([inboxd, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while recorded(conninfo) < n:
                if proc.poll() is not None:
                    raise SystemExit(f"inboxd exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
                if time.monotonic() - t0 > 600:
                    raise SystemExit("inboxd: not done in 600 s")
                time.sleep(0.05)
            elapsed = time.monotonic() - t0
        finally:
            proc.terminate()
            proc.wait(30)
    with psycopg.connect(conninfo, autocommit=True) as c:
        rows = c.execute("SELECT count(*) FROM inbox").fetchone()[0]
    if rows != n:
        raise SystemExit(f"inboxd: {rows} rows in the inbox, expected {n}")
    return elapsed


def baseline_consumer(conninfo: str, bootstrap: str, topic: str, n: int) -> float:
    """One transaction per message: the message and its partition's position, then COMMIT;
    the Kafka offset is committed (asynchronously) after the database, as inboxd does."""
    group = f"bench-base-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    db = psycopg.connect(conninfo, autocommit=False)
    c.subscribe([topic])
    done = 0
    try:
        while done < n:
            if time.monotonic() - t0 > 900:
                raise SystemExit("baseline: not done in 900 s")
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                raise SystemExit(f"baseline: {m.error()}")
            hdrs = dict(m.headers() or [])
            with db.transaction():
                db.execute("INSERT INTO inbox (message_id, topic, partition, \"offset\", key, headers, payload) "
                           "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
                           (hdrs["id"].decode(), m.topic(), m.partition(), m.offset(), m.key(),
                            psycopg.types.json.Jsonb({k: v.decode() for k, v in hdrs.items()}), m.value()))
                db.execute("INSERT INTO inbox_offsets (consumer_group, topic, partition, next_offset) "
                           "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer_group, topic, partition) "
                           "DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
                           (group, m.topic(), m.partition(), m.offset() + 1))
            c.commit(offsets=[TopicPartition(m.topic(), m.partition(), m.offset() + 1)], asynchronous=True)
            done += 1
        elapsed = time.monotonic() - t0
    finally:
        c.close()
        db.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--baseline-messages", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--size", type=int, default=200, help="payload bytes")
    ap.add_argument("--batch-max", type=int, default=1000, help="inbox.batch.max for inboxd")
    ap.add_argument("--inboxd", default=os.environ.get("OUTBOXD_TEST_INBOXD_BIN") or str(REPO / "build" / "inboxd"))
    args = ap.parse_args()

    pg = os.environ["OUTBOXD_STACK_PG_CONNINFO"].replace("dbname=postgres", "").strip()
    admin = pg + " dbname=postgres"
    kafka = os.environ["OUTBOXD_STACK_KAFKA"]
    topic = "bench-inbox-" + uuid.uuid4().hex[:8]
    preload(kafka, topic, args.messages, args.partitions, args.size)

    ours, base = [], []
    for r in range(args.repeats):
        name = create_db(admin)
        try:
            t = run_inboxd(args.inboxd, conninfo_for(pg, name), kafka, topic, args.messages, args.batch_max)
        finally:
            drop_db(admin, name)
        ours.append(args.messages / t)
        log(f"inboxd   run {r + 1}: {args.messages} messages in {t:.2f} s = {ours[-1]:,.0f} msg/s")
        name = create_db(admin)
        try:
            t = baseline_consumer(conninfo_for(pg, name), kafka, topic, args.baseline_messages)
        finally:
            drop_db(admin, name)
        base.append(args.baseline_messages / t)
        log(f"baseline run {r + 1}: {args.baseline_messages} messages in {t:.2f} s = {base[-1]:,.0f} msg/s")
    AdminClient({"bootstrap.servers": kafka}).delete_topics([topic])

    mo, mb = statistics.median(ours), statistics.median(base)
    print(f"inbox ingest benchmark: {args.messages} records of {args.size} B, {args.partitions} partitions, "
          f"{args.repeats} repeats, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"  inboxd (inbox.batch.max={args.batch_max}):      median {mo:>9,.0f} msg/s  "
          f"runs {', '.join(f'{x:,.0f}' for x in ours)}")
    print(f"  baseline (1 transaction per message): median {mb:>9,.0f} msg/s  "
          f"runs {', '.join(f'{x:,.0f}' for x in base)}  ({args.baseline_messages} messages per run)")
    print(f"  ratio inboxd / baseline: {mo / mb:.1f}x; target >= 20,000 msg/s: {'met' if mo >= 20000 else 'NOT met'}")


if __name__ == "__main__":
    main()
