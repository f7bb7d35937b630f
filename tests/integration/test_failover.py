"""PostgreSQL failover under outboxd: a primary with a streaming standby (scripts/pgpair.sh),
the primary crashed (immediate stop) while writers insert events, the standby promoted, the
writers going on against the new primary. outboxd follows the primary through a multi-host
postgres.conninfo (target_session_attrs=read-write), finds its slot missing on the promoted
server and recovers from the progress record (which the standby replicated with the outbox
rows): every event committed on the surviving server reaches Kafka; duplicates are counted.
Two ways to live through it: (running) the same process streams on; (restarted) the process
is killed with the primary and started again afterwards, as a supervisor would."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import psycopg
import pytest

from harness.pgpair import PgPair
from harness.db import OUTBOX_SQL

PAIR_PORT = 25460


# The PostgreSQL 15 failover runs with both output plugins (conftest.py: pytest_generate_tests).
PLUGINS = ("wal2json", "pgoutput")


@pytest.fixture
def pair(tmp_path_factory):
    p = PgPair(Path("/tmp/outboxd-failover-pair"), PAIR_PORT).start()
    p.create_database("fo", OUTBOX_SQL)
    yield p
    p.stop()


class Writer:
    """Inserts one event per transaction through the multi-host conninfo, reconnecting
    after a failure; .acked holds the ids whose COMMIT was acknowledged."""

    def __init__(self, conninfo: str):
        self.conninfo = conninfo
        self.acked: list[str] = []
        self.errors = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        n = 0
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
                self.acked.append(str(conn.execute(
                    "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) "
                    "VALUES ('order', %s, 'e', jsonb_build_object('n', %s::int)) RETURNING id",
                    (f"k{n % 17}", n)).fetchone()[0]))
                n += 1
                time.sleep(0.004)
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
        if conn is not None:
            conn.close()

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()


@pytest.mark.parametrize("mode", ["running", "restarted"])
def test_primary_crash_and_promotion_loses_nothing(mode, pair, outboxd, kafka, topic_prefix):
    topic = f"{topic_prefix}.order"
    slot = "fo_slot"
    cfg = {"postgres.conninfo": pair.conninfo, "postgres.slot": slot}
    d = outboxd(cfg)
    d.wait_for_log("streaming slot")
    with Writer(pair.conninfo) as w:
        time.sleep(3)
        if mode == "restarted":
            d.kill9()
        pair.kill_primary()
        t_crash = time.monotonic()
        time.sleep(1)
        pair.promote()
        t_promoted = time.monotonic()
        if mode == "restarted":
            d.start()
        m = d.wait_for_log("recovery: republished", timeout=120)
        d.wait_for_log(r"(streaming|resumed streaming) slot \"fo_slot\" from", timeout=60, after=m.end())
        t_streaming = time.monotonic()
        time.sleep(3)  # writers go on against the new primary
    with psycopg.connect(pair.conninfo, autocommit=True) as c:
        end = c.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        survivors = {str(r[0]) for r in c.execute("SELECT id FROM outbox").fetchall()}

        def confirmed():
            r = c.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                          (end, slot)).fetchone()
            return r and r[0]
        deadline = time.monotonic() + 60
        while not confirmed():
            assert time.monotonic() < deadline, "slot not confirmed to the end on the new primary"
            time.sleep(0.2)
    got = [r.header("id").decode() for r in kafka.consume(topic, n=None, timeout=90, settle=3)]
    missing = survivors - set(got)
    assert not missing, f"{len(missing)} of {len(survivors)} events on the surviving server are not in Kafka"
    acked_lost = set(w.acked) - survivors  # acknowledged by the old primary, never replicated
    log = d.log_text()
    n = int(re.search(r"recovery: republished (\d+) outbox rows", log).group(1))
    dups = len(got) - len(set(got))
    if mode == "running":  # the same process saw the promotion: one line with both timelines
        assert re.search(r"WARN: PostgreSQL timeline changed from 1 to 2 on system \d+", log), log[-3000:]
    print(f"\n[{mode}] {len(survivors)} events on the new primary, all in Kafka; {len(acked_lost)} acknowledged "
          f"by the old primary but not replicated; recovery republished {n}, {dups} duplicates; "
          f"streaming again {t_streaming - t_promoted:.1f} s after promotion ({t_streaming - t_crash:.1f} s after "
          f"the crash); writer errors {w.errors}")


# --------------------------------------------------------------------------- PostgreSQL 17 failover slots

PAIR17_PORT = 25470


@pytest.fixture
def pair17():
    """A PostgreSQL 17 pair from the trixie root (scripts/pg17-root.sh builds and caches it on
    first use): synchronized_standby_slots = the standby's physical slot on the primary,
    sync_replication_slots = on on the standby."""
    p = PgPair(Path("/tmp/outboxd-failover-pair17"), PAIR17_PORT, version=17).start()
    p.create_database("fo", OUTBOX_SQL)
    yield p
    p.stop()


@pytest.mark.plugins("wal2json")
def test_pg17_failover_slot_continues_after_promotion(pair17, outboxd, outboxd_bin, kafka, topic_prefix, tmp_path):
    """postgres.slot.failover = true: the standby keeps a synced copy of the slot; after the
    primary crashed and the standby was promoted, outboxd streams on from the synced slot
    (no recovery needed). The promoted server inherited synchronized_standby_slots naming a
    slot it does not have (pg_basebackup copied postgresql.conf), which holds logical decoding
    back with only a WARNING to the client: outboxd makes it obvious (a WARN line with the
    fix, /readyz not ready, outboxd_standby_slots_blocking = 1, `outboxd check` FAIL) until
    the operator clears it; then every event on the new primary reaches Kafka."""
    from harness.ops import free_port, http_get, wait_metric
    import subprocess

    topic = f"{topic_prefix}.order"
    slot = "fo_slot"
    port = free_port()
    cfg = {"postgres.conninfo": pair17.conninfo, "postgres.slot": slot, "postgres.slot.failover": "true",
           "http.listen": f"127.0.0.1:{port}", "slot.poll.interval.ms": 500}
    d = outboxd(cfg)
    d.wait_for_log(f'replication slot "{slot}" is a failover slot now', timeout=60)
    d.wait_for_log("streaming slot")
    with Writer(pair17.conninfo) as w:
        time.sleep(2)  # the slot advances, so its synced copy becomes usable
        pair17.wait_synced(slot, 90)
        time.sleep(1)
        pair17.kill_primary()
        time.sleep(1)
        pair17.promote()
        t_promoted = time.monotonic()
        # Held back by the inherited synchronized_standby_slots: obvious, with the fix.
        d.wait_for_log(r"WARN: logical decoding is held back by synchronized_standby_slots \(pgpair_n2\): ",
                       timeout=90)
        wait_metric(port, "outboxd_standby_slots_blocking", lambda v: v == 1, timeout=30)
        status, body = http_get(port, "/readyz")
        assert status == 503 and "synchronized_standby_slots" in body, (status, body)
        conf = tmp_path / "check.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in {**cfg, "outbox.topic": d.config["outbox.topic"],
                                                            "kafka.bootstrap.servers": d.config[
                                                                "kafka.bootstrap.servers"]}.items()))
        r = subprocess.run([str(outboxd_bin), "check", "-c", str(conf)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and re.search(r"FAIL\s+standby_slots", r.stdout), r.stdout + r.stderr
        r = subprocess.run([str(outboxd_bin), "status", "-c", str(conf)], capture_output=True, text=True, timeout=60)
        assert re.search(r"^held back by\s+synchronized_standby_slots \(pgpair_n2\): logical decoding waits -- fix: ",
                         r.stdout, re.M), r.stdout + r.stderr
        assert re.search(r"^progress record\s+published up to [0-9A-F]+/[0-9A-F]+ \(timeline 1\)", r.stdout, re.M), \
            r.stdout
        # The operator clears it (what the fix says); decoding resumes.
        with psycopg.connect(pair17.env()["PGPAIR_PRIMARY_CONNINFO"], autocommit=True) as c:
            c.execute("ALTER SYSTEM SET synchronized_standby_slots = ''")
            c.execute("SELECT pg_reload_conf()")
        wait_metric(port, "outboxd_standby_slots_blocking", lambda v: v == 0, timeout=30)
        t_cleared = time.monotonic()
        time.sleep(3)
    with psycopg.connect(pair17.conninfo, autocommit=True) as c:
        end = c.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        survivors = {str(r[0]) for r in c.execute("SELECT id FROM outbox").fetchall()}
        deadline = time.monotonic() + 60
        while not c.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                            (end, slot)).fetchone()[0]:
            assert time.monotonic() < deadline, "slot not confirmed to the end on the new primary"
            time.sleep(0.2)
    got = [r.header("id").decode() for r in kafka.consume(topic, n=None, timeout=90, settle=3)]
    missing = survivors - set(got)
    assert not missing, f"{len(missing)} of {len(survivors)} events on the surviving server are not in Kafka"
    log = d.log_text()
    assert "recovery: republished" not in log, "the synced slot should have been used, not recovered"
    assert re.search(r"WARN: PostgreSQL timeline changed from 1 to 2", log)
    dups = len(got) - len(set(got))
    print(f"\n[pg17 failover slot] {len(survivors)} events on the new primary, all in Kafka, {dups} duplicates, "
          f"no recovery; held back {t_cleared - t_promoted:.1f} s until synchronized_standby_slots was cleared; "
          f"{len(set(w.acked) - survivors)} acknowledged by the old primary but not replicated")
