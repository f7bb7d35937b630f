#!/usr/bin/env python3
"""bench.py - the outboxd benchmark driver: backlog drain, live latency, one big transaction and
footprint of outboxd, side by side with pg_recvlogical, Debezium and a polling relay.

Run it through bench/run.sh, which installs the venv and jars, builds and starts the stack.
Every relay reads the same rows of the same database through the same broker in the same
invocation; docs/benchmarks.md explains the method. Writes <out>/results.json and PNG plots.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
AGG_KEYS = 1000  # distinct aggregate ids (record keys)
PARTITIONS = 3
# The wal2json options outboxd sends (src/outboxd/relay.c build_w2j_options), for pg_recvlogical.
W2J_OPTIONS = [("format-version", "2"), ("include-xids", "1"), ("include-timestamp", "1"),
               ("include-lsn", "1"), ("include-types", "0"), ("actions", "insert"),
               ("add-tables", "public.outbox"), ("add-msg-prefixes", "outbox")]
# The pgoutput options outboxd sends (src/outboxd/stream_connect.c), publication "outboxd".
PGO_OPTIONS = [("proto_version", "1"), ("publication_names", "outboxd"), ("messages", "true")]
PGO_ROLES = ("outboxd_pgo", "recv_pgo")  # slots made with pgoutput
STATUS_INTERVAL_MS = 100  # outboxd's status.interval.ms (its minimum); Debezium's offset flush
POLL_BATCH, POLL_INTERVAL_MS = 500, 100  # the polling baseline's settings

# One event: the outbox row and its business row (orders, an unrelated table) in one statement.
# The orders row keeps the commit timestamp (pg_xact_commit_timestamp(xmin)) for the latency
# workload; the relays never touch it.
PAYLOAD_SQL = ("jsonb_build_object('order_id', {i}, 'customer', 'customer-' || ({i} % 1000), "
               "'amount', 42.5, 'currency', 'EUR', 'items', jsonb_build_array('book', 'pen', 'mug'))")
# Rows of the live-latency table, in this order. decode-floor: pg_recvlogical's commit-to-receipt
# (the walsender alone); producer-floor: bench/baseline_producer.c (the Kafka path alone).
LATENCY_RELAYS = ("outboxd", "outboxd-pgoutput", "outboxd-linger1", "outboxd-eos", "decode-floor", "producer-floor",
                  "debezium", "polling")
DRAIN_RELAYS = ("pg_recvlogical", "pg_recvlogical-pgoutput", "outboxd", "outboxd-pgoutput", "outboxd-linger1",
                "outboxd-eos", "debezium", "polling")

EVENT_SQL = ("WITH e AS (INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
             "VALUES ('order', ({i} % " + str(AGG_KEYS) + ")::text, 'OrderPlaced', " + PAYLOAD_SQL + ") "
             "RETURNING id) INSERT INTO orders (id, amount) SELECT id, 42.5 FROM e")

SCHEMA_SQL = (REPO / "sql" / "outbox.sql").read_text() + """
CREATE INDEX outbox_created_at_idx ON public.outbox (created_at);  -- for the polling baseline
CREATE TABLE public.orders (id uuid PRIMARY KEY, amount numeric NOT NULL);
CREATE PUBLICATION dbz_pub FOR TABLE public.outbox;                 -- for Debezium (pgoutput)
CREATE PUBLICATION outboxd FOR TABLE public.outbox WITH (publish = 'insert', publish_via_partition_root = true);
"""
# The partitioned outbox: monthly partitions around now (rows go to the current one).
PARTITIONED_SQL = """
DROP PUBLICATION outboxd; DROP PUBLICATION dbz_pub; DROP TABLE public.outbox;
CREATE TABLE public.outbox (
    id uuid NOT NULL DEFAULT gen_random_uuid(), aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    event_type text NOT NULL, payload jsonb NOT NULL, headers jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
DO $$ DECLARE m date; BEGIN
  FOR k IN -1..1 LOOP
    m := date_trunc('month', now())::date + make_interval(months => k);
    EXECUTE format('CREATE TABLE public.outbox_%s PARTITION OF public.outbox FOR VALUES FROM (%L) TO (%L)',
                   to_char(m, 'YYYY_MM'), m, m + interval '1 month');
  END LOOP; END $$;
CREATE INDEX outbox_created_at_idx ON public.outbox (created_at);
CREATE PUBLICATION outboxd FOR TABLE public.outbox WITH (publish = 'insert', publish_via_partition_root = true);
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rnd(n: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


# ----------------------------------------------------------------------------- processes


def proc_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of a running process (/proc/<pid>/stat fields 14 and 15)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def clean_env() -> dict:
    """outboxd reads OUTBOXD_* variables as configuration and rejects unknown ones."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OUTBOXD_")}


def stop_proc(p: subprocess.Popen, timeout: float = 30) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ----------------------------------------------------------------------------- the stack


class Stack:
    def __init__(self, args):
        self.port = int(os.environ["OUTBOXD_STACK_PG_PORT"])
        self.kafka = os.environ["OUTBOXD_STACK_KAFKA"]
        self.pgbin = Path(os.environ.get("OUTBOXD_STACK_PGBIN", "/usr/lib/postgresql/15/bin"))
        self.admin = AdminClient({"bootstrap.servers": self.kafka})
        self.wm = Consumer({"bootstrap.servers": self.kafka, "group.id": "bench-watermarks",
                            "enable.auto.commit": False})
        self.auto: dict[str, int] = {}  # auto-created topics (left to the broker) -> partitions, 0 until known

    def conninfo(self, db: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db}"

    def connect(self, db: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.conninfo(db), autocommit=True)

    def create_topic(self, name: str) -> str:
        """LogAppendTime: a record's timestamp is when the broker appended it, just before
        it acknowledges the produce request (acks=all, one replica)."""
        fs = self.admin.create_topics([NewTopic(name, PARTITIONS, 1,
                                                config={"message.timestamp.type": "LogAppendTime"})])
        for f in fs.values():
            f.result(30)
        for _ in range(100):  # metadata propagation
            md = self.admin.list_topics(name, timeout=10)
            if name in md.topics and not md.topics[name].error and len(md.topics[name].partitions) == PARTITIONS:
                self.topic_count(name)  # waits until every partition has a leader
                return name
            time.sleep(0.05)
        raise RuntimeError(f"topic {name} did not appear")

    def partitions(self, topic: str) -> int:
        """Partitions of topic: PARTITIONS for topics made by create_topic, the broker's count
        for auto-created ones (0 while it does not exist)."""
        if topic in self.auto:
            if not self.auto[topic]:
                md = self.admin.list_topics(topic, timeout=10)
                t = md.topics.get(topic)
                if t is not None and not t.error and t.partitions:
                    self.auto[topic] = len(t.partitions)
            return self.auto[topic]
        return PARTITIONS

    def topic_count(self, topic: str) -> int:
        n = 0
        for p in range(self.partitions(topic)):
            for attempt in range(50):  # leaders of a new topic can take a moment
                try:
                    lo, hi = self.wm.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                    break
                except KafkaException:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
            n += hi - lo
        return n


class Database:
    """A fresh database with the outbox, orders, the publication and the slots."""

    def __init__(self, stack: Stack, name: str, slots=("outboxd", "recv"), dbz: bool = False,
                 partitioned: bool = False):
        """Slot names are cluster-wide: each is <database>_<role> (slot(role)); roles in
        PGO_ROLES get pgoutput slots, the others wal2json. partitioned: the outbox is a
        partitioned table (PARTITIONED_SQL)."""
        self.stack, self.name = stack, name
        with stack.connect() as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
            c.execute(f"CREATE DATABASE {name}")
        try:
            self.conn = stack.connect(name)
            self.conn.execute(SCHEMA_SQL)
            if partitioned:
                self.conn.execute(PARTITIONED_SQL)
            for s in slots:
                self.conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)",
                                  (self.slot(s), "pgoutput" if s in PGO_ROLES else "wal2json"))
            if dbz:
                self.conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot("dbz"),))
        except BaseException:
            self.drop()
            raise

    def slot(self, role: str) -> str:
        return f"{self.name}_{role}"

    def scalar(self, sql: str, params=None):
        return self.conn.execute(sql, params).fetchone()[0]

    def write_backlog(self, events: int, per_txn: int) -> str:
        """events outbox rows (+ as many orders rows), per_txn per transaction; returns the WAL
        insert position after the last commit (= the last commit record's end)."""
        body = EVENT_SQL.format(i="i")
        self.conn.execute(f"DO $$ BEGIN FOR i IN 1..{events} LOOP {body}; "
                          f"IF i % {per_txn} = 0 THEN COMMIT; END IF; END LOOP; END $$")
        return self.scalar("SELECT pg_current_wal_insert_lsn()::text")

    def write_backlog_writers(self, events: int, writers: int) -> str:
        """events single-event transactions from `writers` concurrent sessions, aggregate ids
        spread over 10,000 values; returns the WAL insert position after the last commit."""
        body = EVENT_SQL.replace(f"% {AGG_KEYS})", "% 10000)").format(i="(i * 7919 + {w})")

        def one(w: int) -> None:
            with self.stack.connect(self.name) as c:
                c.execute(f"DO $$ BEGIN FOR i IN 1..{events // writers} LOOP {body.format(w=w)}; COMMIT; END LOOP; "
                          "END $$")

        ths = [threading.Thread(target=one, args=(w,)) for w in range(writers)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        return self.scalar("SELECT pg_current_wal_insert_lsn()::text")

    def write_one_txn(self, events: int) -> str:
        self.conn.execute(
            "WITH e AS (INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
            f"SELECT 'order', (g % {AGG_KEYS})::text, 'OrderPlaced', {PAYLOAD_SQL.format(i='g')} "
            f"FROM generate_series(1, {events}) g RETURNING id) INSERT INTO orders (id, amount) SELECT id, 42.5 FROM e")
        return self.scalar("SELECT pg_current_wal_insert_lsn()::text")

    def confirmed(self, slot: str, lsn: str) -> bool:
        return bool(self.scalar("SELECT coalesce(confirmed_flush_lsn >= %s::pg_lsn, false) "
                                "FROM pg_replication_slots WHERE slot_name = %s", (lsn, slot)))

    def drop(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
        with self.stack.connect() as c:
            c.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                      "WHERE database = %s AND active_pid IS NOT NULL", (self.name,))
            time.sleep(0.2)
            c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                      "WHERE database = %s", (self.name,))
            c.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


# ----------------------------------------------------------------------------- relays


class PgSide:
    """CPU of the PostgreSQL process that serves a relay: the walsender of its slot, or the
    backend of its connection (application_name). Its pid is looked up until found."""

    def __init__(self, db: Database, slot: str | None = None, app: str | None = None):
        self.db, self.slot, self.app = db, slot, app
        self.pid: int | None = None
        self.cpu: float | None = None

    def sample(self) -> float | None:
        try:
            if self.pid is None:
                if self.slot:
                    self.pid = self.db.scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                                              (self.slot,))
                elif self.app:
                    self.pid = self.db.scalar("SELECT max(pid) FROM pg_stat_activity WHERE datname = %s AND "
                                              "application_name = %s", (self.db.name, self.app))
            if self.pid is not None:
                self.cpu = proc_cpu_s(self.pid)
        except (OSError, TypeError):
            pass  # the process ended: keep the last value
        return self.cpu


class Relay:
    name = "?"
    role: str | None = None
    proc: subprocess.Popen | None = None

    def __init__(self, bench: "Bench", db: Database, topic: str):
        self.b, self.db, self.topic = bench, db, topic
        self.logf = open(bench.out / "logs" / f"{db.name}-{self.name}.log", "w")

    @property
    def slot(self) -> str | None:
        return self.db.slot(self.role) if self.role else None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_proc(self.proc)
        if not self.logf.closed:
            self.logf.close()

    def alive(self) -> bool:
        return self.proc.poll() is None


class Outboxd(Relay):
    name = "outboxd"
    role = "outboxd"
    extra_conf = ""
    defaults = False  # True: outboxd's own status.interval.ms (1 s), as users run it
    plugin = "wal2json"

    def start(self) -> None:
        conf = self.b.out / "logs" / f"{self.db.name}-outboxd.conf"
        conf.write_text(
            f"postgres.conninfo = {self.b.stack.conninfo(self.db.name)}\n"
            f"postgres.slot = {self.slot}\n"
            "postgres.slot.create = false\n"
            f"outbox.topic = {self.topic}\n"
            f"kafka.bootstrap.servers = {self.b.stack.kafka}\n"
            + ("" if self.defaults else f"status.interval.ms = {STATUS_INTERVAL_MS}\n")
            + ("" if self.plugin == "wal2json" else f"postgres.plugin = {self.plugin}\n") +
            "http.listen =\n" + self.extra_conf + "".join(f"{kv}\n" for kv in self.b.args.outboxd_set))  # no endpoint: runs never clash on its port
        # BENCH_OUTBOXD_WRAP="perf record -g -o /tmp/perf.data": profile outboxd in the run
        # (perf execs outboxd, so the pid measured is outboxd's only once perf has exec'd it).
        wrap = os.environ.get("BENCH_OUTBOXD_WRAP", "").split()
        self.proc = subprocess.Popen(wrap + [self.b.args.outboxd, "-c", str(conf)], env=clean_env(),
                                     stdout=self.logf, stderr=subprocess.STDOUT)


class OutboxdPgoutput(Outboxd):
    """outboxd with postgres.plugin = pgoutput (publication "outboxd"), on a slot of its own."""
    name = "outboxd-pgoutput"
    role = "outboxd_pgo"
    plugin = "pgoutput"


def outboxd_variant(spec: str) -> type:
    """--outboxd-variant NAME:KEY=VALUE;KEY=VALUE - outboxd with those settings on a slot of its
    own, as relay "outboxd-NAME" (latency and drain workloads, like outboxd-linger1)."""
    name, _, sets = spec.partition(":")
    if not re.fullmatch(r"[a-z0-9]+", name) or not sets:
        raise SystemExit(f"bench: bad --outboxd-variant {spec!r} (NAME:KEY=VALUE;...; NAME lower-case letters/digits)")
    plugin = "pgoutput" if "postgres.plugin=pgoutput" in sets.replace(" ", "") else "wal2json"
    conf = "".join(f"{kv.split('=', 1)[0].strip()} = {kv.split('=', 1)[1].strip()}\n" for kv in sets.split(";")
                   if kv.strip() and not kv.strip().startswith("postgres.plugin"))
    role = f"outboxd_v{name}" + ("_pgo" if plugin == "pgoutput" else "")
    if plugin == "pgoutput" and role not in PGO_ROLES:
        globals()["PGO_ROLES"] = PGO_ROLES + (role,)
    return type(f"OutboxdVariant_{name}", (Outboxd,), {"name": f"outboxd-{name}", "role": role,
                                                      "extra_conf": conf, "plugin": plugin})


VARIANTS: list = []  # outboxd_variant classes from --outboxd-variant


class OutboxdLinger1(Outboxd):
    """outboxd with kafka.linger.ms = 1 instead of its default 5, on a slot of its own."""
    name = "outboxd-linger1"
    role = "outboxd_l1"
    extra_conf = "kafka.linger.ms = 1\n"


class OutboxdEos(Outboxd):
    """outboxd with delivery.guarantee = exactly-once (its defaults: Kafka transactions of up to
    100 ms, committed once caught up and 10 ms old), on a slot and checkpoint topic of its own.
    Its records are visible to read_committed consumers (the latency consumer is one) only
    after the commit: "ack" is when the broker appended a record, "receipt" when it became
    visible; the drain clock stops when the slot was confirmed, which follows the last commit."""
    name = "outboxd-eos"
    role = "outboxd_eos"

    @property
    def extra_conf(self) -> str:
        return f"delivery.guarantee = exactly-once\ndelivery.checkpoint.topic = {self.topic}.checkpoints\n"


class Poller(Relay):
    name = "polling"
    role = None

    def start(self) -> None:
        prefix = self.topic.rsplit(".", 1)[0]
        self.proc = subprocess.Popen([self.b.args.poller, self.b.stack.conninfo(self.db.name), self.b.stack.kafka,
                                      prefix, str(POLL_BATCH), str(POLL_INTERVAL_MS)],
                                     stdout=self.logf, stderr=subprocess.STDOUT)


class Debezium(Relay):
    name = "debezium"
    role = "dbz"

    def start(self) -> None:
        d = self.b.out / "logs" / f"{self.db.name}-debezium"
        d.mkdir(parents=True, exist_ok=True)
        prefix = self.topic.rsplit(".", 1)[0]
        (d / "worker.properties").write_text(f"""bootstrap.servers={self.b.stack.kafka}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename={d}/offsets
offset.flush.interval.ms={STATUS_INTERVAL_MS}
listeners=http://127.0.0.1:0
""")
        (d / "connector.properties").write_text(f"""name=outbox-{self.db.name}
connector.class=io.debezium.connector.postgresql.PostgresConnector
tasks.max=1
plugin.name=pgoutput
database.hostname=127.0.0.1
database.port={self.b.stack.port}
database.user=postgres
database.password=unused
database.dbname={self.db.name}
topic.prefix=dbz{self.db.name}
slot.name={self.slot}
publication.name=dbz_pub
publication.autocreate.mode=disabled
table.include.list=public.outbox
snapshot.mode=no_data
tombstones.on.delete=false
transforms=outbox
transforms.outbox.type=io.debezium.transforms.outbox.EventRouter
transforms.outbox.table.field.event.id=id
transforms.outbox.table.field.event.key=aggregate_id
transforms.outbox.table.field.event.payload=payload
transforms.outbox.route.by.field=aggregate_type
transforms.outbox.route.topic.replacement={prefix}.${{routedByValue}}
transforms.outbox.table.fields.additional.placement=event_type:header:event_type
""")
        (d / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.io.debezium=INFO\n")
        # The heap of Kafka's connect-standalone script (KAFKA_HEAP_OPTS default).
        self.proc = subprocess.Popen(
            ["java", "-Xms256m", "-Xmx2g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j.configuration=file:{d}/log4j.properties", "-cp", f"{self.b.args.debezium_libs}/*",
             "org.apache.kafka.connect.cli.ConnectStandalone", str(d / "worker.properties"),
             str(d / "connector.properties")], stdout=self.logf, stderr=subprocess.STDOUT)


# ----------------------------------------------------------------------------- workloads


def pct(xs: list, p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def pg_timestamp(ts: str) -> float:
    """Seconds since the epoch of a timestamptz as PostgreSQL prints it (DateStyle ISO):
    '2026-12-03 08:11:22.123456+00', '2026-12-04 00:16:30+00' (no fraction when the
    microseconds are zero), '...+05:30', '...-03'. Raises ValueError on anything else."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?",
                     ts.strip())
    if not m:
        raise ValueError(f"not a PostgreSQL timestamptz: {ts!r}")
    day, clock, frac, hh, mm, ss = m.groups()
    base = datetime.datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    sign = -1 if hh[0] == "-" else 1
    offset = sign * (abs(int(hh)) * 3600 + int(mm or 0) * 60 + int(ss or 0))
    return base.timestamp() - offset + (int(frac.ljust(6, "0")) / 1e6 if frac else 0.0)


def ratio(a, b):
    return a / b if a is not None and b else None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.stack = Stack(args)
        self.run_id = rnd(4)
        self.results: dict = {"drain": [], "bigtxn": [], "latency": []}
        self.checkpoint = None  # called with the Bench after every workload (write_results)

    # -- backlog drain -----------------------------------------------------------------

    def recvlogical(self, db: Database, slot: str, endpos: str, plugin: str = "wal2json") -> dict:
        cmd = [str(self.stack.pgbin / "pg_recvlogical"), "-h", "127.0.0.1", "-p", str(self.stack.port),
               "-U", "postgres", "-d", db.name, "--slot", slot, "--start", "--no-loop", "-f", "/dev/null",
               "-E", endpos, "-s", "10"]
        # wal2json reports a partitioned table's rows under its partitions: name those, as outboxd does
        leaves = db.scalar("SELECT string_agg('public.' || c.relname, ',') FROM pg_partition_tree('public.outbox') t "
                           "JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf AND t.level > 0")
        for k, v in (PGO_OPTIONS if plugin == "pgoutput" else W2J_OPTIONS):
            cmd += ["-o", f"{k}={leaves if k == 'add-tables' and leaves else v}"]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        ws = PgSide(db, slot=slot)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            ws.sample()  # the walsender's CPU, last seen just before it ends with the stream
            time.sleep(0.01)
        secs = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise RuntimeError(f"pg_recvlogical failed: {p.stderr.read().decode()}")
        return {"secs": secs, "cpu_s": ru.ru_utime + ru.ru_stime, "rss_kb": ru.ru_maxrss, "pg_cpu_s": ws.cpu}

    def drain(self, relay: Relay, n: int, endpos: str | None, timeout: float) -> dict:
        """Starts the relay on the backlog and samples every 20 ms: records in the topic
        (watermarks), the slot's confirmed_flush_lsn, the process's CPU and RSS."""
        t0 = time.monotonic()
        relay.start()
        try:
            return self._drain(relay, n, endpos, timeout, t0)
        finally:
            relay.stop()

    def _drain(self, relay: Relay, n: int, endpos: str | None, timeout: float, t0: float) -> dict:
        r = {"relay": relay.name, "events": n}
        t_first = t_all = t_conf = None
        cpu_first = cpu_all = None
        cnt_first = 0
        rss = []
        ws = PgSide(relay.db, slot=relay.slot, app=None if relay.slot else "baseline_polling_relay")
        pg_first = pg_all = None
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not relay.alive():
                raise RuntimeError(f"{relay.name} exited with {relay.proc.returncode}; see {relay.logf.name}")
            c = self.stack.topic_count(relay.topic) if t_all is None else n
            now = time.monotonic() - t0  # after the count: the count is at least as of now
            cpu = proc_cpu_s(relay.pid)
            pg = ws.sample()
            rss.append((now, proc_status_kb(relay.pid, "VmRSS")))
            if t_all is None:
                if c > 0 and t_first is None:
                    t_first, cpu_first, cnt_first, pg_first = now, cpu, c, pg
                if c >= n:
                    t_all, cpu_all, pg_all = now, cpu, pg
            if endpos and relay.slot and t_conf is None and relay.name != "debezium":
                if relay.db.confirmed(relay.slot, endpos):
                    t_conf = time.monotonic() - t0
            done_conf = t_conf is not None or not endpos or relay.slot is None or relay.name == "debezium"
            if t_all is not None and done_conf:
                break
            time.sleep(0.02)
        else:
            raise RuntimeError(f"{relay.name} did not drain {n} events in {timeout} s; see {relay.logf.name}")
        r["cpu_total_s"] = proc_cpu_s(relay.pid)
        r["peak_rss_kb"] = proc_status_kb(relay.pid, "VmHWM")
        r.update(t_first=t_first, t_all=t_all, t_confirmed=t_conf)
        # Steady-state rate: from the first record in the topic to the last (JVM start-up
        # and the connector's setup are not counted; same rule for every relay).
        r["rate_steady"] = (n - cnt_first) / (t_all - t_first) if n > cnt_first and t_all > t_first else None
        r["cpu_us_per_event"] = ((cpu_all - cpu_first) / max(n - cnt_first, 1) * 1e6
                                 if n > cnt_first and cpu_all > cpu_first else r["cpu_total_s"] / n * 1e6)
        # The PostgreSQL process serving the relay (walsender, or the poller's backend),
        # over the same span; pg_cpu_total_us_per_event counts it from its start.
        r["pg_cpu_us_per_event"] = ((pg_all - pg_first) / (n - cnt_first) * 1e6
                                    if pg_first is not None and pg_all is not None and n > cnt_first else None)
        r["pg_cpu_total_us_per_event"] = ws.cpu / n * 1e6 if ws.cpu is not None else None
        # Headline: from process start until the slot confirmed the end (outboxd), else until
        # the last record is in Kafka.
        r["secs"] = t_conf if t_conf is not None else t_all
        r["rate"] = n / r["secs"]
        r["rss_series"] = rss[:: max(1, len(rss) // 200)]
        return r

    def drain_scenario(self, rep: int, kind: str, n: int, per_txn: int) -> None:
        """kind single/batched/small: one writer, pre-created topics, status.interval.ms = 100.
        kind defaults: what a user gets - 4 writers, 10,000 aggregate ids, the topic left to the
        broker's auto-creation, outboxd's default settings. kind partitioned: the outbox is a
        partitioned table."""
        a = self.args
        dbz = a.debezium and kind in ("single", "batched")
        classes = (Outboxd, OutboxdPgoutput) if kind in ("defaults", "partitioned") else (
            Outboxd, OutboxdPgoutput, OutboxdLinger1, OutboxdEos, Debezium, Poller)
        relays = [c for c in classes if c.name in a.relays.split(",") and (c is not Debezium or dbz)]
        slots = ("recv", "recv_pgo") + tuple(c.role for c in relays if issubclass(c, Outboxd))
        db = Database(self.stack, f"b{self.run_id}_{kind}_{rep}", slots=slots, dbz=dbz,
                      partitioned=kind == "partitioned")
        try:
            log(f"{kind}: writing {n} events, {per_txn} per transaction")
            t = time.monotonic()
            endpos = db.write_backlog_writers(n, 4) if kind == "defaults" else db.write_backlog(n, per_txn)
            write_secs = time.monotonic() - t
            row = {"kind": kind, "rep": rep, "events": n, "per_txn": per_txn, "write_secs": write_secs,
                   "wal_bytes": int(db.scalar("SELECT %s::pg_lsn - confirmed_flush_lsn FROM pg_replication_slots "
                                              "WHERE slot_name = %s", (endpos, db.slot("recv"))))}
            for plugin, role, label in (("wal2json", "recv", "pg_recvlogical"),
                                        ("pgoutput", "recv_pgo", "pg_recvlogical-pgoutput")):
                rl = self.recvlogical(db, db.slot(role), endpos, plugin)
                row[label] = dict(rl, relay=label, rate=n / rl["secs"])
                log(f"{kind}: {label} {rl['secs']:.2f} s ({n / rl['secs']:.0f} ev/s)")
            for cls in relays:
                name = f"b{self.run_id}.{kind}{rep}.{cls.name}.order"
                if kind == "defaults":  # left to the broker (auto.create.topics.enable)
                    self.stack.auto[name] = 0
                    topic = name
                else:
                    topic = self.stack.create_topic(name)
                rel = cls(self, db, topic)
                rel.defaults = kind == "defaults"
                timeout = a.timeout * (1 if issubclass(cls, Outboxd) else 4)
                r = self.drain(rel, n, endpos, timeout)
                row[cls.name] = r
                log(f"{kind}: {cls.name} {r['secs']:.2f} s ({r['rate']:.0f} ev/s; steady {fmt(r['rate_steady'])} "
                    f"ev/s), peak RSS {r['peak_rss_kb'] / 1024:.1f} MB, {r['cpu_us_per_event']:.1f} us CPU/event")
            self.results["drain"].append(row)
        finally:
            db.drop()

    def bigtxn_scenario(self, rep: int, n: int) -> None:
        db = Database(self.stack, f"b{self.run_id}_bigtxn_{rep}")
        try:
            log(f"bigtxn: writing {n} events in one transaction")
            t = time.monotonic()
            endpos = db.write_one_txn(n)
            row = {"kind": "bigtxn", "rep": rep, "events": n, "per_txn": n, "write_secs": time.monotonic() - t}
            rl = self.recvlogical(db, db.slot("recv"), endpos)
            row["pg_recvlogical"] = dict(rl, relay="pg_recvlogical", rate=n / rl["secs"])
            log(f"bigtxn: pg_recvlogical {rl['secs']:.2f} s")
            topic = self.stack.create_topic(f"b{self.run_id}.bigtxn{rep}.outboxd.order")
            r = self.drain(Outboxd(self, db, topic), n, endpos, self.args.timeout * 3)
            row["outboxd"] = r
            log(f"bigtxn: outboxd {r['secs']:.2f} s, peak RSS {r['peak_rss_kb'] / 1024:.1f} MB")
            self.results["bigtxn"].append(row)
        finally:
            db.drop()

    # -- duplicates ----------------------------------------------------------------------

    def _dup_run(self, db: Database, n: int, cut_at: float, how: str, kind: str, rep: int) -> dict:
        """outboxd with its default settings drains a backlog of n events; when cut_at of them
        are in Kafka it is killed (-9) or stopped (SIGTERM), then started again until the slot
        confirmed the end. Duplicates = records in the topic - n."""
        topic = self.stack.create_topic(f"b{self.run_id}.dup{kind}{how}{rep}.outboxd.order")
        rel = Outboxd(self, db, topic)
        rel.defaults = True
        endpos = db.scalar("SELECT pg_current_wal_insert_lsn()::text")
        t0 = time.monotonic()
        rel.start()
        try:
            while self.stack.topic_count(topic) < n * cut_at:
                if not rel.alive() or time.monotonic() - t0 > self.args.timeout:
                    raise RuntimeError(f"outboxd did not get {cut_at:.0%} of the backlog out; see {rel.logf.name}")
                time.sleep(0.005)
            at = self.stack.topic_count(topic)
            if how == "kill":
                rel.proc.kill()
                rel.proc.wait()
            else:
                rel.proc.send_signal(signal.SIGTERM)
                rel.proc.wait(60)
            rel.start()
            while not db.confirmed(rel.slot, endpos):
                if not rel.alive() or time.monotonic() - t0 > self.args.timeout * 2:
                    raise RuntimeError(f"outboxd did not confirm the backlog after the restart; see {rel.logf.name}")
                time.sleep(0.05)
            total = self.stack.topic_count(topic)
        finally:
            rel.stop()
        return {"kind": kind, "how": how, "rep": rep, "events": n, "in_kafka_at_cut": at, "records": total,
                "duplicates": total - n}

    def duplicates_scenario(self, rep: int) -> None:
        """Duplicates per kill -9 during a fast single-event stream, per clean stop (SIGTERM) in
        the same stream, and per clean stop and kill -9 in the middle of one --dup-txn-event
        transaction."""
        n = self.args.dup_events
        big = self.args.dup_txn
        for kind, per_txn, events in (("stream", 1, n), ("bigtxn", big, big)):
            for how in (("kill", "stop") if kind == "stream" else ("stop", "kill")):
                db = Database(self.stack, f"b{self.run_id}_dup{kind}{how}_{rep}", slots=("outboxd",))
                try:
                    if per_txn == 1:
                        db.write_backlog(events, 1)
                    else:
                        db.write_one_txn(events)
                    r = self._dup_run(db, events, 0.4, how, kind, rep)
                    log(f"duplicates: {kind} ({events} events, {per_txn}/txn), {how} at {r['in_kafka_at_cut']} in "
                        f"Kafka: {r['duplicates']} duplicates")
                    self.results.setdefault("duplicates", []).append(r)
                finally:
                    db.drop()

    # -- live latency --------------------------------------------------------------------

    def pgbench(self, db: "Database", rate: int) -> int:
        """Writes the event statement at `rate` for latency_secs with pgbench (2-4 clients);
        returns the number of transactions pgbench committed."""
        script = self.out / "logs" / "pgbench-event.sql"
        script.write_text("\\set k random(1, 1000000)\n" + EVENT_SQL.format(i=":k") + ";\n")
        clients = 4 if rate >= 4000 else 2
        pb = subprocess.run([str(self.stack.pgbin / "pgbench"), "-n", "-h", "127.0.0.1", "-p",
                             str(self.stack.port), "-U", "postgres", "-c", str(clients), "-j", "2",
                             "-R", str(rate), "-T", str(self.args.latency_secs), "-f", str(script), db.name],
                            capture_output=True, text=True)
        if pb.returncode != 0:
            raise RuntimeError(f"pgbench failed: {pb.stderr}")
        m = re.search(r"number of transactions actually processed: (\d+)", pb.stdout)
        return int(m.group(1)) if m else 0

    def latency_scenario(self, rep: int, rate: int, cls) -> None:
        a = self.args
        db = Database(self.stack, f"b{self.run_id}_lat{rate}_{cls.name.replace('-', '_')}_{rep}",
                      slots=(cls.role,) if issubclass(cls, Outboxd) else (),
                      dbz=cls is Debezium)
        topic = self.stack.create_topic(f"b{self.run_id}.lat{rate}r{rep}.{cls.name}.order")
        rel = cls(self, db, topic)
        got: dict = {}
        stop = threading.Event()
        try:
            rel.start()
            # Warm-up: the relay is streaming once this event is in Kafka.
            db.conn.execute(EVENT_SQL.format(i=0))
            t = time.monotonic()
            while self.stack.topic_count(topic) < 1:
                if time.monotonic() - t > a.timeout * 2 or not rel.alive():
                    raise RuntimeError(f"{cls.name} did not start; see {rel.logf.name}")
                time.sleep(0.05)
            warm = {r[0] for r in db.conn.execute("SELECT id::text FROM orders")}
            cons = Consumer({"bootstrap.servers": self.stack.kafka, "group.id": "bench-" + rnd(),
                             "enable.auto.commit": False, "fetch.wait.max.ms": 10})
            cons.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])

            def consume():
                # poll() returns as soon as one record is there; consume(n, 0) then takes what
                # is already fetched without waiting (consume(n, t) would wait for n or t).
                while not stop.is_set():
                    first = cons.poll(0.1)
                    if first is None:
                        continue
                    now = time.time()
                    for m in [first] + cons.consume(10000, 0):
                        if m.error():
                            continue
                        hid = dict(m.headers() or []).get("id")
                        if hid is not None:
                            got[hid.decode()] = (m.timestamp()[1] / 1000.0, now)
                cons.close()

            th = threading.Thread(target=consume, daemon=True)
            th.start()
            while len(got) < 1:
                time.sleep(0.02)
            ws = PgSide(db, slot=rel.slot, app=None if rel.slot else "baseline_polling_relay")
            cpu0, pg0, t0 = proc_cpu_s(rel.pid), ws.sample(), time.monotonic()
            written = self.pgbench(db, rate)
            total = written + len(warm)
            t = time.monotonic()
            while len(got) < total and time.monotonic() - t < a.timeout:
                time.sleep(0.05)
            cpu = proc_cpu_s(rel.pid) - cpu0
            pg1 = ws.sample()
            pg_cpu = pg1 - pg0 if pg0 is not None and pg1 is not None else None
            wall = time.monotonic() - t0
            rss_peak = proc_status_kb(rel.pid, "VmHWM")
            stop.set()
            th.join(5)
            commits = dict(db.conn.execute("SELECT id::text, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8"
                                           " FROM orders").fetchall())
            ack, recv = [], []
            for eid, ct in commits.items():
                if eid in warm or eid not in got or ct is None:
                    continue
                ack.append((got[eid][0] - ct) * 1000)
                recv.append((got[eid][1] - ct) * 1000)
            row = {"rep": rep, "rate_target": rate, "relay": cls.name, "written": written,
                   "rate_achieved": written / a.latency_secs, "received": len(recv), "missing": written - len(recv),
                   "cpu_us_per_event": cpu / max(written, 1) * 1e6, "cpu_share": cpu / wall, "peak_rss_kb": rss_peak,
                   "pg_cpu_us_per_event": pg_cpu / max(written, 1) * 1e6 if pg_cpu is not None else None,
                   "load_avg": os.getloadavg()[0]}
            for nm, xs in (("ack", ack), ("recv", recv)):
                for p in (50, 99, 99.9):
                    row[f"{nm}_p{p:g}_ms"] = pct(xs, p)
                row[f"{nm}_max_ms"] = max(xs) if xs else float("nan")
            row["recv_sample"] = sorted(recv)[:: max(1, len(recv) // 500)]
            log(f"latency {rate}/s {cls.name}: achieved {row['rate_achieved']:.0f}/s, ack p50 {row['ack_p50_ms']:.1f} "
                f"p99 {row['ack_p99_ms']:.1f} max {row['ack_max_ms']:.1f} ms; receipt p50 {row['recv_p50_ms']:.1f} "
                f"p99 {row['recv_p99_ms']:.1f} ms; missing {row['missing']}")
            self.results["latency"].append(row)
        finally:
            stop.set()
            rel.stop()
            db.drop()

    def decode_floor_scenario(self, rep: int, rate: int) -> None:
        """The PostgreSQL floor: pg_recvlogical streams the slot with outboxd's wal2json options
        to a pipe while pgbench writes the same rows; each commit record's arrival time minus
        its commit timestamp (wal2json's "timestamp", the one in the commit record) is what the
        walsender alone costs under that load. No relay can deliver a commit earlier."""
        a = self.args
        db = Database(self.stack, f"b{self.run_id}_lat{rate}_dfloor_{rep}", slots=("recv",))
        cmd = [str(self.stack.pgbin / "pg_recvlogical"), "-h", "127.0.0.1", "-p", str(self.stack.port),
               "-U", "postgres", "-d", db.name, "--slot", db.slot("recv"), "--start", "-f", "-", "-s", "10"]
        for k, v in W2J_OPTIONS:
            cmd += ["-o", f"{k}={v}"]
        arrivals: list = []
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

        def read():
            # One JSON object per line. Keep the commits of transactions that inserted into the
            # outbox (parse them later): every other transaction of the database (autoanalyze,
            # say) arrives as an empty B/C pair and is no event.
            event = False
            for line in p.stdout:
                if b'"action":"I"' in line:
                    event = True
                elif b'"action":"C"' in line:
                    if event:
                        arrivals.append((time.time(), line))
                    event = False

        th = threading.Thread(target=read, daemon=True)
        th.start()
        try:
            t = time.monotonic()
            while not db.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (db.slot("recv"),)):
                if time.monotonic() - t > a.timeout or p.poll() is not None:
                    raise RuntimeError("pg_recvlogical did not start streaming")
                time.sleep(0.02)
            written = self.pgbench(db, rate)
            t = time.monotonic()
            while len(arrivals) < written and time.monotonic() - t < a.timeout:
                time.sleep(0.05)
        finally:
            p.terminate()
            p.wait(10)
            th.join(5)
            db.drop()
        lat = []
        for now, line in arrivals:
            ts = json.loads(line).get("timestamp")
            if ts:
                lat.append((now - pg_timestamp(ts)) * 1000)
        row = {"rep": rep, "rate_target": rate, "relay": "decode-floor", "written": written,
               "rate_achieved": written / a.latency_secs, "received": len(lat), "missing": written - len(lat),
               "cpu_us_per_event": None, "peak_rss_kb": None, "pg_cpu_us_per_event": None,
               "load_avg": os.getloadavg()[0], "recv_p50_ms": None, "recv_p99_ms": None, "recv_p99.9_ms": None,
               "recv_max_ms": None}
        for p_ in (50, 99, 99.9):
            row[f"ack_p{p_:g}_ms"] = pct(lat, p_)
        row["ack_max_ms"] = max(lat) if lat else float("nan")
        log(f"latency {rate}/s decode-floor: pgbench {row['rate_achieved']:.0f}/s, commit-to-pg_recvlogical p50 "
            f"{row['ack_p50_ms']:.1f} p99 {row['ack_p99_ms']:.1f} max {row['ack_max_ms']:.1f} ms")
        self.results["latency"].append(row)

    def floor_scenario(self, rep: int, rate: int) -> None:
        """The Kafka floor: bench/baseline_producer produces records like outboxd's at the rate
        with outboxd's producer settings, from no database, while pgbench writes the same rows
        as in the relays' runs (no slot: nothing decodes them). Its produce-to-ack latency is
        what the machine's Kafka path costs under that load; no relay can be faster."""
        a = self.args
        db = Database(self.stack, f"b{self.run_id}_lat{rate}_floor_{rep}", slots=())
        topic = self.stack.create_topic(f"b{self.run_id}.lat{rate}r{rep}.floor.order")
        try:
            logf = open(self.out / "logs" / f"{db.name}-producer.log", "w")
            prod = subprocess.Popen([a.producer, self.stack.kafka, topic, str(rate), str(a.latency_secs)],
                                    stdout=subprocess.PIPE, stderr=logf, text=True)
            written = self.pgbench(db, rate)
            out, _ = prod.communicate(timeout=a.timeout + a.latency_secs)
            if prod.returncode != 0:
                raise RuntimeError(f"baseline_producer failed (exit {prod.returncode}); see {logf.name}")
            f = json.loads(out)
            row = {"rep": rep, "rate_target": rate, "relay": "producer-floor", "written": written,
                   "rate_achieved": f["acked"] / a.latency_secs, "pg_rate_achieved": written / a.latency_secs,
                   "received": f["acked"], "missing": f["sent"] - f["acked"],
                   "cpu_us_per_event": f["cpu_s"] / max(f["sent"], 1) * 1e6, "peak_rss_kb": None,
                   "pg_cpu_us_per_event": None, "load_avg": os.getloadavg()[0],
                   "ack_p50_ms": f["p50_ms"], "ack_p99_ms": f["p99_ms"], "ack_p99.9_ms": f["p99.9_ms"],
                   "ack_max_ms": f["max_ms"], "recv_p50_ms": None, "recv_p99_ms": None, "recv_p99.9_ms": None,
                   "recv_max_ms": None}
            log(f"latency {rate}/s producer-floor: pgbench {row['pg_rate_achieved']:.0f}/s, produce-to-ack p50 "
                f"{f['p50_ms']:.1f} p99 {f['p99_ms']:.1f} max {f['max_ms']:.1f} ms")
            self.results["latency"].append(row)
        finally:
            db.drop()

    # -- the run ---------------------------------------------------------------------------

    def workload(self, name: str, fn, *args) -> None:
        """Runs one workload; a failure is logged and recorded (results.json "errors"), the
        run goes on with the next one, and the results so far are written either way: a
        crash in the third repeat no longer loses the first two."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - any failure of one workload
            log(f"{name}: FAILED: {type(e).__name__}: {e}")
            self.results.setdefault("errors", []).append({"workload": name, "error": f"{type(e).__name__}: {e}"})
        if self.checkpoint:
            self.checkpoint(self)

    def run(self) -> None:
        a = self.args
        with self.stack.connect() as c:
            if c.execute("SHOW track_commit_timestamp").fetchone()[0] != "on":
                sys.exit("bench: track_commit_timestamp is off; bench/run.sh turns it on (ALTER SYSTEM, restart)")
        for rep in range(1, a.repeats + 1):
            log(f"=== repeat {rep}/{a.repeats}")
            skip = a.skip.split(",")
            if "single" not in skip:
                self.workload(f"single {rep}", self.drain_scenario, rep, "single", a.events, 1)
            if "batched" not in skip:
                self.workload(f"batched {rep}", self.drain_scenario, rep, "batched", a.events, 100)
            if a.small_events and "small" not in skip:
                self.workload(f"small {rep}", self.drain_scenario, rep, "small", a.small_events, 1)
            if "defaults" not in skip:
                self.workload(f"defaults {rep}", self.drain_scenario, rep, "defaults", a.events, 1)
            if "partitioned" not in skip:
                self.workload(f"partitioned {rep}", self.drain_scenario, rep, "partitioned", a.events, 1)
            if a.big and "bigtxn" not in skip:
                self.workload(f"bigtxn {rep}", self.bigtxn_scenario, rep, a.big)
            if a.dup_events and "dups" not in skip:
                self.workload(f"duplicates {rep}", self.duplicates_scenario, rep)
            for rate in a.rates:
                if "decode-floor" in a.relays.split(","):
                    self.workload(f"decode-floor {rate}/s {rep}", self.decode_floor_scenario, rep, rate)
                if "producer-floor" in a.relays.split(",") and a.producer:
                    self.workload(f"producer-floor {rate}/s {rep}", self.floor_scenario, rep, rate)
                for cls in [c for c in (Outboxd, OutboxdPgoutput, OutboxdLinger1, OutboxdEos, Poller)
                            if c.name in a.relays.split(",")] + VARIANTS + (
                        [Debezium] if a.debezium and a.debezium_latency else []):
                    self.workload(f"latency {rate}/s {cls.name} {rep}", self.latency_scenario, rep, rate, cls)


# ----------------------------------------------------------------------------- report


def summarize(res: dict, args) -> dict:
    s: dict = {"drain": {}, "bigtxn": {}, "latency": {}}
    for kind in sorted({r["kind"] for r in res["drain"]}):
        rows = [r for r in res["drain"] if r["kind"] == kind]
        d = {"events": rows[0]["events"], "per_txn": rows[0]["per_txn"]}
        for rel in DRAIN_RELAYS:
            rr = [r[rel] for r in rows if rel in r]
            if not rr:
                continue
            d[rel] = {k: median([x.get(k) for x in rr]) for k in
                      ("secs", "rate", "rate_steady", "peak_rss_kb", "cpu_us_per_event", "t_first", "t_all", "cpu_s",
                       "rss_kb", "pg_cpu_us_per_event", "pg_cpu_total_us_per_event", "pg_cpu_s")}
        # Ratios within each repeat, then the median of the ratios.
        d["outboxd_vs_recvlogical"] = median([r["outboxd"]["rate"] / r["pg_recvlogical"]["rate"] for r in rows
                                              if "outboxd" in r])
        if all("outboxd-pgoutput" in r for r in rows):
            # against pg_recvlogical's wal2json decode rate (the issue's target) and its own plugin's
            d["pgoutput_vs_recvlogical"] = median([r["outboxd-pgoutput"]["rate"] / r["pg_recvlogical"]["rate"]
                                                   for r in rows])
            d["pgoutput_vs_recvlogical_pgoutput"] = median(
                [r["outboxd-pgoutput"]["rate"] / r["pg_recvlogical-pgoutput"]["rate"] for r in rows])
            if all("debezium" in r for r in rows):
                d["pgoutput_vs_debezium_rate"] = median(
                    [ratio(r["outboxd-pgoutput"]["rate_steady"], r["debezium"]["rate_steady"]) for r in rows])
        if all("debezium" in r for r in rows):
            d["outboxd_vs_debezium_rate"] = median([ratio(r["outboxd"]["rate_steady"], r["debezium"]["rate_steady"])
                                                    for r in rows])
            d["debezium_vs_outboxd_rss"] = median([r["debezium"]["peak_rss_kb"] / r["outboxd"]["peak_rss_kb"]
                                                   for r in rows])
        if all("polling" in r for r in rows):
            d["outboxd_vs_polling_rate"] = median([ratio(r["outboxd"]["rate_steady"], r["polling"]["rate_steady"])
                                                   for r in rows])
        s["drain"][kind] = d
    if res["bigtxn"]:
        rows = res["bigtxn"]
        s["bigtxn"] = {"events": rows[0]["events"],
                       "pg_recvlogical_secs": median([r["pg_recvlogical"]["secs"] for r in rows]),
                       "outboxd_secs": median([r["outboxd"]["secs"] for r in rows]),
                       "outboxd_peak_rss_kb": median([r["outboxd"]["peak_rss_kb"] for r in rows]),
                       "outboxd_cpu_us_per_event": median([r["outboxd"]["cpu_us_per_event"] for r in rows]),
                       "outboxd_vs_recvlogical": median([r["outboxd"]["rate"] / r["pg_recvlogical"]["rate"]
                                                         for r in rows])}
    dups = res.get("duplicates", [])
    for kind, how in sorted({(r["kind"], r["how"]) for r in dups}):
        rr = [r for r in dups if r["kind"] == kind and r["how"] == how]
        s.setdefault("duplicates", {})[f"{kind} {how}"] = {
            "events": rr[0]["events"], "runs": len(rr), "duplicates_median": median([r["duplicates"] for r in rr]),
            "duplicates_max": max(r["duplicates"] for r in rr)}
    for rate in sorted({r["rate_target"] for r in res["latency"]}):
        d = {}
        for rel in LATENCY_RELAYS + tuple(c.name for c in VARIANTS):
            rr = [r for r in res["latency"] if r["rate_target"] == rate and r["relay"] == rel]
            if rr:
                d[rel] = {k: median([x[k] for x in rr]) for k in rr[0] if k.endswith("_ms") or k in
                          ("rate_achieved", "cpu_us_per_event", "peak_rss_kb", "missing", "cpu_share",
                           "pg_cpu_us_per_event", "load_avg")}
        # polling p50 / outboxd p50, per repeat, then the median; ack and receipt.
        for rel in ("outboxd", "outboxd-pgoutput", "outboxd-linger1") + tuple(c.name for c in VARIANTS):
            # p99 against the decode floor of the same repeat
            pairs = [(o, f) for o in res["latency"] for f in res["latency"]
                     if o["rate_target"] == f["rate_target"] == rate and o["rep"] == f["rep"]
                     and o["relay"] == rel and f["relay"] == "decode-floor"]
            if pairs:
                d[f"{rel}_p99_vs_floor"] = median([o["ack_p99_ms"] / f["ack_p99_ms"] for o, f in pairs])
        for rel in ("outboxd", "outboxd-linger1"):
            pairs = [(o, p) for o in res["latency"] for p in res["latency"]
                     if o["rate_target"] == p["rate_target"] == rate and o["rep"] == p["rep"]
                     and o["relay"] == rel and p["relay"] == "polling"]
            for k in ("ack", "recv"):
                if pairs:
                    d[f"polling_vs_{rel}_{k}_p50"] = median([p[f"{k}_p50_ms"] / o[f"{k}_p50_ms"] for o, p in pairs])
        s["latency"][str(rate)] = d
    # Targets (docs/benchmarks.md, issue 5).
    t = {}
    single = s["drain"].get("single", {})
    if single:
        t["drain >= 0.7x pg_recvlogical (single)"] = (single["outboxd_vs_recvlogical"], single["outboxd_vs_recvlogical"] >= 0.7)
    b = s["drain"].get("batched", {})
    if b:
        t["drain >= 0.7x pg_recvlogical (batched)"] = (b["outboxd_vs_recvlogical"], b["outboxd_vs_recvlogical"] >= 0.7)
    l5 = s["latency"].get("5000", {}).get("outboxd")
    if l5:
        t["p99 commit-to-ack <= 25 ms at 5k/s"] = (l5["ack_p99_ms"], l5["ack_p99_ms"] <= 25)
    rss = [d[rel]["peak_rss_kb"] for d in s["drain"].values() for rel in ("outboxd", "outboxd-pgoutput") if rel in d]
    if s["bigtxn"]:
        rss.append(s["bigtxn"]["outboxd_peak_rss_kb"])
    if rss:
        t["peak RSS <= 16 MB (all drains, big txn)"] = (max(rss) / 1024, max(rss) <= 16 * 1024)
    if single.get("pgoutput_vs_debezium_rate") is not None:
        t["single-event drain, pgoutput >= 5x Debezium steady rate"] = (
            single["pgoutput_vs_debezium_rate"], single["pgoutput_vs_debezium_rate"] >= 5)
    if single.get("pgoutput_vs_recvlogical") is not None:
        t["single-event drain, pgoutput >= 1.0x pg_recvlogical wal2json rate"] = (
            single["pgoutput_vs_recvlogical"], single["pgoutput_vs_recvlogical"] >= 1.0)
    dflt = s["drain"].get("defaults", {})
    if dflt.get("outboxd_vs_recvlogical") is not None:
        t["default-settings drain >= 1.0x pg_recvlogical (wal2json)"] = (
            dflt["outboxd_vs_recvlogical"], dflt["outboxd_vs_recvlogical"] >= 1.0)
    for rate in ("1000", "5000"):
        for rel in ("outboxd", "outboxd-pgoutput"):
            v = s["latency"].get(rate, {}).get(f"{rel}_p99_vs_floor")
            if v is not None:
                t[f"live p99 <= 2x decode floor at {rate}/s ({rel})"] = (v, v <= 2)
    if single.get("outboxd_vs_debezium_rate") is not None:
        t[">= 3x Debezium drain rate"] = (single["outboxd_vs_debezium_rate"], single["outboxd_vs_debezium_rate"] >= 3)
        t["<= 1/10 Debezium RSS"] = (single["debezium_vs_outboxd_rss"], single["debezium_vs_outboxd_rss"] >= 10)
    for rel in ("outboxd", "outboxd-linger1"):
        for k, what in (("ack", "commit-to-ack"), ("recv", "commit-to-receipt")):
            ratios = [d[f"polling_vs_{rel}_{k}_p50"] for d in s["latency"].values() if f"polling_vs_{rel}_{k}_p50" in d]
            if ratios:
                t[f"median {what} >= 20x lower than polling ({rel}, worst rate)"] = (min(ratios), min(ratios) >= 20)
    s["targets"] = {k: {"value": v, "met": ok} for k, (v, ok) in t.items() if v is not None}
    return s


def fmt(x, spec=".0f"):
    return "-" if x is None else format(x, spec)


def table(s: dict) -> str:
    out = ["### Backlog drain (median over repeats)", "",
           "| workload | relay | time s | events/s | steady events/s | peak RSS MB | CPU us/event | PostgreSQL-side CPU us/event |",
           "|---|---|---|---|---|---|---|---|"]
    for kind, d in s["drain"].items():
        label = f"{kind}: {d['events']} events, {d['per_txn']}/txn"
        for rel in DRAIN_RELAYS:
            if rel not in d:
                continue
            x = d[rel]
            cpu = x["cpu_us_per_event"] if x.get("cpu_us_per_event") is not None else (
                x["cpu_s"] / d["events"] * 1e6 if x.get("cpu_s") is not None else None)
            rss = x.get("peak_rss_kb") or x.get("rss_kb")
            pgc = x.get("pg_cpu_us_per_event") if x.get("pg_cpu_us_per_event") is not None else (
                x["pg_cpu_s"] / d["events"] * 1e6 if x.get("pg_cpu_s") is not None else None)
            out.append(f"| {label} | {rel} | {fmt(x['secs'], '.2f')} | {fmt(x['rate'])} | {fmt(x.get('rate_steady'))} "
                       f"| {fmt(rss / 1024 if rss else None, '.1f')} | {fmt(cpu, '.1f')} | {fmt(pgc, '.1f')} |")
    if s["bigtxn"]:
        b = s["bigtxn"]
        out += ["", "### One transaction", "",
                "| events | pg_recvlogical s | outboxd s | outboxd / pg_recvlogical rate | outboxd peak RSS MB | CPU us/event |",
                "|---|---|---|---|---|---|",
                f"| {b['events']} | {b['pg_recvlogical_secs']:.2f} | {b['outboxd_secs']:.2f} | "
                f"{b['outboxd_vs_recvlogical']:.2f} | {b['outboxd_peak_rss_kb'] / 1024:.1f} | "
                f"{b['outboxd_cpu_us_per_event']:.1f} |"]
    if s["latency"]:
        out += ["", "### Live latency, ms from commit (median over repeats)", "",
                "| target rate | relay | achieved/s | ack p50 | ack p99 | ack p99 / decode floor p99 | ack p99.9 | ack max "
                "| receipt p50 | receipt p99 | receipt p99.9 | receipt max | CPU us/event | PostgreSQL-side CPU us/event "
                "| peak RSS MB | load avg |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for rate, d in s["latency"].items():
            for rel in LATENCY_RELAYS + tuple(c.name for c in VARIANTS):
                if rel not in d:
                    continue
                x = d[rel]
                rss = x.get("peak_rss_kb")
                out.append(f"| {rate} | {rel} | {x['rate_achieved']:.0f} | {x['ack_p50_ms']:.1f} | {x['ack_p99_ms']:.1f} "
                           f"| {fmt(d.get(f'{rel}_p99_vs_floor'), '.2f')} | {x['ack_p99.9_ms']:.1f} | {x['ack_max_ms']:.1f} | {fmt(x.get('recv_p50_ms'), '.1f')} | "
                           f"{fmt(x.get('recv_p99_ms'), '.1f')} | {fmt(x.get('recv_p99.9_ms'), '.1f')} | "
                           f"{fmt(x.get('recv_max_ms'), '.1f')} | "
                           f"{fmt(x.get('cpu_us_per_event'), '.1f')} | {fmt(x.get('pg_cpu_us_per_event'), '.1f')} | "
                           f"{fmt(rss / 1024 if rss else None, '.1f')} | {fmt(x.get('load_avg'), '.1f')} |")
    if s.get("duplicates"):
        out += ["", "### Duplicates after a kill -9 or a clean stop (outboxd with default settings)", "",
                "| workload | cut | events | runs | duplicates (median) | duplicates (max) |", "|---|---|---|---|---|---|"]
        for k, d in s["duplicates"].items():
            kind, how = k.split()
            label = "single-event stream" if kind == "stream" else f"one {d['events']}-event transaction"
            out.append(f"| {label} | {'kill -9' if how == 'kill' else 'SIGTERM'} | {d['events']} | {d['runs']} | "
                       f"{d['duplicates_median']:.0f} | {d['duplicates_max']} |")
    out += ["", "### Targets", "", "| target | value | met |", "|---|---|---|"]
    for k, v in s["targets"].items():
        out.append(f"| {k} | {v['value']:.2f} | {'yes' if v['met'] else 'NO'} |")
    return "\n".join(out)


def plots(res: dict, s: dict, out: Path) -> list:
    try:
        import matplotlib
    except ImportError:  # the smoke test runs in the test venv, without matplotlib
        log("matplotlib is not installed: no plots (bench/run.sh installs it)")
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files = []
    colors = {"pg_recvlogical": "#999999", "pg_recvlogical-pgoutput": "#cccccc", "outboxd": "#1f77b4",
              "outboxd-pgoutput": "#17becf", "debezium": "#d62728", "polling": "#ff7f0e"}
    # 1. drain rates
    kinds = list(s["drain"])
    if kinds:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        rels = [r for r in colors if any(r in s["drain"][k] for k in kinds)]
        w = 0.8 / len(rels)
        for i, rel in enumerate(rels):
            ys = [s["drain"][k].get(rel, {}).get("rate") or 0 for k in kinds]
            ax.bar([x + i * w for x in range(len(kinds))], ys, w, label=rel, color=colors[rel])
        ax.set_xticks([x + w * (len(rels) - 1) / 2 for x in range(len(kinds))])
        ax.set_xticklabels([f"{k}\n{s['drain'][k]['events']} ev, {s['drain'][k]['per_txn']}/txn" for k in kinds])
        ax.set_ylabel("events/s (start to end)")
        ax.set_title("Backlog drain rate (median)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "bench-drain.png", dpi=90)
        files.append("bench-drain.png")
    # 2. latency percentiles
    if s["latency"]:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        rates = list(s["latency"])
        series = [("outboxd", "ack", "outboxd ack"), ("outboxd", "recv", "outboxd receipt"),
                  ("debezium", "recv", "debezium receipt"), ("polling", "recv", "polling receipt")]
        series = [x for x in series if any(x[0] in s["latency"][r] for r in rates)]
        w = 0.8 / len(series)
        for i, (rel, k, label) in enumerate(series):
            for j, (p, alpha) in enumerate((("p50", 1.0), ("p99", 0.45))):
                ys = [s["latency"][r].get(rel, {}).get(f"{k}_{p}_ms") or 0 for r in rates]
                ax.bar([x + i * w for x in range(len(rates))], ys, w, color=colors[rel], alpha=alpha,
                       hatch="//" if k == "ack" else None, label=f"{label} {p}", zorder=2 - j)
        ax.set_yscale("log")
        ax.set_xticks([x + w * (len(series) - 1) / 2 for x in range(len(rates))])
        ax.set_xticklabels([f"{r} ev/s" for r in rates])
        ax.set_ylabel("ms from commit (log)")
        ax.set_title("Live latency: p50 (solid) and p99 (light)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(out / "bench-latency.png", dpi=90)
        files.append("bench-latency.png")
    # 3. RSS over time during the drains (last repeat)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    drawn = False
    for rows, label in ((res["drain"], None), (res["bigtxn"], "bigtxn")):
        seen = set()
        for r in reversed(rows):
            if r["kind"] in seen:
                continue
            seen.add(r["kind"])
            for rel in ("outboxd", "debezium", "polling"):
                if rel in r and r[rel].get("rss_series"):
                    xs, ys = zip(*r[rel]["rss_series"])
                    ax.plot(xs, [y / 1024 for y in ys], label=f"{rel}, {r['kind']}",
                            color=colors[rel], linestyle={"single": "-", "batched": "--", "small": ":"}.get(r["kind"], "-."))
                    drawn = True
    if drawn:
        ax.set_yscale("log")
        ax.set_xlabel("s since relay start")
        ax.set_ylabel("RSS MB (log)")
        ax.set_title("Relay RSS during the drains")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "bench-rss.png", dpi=90)
        files.append("bench-rss.png")
    plt.close("all")
    return files


def versions(args) -> dict:
    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except Exception as e:  # noqa: BLE001 - informational only
            return f"? ({e})"
    st = Stack(args)
    with st.connect() as c:
        pgv = c.execute("SELECT version()").fetchone()[0]
        w2j = c.execute("SELECT 1").fetchone()  # wal2json has no SQL-visible version
    import confluent_kafka
    v = {"outboxd": run([args.outboxd, "--version"]), "postgresql": pgv,
         "wal2json": run(["dpkg-query", "-W", "-f=${Version}", "postgresql-15-wal2json"]),
         "librdkafka": confluent_kafka.libversion()[0] + " (python client; outboxd links Debian's)",
         "kafka": "3.9.1", "java": run(["java", "-version"]) or "", "cpus": os.cpu_count(),
         "kernel": platform.release(), "cpu_model": next((l.split(":", 1)[1].strip() for l in
                                                           Path("/proc/cpuinfo").read_text().splitlines()
                                                           if l.startswith("model name")), "?")}
    del w2j
    j = subprocess.run(["java", "-version"], capture_output=True, text=True)
    v["java"] = (j.stderr or j.stdout).splitlines()[0] if (j.stderr or j.stdout) else "?"
    v["rdkafka_debian"] = run(["dpkg-query", "-W", "-f=${Version}", "librdkafka1"])
    return v


def write_results(b: Bench, t0: float, final: bool) -> str:
    """Writes results.json and table.md from what b measured so far (after every workload,
    and at the end with the plots); returns the table."""
    args = b.args
    s = summarize(b.results, args)
    settings = {"config": args.config, "repeats": args.repeats, "events": args.events, "big": args.big,
                "rates": args.rates, "latency_secs": args.latency_secs, "status_interval_ms": STATUS_INTERVAL_MS,
                "polling_batch": POLL_BATCH, "polling_interval_ms": POLL_INTERVAL_MS, "debezium": args.debezium,
                "aggregate_ids": AGG_KEYS, "partitions": PARTITIONS, "wall_secs": time.time() - t0,
                "complete": final, "load_avg_at_write": os.getloadavg()}
    out = Path(args.out)
    txt = table(s)
    if b.results.get("errors"):
        txt += "\n\n### Failed workloads\n\n" + "\n".join(f"- {e['workload']}: {e['error']}"
                                                          for e in b.results["errors"])
    if not final:
        txt = "(partial: the run is still going or was interrupted)\n\n" + txt
    b.versions = getattr(b, "versions", None) or versions(args)
    (out / "results.json").write_text(json.dumps({"settings": settings, "versions": b.versions, "summary": s,
                                                  "raw": b.results}, indent=1, default=str))
    (out / "table.md").write_text(txt + "\n")
    return txt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--outboxd", required=True)
    ap.add_argument("--poller", required=True)
    ap.add_argument("--producer", default="", help="bench/baseline_producer (the producer-floor row)")
    ap.add_argument("--outboxd-set", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra outboxd configuration line for every outboxd run (repeatable)")
    ap.add_argument("--outboxd-variant", action="append", default=[], metavar="NAME:KEY=VALUE;...",
                    help="also run outboxd with these settings as relay outboxd-NAME in the latency workload "
                         "(repeatable), e.g. nagleoff:kafka.socket.nagle.disable=true")
    ap.add_argument("--debezium-libs", default="")
    ap.add_argument("--debezium", action="store_true")
    ap.add_argument("--debezium-latency", action="store_true", help="also measure Debezium's live latency")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--small-events", type=int, default=10_000, help="a smaller backlog for RSS flatness; 0: none")
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--rates", default="1000,5000,10000")
    ap.add_argument("--latency-secs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--config", default="full")
    ap.add_argument("--relays", default="outboxd,outboxd-pgoutput,outboxd-linger1,outboxd-eos,decode-floor,"
                    "producer-floor,debezium,polling", help="comma-separated subset")
    ap.add_argument("--skip", default="",
                    help="comma-separated workloads to skip: single,batched,small,defaults,partitioned,bigtxn,dups")
    ap.add_argument("--dup-events", type=int, default=50_000,
                    help="backlog of the duplicates workload (kill -9 and SIGTERM mid-stream); 0: none")
    ap.add_argument("--dup-txn", type=int, default=20_000, help="events of the duplicates workload's one transaction")
    args = ap.parse_args()
    args.rates = [int(x) for x in args.rates.split(",") if x]
    VARIANTS.extend(outboxd_variant(v) for v in args.outboxd_variant)
    b = Bench(args)
    t0 = time.time()
    b.checkpoint = lambda bench: write_results(bench, t0, final=False)
    b.run()
    txt = write_results(b, t0, final=True)
    out = Path(args.out)
    files = plots(b.results, summarize(b.results, args), out)
    print(txt)
    print(f"\nresults: {out / 'results.json'}; plots: {', '.join(str(out / f) for f in files)}")
    return 1 if b.results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
