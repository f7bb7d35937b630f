"""Network faults between outboxd and PostgreSQL, and between outboxd and Kafka: 200 ms of
added round-trip time, 10 % packet loss, a full partition for 30 s, a half-open connection.

outboxd runs in a network namespace of the test's own (harness/netfault.py, the `netns`
fixture); the writers and the checks talk to the servers directly, so only outboxd's
packets suffer. Two writers commit events all along (harness/faultload.py); after the
fault every committed event must be in Kafka, per key in commit order. Each test writes
its figures (committed, delivered, lost, duplicated, reordered, seconds to recover) to the
results file (harness/faultreport.py, docs/reliability.md) before it asserts.

Recovery: for delay, loss and partition, the seconds from the end of the fault until the
slot confirmed every event committed before that end; a half-open connection does not
end by itself (the rules keep dropping what the server sends on it), so there the clock
starts with the fault, and stops when the events committed after it are confirmed: that
is how long outboxd takes to notice and replace the dead connection.
"""

from __future__ import annotations

import time

import pytest

from harness import int_to_lsn
from harness.faultload import (
    BASE_CFG,
    STREAMING,
    Writer,
    confirmed,
    current_lsn,
    measure,
    read_topic,
    seed_for,
    setup_counters,
    slot_of,
    topic_for,
    verify,
    wait_caught_up,
)
from harness.faultreport import record

pytestmark = [pytest.mark.fault, pytest.mark.netfault]

# Half-open: how long outboxd may take to notice. PostgreSQL: the replication connection
# always has unacknowledged status updates in flight, so TCP keepalives never fire; what
# ends it is outboxd's tcp_user_timeout (60 s) and then, on the server, wal_sender_timeout
# (60 s) letting go of the slot. Kafka: librdkafka's socket.timeout.ms (60 s).
HALF_OPEN_LIMIT = 240

CFG = {**BASE_CFG, "log.level": "info"}


def link_fault(stack, db, kafka, topic_prefix, outboxd, netns, *, link: str, fault: str,
               duration: float, name: str, what: str):
    seed = seed_for(name)
    port = stack.pg_port if link == "pg" else stack.kafka_port
    setup_counters(db)
    topic = topic_for(topic_prefix)
    kafka.create_topic(topic, 3)
    p = outboxd(CFG, start=False)
    p.wrap = netns.prefix
    p.start()
    p.wait_for_log(STREAMING, 30)
    writers = [Writer(db.conninfo, seed=seed + i, pause=0.005).start() for i in range(2)]
    slot = slot_of(p)
    time.sleep(2)  # steady state before the fault
    mark = len(p.log_text())
    n_before = sum(len(w.committed) for w in writers)
    conf0 = confirmed(db, slot)
    t_fault = time.monotonic()
    if fault == "delay":
        netns.delay(port, 200)
    elif fault == "loss":
        netns.loss(port, 10)
    elif fault == "partition":
        netns.partition(port)
    elif fault == "half-open":
        conns = netns.half_open(port)
        assert conns, f"outboxd has no connection to port {port} to cut"
    lsn_fault = current_lsn(db)
    exited = None
    while time.monotonic() - t_fault < duration:
        if not p.is_running():
            exited = p.returncode
            break
        time.sleep(0.2)
    during, wal_end = confirmed(db, slot), current_lsn(db)
    if fault == "half-open":
        # Recovered once everything committed after the fault began is confirmed.
        time.sleep(1)
        target = current_lsn(db)
        t0 = t_fault
    else:
        netns.heal()
        target = current_lsn(db)
        t0 = time.monotonic()
    limit = HALF_OPEN_LIMIT if fault == "half-open" else 120
    waited = wait_caught_up(db, slot, target, limit - (time.monotonic() - t0), p)
    recover_s = None if waited is None else time.monotonic() - t0
    for w in writers:
        w.stop()
    netns.heal()
    committed: dict = {}
    for w in writers:
        committed.update(w.committed)
    end = current_lsn(db)
    wait_caught_up(db, slot, end, 60, p)
    recs = read_topic(stack.kafka, topic, 3)
    m = measure(recs, committed)
    log = p.log_text()[mark:]
    reconnects = log.count("resumed streaming slot")
    notes = (f"during the fault the slot advanced {(during - conf0) // 1024} of {(wal_end - conf0) // 1024} kB "
             f"of WAL; {reconnects} replication reconnects" + (f"; outboxd exited {exited}" if exited is not None else ""))
    if recover_s is None:
        notes += f"; not recovered within {limit} s"
    record(name, daemon="outboxd", link="PostgreSQL" if link == "pg" else "Kafka", what=what,
           recover_s=recover_s, notes=notes, seed=seed, **{k: m[k] for k in (
               "committed", "delivered", "lost", "duplicated", "reordered")})
    print(f"{name}: {m}; during the fault the slot moved {int_to_lsn(lsn_fault)} -> {int_to_lsn(during)}; "
          f"{sum(len(w.committed) for w in writers) - n_before} events committed from the fault on; "
          f"recovered in {recover_s} s; {notes}")
    assert exited is None, f"outboxd exited ({exited}) during the fault:\n{p.log_tail()}"
    assert recover_s is not None, f"outboxd did not recover within {limit} s:\n{p.log_tail()}"
    verify(recs, committed)
    assert m["lost"] == 0 and m["reordered"] == 0
    assert p.is_running()
    return m, recover_s


