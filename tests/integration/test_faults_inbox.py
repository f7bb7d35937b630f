"""Faults under inboxd, with figures for docs/reliability.md: partitioned from Kafka and from
its database for 30 s (network namespace, harness/netfault.py), the broker restarted
(kill -9) during a rebalance, PostgreSQL restarted and crashed mid-batch.

A background producer (idempotent, acks=all) sends messages with unique id headers all
along; afterwards the inbox must hold exactly the acknowledged messages, each at the
partition/offset Kafka gave it, inbox ids in offset order within a key. Each test records
committed (acknowledged by Kafka), delivered (recorded in the inbox), lost, duplicated
(redeliveries the inbox skipped, from inboxd's stop line), reordered and the seconds to
recover in the results file (harness/faultreport.py) before it asserts.
"""

from __future__ import annotations

import time

import pytest

from harness import wait_until
from harness.faultreport import record
from harness.inboxload import (
    BgProducer,
    check_exactly_once,
    duplicates_skipped,
    inbox_count,
    measure_inbox,
    wait_assignment,
    wait_count,
    wait_recorded,
)

pytestmark = pytest.mark.fault


def group_of(d) -> str:
    return d.config["kafka.group.id"]


def finish(name: str, *, what: str, link: str, db, topic: str, prod: BgProducer, daemons: list,
           recover_s: float | None, notes: str = "") -> dict:
    """Waits for the producer and for every acknowledged message in the inbox, stops the
    daemons cleanly (their stop lines count the skipped duplicates), records, asserts."""
    prod.join(180)
    assert not prod.errors, prod.errors[:5]
    group = group_of(daemons[0])
    all_in = wait_recorded(db, group, prod.acked, 120)
    codes = [d.terminate() if d.is_running() else f"exited earlier ({d.returncode})" for d in daemons]
    m = measure_inbox(db, prod.acked)
    dups = sum(duplicates_skipped(d.log_text()) for d in daemons)
    if all_in is None:
        notes += "; not every message recorded 120 s after the producer finished"
    record(name, daemon="inboxd", link=link, what=what, committed=m["committed"], delivered=m["delivered"],
           lost=m["lost"], duplicated=dups, reordered=m["reordered"], recover_s=recover_s,
           notes=notes.lstrip("; "), phantom=m["phantom"], misplaced=m["misplaced"])
    print(f"{name}: {m}; {dups} duplicates skipped; recovered in {recover_s} s; {notes}")
    check_exactly_once(db, prod.acked, topic, settle=0.5)
    assert m["reordered"] == 0
    assert recover_s is not None, f"{name}: did not recover in time"
    assert codes == [0] * len(codes), f"exit codes {codes}"
    return m


# =========================================================================== partitions


@pytest.mark.netfault
@pytest.mark.timeout(300)
@pytest.mark.parametrize("link", ["kafka", "pg"])
def test_partition_30s(inboxd, inbox_db, inbox_topic, stack, netns, link):
    """inboxd cut off from Kafka (or from its database) for 30 s while the producer goes
    on: nothing lost, nothing recorded twice, each key in order once the link is back."""
    name = f"inboxd-{link}-partition-30s"
    port = stack.kafka_port if link == "kafka" else stack.pg_port
    prod = BgProducer(stack.kafka, inbox_topic, 50 * 1000, rate=1000)
    d = inboxd({"inbox.batch.max": 500, "reconnect.backoff.max.ms": 1000}, start=False)
    d.wrap = netns.prefix
    d.start()
    d.wait_for_log(r"assigned .*\[3\]", timeout=30)
    prod.start()
    wait_count(inbox_db, 2000, 30)
    netns.partition(port)
    t_cut = time.monotonic()
    n_cut = inbox_count(inbox_db)
    while time.monotonic() - t_cut < 30:
        assert d.is_running(), f"inboxd exited ({d.returncode}) during the partition:\n{d.log_tail()}"
        time.sleep(0.5)
    n_during = inbox_count(inbox_db) - n_cut
    netns.heal()
    t_heal, acked = time.monotonic(), dict(prod.acked)
    waited = wait_recorded(inbox_db, group_of(d), acked, 120)
    recover_s = None if waited is None else time.monotonic() - t_heal
    finish(name, what=f"inboxd partitioned from {'Kafka' if link == 'kafka' else 'its database'} for 30 s",
           link="Kafka" if link == "kafka" else "PostgreSQL", db=inbox_db, topic=inbox_topic, prod=prod,
           daemons=[d], recover_s=recover_s, notes=f"{n_during} rows recorded during the partition")
    assert n_during < 1000, f"{n_during} rows recorded during the partition: was it one?"


