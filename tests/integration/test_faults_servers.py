"""Server faults under outboxd, with figures for docs/reliability.md: the Kafka broker hung
(SIGSTOP) past message.timeout.ms, Kafka's log directory full, the walsender terminated,
a long-running transaction holding many events while outboxd restarts. (Broker kill -9
and restart mid-stream, and PostgreSQL crash under load, are test_faults.py's
test_slot_never_ahead_of_acks[kill] and test_pg_restart_mid_stream[crash], which record
their figures too.)

Each test commits events all along with background writers (harness/faultload.py),
records committed / delivered / lost / duplicated / reordered and the seconds to recover
in the results file (harness/faultreport.py) before asserting: nothing lost, per-key order
kept.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from harness import STACK_SH, free_port, int_to_lsn, wait_until
from harness.faultload import (
    BASE_CFG,
    STREAMING,
    Writer,
    committed_from_table,
    current_lsn,
    seed_for,
    settle_and_record,
    setup_counters,
    slot_of,
    topic_for,
    wait_caught_up,
)

pytestmark = pytest.mark.fault

CFG = {**BASE_CFG, "log.level": "info"}


class Supervisor:
    """Restarts a daemon 1 s after it exits (systemd's Restart=on-failure, RestartSec=1),
    counting exits and their codes, until stop()."""

    def __init__(self, proc):
        self.proc = proc
        self.exits: list[int] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            rc = self.proc.returncode
            if rc is not None:
                self.exits.append(rc)
                if self._stop.wait(1.0):
                    return
                self.proc.start()
            time.sleep(0.1)

    def stop(self):
        self._stop.set()
        self._t.join(10)


# =========================================================================== broker hung


@pytest.mark.timeout(300)
def test_broker_hung_past_message_timeout(stack, db, kafka, topic_prefix, outboxd, faults):
    """The broker is SIGSTOPped for 25 s while outboxd runs with kafka.message.timeout.ms =
    10 s: the deliveries in flight time out; outboxd stops (exit 1, as documented for a
    finite message.timeout.ms) without confirming past them, a supervisor restarts it, and
    once the broker runs again everything arrives, in order."""
    seed = seed_for("broker-hung")
    setup_counters(db)
    topic = topic_for(topic_prefix)
    kafka.create_topic(topic, 3)
    p = outboxd({**CFG, "kafka.message.timeout.ms": 10000, "startup.timeout.ms": 5000})
    p.wait_for_log(STREAMING, 30)
    writers = [Writer(db.conninfo, seed=seed + i, pause=0.005).start() for i in range(2)]
    time.sleep(2)
    sup = Supervisor(p)
    faults.kafka_pause()
    t_stop = time.monotonic()
    time.sleep(25)
    faults.kafka_resume()
    t_up, target = time.monotonic(), current_lsn(db)
    waited = wait_caught_up(db, slot_of(p), target, 120)
    recover_s = None if waited is None else time.monotonic() - t_up
    time.sleep(1)
    sup.stop()
    log = p.log_text()
    notes = f"outboxd exits while hung: {sup.exits} (then restarted by the test's supervisor)"
    print(f"broker-hung: hung {t_up - t_stop:.1f} s; {notes}; recovered in {recover_s} s")
    settle_and_record("outboxd-kafka-hung", db=db, kafka_bootstrap=stack.kafka, topic=topic, proc=p,
                      writers=writers, link="Kafka",
                      what="broker SIGSTOPped 25 s, message.timeout.ms = 10 s",
                      recover_s=recover_s, notes=notes, seed=seed)
    assert sup.exits and set(sup.exits) == {1}, f"exit codes while the broker hung: {sup.exits}\n{p.log_tail()}"
    assert "Message timed out" in log or "timed out" in log, p.log_tail()
    assert p.is_running()


@pytest.mark.long
@pytest.mark.timeout(400)
def test_broker_hung_default_config(stack, db, kafka, topic_prefix, outboxd, faults):
    """The broker SIGSTOPped for 90 s (past librdkafka's socket.timeout.ms of 60 s) with the
    default message.timeout.ms = 0: outboxd waits, no exit, nothing lost."""
    seed = seed_for("broker-hung-90s")
    setup_counters(db)
    topic = topic_for(topic_prefix)
    kafka.create_topic(topic, 3)
    p = outboxd(CFG)
    p.wait_for_log(STREAMING, 30)
    writers = [Writer(db.conninfo, seed=seed + i, pause=0.005).start() for i in range(2)]
    time.sleep(2)
    faults.kafka_pause()
    t_end = time.monotonic() + 90
    while time.monotonic() < t_end:
        assert p.is_running(), f"outboxd exited ({p.returncode}) while the broker hung:\n{p.log_tail()}"
        time.sleep(0.5)
    faults.kafka_resume()
    t_up, target = time.monotonic(), current_lsn(db)
    waited = wait_caught_up(db, slot_of(p), target, 180, p)
    settle_and_record("outboxd-kafka-hung-90s", db=db, kafka_bootstrap=stack.kafka, topic=topic, proc=p,
                      writers=writers, link="Kafka", what="broker SIGSTOPped 90 s, default config (long tier)",
                      recover_s=None if waited is None else time.monotonic() - t_up, seed=seed)


# =========================================================================== log dir full


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class TmpfsKafka:
    """A Kafka broker of the test's own (scripts/stack.sh kafka-start in a stack dir of its
    own) whose log directory is a small tmpfs, so that it can be filled."""

    def __init__(self, size_mb: int):
        self.remove_stale()
        self.dir = Path(f"/tmp/outboxd-kfull-{os.getpid()}-{os.urandom(3).hex()}")
        self.data = self.dir / "kafka" / "data"
        port = free_port()
        while not _port_free(port + 1):  # the controller takes port + 1
            port = free_port()
        self.port = port
        self.env = dict(os.environ, OUTBOXD_STACK_DIR=str(self.dir), OUTBOXD_STACK_KAFKA_PORT=str(port),
                        OUTBOXD_STACK_PG_PORT=str(free_port()))
        self.data.mkdir(parents=True)
        (self.dir / ".outboxd-stack").touch()  # stack.sh's marker: a stack dir (Kafka only)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(self.data)], check=True)
        self.mounted = True

    @staticmethod
    def remove_stale():
        """Brokers, mounts and dirs left by a test run that was killed (its pid is gone)."""
        for d in Path("/tmp").glob("outboxd-kfull-*"):
            pid = d.name.split("-")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                if not d.is_dir():  # stack.sh's lock file beside the dir
                    d.unlink(missing_ok=True)
                    continue
                subprocess.run([str(STACK_SH), "kafka-kill"], env=dict(os.environ, OUTBOXD_STACK_DIR=str(d)),
                               capture_output=True, timeout=60)
                subprocess.run(["umount", "-l", str(d / "kafka" / "data")], capture_output=True)
                subprocess.run(["rm", "-rf", str(d)], check=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ctl(self, cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(STACK_SH), cmd], env=self.env, capture_output=True, text=True, timeout=180)

    def start(self):
        r = self.ctl("kafka-start")
        assert r.returncode == 0, r.stdout + r.stderr

    def running(self) -> bool:
        try:
            pid = int((self.dir / "kafka" / "kafka.pid").read_text())
            os.kill(pid, 0)
            return True
        except (OSError, ValueError):
            return False

    def free_bytes(self) -> int:
        st = os.statvfs(self.data)
        return st.f_bavail * st.f_frsize

    def log(self) -> str:
        try:
            return (self.dir / "kafka" / "kafka.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self):
        self.ctl("kafka-kill")
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.data)], check=False)
            self.mounted = False
        subprocess.run(["rm", "-rf", str(self.dir), f"{self.dir}.lock"], check=False)


@pytest.fixture
def tmpfs_kafka(stack):
    k = TmpfsKafka(96)
    try:
        k.start()
        yield k
    finally:
        k.close()


@pytest.mark.timeout(400)
def test_kafka_log_dir_full(stack, db, topic_prefix, outboxd, tmpfs_kafka):
    """Kafka's log directory (a 96 MB tmpfs) fills up mid-stream: the broker fails (Kafka
    stops a broker whose only log directory failed); outboxd waits without confirming past
    what Kafka did not acknowledge. The operator frees space and starts the broker again:
    everything committed arrives, in order."""
    from confluent_kafka.admin import AdminClient, NewTopic

    k = tmpfs_kafka
    seed = seed_for("kafka-disk-full")
    setup_counters(db)
    topic = topic_for(topic_prefix)
    admin = AdminClient({"bootstrap.servers": k.bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    p = outboxd({**CFG, "kafka.bootstrap.servers": k.bootstrap})
    p.wait_for_log(STREAMING, 30)
    writers = [Writer(db.conninfo, seed=seed + i, pause=0.002, pad_bytes=2000).start() for i in range(2)]
    time.sleep(2)
    filler = k.data / "filler"
    # Leave ~4 MB: a few seconds of the writers' events.
    subprocess.run(["fallocate", "-l", str(max(0, k.free_bytes() - 4 * 1024 * 1024)), str(filler)], check=True)
    t_full = time.monotonic()
    print(f"kafka-disk-full: {k.free_bytes() // 1024} kB left in the log dir")
    # The broker hits ENOSPC and stops (or at least logs the failure).
    wait_until(lambda: not k.running() or "No space left on device" in k.log(), 90, 0.5,
               "Kafka to run out of space")
    t_end = time.monotonic() + 30
    while k.running() and time.monotonic() < t_end:
        time.sleep(0.5)
    exited_by_itself = not k.running()
    t_seen = time.monotonic() - t_full
    time.sleep(5)  # outboxd goes on with the broker down
    assert p.is_running(), f"outboxd exited ({p.returncode}) with Kafka's disk full:\n{p.log_tail()}"
    # The operator: free space, (re)start the broker.
    filler.unlink()
    k.ctl("kafka-kill")
    t_up0 = time.monotonic()
    k.start()
    t_up, target = time.monotonic(), current_lsn(db)
    waited = wait_caught_up(db, slot_of(p), target, 180, p)
    recover_s = None if waited is None else time.monotonic() - t_up
    notes = (f"broker {'stopped by itself' if exited_by_itself else 'kept running (killed by the test)'} "
             f"{t_seen:.0f} s after the disk filled; restart took {t_up - t_up0:.0f} s")
    settle_and_record("outboxd-kafka-disk-full", db=db, kafka_bootstrap=k.bootstrap, topic=topic, proc=p,
                      writers=writers, link="Kafka", what="Kafka's log directory full (96 MB tmpfs), freed, broker restarted",
                      recover_s=recover_s, notes=notes, seed=seed)


# =========================================================================== walsender terminated


def test_walsender_terminated(stack, db, kafka, topic_prefix, outboxd):
    """pg_terminate_backend() on outboxd's walsender, three times under load: outboxd
    reconnects and resumes from the confirmed LSN each time."""
    seed = seed_for("walsender-terminated")
    setup_counters(db)
    topic = topic_for(topic_prefix)
    kafka.create_topic(topic, 3)
    p = outboxd(CFG)
    p.wait_for_log(STREAMING, 30)
    writers = [Writer(db.conninfo, seed=seed + i, pause=0.003).start() for i in range(2)]
    slot = slot_of(p)
    recover = []
    for _ in range(3):
        time.sleep(2)
        mark = len(p.log_text())
        pid = db.slot_info(slot)["active_pid"]
        assert pid, "no walsender"
        with stack.pg_connect() as c:
            assert c.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        t0, target = time.monotonic(), current_lsn(db)
        p.wait_for_log(r"resumed streaming slot", 60, after=mark)
        waited = wait_caught_up(db, slot, target, 60, p)
        recover.append(None if waited is None else time.monotonic() - t0)
    settle_and_record("outboxd-pg-walsender-terminated", db=db, kafka_bootstrap=stack.kafka, topic=topic,
                      proc=p, writers=writers, link="PostgreSQL",
                      what="walsender terminated (pg_terminate_backend), 3 times under load",
                      recover_s=None if None in recover else max(recover),
                      notes="recover_s: the slowest of 3", seed=seed)
    assert p.is_running()


# =========================================================================== long transaction


LONG_TX_EVENTS = 30000


@pytest.mark.timeout(300)
def test_long_transaction_across_restarts(stack, db, kafka, topic_prefix, outboxd):
    """A transaction inserts 30,000 events over ~15 s while writers commit small ones;
    outboxd is killed (kill -9) and later stopped (SIGTERM) and restarted while it is open.
    After its COMMIT every event arrives, the long transaction's after everything committed
    before it, each key in order."""
    seed = seed_for("long-transaction")
    setup_counters(db)
    topic = topic_for(topic_prefix)
    kafka.create_topic(topic, 3)
    p = outboxd(CFG)
    p.wait_for_log(STREAMING, 30)
    writers = [Writer(db.conninfo, seed=seed + i, pause=0.005).start() for i in range(2)]
    long_conn = psycopg.connect(db.conninfo, autocommit=False)
    chunk = LONG_TX_EVENTS // 6
    # Keys L0..L9, sequence numbers per key in insertion order (1..3000 each).
    ins = ("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
           "SELECT 'agg', 'L' || (g %% 10), 'e', jsonb_build_object('agg', 'L' || (g %% 10), 'seq', g / 10 + 1) "
           "FROM generate_series(%s::int, %s::int) g")
    restarts = []
    try:
        for i in range(6):
            long_conn.execute(ins, (i * chunk, (i + 1) * chunk - 1))
            time.sleep(2)
            if i == 1:
                p.kill9()
                p.start()
                restarts.append("kill -9")
            elif i == 3:
                assert p.terminate() == 0
                p.start()
                restarts.append("SIGTERM")
            p.wait_for_log(STREAMING, 30)
        long_conn.commit()
    finally:
        long_conn.close()
    t_commit, target = time.monotonic(), current_lsn(db)
    waited = wait_caught_up(db, slot_of(p), target, 180, p)
    recover_s = None if waited is None else time.monotonic() - t_commit
    for w in writers:
        w.stop()
    committed = committed_from_table(db)
    assert sum(1 for a, _ in committed.values() if a.startswith("L")) == LONG_TX_EVENTS
    settle_and_record("outboxd-pg-long-transaction", db=db, kafka_bootstrap=stack.kafka, topic=topic, proc=p,
                      writers=[], link="PostgreSQL",
                      what=f"one open transaction of {LONG_TX_EVENTS} events across outboxd kill -9 and SIGTERM",
                      recover_s=recover_s, committed=committed, seed=seed,
                      notes="recover_s: from the long COMMIT until it was confirmed; restarts: " + ", ".join(restarts))
    print(f"long-transaction: committed at {int_to_lsn(target)}, confirmed {recover_s} s later")
