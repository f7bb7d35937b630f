"""pytest fixtures for the outboxd integration tests (stack, db, kafka, outboxd, inboxd, faults, partitions).

The classes and helpers behind them are in the harness package (harness/); fixtures that
several test modules use live here, never in a test module.
Needs the local stack: scripts/stack.sh start (scripts/test.sh does it for you).
See docs/testing.md.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, Iterable

import pytest

from harness import (
    Db,
    NetNs,
    Inboxd,
    Kafka,
    Outboxd,
    Stack,
    StackFaults,
    StackNotRunning,
    TlsStack,
    create_database,
    create_inbox_database,
    create_login_role,
    default_inboxd_bin,
    default_outboxd_bin,
    drop_database,
    drop_role,
    java_partitions,
    throwaway_postgres,
    netfault_unavailable,
    unique_name,
    write_config,
)


# --------------------------------------------------------------------------- session

def _sigterm(signum, frame):
    # A cancelled CI job sends SIGTERM: stop like Ctrl-C, so fixture teardown still
    # kills outboxd processes and drops test databases and slots.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)


# The long tier (marker `long`): fault tests that take minutes each, run only with
# OUTBOXD_TEST_LONG=1 (scripts/test.sh --long). CI runs the default tier (docs/testing.md).
LONG_ENV = "OUTBOXD_TEST_LONG"


def pytest_collection_modifyitems(config, items):
    if os.environ.get(LONG_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"long tier: set {LONG_ENV}=1 (scripts/test.sh --long)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------- reporting

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so fixtures can tell at teardown whether
    # the test failed (then they print outboxd's log tail).
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


def _failed(request) -> bool:
    return any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


# --------------------------------------------------------------------------- stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    """The running local stack (scripts/stack.sh start): .pg_conninfo, .kafka
    (bootstrap servers), .kafka_libs, .dir. Fails - never skips - without it."""
    problem = None
    try:
        s = Stack.load()
        s.check()
    except StackNotRunning as e:
        problem = str(e)
    if problem:
        pytest.fail(problem, pytrace=False)
    return s


@pytest.fixture
def faults(stack) -> Iterable[StackFaults]:
    """Fault injection on the shared stack: pg_stop/pg_kill/pg_start/pg_restart,
    kafka_stop/kafka_kill/kafka_start/kafka_restart (scripts/stack.sh). Whatever the
    test left down is started again at teardown."""
    f = StackFaults(stack)
    yield f
    f.restore()


@pytest.fixture
def netns(stack) -> Iterable[NetNs]:
    """A network namespace of the test's own with a bridge to the stack's PostgreSQL and
    Kafka ports (harness/netfault.py): start a daemon in it with `d.wrap = netns.prefix`
    (factory with start=False, then d.start()), then netns.delay/loss/partition/half_open
    (port) and netns.heal(). Removed at teardown."""
    why = netfault_unavailable()
    if why:
        pytest.fail(why, pytrace=False)
    with NetNs([stack.pg_port, stack.kafka_port]) as ns:
        yield ns


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def db(stack) -> Iterable[Db]:
    """A fresh database t_<random> with public.outbox (sql/outbox.sql).
    .conninfo, .dbname, .conn (autocommit), insert_event(), slot_info(),
    current_wal_lsn(), ... At teardown its replication slots and the database go."""
    d = create_database(stack)
    yield d
    drop_database(d)


@pytest.fixture
def login_role(stack) -> Iterable[str]:
    """A LOGIN role r_<random> without REPLICATION; dropped at teardown."""
    role = create_login_role(stack)
    yield role
    drop_role(stack, role)


@pytest.fixture(scope="module")
def pg_replica(stack) -> Iterable[int]:
    """A second, throwaway PostgreSQL with wal_level = replica and scram-sha-256 password
    authentication on 127.0.0.1 (password PG2_PASSWORD for user postgres; the stack's server
    trusts everyone, so a wrong password cannot fail there). Yields its port; stopped and
    deleted after the module's tests."""
    with throwaway_postgres(stack) as port:
        yield port


