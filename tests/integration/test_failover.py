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