LINKS = ["pg", "kafka"]


@pytest.mark.parametrize("link", LINKS)
def test_delay_200ms(stack, db, kafka, topic_prefix, outboxd, netns, link):
    """200 ms more per round trip for 20 s: outboxd keeps publishing, nothing lost or reordered."""
    link_fault(stack, db, kafka, topic_prefix, outboxd, netns, link=link, fault="delay", duration=20,
               name=f"outboxd-{link}-delay-200ms", what="200 ms added to each round trip, 20 s")


@pytest.mark.parametrize("link", LINKS)
def test_loss_10pct(stack, db, kafka, topic_prefix, outboxd, netns, link):
    """10 % of the packets dropped (both directions) for 20 s."""
    link_fault(stack, db, kafka, topic_prefix, outboxd, netns, link=link, fault="loss", duration=20,
               name=f"outboxd-{link}-loss-10pct", what="10 % packet loss both ways, 20 s")


@pytest.mark.timeout(400)
@pytest.mark.parametrize("link", LINKS)
def test_partition_30s(stack, db, kafka, topic_prefix, outboxd, netns, link):
    """Every packet dropped for 30 s, then the link comes back."""
    link_fault(stack, db, kafka, topic_prefix, outboxd, netns, link=link, fault="partition", duration=30,
               name=f"outboxd-{link}-partition-30s", what="full partition, 30 s")


@pytest.mark.long
@pytest.mark.timeout(600)
@pytest.mark.parametrize("link", LINKS)
def test_partition_90s(stack, db, kafka, topic_prefix, outboxd, netns, link):
    """A partition longer than wal_sender_timeout and socket.timeout.ms (60 s): the server
    and librdkafka give up the connections; outboxd must resume without a gap."""
    link_fault(stack, db, kafka, topic_prefix, outboxd, netns, link=link, fault="partition", duration=90,
               name=f"outboxd-{link}-partition-90s", what="full partition, 90 s (long tier)")


@pytest.mark.timeout(HALF_OPEN_LIMIT + 200)
@pytest.mark.parametrize("link", LINKS)
def test_half_open(stack, db, kafka, topic_prefix, outboxd, netns, link):
    """The connections open at the fault stop receiving (server -> outboxd dropped), while
    what outboxd sends still arrives and new connections work: outboxd must notice the
    dead connection and replace it."""
    link_fault(stack, db, kafka, topic_prefix, outboxd, netns, link=link, fault="half-open", duration=5,
               name=f"outboxd-{link}-half-open", what="half-open: server -> outboxd dropped on open connections")


# =========================================================================== the faults themselves

SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")  # PostgreSQL answers one byte: 'N' or 'S'


def pg_probe(netns, port: int, conn=None, timeout: float = 3.0) -> float | None:
    """Round trip of an SSLRequest to PostgreSQL from inside the namespace (a new connection
    unless conn is given); None when no answer came within timeout."""
    s = conn or netns.connect(port)
    try:
        s.settimeout(timeout)
        t0 = time.monotonic()
        s.sendall(SSL_REQUEST)
        try:
            b = s.recv(1)
        except TimeoutError:
            return None
        assert b in (b"N", b"S"), b
        return time.monotonic() - t0
    finally:
        if conn is None:
            s.close()


def test_faults_act_on_the_namespace_only(stack, netns):
    """The harness's faults do what they say, to the namespace's connections only: delay
    adds the round trip, loss drops packets, a partition answers nothing, half-open kills
    the connections open at the time while new ones work, heal() undoes it all; the
    stack itself stays reachable from the root namespace throughout."""
    port = stack.pg_port
    base = pg_probe(netns, port)
    assert base is not None and base < 1.0, base  # loose: the machine may be busy
    netns.delay(port, 200)
    d = pg_probe(netns, port)
    assert d is not None and d >= 0.2, d
    netns.heal()
    netns.loss(port, 10)
    for _ in range(30):
        try:
            pg_probe(netns, port, timeout=10)
        except OSError:  # a lost handshake packet can end a probe with a reset: only the count matters
            pass
    assert netns.dropped() > 0, "10 % loss dropped nothing in ~200 packets"
    netns.heal()
    s = netns.connect(port)
    netns.partition(port)
    assert pg_probe(netns, port, conn=s, timeout=2) is None  # nothing gets through an open connection
    s.close()
    with pytest.raises(OSError):  # nor can a new one be made
        netns.connect(port, timeout=2).close()
    with stack.pg_connect() as c:  # not faulted outside the namespace
        assert c.execute("SELECT 1").fetchone()[0] == 1
    netns.heal()
    old = netns.connect(port)
    cut = netns.half_open(port)
    assert old.getsockname()[1] in cut, (old.getsockname(), cut)
    assert pg_probe(netns, port, conn=old, timeout=2) is None
    assert pg_probe(netns, port) is not None  # a new connection works
    old.close()
    netns.heal()
    healed = pg_probe(netns, port)
    assert healed is not None and healed < 1.0, healed
