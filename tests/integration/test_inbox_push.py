"""inboxd's HTTP push (deliver.url) against a real Kafka, PostgreSQL and a test HTTP server
on 127.0.0.1: retries (500, 429 with Retry-After, a response slower than
deliver.timeout.ms, connection refused) with backoff, dead messages (400; too many
attempts) with last_error, exact body and headers, per-key order, no second delivery after
a success, the server down at start, kill -9 and SIGTERM mid-delivery; PostgreSQL errors of
the push thread: a revoked privilege stops inboxd (exit 2, the GRANT named), a read-only
database is retried with backoff and a warning every 30 s.

The server records every request it gets, when it arrived and when it was answered (or the
client gave up); the assertions compare those arrivals with the inbox rows.
"""

from __future__ import annotations

import collections
import json
import select
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from psycopg import sql

from harness import free_port, unique_name, wait_metric, wait_until


# --------------------------------------------------------------------------- test server


class Arrival:
    def __init__(self, t: float, headers: list[tuple[str, str]], body: bytes):
        self.t = t  # when the request had fully arrived
        self.t_end = None  # when the answer started to go out, or the client was seen gone
        self.headers = headers
        self.body = body
        self.outcome = None  # the status sent, or "timeout" when the server stalled

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def key(self) -> str:
        return self.header("Idempotency-Key")


class PushServer:
    """A ThreadingHTTPServer on 127.0.0.1. plan(arrival, n) -> (status, body, headers, delay)
    decides each answer (n: how many requests this Idempotency-Key had before); delay > 0
    stalls before answering. .arrivals lists every request."""

    def __init__(self, plan=None, port: int = 0, tls: tuple[str, str] | None = None):
        self.plan = plan or (lambda a, n: (200, b"ok", {}, 0))
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                # http.server decodes header bytes as latin-1: back to the bytes sent.
                hdrs = [(k, v.encode("latin-1").decode("utf-8", "replace")) for k, v in self.headers.items()]
                a = Arrival(time.monotonic(), hdrs, body)
                with srv.lock:
                    n = sum(1 for x in srv.arrivals if x.key == a.key)
                    srv.arrivals.append(a)
                status, rbody, rheaders, delay = srv.plan(a, n)
                a.outcome = "timeout" if delay else status
                if delay and self._client_left_within(delay):
                    a.t_end = time.monotonic()  # the client timed out: for it, the request ended
                    return
                # Taken before the answer is sent: the client cannot have it any earlier.
                a.t_end = time.monotonic()
                try:
                    self.send_response(status)
                    for k, v in rheaders.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(rbody)))
                    self.end_headers()
                    self.wfile.write(rbody)
                except OSError:
                    pass  # the client gave up (timeout)

            def _client_left_within(self, delay: float) -> bool:
                """Stalls up to delay s; True as soon as the client closes the connection."""
                deadline = time.monotonic() + delay
                while (left := deadline - time.monotonic()) > 0:
                    r, _, _ = select.select([self.connection], [], [], left)
                    if r:
                        try:
                            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                                return True
                        except OSError:
                            return True
                        time.sleep(min(0.01, max(left, 0)))  # data (a pipelined request): keep stalling
                return False

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/inbox"
        if tls:  # (certificate file, key file)
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}/inbox"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def by_key(self) -> dict[str, list[Arrival]]:
        out: dict[str, list[Arrival]] = collections.defaultdict(list)
        with self.lock:
            for a in self.arrivals:
                out[a.key].append(a)
        return out

    def successes(self) -> collections.Counter:
        with self.lock:
            return collections.Counter(a.key for a in self.arrivals if a.outcome == 200)


@pytest.fixture
def push_server():
    servers = []

    def factory(plan=None, port=0, tls=None):
        s = PushServer(plan, port, tls)
        servers.append(s)
        return s

    yield factory
    for s in servers:
        s.close()


def statuses(db) -> dict[str, tuple]:
    with psycopg.connect(db.conninfo, autocommit=True) as c:
        return {r[0]: r[1:] for r in c.execute(
            'SELECT message_id, status, attempts, last_error, partition, "offset" FROM inbox')}