# =========================================================================== broker restart


@pytest.mark.timeout(300)
def test_broker_restart_during_rebalance(inboxd, inbox_db, inbox_topic, stack, kafka, faults):
    """A second instance joins the group and the broker is killed (kill -9) while the group
    rebalances, then started again 3 s later: the group settles with both members, every
    message recorded once, each key in order."""
    prod = BgProducer(stack.kafka, inbox_topic, 40 * 1000, rate=1000)
    cfg = {"inbox.batch.max": 300, "reconnect.backoff.max.ms": 1000}
    a = inboxd({**cfg, "kafka.client.id": "inboxd-a"})
    group = group_of(a)
    a.wait_for_log(r"assigned .*\[3\]", timeout=30)
    prod.start()
    wait_count(inbox_db, 2000, 30)
    b = inboxd({**cfg, "kafka.client.id": "inboxd-b"})
    a.wait_for_log(r"(revoked|lost) \d+ partitions", timeout=30)  # the rebalance began
    faults.kafka_kill()
    time.sleep(3)
    t0 = time.monotonic()
    faults.kafka_start()
    t_up, n_up = time.monotonic(), len(prod.acked)
    wait_assignment(kafka, group, inbox_topic, {"inboxd-a", "inboxd-b"}, timeout=90)
    # Recovered: the group settled and recorded messages produced after the restart (and
    # everything before them).
    wait_until(lambda: len(prod.acked) > n_up + 100 or not prod.is_alive(), 60, 0.1, "new acknowledgements")
    waited = wait_recorded(inbox_db, group, dict(prod.acked), 120)
    recover_s = None if waited is None else time.monotonic() - t_up
    finish("inboxd-kafka-restart-in-rebalance", what="broker killed (kill -9) during a rebalance, up 3 s later",
           link="Kafka", db=inbox_db, topic=inbox_topic, prod=prod, daemons=[a, b], recover_s=recover_s,
           notes=f"broker start took {t_up - t0:.0f} s; recover_s: from the broker's start until the group "
           "settled with both members and had recorded messages produced after the restart")


# =========================================================================== PostgreSQL


@pytest.mark.timeout(240)
def test_postgres_restart_and_crash_midstream(inboxd, inbox_db, inbox_topic, stack, faults):
    """PostgreSQL restarted (fast), then crashed (immediate stop, down 3 s) while batches of
    500 are being written: inboxd pauses, resumes from the stored positions, and records
    every message once."""
    n = 25000
    prod = BgProducer(stack.kafka, inbox_topic, n, rate=2500)
    d = inboxd({"inbox.batch.max": 500, "reconnect.backoff.max.ms": 1000})
    d.wait_for_log(r"assigned .*\[3\]", timeout=30)
    prod.start()
    wait_count(inbox_db, 2000, 30)
    faults.pg_restart()  # fast shutdown and start
    d.wait_for_log(r"PostgreSQL is back: consumption resumed", timeout=30)
    before = inbox_count(inbox_db)
    wait_until(lambda: inbox_count(inbox_db) > before + 2000, 30, 0.1, "progress after the restart")
    faults.pg_kill()  # a crash, down for 3 s while the producer goes on
    time.sleep(3)
    faults.pg_start()
    t_up, acked = time.monotonic(), dict(prod.acked)
    waited = wait_recorded(inbox_db, group_of(d), acked, 90)
    recover_s = None if waited is None else time.monotonic() - t_up
    log = d.log_text()
    finish("inboxd-pg-crash", what="PostgreSQL fast restart, then crash (down 3 s) mid-batch", link="PostgreSQL",
           db=inbox_db, topic=inbox_topic, prod=prod, daemons=[d], recover_s=recover_s,
           notes="recover_s: after the crash")
    assert log.count("PostgreSQL is unavailable") >= 2
    assert log.count("PostgreSQL is back: consumption resumed") >= 2
