"""Integration-test harness for outboxd: the local stack, databases, Kafka, the outboxd process.

The fixtures in conftest.py wrap these classes; tests may also use them directly.
The stack (PostgreSQL + Kafka) is started by scripts/stack.sh, never by the tests.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
OUTBOX_SQL = REPO / "sql" / "outbox.sql"
PARTITION_JAVA = Path(__file__).resolve().parent / "java" / "Partition.java"
DEFAULT_STACK_DIR = "/tmp/outboxd-stack"

# outboxd maps every OUTBOXD_<KEY> environment variable onto a config key and refuses
# unknown ones; the harness's own variables (OUTBOXD_STACK_*, OUTBOXD_BIN, ...) must
# not reach it. Only variables a test passes explicitly do.
HARNESS_ENV_PREFIX = "OUTBOXD_"


def unique_name(prefix: str = "t") -> str:
    """A short name unique across tests and runs: prefix + '_' + 10 hex digits."""
    return f"{prefix}_{secrets.token_hex(5)}"


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Polls predicate() until it returns a truthy value, which is returned.
    Raises AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- stack


class StackNotRunning(Exception):
    pass


@dataclass
class Stack:
    """The running local stack, as described by <stack dir>/stack.env."""

    dir: Path
    pg_conninfo: str
    pg_port: int
    kafka: str  # bootstrap servers, "127.0.0.1:19092"
    kafka_libs: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, stack_dir: str | os.PathLike | None = None) -> "Stack":
        d = Path(stack_dir or os.environ.get("OUTBOXD_STACK_DIR") or DEFAULT_STACK_DIR)
        env_file = d / "stack.env"
        if not env_file.is_file():
            raise StackNotRunning(
                f"no test stack: {env_file} does not exist. Start one with: scripts/stack.sh start"
            )
        env = parse_env_file(env_file)
        try:
            return cls(
                dir=d,
                pg_conninfo=env["OUTBOXD_STACK_PG_CONNINFO"],
                pg_port=int(env["OUTBOXD_STACK_PG_PORT"]),
                kafka=env["OUTBOXD_STACK_KAFKA"],
                kafka_libs=Path(env["OUTBOXD_STACK_KAFKA_LIBS"]),
                env=env,
            )
        except KeyError as e:
            raise StackNotRunning(f"{env_file} lacks {e}; restart the stack: scripts/stack.sh stop && scripts/stack.sh start")

    def pg_conninfo_for(self, dbname: str) -> str:
        return make_conninfo(self.pg_conninfo, dbname=dbname)

    def pg_connect(self, dbname: str = "postgres", autocommit: bool = True, **kw) -> psycopg.Connection:
        return psycopg.connect(self.pg_conninfo_for(dbname), autocommit=autocommit, **kw)

    def check(self, timeout: float = 5.0) -> None:
        """Raises StackNotRunning unless PostgreSQL and Kafka both answer."""
        try:
            with self.pg_connect(connect_timeout=max(2, int(timeout))) as c:
                c.execute("SELECT 1")
        except psycopg.Error as e:
            raise StackNotRunning(
                f"PostgreSQL of the test stack ({self.pg_conninfo}) is not reachable: {e}\n"
                f"Start the stack with: scripts/stack.sh start"
            )
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.kafka}).list_topics(timeout=timeout)
        except Exception as e:  # KafkaException
            raise StackNotRunning(
                f"Kafka of the test stack ({self.kafka}) is not reachable: {e}\n"
                f"Start the stack with: scripts/stack.sh start"
            )

    # --- fault injection: scripts/stack.sh subcommands --------------------------

    def ctl(self, command: str, timeout: float = 180) -> str:
        """Runs scripts/stack.sh COMMAND on this stack; returns its output; raises on failure."""
        env = dict(os.environ, OUTBOXD_STACK_DIR=str(self.dir))
        r = subprocess.run(
            [str(STACK_SH), command],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise RuntimeError(f"scripts/stack.sh {command} failed ({r.returncode}):\n{r.stdout}")
        return r.stdout

    def pg_running(self) -> bool:
        try:
            with self.pg_connect(connect_timeout=2) as c:
                c.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False


def parse_env_file(path: Path) -> dict[str, str]:
    """Parses `export NAME='value'` lines as written by scripts/stack.sh."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        if words and words[0] == "export":
            words = words[1:]
        for w in words:
            k, sep, v = w.partition("=")
            if sep:
                env[k] = v
    return env