# --------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="session")
def kafka(stack) -> Kafka:
    """Kafka helpers: consume(topics, n, timeout), create_topic(name, partitions),
    partition_count(topic), produce(...), topics(prefix)."""
    return Kafka(stack.kafka)


@pytest.fixture
def topic_prefix() -> str:
    """A per-test prefix for topic names, "t_<random>": use the template
    f"{topic_prefix}.${{aggregate_type}}" so tests never see each other's records."""
    return unique_name("t")


@pytest.fixture
def topic_template(topic_prefix) -> str:
    """outbox.topic for this test: "<topic_prefix>.${aggregate_type}"."""
    return topic_prefix + ".${aggregate_type}"


class JavaPartitioner:
    """java_partition(key, n): the partition Java's producer picks for key among n
    partitions, computed by a JVM (tests/integration/java/Partition.java).
    java_partition.many([(key, n), ...]) runs one JVM for a whole batch."""

    def __init__(self, kafka_libs: Path):
        self.kafka_libs = kafka_libs

    def __call__(self, key: bytes, num_partitions: int) -> int:
        return java_partitions([(key, num_partitions)], self.kafka_libs)[0]

    def many(self, pairs: Iterable[tuple[bytes, int]]) -> list[int]:
        return java_partitions(pairs, self.kafka_libs)


@pytest.fixture(scope="session")
def java_partition(stack) -> JavaPartitioner:
    return JavaPartitioner(stack.kafka_libs)


# --------------------------------------------------------------------------- outboxd


PLUGINS = ("wal2json", "pgoutput")


def pytest_generate_tests(metafunc):
    """Tests that use the outboxd fixture run once per output plugin where their module asks
    for it (PLUGINS = ("wal2json", "pgoutput") at module level; a test can narrow it with
    @pytest.mark.plugins("wal2json")); elsewhere with wal2json only."""
    if "plugin" not in metafunc.fixturenames or not hasattr(metafunc.module, "PLUGINS"):
        return  # the plugin fixture's default: wal2json, and test ids stay as they were
    plugins = metafunc.module.PLUGINS
    mark = metafunc.definition.get_closest_marker("plugins")
    if mark:
        plugins = tuple(p for p in plugins if p in mark.args) or mark.args[:1]
    metafunc.parametrize("plugin", plugins, indirect=True)


@pytest.fixture
def plugin(request) -> str:
    """postgres.plugin of the outboxd fixture's processes: "wal2json" or "pgoutput"
    (see pytest_generate_tests)."""
    return getattr(request, "param", "wal2json")



