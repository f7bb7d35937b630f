"""inboxd when the inbox database fails over: the inbox lives on a PostgreSQL 15 primary with a
streaming standby (scripts/pgpair.sh); inboxd consumes a topic through a multi-host
postgres.conninfo (target_session_attrs=read-write) while a producer writes; the primary is
crashed (immediate stop) mid-consumption and the standby promoted. inboxd must end with
exactly the produced set in the inbox: no message missing, none twice.

Three cases: (in_sync) the standby streams up to the crash; (standby_behind) the standby
stopped receiving WAL a while before the crash, as an asynchronous standby that lags does, so
the last batches that inboxd committed (and whose offsets it committed to Kafka) exist only on
the dead primary. The positions stored on the new primary are then behind the group's
committed offsets and behind what inboxd believes it recorded: it must read those messages
again from Kafka. (standby_behind_restarted) the same, with inboxd killed with the primary and
started again after the promotion (a host lost, a supervisor's restart): it must start from the
new primary's positions, not from the group's committed offsets.

The pair runs in $OUTBOXD_TEST_INBOX_PAIR_DIR (default /tmp/pgpair-inbox) with its nodes on
$OUTBOXD_TEST_INBOX_PAIR_PORT and the port after it (default 25560); the test starts and
removes it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import psycopg
import pytest

from harness import INBOX_SQL, free_port, kafka_committed, scrape, unique_name, wait_until
from harness.pgpair import PgPair

PAIR_DIR = Path(os.environ.get("OUTBOXD_TEST_INBOX_PAIR_DIR", "/tmp/pgpair-inbox"))
PAIR_PORT = int(os.environ.get("OUTBOXD_TEST_INBOX_PAIR_PORT", "25560"))
PARTITIONS = 4


@pytest.fixture
def pair():
    """A PostgreSQL 15 primary + standby with database inbox_fo (sql/inbox.sql); removed at
    teardown. A pair left behind by an interrupted run is removed first."""
    p = PgPair(PAIR_DIR, PAIR_PORT)
    p.stop()
    p.start()
    try:
        p.create_database("inbox_fo", INBOX_SQL)
        yield p
    finally:
        p.stop()


class Producer(threading.Thread):
    """Produces n records with id headers "<prefix>-<i>" (the payload starts with the id) at
    about rate/s, idempotent with acks=all; .acked maps id -> (partition, offset)."""

    def __init__(self, bootstrap: str, topic: str, n: int, rate: float):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.n, self.rate = bootstrap, topic, n, rate
        self.prefix = unique_name("m")
        self.acked: dict[str, tuple[int, int]] = {}
        self.errors: list[str] = []

    def run(self):
        from confluent_kafka import Producer as KProducer

        p = KProducer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5})

        def cb(err, msg):
            mid = msg.value().decode().split("|")[0]
            if err is not None:
                self.errors.append(f"{mid}: {err}")
            else:
                self.acked[mid] = (msg.partition(), msg.offset())

        t0 = time.monotonic()
        for i in range(self.n):
            mid = f"{self.prefix}-{i}"
            p.produce(self.topic, key=f"k{i % 25}", value=f"{mid}|payload {i}".encode(),
                      headers=[("id", mid.encode())], on_delivery=cb)
            p.poll(0)
            ahead = (i + 1) / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        if p.flush(60) != 0:
            self.errors.append("flush timed out")


def count(conninfo: str) -> int | None:
    """Rows in the inbox; None while the server does not answer."""
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as c:
            return c.execute("SELECT count(*) FROM inbox").fetchone()[0]
    except psycopg.OperationalError:
        return None


def stored_positions(conninfo: str, group: str) -> dict[int, int]:
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=3) as c:
        return dict(c.execute("SELECT partition, next_offset FROM inbox_offsets WHERE consumer_group = %s",
                              (group,)).fetchall())


def detach_standby(pair: PgPair) -> None:
    """Stops the standby's WAL receiver (primary_conninfo = ''): what the primary commits from
    now on never reaches it, as with an asynchronous standby that lags at the moment of the
    crash. (Pausing replay with pg_wal_replay_pause() does not do this: the WAL receiver goes
    on writing WAL, and the promotion replays all of it.)"""
    ci = pair.env()["PGPAIR_STANDBY_CONNINFO"]
    with psycopg.connect(ci, autocommit=True, connect_timeout=5) as c:
        c.execute("ALTER SYSTEM SET primary_conninfo = ''")
        c.execute("SELECT pg_reload_conf()")
        wait_until(lambda: c.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone()[0] == 0, 30, 0.1,
                   "the standby's WAL receiver to stop")


def check_exactly_once(conninfo: str, acked: dict[str, tuple[int, int]], topic: str) -> int:
    """The inbox holds exactly the acknowledged records, each once, at the partition/offset
    Kafka gave it, and within a partition the inbox ids follow the offsets. Returns the rows."""
    with psycopg.connect(conninfo, autocommit=True) as c:
        rows = c.execute('SELECT id, message_id, topic, partition, "offset", payload FROM inbox').fetchall()
    got = {r[1]: r for r in rows}
    assert len(got) == len(rows)
    seen_payloads = [bytes(r[5]).split(b"|")[0].decode() for r in rows]
    assert len(set(seen_payloads)) == len(seen_payloads), "a message recorded twice"
    missing = set(acked) - set(got)
    extra = set(got) - set(acked)
    assert not missing, f"{len(missing)} produced messages missing from the inbox, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} unexpected rows, e.g. {sorted(extra)[:5]}"
    for mid, (part, off) in acked.items():
        _, _, t, p, o, payload = got[mid]
        assert (t, p, o) == (topic, part, off), mid
        assert bytes(payload).startswith(mid.encode() + b"|")
    by_part: dict[int, list[tuple[int, int]]] = {}
    for iid, _, _, p, o, _ in rows:
        by_part.setdefault(p, []).append((iid, o))
    for p, pairs in by_part.items():
        offs = [o for _, o in sorted(pairs)]
        assert offs == sorted(offs), f"partition {p}: inbox ids not in offset order"
    return len(rows)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["in_sync", "standby_behind", "standby_behind_restarted"])
def test_inbox_database_failover_mid_consumption(case, pair, inboxd, inbox_topic, stack):
    n, rate = 6000, 400
    port = free_port()
    d = inboxd({
        "http.listen": f"127.0.0.1:{port}",
        "postgres.conninfo": pair.conninfo,
        "inbox.batch.max": 50,  # many small transactions: the crash lands between batches
        "inbox.commit.interval.ms": 0,  # Kafka's committed offsets follow every batch
        "reconnect.backoff.max.ms": 1000,
        "log.level": "info",
    })
    group = d.config["kafka.group.id"]
    primary = pair.primary_conninfo
    standby = pair.env()["PGPAIR_STANDBY_CONNINFO"].replace("dbname=postgres", "dbname=inbox_fo")
    prod = Producer(stack.kafka, inbox_topic, n, rate)
    prod.start()
    wait_until(lambda: (count(primary) or 0) >= 1000, 60, 0.1, "1000 rows on the primary")

    behind = 0
    restarted = case.endswith("_restarted")
    if case.startswith("standby_behind"):
        detach_standby(pair)
        on_standby = stored_positions(standby, group)
        # inboxd goes on committing batches (and Kafka offsets) that only the primary has.
        wait_until(lambda: (count(primary) or 0) >= sum(on_standby.values()) + 600, 60, 0.1,
                   "600 more rows on the primary than on the standby")
        committed = kafka_committed(stack.kafka, group, inbox_topic, PARTITIONS)
        behind = sum(committed[p] - on_standby.get(p, 0) for p in committed)
        assert behind > 0, (committed, on_standby)  # the group's offsets are past the standby's positions

    at_crash = count(primary)
    if restarted:
        d.kill9()
    pair.kill_primary()
    t_crash = time.monotonic()
    time.sleep(1)  # the time a failover manager takes to decide
    pair.promote()
    t_promoted = time.monotonic()
    if restarted:
        d.start()
    at_promotion = count(pair.conninfo) or 0
    wait_until(lambda: (count(pair.conninfo) or 0) > at_promotion, 60, 0.05, "rows on the new primary")
    t_resumed = time.monotonic()

    prod.join(120)
    assert not prod.is_alive() and not prod.errors, prod.errors[:5]
    assert len(prod.acked) == n
    try:
        wait_until(lambda: (count(pair.conninfo) or 0) >= n, 60, 0.2, f"{n} rows on the new primary")
    except AssertionError:
        pass  # check_exactly_once names what is missing
    time.sleep(2)  # anything extra would show up now
    rows = check_exactly_once(pair.conninfo, prod.acked, inbox_topic)
    metric = scrape(port).get("inboxd_rewound_offsets_total")
    assert d.terminate() == 0
    log = d.log_text()
    if not restarted:
        assert "PostgreSQL is back" in log, log[-3000:]
    stops = re.findall(r"stopped: recorded (\d+) messages, (\d+) duplicates skipped", log)
    assert stops, log[-3000:]
    recorded, dups = stops[-1]  # the last run's
    reread = sum(int(x) for x in re.findall(r"(\d+) offsets recorded before are not in it", log))
    if case == "standby_behind":
        assert reread >= behind, log[-3000:]
    if not restarted:  # the metric counts what the log lines say (a restarted process starts at 0)
        assert metric == reread, (metric, reread)
    # Kafka's committed offsets end where the inbox is, not past it.
    committed = kafka_committed(stack.kafka, group, inbox_topic, PARTITIONS)
    assert committed == stored_positions(pair.conninfo, group)
    print(f"\n[{case}] {n} produced, {rows} in the inbox on the new primary ({at_crash} on the old primary at "
          f"the crash, {at_promotion} on the new one at promotion; the group's offsets {behind} past the "
          f"standby's positions); inboxd re-read {reread} offsets, recorded {recorded} (last run), {dups} "
          f"duplicates skipped; recording again {t_resumed - t_promoted:.1f} s after promotion "
          f"({t_resumed - t_crash:.1f} s after the crash)")