class StackFaults:
    """Stops/kills/restarts the stack's servers for fault tests; whatever a test took
    down is brought back by restore() (the `faults` fixture calls it at teardown)."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self._pg_down = False
        self._kafka_down = False

    def pg_stop(self):
        self._pg_down = True
        return self.stack.ctl("pg-stop")

    def pg_kill(self):
        """Crash PostgreSQL (immediate shutdown; crash recovery at the next start)."""
        self._pg_down = True
        return self.stack.ctl("pg-kill")

    def pg_start(self):
        out = self.stack.ctl("pg-start")
        self._pg_down = False
        return out

    def pg_restart(self):
        self._pg_down = True
        out = self.stack.ctl("pg-restart")
        self._pg_down = False
        return out

    def kafka_stop(self):
        self._kafka_down = True
        return self.stack.ctl("kafka-stop")

    def kafka_kill(self):
        self._kafka_down = True
        return self.stack.ctl("kafka-kill")

    def kafka_start(self):
        out = self.stack.ctl("kafka-start")
        self._kafka_down = False
        return out

    def kafka_restart(self):
        self.kafka_stop()
        return self.kafka_start()

    def restore(self):
        if self._pg_down:
            self.pg_start()
        if self._kafka_down:
            self.kafka_start()


# --------------------------------------------------------------------------- PostgreSQL


class Db:
    """A throwaway database of the test stack holding the default outbox table."""

    def __init__(self, stack: Stack, dbname: str):
        self.stack = stack
        self.dbname = dbname
        self.conninfo = stack.pg_conninfo_for(dbname)
        self._conns: list[psycopg.Connection] = []
        self.conn = self.connect()

    # --- connections -------------------------------------------------------------

    def connect(self, autocommit: bool = True, **kw) -> psycopg.Connection:
        """A new connection to this database; closed at teardown."""
        c = psycopg.connect(self.conninfo, autocommit=autocommit, **kw)
        self._conns.append(c)
        return c

    def reconnect(self) -> psycopg.Connection:
        """Replaces self.conn (e.g. after a PostgreSQL restart broke it)."""
        try:
            self.conn.close()
        except Exception:
            pass
        self.conn = self.connect()
        return self.conn

    def execute(self, query, params=None, conn: psycopg.Connection | None = None) -> list[tuple]:
        """Runs one statement on conn (default self.conn); returns its rows ([] if none)."""
        cur = (conn or self.conn).execute(query, params)
        return cur.fetchall() if cur.description else []

    def scalar(self, query, params=None, conn: psycopg.Connection | None = None):
        rows = self.execute(query, params, conn)
        return rows[0][0] if rows else None

    # --- outbox -------------------------------------------------------------------------

    def insert_event(
        self,
        aggregate_type: str,
        aggregate_id: str,
        event_type: str,
        payload: Any,
        headers: Any = None,
        conn: psycopg.Connection | None = None,
        table: str = "public.outbox",
    ) -> str:
        """Inserts one outbox row; returns its id (uuid as str).

        payload/headers: a str is taken as JSON text (cast to jsonb as is); anything
        else (dict, list, number, bool, Jsonb) is serialised to JSON. headers=None
        stores SQL NULL. With conn inside an open transaction, the row is part of it.
        """
        q = sql.SQL(
            "INSERT INTO {} (aggregate_type, aggregate_id, event_type, payload, headers) "
            "VALUES (%s, %s, %s, %s::jsonb, %s::jsonb) RETURNING id"
        ).format(sql.SQL(table))
        row = (conn or self.conn).execute(
            q, (aggregate_type, aggregate_id, event_type, _jsonb(payload), _jsonb(headers))
        ).fetchone()
        return str(row[0])

    def emit_message(self, content: str | bytes, prefix: str = "outbox", transactional: bool = True,
                     conn: psycopg.Connection | None = None) -> str:
        """pg_logical_emit_message(transactional, prefix, content); returns its LSN."""
        return str(
            (conn or self.conn)
            .execute("SELECT pg_logical_emit_message(%s, %s, %s)", (transactional, prefix, content))
            .fetchone()[0]
        )

    # --- WAL and slots ----------------------------------------------------------------

    def current_wal_lsn(self) -> str:
        return str(self.scalar("SELECT pg_current_wal_lsn()"))

    def create_slot(self, slot: str, plugin: str = "wal2json") -> str:
        """Creates a logical slot in this database; returns its consistent point LSN."""
        return str(self.scalar("SELECT lsn FROM pg_create_logical_replication_slot(%s, %s)", (slot, plugin)))

    def slot_info(self, slot: str) -> dict | None:
        """The slot's row of pg_replication_slots as a dict (None if there is no such
        slot): slot_name, plugin, slot_type, database, temporary, active, active_pid,
        restart_lsn, confirmed_flush_lsn (LSNs as str), wal_status, and
        lag_bytes = pg_current_wal_lsn() - confirmed_flush_lsn."""
        with self.stack.pg_connect() as c:
            cur = c.execute(
                "SELECT slot_name, plugin, slot_type, database, temporary, active, active_pid, "
                "restart_lsn::text, confirmed_flush_lsn::text, wal_status, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag_bytes "
                "FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([d.name for d in cur.description], row))

    def slots(self) -> list[str]:
        """Names of the replication slots of this database."""
        with self.stack.pg_connect() as c:
            return [r[0] for r in c.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = %s ORDER BY 1", (self.dbname,))]

    def wait_slot_confirmed(self, slot: str, lsn: str, timeout: float = 30) -> dict:
        """Waits until the slot's confirmed_flush_lsn >= lsn; returns slot_info."""
        target = lsn_to_int(lsn)

        def ok():
            i = self.slot_info(slot)
            if i and i["confirmed_flush_lsn"] and lsn_to_int(i["confirmed_flush_lsn"]) >= target:
                return i
            return None

        return wait_until(ok, timeout, 0.1, f"slot {slot} confirmed_flush_lsn >= {lsn}")

    def drop_slots(self, timeout: float = 30) -> None:
        """Terminates the walsenders using this database's slots and drops the slots."""
        deadline = time.monotonic() + timeout
        with self.stack.pg_connect() as c:
            while True:
                rows = c.execute(
                    "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s",
                    (self.dbname,),
                ).fetchall()
                if not rows:
                    return
                for name, pid in rows:
                    try:
                        if pid is not None:
                            c.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
                        c.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                    except psycopg.Error:
                        if time.monotonic() >= deadline:
                            raise
                        time.sleep(0.1)  # reacquired or still active: retry

    def close(self) -> None:
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._conns.clear()


