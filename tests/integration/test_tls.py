"""TLS and SASL end to end: outboxd, inboxd and every connection they and their commands make,
against the servers of scripts/tls-stack.sh - PostgreSQL with TLS only (hostssl, scram-sha-256;
clients use sslmode=verify-full) and Kafka with SASL_SSL (SCRAM-SHA-512, brokers verified).

- A full run (backfill, streaming, cleanup, HTTP push, check, status, requeue, --print-config,
  /metrics) works over TLS with secrets from files and from the environment, and no output of
  it holds a secret.
- Wrong CA, wrong host name, wrong password and an expired certificate, for PostgreSQL and for
  Kafka, stop each daemon at startup with exit 2 and one ERROR line naming the cause and the
  fix, with nothing published, recorded or committed; `outboxd check` says the same.
- A PostgreSQL certificate that expires while outboxd streams stops it (exit 2) without
  confirming anything it did not publish; with the certificate renewed, it goes on from there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from harness import TlsStack, free_port, http_get, kafka_committed, wait_until

STREAMING = r'streaming slot "'
ERROR_LINE = re.compile(r"^.* ERROR: (.*)$", re.MULTILINE)


# --------------------------------------------------------------------------- helpers


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without OUTBOXD_*/INBOXD_* variables, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOXD_", "INBOXD_"))}
    env.update(extra or {})
    return env


class Outputs:
    """Every text a run produced, by name, for the secret grep."""

    def __init__(self):
        self.texts: dict[str, str] = {}

    def add(self, name: str, text: str) -> str:
        self.texts[name] = text
        return text

    def run(self, name: str, argv: list[str], env: dict[str, str], expect_rc: int | None = 0,
            timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        self.add(name, r.stdout + r.stderr)
        if expect_rc is not None:
            assert r.returncode == expect_rc, f"{name}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def assert_no_secret(self, secrets: dict[str, str]) -> None:
        assert self.texts, "nothing collected"
        leaks = [(out, sname) for out, text in self.texts.items() for sname, s in secrets.items() if s and s in text]
        assert not leaks, f"secrets in outputs: {leaks}"


class Receiver:
    """An HTTP service for inboxd's push: answers 200, keeps each request's headers."""

    def __init__(self):
        self.requests: list[dict[str, str]] = []
        rcv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rcv.requests.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/inbox"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def the_error_line(log: str) -> str:
    """The one ERROR line of a log (fails unless there is exactly one)."""
    lines = ERROR_LINE.findall(log)
    assert len(lines) == 1, f"expected one ERROR line, got {len(lines)}:\n{log}"
    return lines[0]


# --------------------------------------------------------------------------- a full run


def test_full_run_over_tls_and_sasl_shows_no_secret(tls_stack: TlsStack, tls_kafka, tls_db, tls_inbox_db,
                                                     tls_outboxd, tls_inboxd, topic_prefix, tmp_path):
    out = Outputs()
    topic = topic_prefix + ".order"
    secrets = tls_stack.secrets()
    token = "Bearer S3cr3t-push-token-" + os.urandom(6).hex()
    secrets["push-token"] = token
    (tmp_path / "push-headers").write_text(f"Authorization: {token}\n")
    receiver = Receiver()
    try:
        # Rows that exist before the slot: the backfill publishes them over its own connection.
        ids = [tls_db.insert_event("order", f"a{i}", "OrderPlaced", {"n": i}) for i in range(3)]
        port_o, port_i = free_port(), free_port()
        # outboxd: the PostgreSQL password from the environment, Kafka's from a file (fixture).
        o_env = {"OUTBOXD_POSTGRES_PASSWORD": secrets["pg-outboxd"]}
        o = tls_outboxd({"postgres.password.file": None, "outbox.backfill.where": "true",
                         "outbox.cleanup": "delete", "http.listen": f"127.0.0.1:{port_o}", "log.level": "debug"},
                        env=o_env)
        o.wait_for_log(STREAMING, timeout=60)
        ids += [tls_db.insert_event("order", f"b{i}", "OrderPlaced", {"n": i}) for i in range(5)]
        records = tls_kafka.consume(topic, n=8, timeout=60)
        assert sorted(r.header("id").decode() for r in records) == sorted(str(i) for i in ids)
        # outbox.cleanup = delete, over its own connection.
        wait_until(lambda: tls_db.scalar("SELECT count(*) FROM outbox") == 0, 30, 0.2, "cleanup")

        # inboxd: the PostgreSQL password from a file named by a _FILE variable, Kafka's from
        # the environment, the push service's token from deliver.headers.file.
        i_env = {"INBOXD_POSTGRES_PASSWORD_FILE": str(tls_stack.secrets_dir / "pg-inboxd"),
                 "INBOXD_KAFKA_SASL_PASSWORD": secrets["kafka-inboxd"]}
        i = tls_inboxd({"postgres.password.file": None, "kafka.sasl.password.file": None,
                        "http.listen": f"127.0.0.1:{port_i}", "log.level": "debug", "deliver.url": receiver.url,
                        "deliver.headers.file": tmp_path / "push-headers"}, env=i_env)
        wait_until(lambda: tls_inbox_db.scalar("SELECT count(*) FROM inbox WHERE status = 'done'") == 8, 60, 0.2,
                   "8 messages recorded and pushed")
        assert len(receiver.requests) >= 8
        assert all(r.get("authorization") == token for r in receiver.requests)

        # Every connection of both daemons to either database is encrypted (and could not be
        # otherwise: pg_hba.conf has hostssl lines only).
        conns = [c for c in tls_stack.ssl_of(tls_db.dbname) + tls_stack.ssl_of(tls_inbox_db.dbname)
                 if c[1] != "postgres"]  # the tests' own, over the unix socket
        assert {u for _, u, _ in conns} == {"outboxd", "inboxd"}
        assert {a for a, _, _ in conns} >= {"outboxd", "outboxd-cleanup", "inboxd", "inboxd-deliver"}, conns
        assert all(ssl for _, _, ssl in conns), conns

        # The HTTP endpoints.
        for port, name in ((port_o, "outboxd"), (port_i, "inboxd")):
            for path in ("/metrics", "/healthz", "/readyz"):
                status, body = http_get(port, path)
                out.add(f"{name} {path}", body)
                if path != "/metrics":
                    assert status == 200, f"{name} {path}: {status} {body}"

        # The commands, with the daemons' configuration and environment.
        ob, ib = [str(o.binary), "-c", str(o.config_path)], [str(i.binary), "-c", str(i.config_path)]
        oe, ie = clean_env(o_env), clean_env(i_env)
        check = out.run("outboxd check --json", ob + ["check", "--json"], oe)
        assert all(c["status"] != "fail" for c in json.loads(check.stdout)), check.stdout
        out.run("outboxd check", ob + ["check"], oe)
        out.run("outboxd status", ob + ["status"], oe)
        status = out.run("outboxd status --json", ob + ["status", "--json"], oe)
        assert json.loads(status.stdout)["exists"] is True
        pc = out.run("outboxd --print-config", ob + ["--print-config"], oe).stdout
        assert "postgres.password = ***" in pc
        assert f"kafka.sasl.password.file = {tls_stack.secrets_dir / 'kafka-outboxd'}" in pc
        out.run("inboxd status", ib + ["status"], ie)
        out.run("inboxd status --json", ib + ["status", "--json"], ie)
        out.run("inboxd requeue --all --json", ib + ["requeue", "--all", "--json"], ie)
        pc = out.run("inboxd --print-config", ib + ["--print-config"], ie).stdout
        assert f"postgres.password.file = {tls_stack.secrets_dir / 'pg-inboxd'}" in pc
        assert "kafka.sasl.password = ***" in pc
        assert f"deliver.headers.file = {tmp_path / 'push-headers'}" in pc

        assert o.terminate(60) == 0
        assert i.terminate(60) == 0
        out.add("outboxd log", o.log_text())
        out.add("inboxd log", i.log_text())
        assert "streaming slot" in out.texts["outboxd log"]
        out.assert_no_secret(secrets)
    finally:
        receiver.close()


# --------------------------------------------------------------------------- what goes wrong


@dataclass
class Fault:
    """A broken setting: the config keys that break it, the words of the one ERROR line (the
    cause) and of its fix."""

    server: str  # "postgres" or "kafka"
    config: Callable[[TlsStack, str, str], dict]  # (stack, dbname, role) -> keys
    cause: str  # regex
    fix: str  # regex
    expired_pg: bool = False  # PostgreSQL serves its expired certificate meanwhile


FAULTS = {
    "pg-wrong-ca": Fault(
        "postgres", lambda s, db, u: {"postgres.conninfo": s.tls_conninfo(db, u, sslrootcert=str(s.other_ca))},
        r"cannot connect to PostgreSQL: TLS: the certificate of the PostgreSQL server localhost:\d+ is not signed "
        r"by a CA in the CA file .*/other-ca\.pem \(sslrootcert in postgres\.conninfo\)",
        r"set sslrootcert in postgres\.conninfo to the CA certificate that signed"),
    "pg-wrong-host": Fault(
        "postgres", lambda s, db, u: {"postgres.conninfo": s.tls_conninfo(db, u, host="127.0.0.1")},
        r'the certificate of the PostgreSQL server 127\.0\.0\.1:\d+ is not issued for the host name "127\.0\.0\.1" '
        r"\(it names localhost\)",
        r"set the host in postgres\.conninfo to a name the certificate holds"),
    "pg-wrong-password": Fault(
        "postgres", lambda s, db, u: {"postgres.password.file": None, "postgres.password": "Wrong-pg-password-42"},
        r"cannot connect to PostgreSQL: .*password authentication failed for user",
        r"fix the password"),
    "pg-expired": Fault(
        "postgres", lambda s, db, u: {},
        r"TLS: the certificate of the PostgreSQL server localhost:\d+ expired on 2020-01-02 00:00:00 UTC",
        r"renew the server's certificate", expired_pg=True),
    "kafka-wrong-ca": Fault(
        "kafka", lambda s, db, u: {"kafka.ssl.ca.location": s.other_ca},
        r"TLS: the certificate of the Kafka broker localhost:\d+ is not signed by a CA in the CA file "
        r".*/other-ca\.pem \(kafka\.ssl\.ca\.location\)",
        r"set kafka\.ssl\.ca\.location to the CA certificate that signed"),
    "kafka-wrong-host": Fault(
        "kafka", lambda s, db, u: {"kafka.bootstrap.servers": s.kafka.replace("localhost", "127.0.0.1")},
        r'the certificate of the Kafka broker 127\.0\.0\.1:\d+ is not issued for the host name "127\.0\.0\.1" '
        r"\(it names localhost\)",
        r"set the host names in kafka\.bootstrap\.servers .* to a name the certificate holds"),
    "kafka-wrong-password": Fault(
        "kafka", lambda s, db, u: {"kafka.sasl.password.file": None, "kafka.sasl.password": "Wrong-kafka-password-42"},
        r'Kafka at bootstrap\.servers=localhost:\d+ refused the SASL authentication \(mechanism SCRAM-SHA-512, '
        r'user "(outboxd|inboxd)"\)',
        r"check kafka\.sasl\.username and kafka\.sasl\.password"),
    "kafka-expired": Fault(
        "kafka", lambda s, db, u: {"kafka.bootstrap.servers": s.kafka_expired},
        r"TLS: the certificate of the Kafka broker localhost:\d+ expired on 2020-01-02 00:00:00 UTC",
        r"renew the server's certificate"),
}


@pytest.fixture
def fault(request, tls_stack) -> Fault:
    """The fault of the test's parameter; PostgreSQL serves its expired certificate during the
    test when the fault says so."""
    f = FAULTS[request.param]
    if f.expired_pg:
        tls_stack.pg_cert("expired")
    yield f
    if f.expired_pg:
        tls_stack.pg_cert("good")


def assert_one_clear_line(log: str, f: Fault) -> None:
    line = the_error_line(log)
    assert re.search(f.cause, line), f"cause /{f.cause}/ not in: {line}"
    assert re.search(f.fix, line[line.index(": ", 20):]), f"fix /{f.fix}/ not in: {line}"


@pytest.mark.parametrize("fault", list(FAULTS), indirect=True)
def test_outboxd_refuses_with_one_line(fault: Fault, tls_stack, tls_kafka, tls_db, tls_outboxd, topic_prefix):
    for i in range(3):
        tls_db.insert_event("order", f"a{i}", "OrderPlaced", {"n": i})
    bad = fault.config(tls_stack, tls_db.dbname, "outboxd")
    o = tls_outboxd({"outbox.backfill.where": "true", **bad})
    assert o.wait_exit(60) == 2
    assert_one_clear_line(o.log_text(), fault)
    # Nothing half-way: no slot was made, nothing was published.
    assert tls_db.slots() == []
    assert tls_kafka.consume(topic_prefix + ".order", timeout=5, settle=1) == []

    # `outboxd check` says the same, in its FAIL line, and exits 2.
    r = subprocess.run([str(o.binary), "-c", str(o.config_path), "check"], capture_output=True, text=True,
                       env=clean_env(), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].split()[1] == fault.server, r.stdout
    assert re.search(fault.cause.replace("cannot connect to PostgreSQL: ", ""), fails[0]), r.stdout
    assert re.search(fault.fix, fails[0]), r.stdout
    texts = [o.log_text(), r.stdout + r.stderr]
    if fault.server == "postgres":  # outboxd status opens the same connection
        st = subprocess.run([str(o.binary), "-c", str(o.config_path), "status", "--json"], capture_output=True,
                            text=True, env=clean_env(), timeout=60)
        assert st.returncode == 2, st.stdout + st.stderr
        assert re.search(fault.cause, st.stdout + st.stderr), st.stdout + st.stderr
        texts.append(st.stdout + st.stderr)
    for text in texts:
        for s in list(tls_stack.secrets().values()) + ["Wrong-pg-password-42", "Wrong-kafka-password-42"]:
            assert s not in text


@pytest.mark.parametrize("fault", list(FAULTS), indirect=True)
def test_inboxd_refuses_with_one_line(fault: Fault, tls_stack, tls_kafka, tls_inbox_db, tls_inboxd, topic_prefix):
    topic = topic_prefix + ".order"
    tls_kafka.create_topic(topic, 2)
    for i in range(3):
        tls_kafka.produce(topic, b"v%d" % i, key=b"k%d" % i, headers={"id": f"m{i}"})
    bad = fault.config(tls_stack, tls_inbox_db.dbname, "inboxd")
    i = tls_inboxd(bad)
    assert i.wait_exit(60) == 2
    assert_one_clear_line(i.log_text(), fault)
    # Nothing half-way: no row, no recorded position, no committed offset.
    assert tls_inbox_db.scalar("SELECT count(*) FROM inbox") == 0
    assert tls_inbox_db.scalar("SELECT count(*) FROM inbox_offsets") == 0
    committed = kafka_committed(tls_stack.kafka, i.config["kafka.group.id"], topic, 2,
                                tls_stack.kafka_client_config("admin"))
    assert all(off < 0 for off in committed.values()), committed
    if fault.server == "postgres":  # inboxd status opens the same connection
        r = subprocess.run([str(i.binary), "-c", str(i.config_path), "status"], capture_output=True, text=True,
                           env=clean_env(), timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert re.search(fault.cause, r.stderr), r.stderr
    for s in list(tls_stack.secrets().values()) + ["Wrong-pg-password-42", "Wrong-kafka-password-42"]:
        assert s not in i.log_text()


def test_certificate_expiring_while_streaming_stops_outboxd_with_nothing_lost(tls_stack, tls_kafka, tls_db,
                                                                            tls_outboxd, topic_prefix):
    """PostgreSQL starts serving an expired certificate while outboxd streams; its walsender is
    terminated, so outboxd must reconnect: it stops (exit 2) naming the certificate, and the
    slot stays before what it did not publish. Renewed, a restart publishes the rest."""
    topic = topic_prefix + ".order"
    o = tls_outboxd()
    o.wait_for_log(STREAMING, timeout=60)
    first = [tls_db.insert_event("order", f"a{i}", "OrderPlaced", {"n": i}) for i in range(3)]
    assert len(tls_kafka.consume(topic, n=3, timeout=30)) == 3
    try:
        tls_stack.pg_cert("expired")
        later = [tls_db.insert_event("order", f"b{i}", "OrderPlaced", {"n": i}) for i in range(3)]
        tls_db.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = %s",
                       (tls_db.dbname,))
        assert o.wait_exit(60) == 2
        line = the_error_line(o.log_text())
        assert re.search(r"certificate of the PostgreSQL server localhost:\d+ expired on 2020-01-02", line), line
    finally:
        tls_stack.pg_cert("good")
    o.start()
    o.wait_for_log(STREAMING, timeout=60)
    # Duplicates of the first events may come again (the slot was confirmed before them); the
    # later ones must come.
    want = {str(x) for x in first + later}
    wait_until(lambda: {r.header("id").decode() for r in tls_kafka.consume(topic, timeout=10, settle=1)} == want,
               60, 0.5, "every event in Kafka")
    assert o.terminate(60) == 0
