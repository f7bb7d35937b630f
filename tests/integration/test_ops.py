"""Operations: the HTTP endpoint (/metrics, /healthz, /readyz) of outboxd and inboxd, the
slot guardrails (slot.retained.warn.bytes, an invalidated slot), standby takeover after
kill -9 of the active instance, and SIGHUP re-reading log.level.

Needs the local stack (scripts/stack.sh start) and built daemons (docs/testing.md). The
invalidated-slot test changes max_slot_wal_keep_size on the stack's PostgreSQL and always
restores it; the Kafka test stops and restarts the stack's broker.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from harness import (
    default_inboxd_bin,
    default_outboxd_bin,
    free_port,
    http_get,
    lsn_to_int,
    scrape,
    unique_name,
    wait_metric,
    wait_status,
    wait_until,
    write_config,
)

# --------------------------------------------------------------------------- outboxd metrics


def test_outboxd_metrics_move_as_events_flow(outboxd, db, topic_prefix):
    port = free_port()
    d = outboxd({"http.listen": f"127.0.0.1:{port}", "slot.poll.interval.ms": 500})
    d.wait_for_log("streaming slot")
    assert "serving /metrics, /healthz and /readyz on http://127.0.0.1:%d" % port in d.log_text()
    assert http_get(port, "/healthz") == (200, "ok\n")
    # Ready as soon as it streams, not at the next once-a-second publication of the metrics.
    wait_status(port, "/readyz", 200, timeout=0.5)
    assert http_get(port, "/nope")[0] == 404
    before = wait_metric(port, "outboxd_slot_retained_bytes", lambda v: v > 0)
    topic = f"{topic_prefix}.order"
    series = f'outboxd_events_published_total{{topic="{topic}"}}'
    assert series not in before and before["outboxd_commit_to_ack_seconds_count"] == 0
    assert before["outboxd_streaming"] == 1 and before["outboxd_standby"] == 0

    with db.connect() as c:
        with c.transaction():
            for i in range(40):
                db.insert_event("order", f"o{i % 7}", "Created", {"n": i}, conn=c)
    after = wait_metric(port, series, lambda v: v == 40)
    assert after[f'outboxd_bytes_published_total{{topic="{topic}"}}'] > 40 * len('{"n": 1}')
    after = wait_metric(port, "outboxd_confirmed_lsn", lambda v: v > before["outboxd_confirmed_lsn"])
    assert after["outboxd_commit_to_ack_seconds_count"] == 40
    assert after['outboxd_commit_to_ack_seconds_bucket{le="+Inf"}'] == 40
    assert 0 < after["outboxd_commit_to_ack_seconds_sum"] < 40 * 30
    assert after["outboxd_received_lsn"] >= after["outboxd_confirmed_lsn"] > 0
    assert after["outboxd_delivery_errors_total"] == 0 and after["outboxd_reconnects_total"] == 0
    # Everything acknowledged: nothing in flight, and the lag returns to (about) nothing.
    wait_metric(port, "outboxd_events_in_flight", lambda v: v == 0)
    wait_metric(port, "outboxd_oldest_unacked_event_age_seconds", lambda v: v == 0)
    final = wait_metric(port, "outboxd_lag_bytes", lambda v: v < 16384)
    assert final["outboxd_server_wal_end_lsn"] >= final["outboxd_confirmed_lsn"]
    assert final["outboxd_slot_active"] == 1 and final["outboxd_kafka_reachable"] == 1
    # The slot's confirmed position is what the metric says (or newer).
    confirmed = lsn_to_int(db.slot_info(f"{db.dbname}_slot")["confirmed_flush_lsn"])
    assert confirmed >= final["outboxd_confirmed_lsn"]


def test_http_listen_port_in_use_stops_at_startup(outboxd, inboxd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        for d in (outboxd({"http.listen": f"127.0.0.1:{port}"}), inboxd({"http.listen": f"127.0.0.1:{port}"})):
            assert d.wait_exit(30) == 2
            assert (f'http.listen = "127.0.0.1:{port}": cannot listen there: Address already in use: another '
                    "process uses the port") in d.log_text(), d.log_tail()
    bad = outboxd({"http.listen": "localhost"})
    assert bad.wait_exit(30) == 2
    assert 'http.listen = "localhost": expected host:port' in bad.log_text()


def test_slot_retained_warning_is_logged_once_and_exposed(outboxd, db):
    port = free_port()
    d = outboxd({"http.listen": f"127.0.0.1:{port}", "slot.poll.interval.ms": 300,
                 "slot.retained.warn.bytes": 1})
    d.wait_for_log("streaming slot")
    d.wait_for_log(r'replication slot "\S+" retains .* of WAL, more than slot.retained.warn.bytes \(1 B\)')
    m = wait_metric(port, "outboxd_slot_retained_over_warn", lambda v: v == 1)
    assert m["outboxd_slot_retained_warn_bytes"] == 1
    time.sleep(3)  # about ten more polls: still above, but no new warning (10 minutes apart)
    assert len(re.findall("more than slot.retained.warn.bytes", d.log_text())) == 1


def test_slot_metrics_before_streaming_and_slot_poll_errors(outboxd, db, stack):
    """Before the first stream (here: waiting for an unreachable Kafka) outboxd has confirmed
    nothing itself: outboxd_confirmed_lsn and outboxd_lag_bytes are the slot's, polled, and 0
    without a slot - never the whole WAL as lag. The retained-WAL flag drops back to 0 when
    the slot goes. A failed slot poll is logged once, counted, and its recovery logged."""
    port, slot = free_port(), f"{db.dbname}_slot"
    d = outboxd({"http.listen": f"127.0.0.1:{port}", "kafka.bootstrap.servers": "127.0.0.1:1",
                 "startup.timeout.ms": 60000, "slot.poll.interval.ms": 300, "slot.retained.warn.bytes": 1})
    d.wait_for_log("serving /metrics")
    m = wait_metric(port, "outboxd_slot_poll_errors_total", lambda v: v == 0)
    assert m["outboxd_streaming"] == 0 and m["outboxd_lag_bytes"] == 0 and m["outboxd_confirmed_lsn"] == 0

    db.create_slot(slot)
    for n in range(20):
        db.insert_event("order", "a1", "Created", {"n": n})
    info = db.slot_info(slot)
    confirmed = lsn_to_int(info["confirmed_flush_lsn"])
    m = wait_metric(port, "outboxd_confirmed_lsn", lambda v: v == confirmed)
    m = wait_metric(port, "outboxd_lag_bytes", lambda v: v >= info["lag_bytes"])
    assert m["outboxd_lag_bytes"] <= db.slot_info(slot)["lag_bytes"], m  # the slot's lag, not the WAL position
    wait_metric(port, "outboxd_slot_retained_over_warn", lambda v: v == 1)

    # The poll's connection dies: one warning, the counter, then "works again".
    with stack.pg_connect() as c:
        killed = c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = 'outboxd metrics' AND datname = %s", (db.dbname,)).fetchone()[0]
    assert killed == 1
    d.wait_for_log(rf'WARN: replication slot "{slot}": cannot read pg_replication_slots: server closed the '
                   r"connection unexpectedly This probably means .*; the slot metrics", timeout=10)
    d.wait_for_log(rf'INFO: replication slot "{slot}": reading pg_replication_slots works again', timeout=10)
    m = wait_metric(port, "outboxd_slot_poll_errors_total", lambda v: v >= 1)
    assert d.log_text().count("cannot read pg_replication_slots") == 1

    db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    m = wait_metric(port, "outboxd_slot_retained_over_warn", lambda v: v == 0)
    assert m["outboxd_lag_bytes"] == 0 and m["outboxd_confirmed_lsn"] == 0
    assert d.terminate() == 0


# --------------------------------------------------------------------------- readiness


def test_readyz_follows_kafka_for_outboxd_and_inboxd(outboxd, inboxd, faults, db):
    """Also the outage seen in outboxd's metrics and progress line: events in flight and
    ageing while Kafka is down, the replication connection released after
    relay.stall.timeout.ms, and one reconnect once Kafka is back."""
    po, pi = free_port(), free_port()
    o = outboxd({"http.listen": f"127.0.0.1:{po}", "relay.stall.timeout.ms": 3000, "slot.poll.interval.ms": 500})
    i = inboxd({"http.listen": f"127.0.0.1:{pi}"})
    o.wait_for_log("streaming slot")
    i.wait_for_log("consuming")
    wait_status(po, "/readyz", 200)
    wait_status(pi, "/readyz", 200)
    faults.kafka_stop()
    body = wait_status(po, "/readyz", 503, timeout=20)
    assert body.startswith("not ready: Kafka is not reachable"), body
    body = wait_status(pi, "/readyz", 503, timeout=20)
    assert body.startswith("not ready: Kafka is not reachable"), body
    assert scrape(po)["outboxd_kafka_reachable"] == 0 and scrape(pi)["inboxd_kafka_reachable"] == 0
    # The loops still run: alive, only not ready.
    assert http_get(po, "/healthz")[0] == 200 and http_get(pi, "/healthz")[0] == 200

    mark = len(o.log_text())
    for n in range(5):
        db.insert_event("order", f"k{n}", "Created", {"n": n})
    m = wait_metric(po, "outboxd_events_in_flight", lambda v: v == 5, timeout=20)
    assert m["outboxd_reconnects_total"] == 0
    wait_metric(po, "outboxd_oldest_unacked_event_age_seconds", lambda v: v >= 1.5, timeout=10)
    o.wait_for_log("closing the replication stream until it does", timeout=20, after=mark)
    progress = o.wait_for_log(r"published 0 events \(0\.0/s\), 5 in flight, confirmed \S+, lag (\d+) bytes",
                              timeout=15, after=mark)
    assert int(progress.group(1)) > 0, progress.group(0)  # the 5 events' WAL, not yet confirmed
    m = wait_metric(po, "outboxd_streaming", lambda v: v == 0)
    assert m["outboxd_events_in_flight"] == 5 and m["outboxd_oldest_unacked_event_age_seconds"] >= 1.5
    assert m["outboxd_lag_bytes"] > 0  # the slot's lag (not streaming): at least the 5 events

    faults.kafka_start()
    wait_status(po, "/readyz", 200, timeout=60)
    wait_status(pi, "/readyz", 200, timeout=60)
    m = wait_metric(po, "outboxd_reconnects_total", lambda v: v >= 1, timeout=30)
    m = wait_metric(po, "outboxd_events_in_flight", lambda v: v == 0)
    assert m["outboxd_oldest_unacked_event_age_seconds"] == 0
    assert m["outboxd_delivery_errors_total"] == 0  # librdkafka retried: nothing failed


# --------------------------------------------------------------------------- inboxd metrics


def test_inboxd_metrics_move_as_messages_arrive(inboxd, inbox_db, inbox_topic, kafka):
    port = free_port()
    d = inboxd({"http.listen": f"127.0.0.1:{port}", "inbox.metrics.interval.ms": 300})
    d.wait_for_log("consuming")
    wait_status(port, "/readyz", 200)
    m = wait_metric(port, 'inboxd_inbox_messages{status="pending"}', lambda v: v == 0)
    assert m["inboxd_messages_recorded_total"] == 0 and m["inboxd_consuming"] == 1
    for n in range(12):
        kafka.produce(inbox_topic, f"v{n}", key=f"k{n % 3}", headers={"id": f"m-{n}"})
    wait_metric(port, "inboxd_messages_recorded_total", lambda v: v == 12)
    m = wait_metric(port, 'inboxd_inbox_messages{status="pending"}', lambda v: v == 12)
    assert m['inboxd_inbox_messages{status="done"}'] == 0
    assert m["inboxd_oldest_pending_age_seconds"] > 0
    assert m["inboxd_batches_total"] >= 1
    wait_metric(port, f'inboxd_consumer_lag_messages{{topic="{inbox_topic}"}}', lambda v: v == 0)
    # The same ids again: skipped as duplicates.
    for n in range(3):
        kafka.produce(inbox_topic, f"v{n}", key=f"k{n % 3}", headers={"id": f"m-{n}"})
    wait_metric(port, "inboxd_duplicates_skipped_total", lambda v: v == 3)
    # The service settles two of them: the per-status counts follow the table.
    inbox_db.execute("UPDATE inbox SET status = 'done', processed_at = now() WHERE message_id IN ('m-0', 'm-1')")
    m = wait_metric(port, 'inboxd_inbox_messages{status="done"}', lambda v: v == 2)
    assert m['inboxd_inbox_messages{status="pending"}'] == 10
    assert m["inboxd_messages_recorded_total"] == 12


# --------------------------------------------------------------------------- standby takeover


class Writer(threading.Thread):
    """Inserts one event every `every` seconds until stopped; .ids holds the committed ids."""

    def __init__(self, db, every: float = 0.02):
        super().__init__(daemon=True)
        self.db, self.every = db, every
        self.ids: list[str] = []
        self.halt = threading.Event()
        self.error: Exception | None = None

    def run(self):
        try:
            with self.db.connect() as c:
                n = 0
                while not self.halt.is_set():
                    self.ids.append(self.db.insert_event("order", f"a{n % 10}", "Created", {"n": n}, conn=c))
                    n += 1
                    time.sleep(self.every)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def test_standby_takes_over_after_kill9_without_loss(outboxd, db, kafka, topic_prefix):
    pa, pb = free_port(), free_port()
    a = outboxd({"http.listen": f"127.0.0.1:{pa}"})
    a.wait_for_log("streaming slot")
    b = outboxd({"http.listen": f"127.0.0.1:{pb}", "slot.poll.interval.ms": 500})
    b.wait_for_log("standing by")
    writer = Writer(db)
    writer.start()
    try:
        time.sleep(3)  # the standby retries about three times meanwhile
        log = b.log_text()
        assert len(re.findall("standing by", log)) == 1, log  # one line, not one per retry
        assert re.search(r'replication slot "\S+" is in use by PID \d+ \(another outboxd\?\): standing by, checking '
                         r"every 1000 ms; this instance takes over when the slot is free", log), log
        status, body = http_get(pb, "/readyz")
        assert status == 503 and body.startswith("not ready: standby: replication slot"), body
        assert scrape(pb)["outboxd_standby"] == 1
        # The standby confirms nothing itself: it shows the slot's position and lag (polled),
        # which the active instance keeps small - not the whole WAL as lag.
        m = wait_metric(pb, "outboxd_confirmed_lsn", lambda v: v > 0, timeout=10)
        assert m["outboxd_lag_bytes"] == m["outboxd_server_wal_end_lsn"] - m["outboxd_confirmed_lsn"], m
        assert m["outboxd_lag_bytes"] < 16 * 1024 * 1024, m
        wait_status(pa, "/readyz", 200)

        a.kill9()
        t0 = time.monotonic()
        b.wait_for_log("is free: taking over", timeout=15)
        took = time.monotonic() - t0
        b.wait_for_log("streaming slot")
        assert took < 5, f"takeover took {took:.1f} s"
        wait_status(pb, "/readyz", 200)
        time.sleep(2)  # events written after the takeover too
    finally:
        writer.halt.set()
        writer.join(10)
    assert writer.error is None, writer.error
    ids = set(writer.ids)
    assert len(ids) > 100
    got = {r.header("id").decode() for r in kafka.consume(f"{topic_prefix}.order", None, timeout=90, settle=3)}
    missing = ids - got
    assert not missing, f"{len(missing)} of {len(ids)} events lost across the takeover"
    print(f"standby took over {took:.2f} s after kill -9; {len(ids)} events, all delivered")


# --------------------------------------------------------------------------- invalidated slot


def test_invalidated_slot_stops_the_relay_with_the_runbook(outboxd, db, stack):
    """max_slot_wal_keep_size small, the relay frozen (SIGSTOP) while WAL is written and
    checkpointed: PostgreSQL invalidates the slot; once thawed the relay, told not to recover
    by itself (postgres.slot.on_lost = fail), stops with exit 2 and an error naming what
    happened, what may be missing and the runbook. (The default, recover:
    test_slot_loss.py.)"""
    admin = stack.pg_connect()
    slot = f"{db.dbname}_slot"
    try:
        admin.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        admin.execute("SELECT pg_reload_conf()")
        d = outboxd({"slot.poll.interval.ms": 500, "postgres.slot.on_lost": "fail"})
        d.wait_for_log("streaming slot")
        db.insert_event("order", "a1", "Created", {"n": 1})
        time.sleep(2)  # published and confirmed
        d.signal(signal.SIGSTOP)
        try:
            db.execute("CREATE TABLE filler (x text)")
            for _ in range(6):
                db.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 3000)")
                admin.execute("SELECT pg_switch_wal()")
            admin.execute("CHECKPOINT")
            wait_until(lambda: db.slot_info(slot)["wal_status"] == "lost", 30, what="slot invalidated")
        finally:
            d.signal(signal.SIGCONT)
        assert d.wait_exit(60) == 2
        log = d.log_text()
        assert re.search(r"invalidated", log), d.log_tail()
        assert "may not have been published" in log
        assert 'docs/operations.md, "Slot lost"' in log
        assert "recreate the slot" in log
        print(d.log_tail(4))
    finally:
        admin.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
        admin.execute("SELECT pg_reload_conf()")
        admin.close()


# --------------------------------------------------------------------------- SIGHUP


@pytest.mark.parametrize("daemon", ["outboxd", "inboxd"])
def test_sighup_rereads_log_level(daemon, outboxd, inboxd, db, kafka, inbox_topic):
    start = outboxd if daemon == "outboxd" else inboxd
    d = start({"log.level": "info"})
    d.wait_for_log("streaming slot" if daemon == "outboxd" else "consuming")

    def activity():
        if daemon == "outboxd":
            db.insert_event("order", "a1", "Created", {})
        else:
            kafka.produce(inbox_topic, "v", headers={"id": unique_name("m")})

    activity()
    time.sleep(2)
    assert " DEBUG: " not in d.log_text()
    write_config(d.config_path, {**d.config, "log.level": "debug", "log.format": "json"})
    d.signal(signal.SIGHUP)
    d.wait_for_log("SIGHUP: reloaded log.level = debug, log.format = json")
    activity()
    d.wait_for_log(r'"level":"debug"', timeout=20)
    # A broken file keeps the current settings, and the daemon keeps running.
    d.config_path.write_text(d.config_path.read_text() + "log.level = loud\n")
    d.signal(signal.SIGHUP)
    d.wait_for_log("cannot reload the configuration, keeping the current log settings")
    assert d.is_running()
    assert d.terminate() == 0


# --------------------------------------------------------------------------- sd_notify


@pytest.mark.parametrize("daemon", ["outboxd", "inboxd"])
def test_sd_notify_ready_watchdog_and_stopping(daemon, outboxd, inboxd):
    """With NOTIFY_SOCKET (as systemd sets it for Type=notify): READY=1 once streaming
    (consuming), WATCHDOG=1 pings when WATCHDOG_USEC is set, STOPPING=1 on SIGTERM."""
    binary = default_outboxd_bin() if daemon == "outboxd" else default_inboxd_bin()
    if "libsystemd" not in subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout:
        pytest.skip("built without libsystemd: sd_notify is compiled out")
    d = tempfile.mkdtemp(prefix="outboxd-notify-", dir="/tmp")
    path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1)
    got: list[str] = []

    def receive_until(word: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                got.extend(sock.recv(4096).decode().splitlines())
            except socket.timeout:
                pass
            if word in got:
                return
        raise AssertionError(f"no {word} from {daemon}: {got}")

    try:
        start = outboxd if daemon == "outboxd" else inboxd
        p = start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        receive_until("READY=1")
        assert f"STATUS={'streaming' if daemon == 'outboxd' else 'consuming'}" in got, got
        assert got.count("READY=1") == 1
        got.clear()
        receive_until("WATCHDOG=1", timeout=5)
        p.signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert p.wait_exit(60) == 0
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(d)