def _jsonb(v):
    if v is None:
        return None
    if isinstance(v, Jsonb):
        return v
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode()
    if isinstance(v, str):
        return v
    return Jsonb(v)


def lsn_to_int(lsn: str) -> int:
    """'16/B374D848' -> integer position."""
    hi, lo = str(lsn).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def int_to_lsn(v: int) -> str:
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def create_database(stack: Stack, dbname: str | None = None, outbox: bool = True) -> Db:
    """CREATE DATABASE <dbname> (default t_<random>) with sql/outbox.sql applied."""
    dbname = dbname or unique_name("t")
    with stack.pg_connect() as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db = Db(stack, dbname)
    if outbox:
        db.conn.execute(OUTBOX_SQL.read_text())
    return db


def drop_database(db: Db) -> None:
    db.close()
    if not db.stack.pg_running():
        db.stack.ctl("pg-start")  # a fault test left it down
    db.drop_slots()
    with db.stack.pg_connect() as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.dbname)))


# --------------------------------------------------------------------------- Kafka


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int

    def header(self, name: str) -> bytes | None:
        """The last header called name (None if absent)."""
        v = None
        for k, hv in self.headers:
            if k == name:
                v = hv
        return v


class Kafka:
    """Helpers around confluent_kafka for the test stack's broker."""

    def __init__(self, bootstrap: str):
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    # --- topics -------------------------------------------------------------------

    def topics(self, prefix: str = "") -> list[str]:
        md = self.admin.list_topics(timeout=10)
        return sorted(t for t in md.topics if t.startswith(prefix) and not t.startswith("__"))

    def partition_count(self, topic: str) -> int | None:
        """Number of partitions of topic; None if it does not exist."""
        md = self.admin.list_topics(timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return None
        return len(t.partitions)

    def create_topic(self, topic: str, partitions: int = 3, config: dict | None = None,
                     timeout: float = 30) -> None:
        """Creates topic and waits until its metadata shows all partitions."""
        from confluent_kafka.admin import NewTopic

        fs = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
            operation_timeout=timeout,
        )
        fs[topic].result(timeout)
        wait_until(lambda: self.partition_count(topic) == partitions, timeout, 0.1,
                   f"topic {topic} with {partitions} partitions")

    def delete_topics(self, topics: Sequence[str], timeout: float = 30) -> None:
        if not topics:
            return
        for f in self.admin.delete_topics(list(topics), operation_timeout=timeout).values():
            f.result(timeout)

    # --- produce / consume -----------------------------------------------------------

    def produce(self, topic: str, value: bytes | str | None, key: bytes | str | None = None,
                headers: list | dict | None = None, partition: int | None = None,
                config: dict | None = None) -> tuple[int, int]:
        """Produces one record (acks=all) and waits; returns (partition, offset)."""
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", **(config or {})})
        result: dict = {}

        def cb(err, msg):
            result["err"], result["msg"] = err, msg

        kw = {"key": key, "value": value, "headers": headers, "on_delivery": cb}
        if partition is not None:
            kw["partition"] = partition
        p.produce(topic, **kw)
        if p.flush(30) != 0:
            raise AssertionError(f"produce to {topic}: not delivered in 30 s")
        if result.get("err") is not None:
            raise AssertionError(f"produce to {topic} failed: {result['err']}")
        return result["msg"].partition(), result["msg"].offset()

    def consume(self, topics: str | Iterable[str], n: int | None = None, timeout: float = 30,
                settle: float | None = None) -> list[Record]:
        """Reads the given topics from the beginning (no consumer group: partitions are
        assigned directly; topics created while reading are picked up).

        Stops when n records were read, or, with n=None, once no new record arrived
        for `settle` seconds (default 2) - or at `timeout` either way. Returns the
        records in arrival order (per partition: offset order); may return fewer than
        n: assert on the result.  For "exactly n, no more" use n=None with settle.
        """
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

        topics = [topics] if isinstance(topics, str) else list(topics)
        if n is None and settle is None:
            settle = 2.0
        c = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": unique_name("harness"),  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
            "topic.metadata.refresh.interval.ms": 500,
        })
        out: list[Record] = []
        assigned: set[tuple[str, int]] = set()
        try:
            deadline = time.monotonic() + timeout
            last_new = time.monotonic()
            next_md = 0.0
            while True:
                now = time.monotonic()
                if now >= next_md:  # (re)assign: topics/partitions may appear meanwhile
                    md = c.list_topics(timeout=5)
                    new = []
                    for t in topics:
                        tm = md.topics.get(t)
                        if tm is None or tm.error is not None:
                            continue
                        for p in tm.partitions:
                            if (t, p) not in assigned:
                                assigned.add((t, p))
                                new.append(TopicPartition(t, p, OFFSET_BEGINNING))
                    if new:
                        c.incremental_assign(new)
                    next_md = now + 0.5
                if n is not None and len(out) >= n:
                    break
                if now >= deadline:
                    break
                if settle is not None and n is None and now - last_new >= settle and assigned:
                    break
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().retriable() or msg.error().code() < 0:
                        continue  # transient (e.g. partition EOF, transport) - keep reading
                    raise AssertionError(f"consume {topics}: {msg.error()}")
                out.append(Record(
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers=[(k, v) for k, v in (msg.headers() or [])],
                    timestamp=msg.timestamp()[1],
                ))
                last_new = time.monotonic()
        finally:
            c.close()
        return out