def _daemon_factory(request, tmp_path: Path, name: str, cls, default_bin: Path, base: dict[str, Any]):
    """The body of the outboxd and inboxd fixtures: yields a factory
    (config=None, *, args=(), env=None, binary=None, start=True, defaults=True) that writes
    <tmp_path>/<name>-N.conf from base (unless defaults=False) updated by config (None drops a key) and starts
    the daemon; at teardown every process is killed, the log tail printed when the test
    failed, and a sanitizer report in any output fails the test."""
    procs: list = []

    def factory(config: dict[str, Any] | None = None, *, args=(), env=None, binary=None,
                start: bool = True, defaults: bool = True):
        n = len(procs) + 1
        cfg: dict[str, Any] = dict(base) if defaults else {}
        cfg.update(config or {})
        # No HTTP endpoint unless the test asks for one: daemons of parallel tests would
        # compete for the fixed default port.
        cfg.setdefault("http.listen", "")
        cfg = {k: v for k, v in cfg.items() if v is not None}
        conf = write_config(tmp_path / f"{name}-{n}.conf", cfg)
        p = cls(Path(binary) if binary else default_bin, conf, tmp_path / f"{name}-{n}.log",
                args=args, env=env, config=cfg)
        procs.append(p)
        if start:
            p.start()
        return p

    yield factory

    reports = []
    for p in procs:
        p.kill9()
        if _failed(request) and p.starts:
            print(f"\n---- {p.log_path} (last 80 lines) ----\n{p.log_tail(80)}")
        r = p.sanitizer_report()
        if r:
            reports.append(f"{p.log_path}: {r}")
    if reports:
        pytest.fail(f"sanitizer report in {name} output:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def outboxd_bin() -> Path:
    """build/outboxd, or $OUTBOXD_BIN."""
    return default_outboxd_bin()


@pytest.fixture
def outboxd(request, stack, db, topic_template, outboxd_bin, tmp_path, plugin):
    """Factory: outboxd(config=None, *, args=(), env=None, binary=None, start=True,
    defaults=True) -> Outboxd, running `outboxd -c <file>`.

    config: dict key -> value, written as `key = value` lines; None drops a key.
    defaults (unless defaults=False): postgres.conninfo = db.conninfo,
    postgres.slot = <db name>_slot, outbox.topic = topic_template,
    kafka.bootstrap.servers = the stack's broker, postgres.plugin = the plugin fixture's
    (wal2json unless the module runs its tests for both). Output (stdout+stderr) goes to
    <tmp_path>/outboxd-N.log. env: extra environment (the harness's own OUTBOXD_*
    variables are never passed on). Every process is killed at teardown; the log
    tail is printed when the test failed, and a sanitizer report fails the test.
    """
    yield from _daemon_factory(request, tmp_path, "outboxd", Outboxd, outboxd_bin, {
        "postgres.conninfo": db.conninfo,
        "postgres.slot": f"{db.dbname}_slot",
        "outbox.topic": topic_template,
        "kafka.bootstrap.servers": stack.kafka,
        "postgres.plugin": plugin,
    })


# --------------------------------------------------------------------------- inboxd


@pytest.fixture
def inbox_db(stack) -> Iterable[Db]:
    """A fresh database t_<random> with sql/inbox.sql applied (public.inbox,
    public.inbox_offsets, the handoff functions and views); dropped at teardown."""
    d = create_inbox_database(stack)
    yield d
    drop_database(d)


@pytest.fixture
def inbox_topic(kafka, topic_prefix) -> str:
    """A new topic "<topic_prefix>.inbox" with 4 partitions."""
    t = topic_prefix + ".inbox"
    kafka.create_topic(t, 4)
    return t


@pytest.fixture
def inboxd_bin() -> Path:
    """build/inboxd, or $OUTBOXD_TEST_INBOXD_BIN."""
    return default_inboxd_bin()


@pytest.fixture
def inboxd(request, stack, inbox_db, inbox_topic, inboxd_bin, tmp_path):
    """Factory: inboxd(config=None, *, args=(), env=None, binary=None, start=True,
    defaults=True) -> Inboxd, running `inboxd -c <file>` (as the outboxd fixture).

    defaults (unless defaults=False): postgres.conninfo = inbox_db.conninfo,
    inbox.topics = inbox_topic, kafka.bootstrap.servers = the stack's broker,
    kafka.group.id = "<db name>_g" (shared by every inboxd of the test),
    kafka.session.timeout.ms = 6000 and kafka.heartbeat.interval.ms = 500 (a killed member's
    partitions move after ~6 s). Output goes to <tmp_path>/inboxd-N.log. Every process is
    killed at teardown; the log tail is printed when the test failed, and a sanitizer
    report fails the test."""
    yield from _daemon_factory(request, tmp_path, "inboxd", Inboxd, inboxd_bin, {
        "postgres.conninfo": inbox_db.conninfo,
        "inbox.topics": inbox_topic,
        "kafka.bootstrap.servers": stack.kafka,
        "kafka.group.id": f"{inbox_db.dbname}_g",
        "kafka.session.timeout.ms": 6000,
        "kafka.heartbeat.interval.ms": 500,
    })


# --------------------------------------------------------------------------- TLS and SASL


@pytest.fixture(scope="session")
def tls_stack() -> Iterable[TlsStack]:
    """The TLS/SASL servers of scripts/tls-stack.sh (PostgreSQL: TLS only, scram-sha-256;
    Kafka: SASL_SSL, SCRAM-SHA-512), in $OUTBOXD_STACK_TLS_DIR (default /tmp/outboxd-tls-stack).
    Started when it does not run, and then stopped again after the session; a running one is
    reused and left running. .tls_conninfo(), .kafka_keys(), .kafka_client_config(), .secret(),
    .create_outbox_database(), .create_inbox_database(), .pg_cert("expired"|"good")."""
    s = TlsStack.ensure()
    yield s
    if s.started_here:
        s.stop()


@pytest.fixture(scope="session")
def tls_kafka(tls_stack) -> Kafka:
    """Kafka helpers (as the kafka fixture) for the TLS stack's broker, as its admin user."""
    return Kafka(tls_stack.kafka, tls_stack.kafka_client_config("admin"))


@pytest.fixture
def tls_db(tls_stack) -> Iterable[Db]:
    """A fresh database of the TLS stack with sql/outbox.sql and sql/roles.sql (role outboxd,
    DELETE for outbox.cleanup). .conn is the tests' own connection (postgres, unix socket)."""
    d = tls_stack.create_outbox_database()
    yield d
    drop_database(d)


@pytest.fixture
def tls_inbox_db(tls_stack) -> Iterable[Db]:
    """A fresh database of the TLS stack with sql/inbox.sql and sql/inbox_roles.sql (role
    inboxd, with the HTTP push grants)."""
    d = tls_stack.create_inbox_database()
    yield d
    drop_database(d)


@pytest.fixture
def tls_outboxd(request, tls_stack, tls_db, topic_template, outboxd_bin, tmp_path):
    """Factory as outboxd, for the TLS stack: postgres.conninfo = tls_db as role outboxd with
    sslmode=verify-full, postgres.password.file and kafka.sasl.password.file = the stack's
    secret files, kafka.* = SASL_SSL (SCRAM-SHA-512) as user outboxd with the stack's CA."""
    yield from _daemon_factory(request, tmp_path, "tls-outboxd", Outboxd, outboxd_bin, {
        "postgres.conninfo": tls_stack.tls_conninfo(tls_db.dbname, "outboxd"),
        "postgres.password.file": tls_stack.secrets_dir / "pg-outboxd",
        "postgres.slot": f"{tls_db.dbname}_slot",
        "outbox.topic": topic_template,
        **tls_stack.kafka_keys("outboxd"),
        "kafka.sasl.password.file": tls_stack.secrets_dir / "kafka-outboxd",
    })


@pytest.fixture
def tls_inboxd(request, tls_stack, tls_inbox_db, topic_prefix, inboxd_bin, tmp_path):
    """Factory as inboxd, for the TLS stack: postgres.conninfo = tls_inbox_db as role inboxd
    with sslmode=verify-full, inbox.topics = "<topic_prefix>.order", kafka.group.id =
    "<db name>_g", passwords from the stack's secret files, kafka.* = SASL_SSL as user inboxd."""
    yield from _daemon_factory(request, tmp_path, "tls-inboxd", Inboxd, inboxd_bin, {
        "postgres.conninfo": tls_stack.tls_conninfo(tls_inbox_db.dbname, "inboxd"),
        "postgres.password.file": tls_stack.secrets_dir / "pg-inboxd",
        "inbox.topics": topic_prefix + ".order",
        **tls_stack.kafka_keys("inboxd"),
        "kafka.sasl.password.file": tls_stack.secrets_dir / "kafka-inboxd",
        "kafka.group.id": f"{tls_inbox_db.dbname}_g",
        "kafka.session.timeout.ms": 6000,
        "kafka.heartbeat.interval.ms": 500,
    })