def wait_settled(db, n: int, timeout: float = 90) -> dict[str, tuple]:
    """Waits until the inbox has n rows, all done or dead."""
    def ok():
        s = statuses(db)
        return len(s) == n and all(v[0] in ("done", "dead") for v in s.values())
    wait_until(ok, timeout, 0.2, f"{n} messages done or dead")
    return statuses(db)


def produce_all(stack, topic, recs) -> dict[str, tuple[int, int]]:
    """Produces (key, value, headers) records; returns id header -> (partition, offset)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": stack.kafka, "enable.idempotence": True, "linger.ms": 5})
    where: dict[str, tuple[int, int]] = {}

    def cb(mid, err, msg):
        assert err is None, err
        where[mid] = (msg.partition(), msg.offset())

    for key, value, headers in recs:
        mid = dict(headers)["id"].decode()
        p.produce(topic, key=key, value=value, headers=headers,
                  on_delivery=lambda err, msg, mid=mid: cb(mid, err, msg))
    assert p.flush(30) == 0
    assert len(where) == len(recs)
    return where


def check_key_order(arrivals: list[Arrival], where: dict[str, tuple[int, int]]) -> None:
    """Per Kafka key, one request at a time and never back in offset order: a request of a
    key (a later message, or a retry) starts only after the previous request of that key was
    answered (or given up by the client), and offsets never go down."""
    per_key: dict[str, list[Arrival]] = collections.defaultdict(list)
    for a in arrivals:
        k = a.header("Kafka-Key")
        if k is not None:  # keyless messages have no order
            per_key[k].append(a)
    for k, seq in per_key.items():
        seq.sort(key=lambda a: a.t)
        offs = [where[a.key][1] for a in seq]
        assert offs == sorted(offs), f"key {k}: requests out of order: {[a.key for a in seq]}"
        for prev, nxt in zip(seq, seq[1:]):
            assert prev.t_end is not None, f"key {k}: {prev.key} was never answered"
            assert nxt.t > prev.t_end, (
                f"key {k}: {nxt.key} arrived {prev.t_end - nxt.t:.3f} s before {prev.key} was answered")


def push_stats(d) -> tuple[int, int, int]:
    """Sums of the HTTP push progress lines of the log: delivered, to retry, dead."""
    import re
    tot = [0, 0, 0]
    for m in re.finditer(r"HTTP push: (\d+) delivered, (\d+) to retry, (\d+) dead", d.log_text()):
        for i in range(3):
            tot[i] += int(m.group(i + 1))
    return tuple(tot)


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(180)
def test_push_retries_dead_body_headers_order(inboxd, inbox_db, inbox_topic, stack, push_server):
    base_ms, timeout_ms = 400, 1000
    kinds = {}  # id -> kind
    recs = []
    for i in range(120):
        mid = f"m-{i:03d}"
        kind = ["ok"] * 5 + ["fail500", "r429", "slow", "reject", "always500"]
        kinds[mid] = kind[i % 10]
        headers = [("id", mid.encode()), ("event_type", b"OrderPlaced"), ("trace id", "ид-1".encode()),
                   ("bin", b"\xff\x00"), ("empty", None), ("Host", b"evil.example")]
        recs.append((f"key-{i % 8}".encode(), json.dumps({"n": i, "id": mid}).encode(), headers))
    recs.append((b"key-0", None, [("id", b"m-tomb")]))  # a tombstone: empty body
    kinds["m-tomb"] = "ok"

    def plan(a, n):
        k = kinds[a.key]
        if k == "fail500" and n < 2:
            return 500, b"busy, try later", {}, 0
        if k == "r429" and n < 1:
            return 429, b"slow down", {"Retry-After": "1"}, 0
        if k == "slow" and n < 1:
            return 200, b"too late", {}, timeout_ms / 1000 * 2
        if k == "reject":
            return 400, f"bad order {a.key}\r\nline 2".encode(), {}, 0
        if k == "always500":
            return 503, b"x" * 1000, {}, 0
        return 200, b"ok", {}, 0

    srv = push_server(plan)
    where = produce_all(stack, inbox_topic, recs)
    port = free_port()
    d = inboxd({"deliver.url": srv.url, "deliver.timeout.ms": timeout_ms, "http.listen": f"127.0.0.1:{port}", "deliver.backoff.base.ms": base_ms,
                "deliver.backoff.max.ms": 5000, "deliver.max_attempts": 3, "deliver.concurrency": 4,
                "deliver.poll.interval.ms": 20,  # so that only the backoff spaces the retries
                "deliver.headers": "Authorization: Bearer t0ken; X-Env: test"})
    rows = wait_settled(inbox_db, len(recs), 120)

    expect_dead = {m for m, k in kinds.items() if k in ("reject", "always500")}
    assert {m for m, v in rows.items() if v[0] == "dead"} == expect_dead
    for m, (status, attempts, err, _, _) in rows.items():
        k = kinds[m]
        if k == "reject":
            assert (attempts, err) == (1, f"HTTP 400: bad order {m}  line 2"), m
        elif k == "always500":
            assert attempts == 3, m
            assert err == "HTTP 503: " + "x" * 200 + "...", m
        elif k == "slow":
            assert "Timeout was reached" in err and "timed out" in err, err
        elif k == "fail500":
            assert (status, attempts, err) == ("done", 3, "HTTP 500: busy, try later")
        elif k == "r429":
            assert (status, attempts, err) == ("done", 2, "HTTP 429: slow down")
        else:
            assert (status, attempts, err) == ("done", 1, None), m

    # Exactly the expected requests: no second delivery after a success, no extra retries.
    per = {"ok": 1, "fail500": 3, "r429": 2, "slow": 2, "reject": 1, "always500": 3}
    by_key = srv.by_key()
    assert {m: len(v) for m, v in by_key.items()} == {m: per[k] for m, k in kinds.items()}
    succ = srv.successes()
    assert set(succ) == set(kinds) - expect_dead
    assert max(succ.values()) == 1

    # /metrics counts the same requests.
    sent = sum(len(v) for v in by_key.values())
    m = wait_metric(port, "inboxd_delivery_attempts_total", lambda v: v == sent)
    assert m["inboxd_delivery_successes_total"] == len(succ)
    assert m["inboxd_delivery_dead_total"] == len(expect_dead)
    assert m["inboxd_delivery_failures_total"] == sent - len(succ) - len(expect_dead)
    assert m["inboxd_delivery_in_flight"] == 0

    # Body and headers, exact.
    for (key, value, _), mid in zip(recs, [dict(h)["id"].decode() for _, _, h in recs]):
        for a in by_key[mid]:
            part, off = where[mid]
            assert a.body == (value or b"")
            h = dict((k.lower(), v) for k, v in a.headers)
            assert h["idempotency-key"] == mid
            assert h["kafka-topic"] == inbox_topic
            assert (h["kafka-partition"], h["kafka-offset"]) == (str(part), str(off))
            assert h["kafka-key"] == key.decode()
            assert h["authorization"] == "Bearer t0ken" and h["x-env"] == "test"
            assert h["host"] == f"127.0.0.1:{srv.port}"  # a Kafka header cannot set Host
            if value is None:
                assert h["kafka-tombstone"] == "true" and "event_type" not in h
                assert h["content-type"] == "application/octet-stream"
                continue
            assert "kafka-tombstone" not in h
            assert h["event_type"] == "OrderPlaced"
            assert h["trace%20id"] == "ид-1"
            assert h["bin"] == "\\xff00"
            assert h["empty"] == ""
            assert h["content-type"] == "application/octet-stream"
        assert [int(x.header("Inbox-Attempt")) for x in by_key[mid]] == list(range(1, len(by_key[mid]) + 1))

    check_key_order(srv.arrivals, where)

    # Backoff: base * 2^(attempt-1), jitter 50-100 %; Retry-After honoured; never hammering.
    for m, k in kinds.items():
        ts = [a.t for a in by_key[m]]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        if k in ("fail500", "always500"):
            for i, g in enumerate(gaps):
                assert 0.5 * base_ms / 1000 * 2 ** i - 0.02 <= g <= base_ms / 1000 * 2 ** i + 0.5, (m, gaps)
        elif k == "r429":
            assert gaps[0] >= 0.98, (m, gaps)
        elif k == "slow":
            assert gaps[0] >= timeout_ms / 1000 + 0.5 * base_ms / 1000 - 0.02, (m, gaps)

    assert d.terminate() == 0
    n_retry = sum(per[k] - 1 for k in kinds.values() if k in ("fail500", "r429", "slow")) + \
        sum(2 for k in kinds.values() if k == "always500")
    assert push_stats(d) == (len(kinds) - len(expect_dead), n_retry, len(expect_dead))
    assert inbox_db.scalar("SELECT count(*) FROM inbox WHERE status = 'processing'") == 0


def test_server_down_at_start_then_up(inboxd, inbox_db, inbox_topic, stack, push_server):
    port = free_port()
    recs = [(f"k{i % 5}".encode(), f"v{i}".encode(), [("id", f"d-{i}".encode())]) for i in range(40)]
    produce_all(stack, inbox_topic, recs)
    d = inboxd({"deliver.url": f"http://127.0.0.1:{port}/x", "deliver.backoff.base.ms": 100,
                "deliver.backoff.max.ms": 1000, "deliver.max_attempts": 1000, "deliver.timeout.ms": 2000})
    # Ingest does not wait for the service: every message is recorded while it is down.
    wait_until(lambda: len(statuses(inbox_db)) == 40, 30, 0.2, "40 rows")

    def refused():
        return any(v[0] == "failed" and v[2] and "Couldn't connect" in v[2] for v in statuses(inbox_db).values())
    wait_until(refused, 30, 0.2, "a failed attempt with connection refused")
    time.sleep(1.5)
    srv = push_server(port=port)
    rows = wait_settled(inbox_db, 40, 60)
    assert all(v[0] == "done" for v in rows.values())
    assert srv.successes() == collections.Counter({f"d-{i}": 1 for i in range(40)})
    assert d.terminate() == 0


@pytest.mark.timeout(180)
def test_kill9_mid_delivery_loses_nothing(inboxd, inbox_db, inbox_topic, stack, push_server):
    """kill -9 while requests are in flight: their rows stay processing until the lease
    (deliver.timeout.ms + 10 s) runs out and are delivered again, with the same
    Idempotency-Key; nothing is lost and per-key order of first deliveries holds."""
    n = 300
    recs = [(f"k{i % 20}".encode(), f"v{i}".encode(), [("id", f"x-{i:03d}".encode())]) for i in range(n)]
    where = produce_all(stack, inbox_topic, recs)

    def plan(a, k):
        time.sleep(0.05)
        return 200, b"ok", {}, 0
    srv = push_server(plan)
    cfg = {"deliver.url": srv.url, "deliver.timeout.ms": 2000, "deliver.concurrency": 8}
    d = inboxd(cfg)
    wait_until(lambda: sum(srv.successes().values()) >= 60, 60, 0.02, "60 deliveries")
    d.kill9()
    time.sleep(0.5)
    processing = inbox_db.scalar("SELECT count(*) FROM inbox WHERE status = 'processing'")
    d.start()
    rows = wait_settled(inbox_db, n, 90)
    assert all(v[0] == "done" for v in rows.values())
    succ = srv.successes()
    assert set(succ) == {f"x-{i:03d}" for i in range(n)}
    twice = [m for m, c in succ.items() if c > 1]
    assert len(twice) <= 8 and len(twice) <= processing, (twice, processing)
    # Per key, the first successful deliveries are in offset order.
    firsts = {}
    for a in srv.arrivals:
        if a.outcome == 200 and a.key not in firsts:
            firsts[a.key] = a
    check_key_order(list(firsts.values()), where)
    assert d.terminate() == 0


def test_sigterm_waits_for_requests_in_flight_second_cancels(inboxd, inbox_db, inbox_topic, stack, push_server):
    recs = [(f"k{i}".encode(), b"v", [("id", f"s-{i}".encode())]) for i in range(8)]
    produce_all(stack, inbox_topic, recs)
    hold = {"delay": 1.5}

    def plan(a, n):
        time.sleep(hold["delay"])
        return 200, b"ok", {}, 0
    srv = push_server(plan)
    d = inboxd({"deliver.url": srv.url, "deliver.timeout.ms": 20000, "deliver.concurrency": 4})
    wait_until(lambda: len(srv.arrivals) >= 4, 30, 0.02, "4 requests in flight")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit(15) == 0
    assert time.monotonic() - t0 < 5
    d.wait_for_log(r"waiting for the HTTP requests in flight", all_runs=True, timeout=1)
    rows = statuses(inbox_db)
    assert sum(1 for v in rows.values() if v[0] == "done") == 4
    assert sum(1 for v in rows.values() if v[0] == "processing") == 0

    # Second signal: requests cancelled, their rows pending again (attempt not counted).
    hold["delay"] = 30
    d.start()
    wait_until(lambda: len(srv.arrivals) >= 8, 30, 0.02, "4 more requests in flight")
    d.signal(signal.SIGTERM)
    time.sleep(0.3)
    d.signal(signal.SIGTERM)
    assert d.wait_exit(10) == 0
    d.wait_for_log(r"HTTP push: 4 requests cancelled; their messages are pending again", all_runs=True, timeout=1)
    rows = statuses(inbox_db)
    assert sorted(v[:2] for v in rows.values() if v[0] != "done") == [("pending", 0)] * 4
    hold["delay"] = 0
    d.start()
    rows = wait_settled(inbox_db, 8, 30)
    assert all(v[0] == "done" for v in rows.values())
    assert d.terminate() == 0


def test_push_startup_errors(inboxd, inbox_db, inbox_topic, push_server):
    inbox_db.execute("DROP FUNCTION inbox_claim(integer, interval)")
    d = inboxd({"deliver.url": "http://127.0.0.1:9/"})
    assert d.wait_exit(30) == 2
    assert "deliver.url needs the functions inbox_claim, inbox_complete and inbox_fail" in d.log_text()

    d = inboxd({"deliver.url": "ftp://127.0.0.1/x"})
    assert d.wait_exit(10) == 2
    assert "invalid deliver.url 'ftp://127.0.0.1/x': the scheme must be http or https, not ftp" in d.log_text()
    d = inboxd({"deliver.url": "http://127.0.0.1:9/", "deliver.headers": "Content-Length: 5"})
    assert d.wait_exit(10) == 2
    assert "deliver.headers cannot set Content-Length" in d.log_text()


@pytest.mark.fault
@pytest.mark.timeout(240)
def test_two_instances_push_while_postgres_restarts(inboxd, inbox_db, inbox_topic, stack, push_server, faults):
    """Two inboxd instances of one group push from the same table while PostgreSQL is
    restarted: every message is delivered and done, a second delivery only for messages
    whose outcome could not be recorded, per key the first deliveries in offset order."""
    n = 400
    recs = [(f"k{i % 16}".encode(), f"v{i}".encode(), [("id", f"p-{i:03d}".encode())]) for i in range(n)]
    where = produce_all(stack, inbox_topic, recs)

    def plan(a, k):
        time.sleep(0.02)
        return 200, b"ok", {}, 0
    srv = push_server(plan)
    cfg = {"deliver.url": srv.url, "deliver.timeout.ms": 2000, "deliver.concurrency": 4,
           "reconnect.backoff.max.ms": 1000}
    a, b = inboxd(cfg), inboxd(cfg)
    wait_until(lambda: sum(srv.successes().values()) >= 100, 60, 0.02, "100 deliveries")
    faults.pg_restart()
    rows = wait_settled(inbox_db, n, 120)
    assert all(v[0] == "done" for v in rows.values())
    succ = srv.successes()
    assert set(succ) == {f"p-{i:03d}" for i in range(n)}
    assert sum(succ.values()) - n <= 8, [m for m, c in succ.items() if c > 1]
    firsts = {}
    for x in srv.arrivals:
        if x.outcome == 200 and x.key not in firsts:
            firsts[x.key] = x
    check_key_order(list(firsts.values()), where)
    # Both instances pushed.
    assert "HTTP push to" in a.log_text() and "HTTP push to" in b.log_text()
    assert a.terminate() == 0 and b.terminate() == 0
    pushed = [push_stats(d)[0] for d in (a, b)]
    assert all(p > 0 for p in pushed), pushed


def test_https_with_own_ca(inboxd, inbox_db, inbox_topic, stack, push_server, tmp_path):
    """https:// with a certificate the system does not trust: refused (retried, the TLS
    error in last_error) until deliver.tls.ca.location names it."""
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    srv = push_server(tls=(str(cert), str(key)))
    produce_all(stack, inbox_topic, [(b"k", b"secret payload", [("id", b"tls-1")])])
    cfg = {"deliver.url": srv.url, "deliver.backoff.base.ms": 100, "deliver.max_attempts": 1000}
    d = inboxd(cfg)
    wait_until(lambda: (statuses(inbox_db).get("tls-1") or ("",))[0] == "failed", 30, 0.1,
               "a failed attempt")
    assert "SSL certificate problem" in statuses(inbox_db)["tls-1"][2]
    assert srv.successes() == {}
    assert d.terminate() == 0

    d = inboxd({**cfg, "deliver.tls.ca.location": str(cert)})
    wait_settled(inbox_db, 1, 30)
    assert srv.successes() == {"tls-1": 1}
    assert srv.arrivals[-1].body == b"secret payload"
    assert d.terminate() == 0

    d = inboxd({**cfg, "deliver.tls.ca.location": str(tmp_path / "nope.pem")})
    assert d.wait_exit(30) == 2
    assert f"deliver.tls.ca.location: cannot read {tmp_path / 'nope.pem'}: No such file or directory" in d.log_text()


# --------------------------------------------------------------------------- PostgreSQL errors


@pytest.fixture
def push_role(stack, inbox_db):
    """(role, conninfo): a LOGIN role with exactly the grants of docs/inboxd.md for inboxd
    with deliver.url on inbox_db (EXECUTE on the functions through PUBLIC); dropped at
    teardown. Request it before inboxd, so that inboxd is stopped first."""
    role = unique_name("r")
    with stack.pg_connect() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    inbox_db.execute(sql.SQL("GRANT SELECT, INSERT, DELETE, UPDATE ON inbox TO {}").format(sql.Identifier(role)))
    inbox_db.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON inbox_offsets TO {}").format(sql.Identifier(role)))
    yield role, psycopg.conninfo.make_conninfo(inbox_db.conninfo, user=role)
    try:
        inbox_db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    except psycopg.Error:
        pass
    with stack.pg_connect() as c:
        c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.timeout(240)
def test_revoked_privilege_stops_push_naming_the_grant(push_role, inboxd, inbox_db, inbox_topic, stack,
                                                       push_server):
    """A privilege revoked while inboxd pushes (EXECUTE on inbox_claim, then UPDATE on the
    table) is not a lost connection: inboxd stops at once with exit 2 and says which GRANT
    is missing, instead of reconnecting for ever."""
    role, conninfo = push_role
    srv = push_server()
    cfg = {"postgres.conninfo": conninfo, "deliver.url": srv.url, "reconnect.backoff.max.ms": 1000}
    produce_all(stack, inbox_topic, [(b"k", b"v", [("id", b"r-0")])])
    d = inboxd(cfg)
    wait_settled(inbox_db, 1, 60)

    inbox_db.execute("REVOKE EXECUTE ON FUNCTION inbox_claim(integer, interval) FROM PUBLIC")
    produce_all(stack, inbox_topic, [(b"k", b"v", [("id", b"r-1")])])
    assert d.wait_exit(30) == 2
    log = d.log_text()
    assert "permission denied for function inbox_claim" in log and "(SQLSTATE 42501)" in log, d.log_tail()
    assert (f'role "{role}" lacks a privilege that deliver.url needs; grant it: GRANT SELECT, UPDATE ON '
            f'public.inbox TO "{role}"; GRANT EXECUTE ON FUNCTION public.inbox_claim(integer, interval), '
            f'public.inbox_complete(text), public.inbox_fail(text, text, integer, interval, interval) '
            f'TO "{role}"') in log, d.log_tail()
    assert log.count("permission denied") == 1, d.log_tail()  # said once: no reconnect loop
    assert "connection lost" not in log
    assert statuses(inbox_db)["r-1"][0] == "pending"  # recorded, not pushed

    # Started again, inboxd finds it before claiming anything.
    d.start()
    assert d.wait_exit(60) == 2
    assert f'role "{role}" may not execute inbox_claim, inbox_complete or inbox_fail in schema public' in \
        d.log_text(all_runs=False), d.log_tail()

    inbox_db.execute(sql.SQL("GRANT EXECUTE ON FUNCTION inbox_claim(integer, interval) TO {}").format(
        sql.Identifier(role)))
    d.start()
    wait_settled(inbox_db, 2, 60)
    inbox_db.execute(sql.SQL("REVOKE UPDATE ON inbox FROM {}").format(sql.Identifier(role)))
    produce_all(stack, inbox_topic, [(b"k", b"v", [("id", b"r-2")])])
    assert d.wait_exit(30) == 2
    run = d.log_text(all_runs=False)
    assert "permission denied for table inbox" in run and f'GRANT SELECT, UPDATE ON public.inbox TO "{role}"' in run
    assert run.count("permission denied") == 1
    assert srv.successes() == collections.Counter({"r-0": 1, "r-1": 1})


@pytest.mark.timeout(240)
def test_read_only_database_is_retried_with_backoff_and_a_warning_every_30s(push_role, inboxd, inbox_db,
                                                                            inbox_topic, stack, push_server):
    """A database that refuses writes (a standby during a failover: SQLSTATE 25006) is
    waited for: a warning when it starts, one every 30 s while it lasts, attempts spaced by
    the backoff (no busy loop), and delivery resumes once writes work again."""
    role, conninfo = push_role
    srv = push_server()
    d = inboxd({"postgres.conninfo": conninfo, "deliver.url": srv.url, "reconnect.backoff.max.ms": 4000})
    produce_all(stack, inbox_topic, [(b"k", b"v", [("id", b"ro-0")])])
    wait_settled(inbox_db, 1, 60)
    admin = stack.pg_connect()
    try:
        # New sessions of the role are read-only; the push thread's session is replaced.
        admin.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(role)))
        n = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = %s AND application_name = 'inboxd-deliver'", (inbox_db.dbname,)).fetchone()[0]
        assert n == 1
        produce_all(stack, inbox_topic, [(b"k", b"v", [("id", b"ro-1")])])
        wait_until(lambda: "ro-1" in statuses(inbox_db), 30, 0.2, "ro-1 recorded")
        first = d.wait_for_log(r"cannot execute [A-Z ]+ in a read-only transaction.*\(SQLSTATE 25006\)", timeout=30)
        line = first.string[first.start():first.string.find("\n", first.end())]
        assert "still failing after 0 s and 2 attempts" in line, line  # right away: a new kind of failure
        m = d.wait_for_log(r"SQLSTATE 25006\); still failing after ([1-9]\d+) s and (\d+) attempts, retrying",
                           timeout=50)
        assert 30 <= int(m.group(1)) <= 40, m.group(0)
        # Backoff 0.5, 1, 2, 4, 4, ... s: about 11 attempts in 30 s.
        assert 7 <= int(m.group(2)) <= 16, m.group(0)
        assert d.is_running()
        log = d.log_text()
        assert log.count("SQLSTATE 25006") == 2, d.log_tail()  # the retries between went to the debug level
        assert statuses(inbox_db)["ro-1"][0] == "pending"
        admin.execute(sql.SQL("ALTER ROLE {} RESET default_transaction_read_only").format(sql.Identifier(role)))
    finally:
        admin.close()
    rows = wait_settled(inbox_db, 2, 30)
    assert rows["ro-1"][0] == "done"
    d.wait_for_log(r"HTTP push: PostgreSQL works again after \d+ s; claiming", timeout=5)
    assert d.terminate() == 0