# --------------------------------------------------------------------------- outboxd


# setpriv (util-linux) execs outboxd with PR_SET_PDEATHSIG=SIGKILL: if pytest dies
# (kill -9, timeout of the CI job), no orphaned relay keeps a slot busy. The pid is
# outboxd's own, as setpriv execs it.
_SETPRIV = shutil.which("setpriv")


def default_outboxd_bin() -> Path:
    return Path(os.environ.get("OUTBOXD_BIN") or REPO / "build" / "outboxd")


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Writes `key = value` lines (None values are left out; bools as true/false)."""
    lines = ["# written by tests/integration (outboxd fixture)"]
    for k, v in config.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        v = str(v)
        if "\n" in v:
            raise ValueError(f"config value of {k} has a newline")
        lines.append(f"{k} = {v}")
    path.write_text("\n".join(lines) + "\n")
    return path


SANITIZER_REPORT = re.compile(
    r"(ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |SUMMARY: UndefinedBehaviorSanitizer)"
)


class Outboxd:
    """One outboxd process started with `-c <config file>`; output goes to log_path.

    start() may be called again after the process exited (restart with the same
    config); the log file is appended to and wait_for_log() only looks at the output
    of the latest start unless told otherwise.
    """

    def __init__(self, binary: Path, config_path: Path, log_path: Path,
                 args: Sequence[str] = (), env: dict[str, str] | None = None,
                 config: dict[str, Any] | None = None):
        self.binary = Path(binary)
        self.config = dict(config or {})  # what config_path holds
        self.config_path = config_path
        self.log_path = log_path
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log_start = 0  # byte offset in the log where the latest run begins

    @property
    def argv(self) -> list[str]:
        return [str(self.binary), "-c", str(self.config_path), *self.args]

    name = "outboxd"  # the daemon, in messages
    bin_env = "OUTBOXD_BIN"  # the variable that points the tests at another binary
    dropped_env_prefixes: tuple[str, ...] = (HARNESS_ENV_PREFIX,)  # not passed to the daemon

    def start(self) -> "Outboxd":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} already running (pid {self.proc.pid})")
        if not self.binary.is_file():
            raise AssertionError(
                f"{self.name} binary {self.binary} not found: build it (cmake -S . -B build -G Ninja && "
                f"ninja -C build) or set {self.bin_env}"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(self.dropped_env_prefixes)}
        env.update(self.extra_env)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"==== harness: start #{self.starts}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self._log_start = log.tell()
            argv = self.argv
            if _SETPRIV and threading.current_thread() is threading.main_thread():
                argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.log_path.parent,
            )
        return self

    # --- state ------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, "outboxd not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def rss_kb(self) -> int:
        """Resident set size (VmRSS) in kB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for pid {self.pid} (exited?)")

    # --- log ------------------------------------------------------------------------------

    def log_text(self, all_runs: bool = True) -> str:
        """The captured stdout+stderr (of every start, or only the latest)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        if not all_runs:
            data = data[self._log_start:]
        return data.decode("utf-8", "replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = 30, all_runs: bool = False,
                     after: int = 0) -> re.Match:
        """Waits until the log (of the latest start, by default) matches pattern
        (re.search, MULTILINE); returns the match. Fails early if outboxd exits first.
        `after`: only look at text after this character offset of log_text()."""
        rx = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            exited = self.returncode is not None  # read before the log: no lost lines
            m = rx.search(self.log_text(all_runs), after)
            if m:
                return m
            if exited:
                raise AssertionError(
                    f"outboxd exited ({self.returncode}) before logging /{rx.pattern}/; log tail:\n"
                    + self.log_tail())
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"outboxd did not log /{rx.pattern}/ within {timeout}s; log tail:\n" + self.log_tail())
            time.sleep(0.05)

    # --- stopping ---------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        if self.is_running():
            self.proc.send_signal(sig)

    def kill9(self) -> int | None:
        """SIGKILL and reap; returns the exit code (-9)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, wait up to timeout; returns the exit code. Raises if it does not exit."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 30) -> int:
        """Waits for the process to exit on its own; returns the exit code (-N: signal N)."""
        assert self.proc is not None, "outboxd not started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"outboxd (pid {self.pid}) still running after {timeout}s; log tail:\n"
                                 + self.log_tail())

    def sanitizer_report(self) -> str | None:
        """The first ASan/UBSan report line in the log, if any."""
        m = SANITIZER_REPORT.search(self.log_text())
        if not m:
            return None
        text = self.log_text()
        start = text.rfind("\n", 0, m.start()) + 1
        return text[start:text.find("\n", m.end())]


# --------------------------------------------------------------------------- partitioning


def murmur2(data: bytes) -> int:
    """Java Kafka's Utils.murmur2 (signed 32-bit result), in pure Python."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & mask
        k ^= k >> r  # k is unsigned here, so >> is Java's >>>
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rem = length % 4
    base = length & ~3
    if rem == 3:
        h ^= data[base + 2] << 16
    if rem >= 2:
        h ^= data[base + 1] << 8
    if rem >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def python_partition(key: bytes, num_partitions: int) -> int:
    """toPositive(murmur2(key)) % n, as Java's default partitioner (pure Python)."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


def java_partitions(pairs: Iterable[tuple[bytes, int]], kafka_libs: Path) -> list[int]:
    """Partitions Java's Kafka producer picks for (key, num_partitions) pairs, computed
    by running tests/integration/java/Partition.java (one JVM for the whole batch)."""
    pairs = list(pairs)
    if not pairs:
        return []
    stdin = "".join(f"{n} {bytes(k).hex()}\n" for k, n in pairs)
    r = subprocess.run(
        ["java", "-Xshare:auto", "-cp", f"{kafka_libs}/*", str(PARTITION_JAVA)],
        input=stdin, capture_output=True, text=True, timeout=120,
    )
    if r.returncode != 0:
        raise RuntimeError(f"Partition.java failed ({r.returncode}): {r.stderr}")
    out = [int(x) for x in r.stdout.split()]
    if len(out) != len(pairs):
        raise RuntimeError(f"Partition.java returned {len(out)} results for {len(pairs)} keys: {r.stderr}")
    return out


def java_partition(key: bytes, num_partitions: int, kafka_libs: Path) -> int:
    return java_partitions([(key, num_partitions)], kafka_libs)[0]


def random_keys(count: int, seed: int | None = None) -> list[bytes]:
    """count keys of 0..40 random bytes, including the empty key and some UTF-8 text."""
    import random

    rnd = random.Random(seed)
    keys = [b"", b"a", "ключ".encode(), str(uuid.UUID(int=rnd.getrandbits(128))).encode()]
    while len(keys) < count:
        keys.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 40))))
    return keys[:count]


# --------------------------------------------------------------------------- inboxd

INBOX_SQL = REPO / "sql" / "inbox.sql"


def default_inboxd_bin() -> Path:
    """build/inboxd, or $OUTBOXD_TEST_INBOXD_BIN (a harness variable: OUTBOXD_* never reaches the daemons)."""
    return Path(os.environ.get("OUTBOXD_TEST_INBOXD_BIN") or REPO / "build" / "inboxd")


def create_inbox_database(stack: Stack, dbname: str | None = None) -> Db:
    """CREATE DATABASE <dbname> (default t_<random>) with sql/inbox.sql applied (no outbox)."""
    db = create_database(stack, dbname, outbox=False)
    db.conn.execute(INBOX_SQL.read_text())
    return db


class Inboxd(Outboxd):
    """One inboxd process started with `-c <config file>`, as Outboxd (same methods). Its
    environment has neither the harness's OUTBOXD_* nor any INBOXD_* variable, except
    those a test passes in env."""

    name = "inboxd"
    bin_env = "OUTBOXD_TEST_INBOXD_BIN"
    dropped_env_prefixes = (HARNESS_ENV_PREFIX, "INBOXD_")


def kafka_committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets of topic's partitions ({partition: offset}; -1001: none)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()
