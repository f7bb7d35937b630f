"""`inboxd check`, the receiving side's preflight, against the real PostgreSQL and Kafka: one
line per check (ok, warn, FAIL, skip) with the fix, --json, exit 0 or 2 as `outboxd check`;
the same configuration as the daemon; it changes nothing (no row, no offset, no group
membership, no request to the service)."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import threading

import pytest

from harness import (
    REPO,
    SANITIZER_REPORT,
    default_inboxd_bin,
    drop_roles_of,
    psql_file,
    unique_name,
    wait_until,
    write_config,
)

EXIT_OK = 0
EXIT_FAILED = 2
CHECKS = ["config", "postgres", "inbox_table", "offsets_table", "functions", "privileges", "statements", "kafka",
          "topics", "group"]
LINE = re.compile(r"^(ok|warn|FAIL|skip)\s+(\S+)\s+(.*)$")


class Result:
    def __init__(self, r: subprocess.CompletedProcess):
        self.rc, self.stdout, self.stderr = r.returncode, r.stdout, r.stderr

    def lines(self) -> dict[str, tuple[str, str]]:
        return {m.group(2): (m.group(1), m.group(3)) for m in map(LINE.match, self.stdout.splitlines()) if m}

    def fix(self, name: str) -> str:
        return self.lines()[name][1].split(" -- fix: ", 1)[1]

    def __str__(self):
        return f"exit {self.rc}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


@pytest.fixture
def check(inbox_db, inbox_topic, stack, tmp_path):
    """check(config=None, *args) -> Result of `inboxd check -c FILE ARGS`: the inboxd fixture's
    defaults (inbox_db, inbox_topic, the stack's broker, group <db>_g) updated by config."""
    n = [0]

    def run(config=None, *args):
        n[0] += 1
        cfg = {"postgres.conninfo": inbox_db.conninfo, "inbox.topics": inbox_topic,
               "kafka.bootstrap.servers": stack.kafka, "kafka.group.id": f"{inbox_db.dbname}_g",
               **(config or {})}
        conf = write_config(tmp_path / f"check-{n[0]}.conf", {k: v for k, v in cfg.items() if v is not None})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOXD_", "INBOXD_"))}
        r = subprocess.run([str(default_inboxd_bin()), "check", "-c", str(conf), *args], capture_output=True,
                           text=True, timeout=90, env=env, stdin=subprocess.DEVNULL)
        assert not SANITIZER_REPORT.search(r.stdout + r.stderr), r.stdout + r.stderr
        return Result(r)

    return run


def failed(r: Result) -> set[str]:
    return {name for name, (st, _) in r.lines().items() if st == "FAIL"}


def test_inbox_check_all_ok_as_the_roles_of_inbox_roles_sql(check, inbox_db, inbox_topic, stack, kafka):
    """SQL handoff, the inboxd role of sql/inbox_roles.sql: every line ok, exit 0; --json has
    the same checks; nothing was changed (no group, no stored position)."""
    role = unique_name("inboxd")
    try:
        psql_file(stack, inbox_db.dbname, REPO / "sql" / "inbox_roles.sql", f"inboxd_role={role}",
                  f"processor_role={role}_p")
        cfg = {"postgres.conninfo": f"{inbox_db.conninfo} user={role}"}
        r = check(cfg)
        assert r.rc == EXIT_OK, r
        lines = r.lines()
        assert list(lines) == CHECKS, r
        assert {st for st, _ in lines.values()} == {"ok"}, r
        assert "handoff: SQL" in lines["config"][1]
        assert f'role "{role}" has what inboxd needs for the SQL handoff and for inboxd status and requeue' \
            in lines["privileges"][1]
        assert "sql/inbox.sql version 1, as this inboxd expects" in lines["functions"][1]
        assert lines["topics"][1] == f"{inbox_topic} (4 partitions)"
        assert "does not exist yet: inboxd joins it when it starts" in lines["group"][1], r
        assert r.stdout.rstrip().endswith("all needed checks passed (10 ok, 0 warnings)"), r

        r = check(cfg, "--json")
        doc = json.loads(r.stdout)
        assert r.rc == EXIT_OK and [i["check"] for i in doc] == CHECKS
        assert all(i["status"] == "ok" and i["fix"] is None for i in doc), doc
        assert inbox_db.scalar("SELECT count(*) FROM inbox_offsets") == 0
    finally:
        drop_roles_of(stack, inbox_db.dbname, role, f"{role}_p")


def test_inbox_check_tables_functions_and_version(check, inbox_db):
    r = check({"inbox.table": "public.nope"})
    assert r.rc == EXIT_FAILED and failed(r) == {"inbox_table"}, r
    assert f"public.nope (inbox.table) does not exist in database {inbox_db.dbname}" in r.lines()["inbox_table"][1]
    assert "psql -d" in r.fix("inbox_table") and "sql/inbox.sql" in r.fix("inbox_table")
    assert r.lines()["functions"][0] == r.lines()["privileges"][0] == r.lines()["statements"][0] == "skip", r

    # An older sql/inbox.sql (before inbox_schema_version()): a warning with the upgrade.
    inbox_db.execute("DROP FUNCTION inbox_schema_version()")
    r = check()
    assert r.rc == EXIT_OK, r
    st, rest = r.lines()["functions"]
    assert st == "warn" and "older sql/inbox.sql (version 0" in rest and "-f sql/inbox.sql" in r.fix("functions")
    # A missing handoff function: FAIL, the service could not claim.
    inbox_db.execute("DROP FUNCTION inbox_fail(text, text, integer, interval, interval)")
    r = check()
    assert failed(r) == {"functions"}, r
    assert "inbox_claim, inbox_complete, inbox_fail" in r.lines()["functions"][1]


def test_inbox_check_grants_for_the_chosen_handoff(check, inbox_db, stack, login_role):
    """A role without grants: FAIL naming every missing grant with the GRANT statements; with
    deliver.url also what HTTP push needs."""
    cfg = {"postgres.conninfo": f"{inbox_db.conninfo} user={login_role}"}
    r = check(cfg)
    assert failed(r) == {"privileges"}, r
    rest = r.lines()["privileges"][1]
    assert f'role "{login_role}" lacks what inboxd needs for the SQL handoff: SELECT, INSERT, DELETE on public.inbox; ' \
           f"SELECT, INSERT, UPDATE on public.inbox_offsets" in rest, r
    assert f'GRANT SELECT, INSERT, DELETE ON public.inbox TO "{login_role}";' in r.fix("privileges")
    assert r.lines()["statements"][0] == "skip"

    inbox_db.execute(f'GRANT SELECT, INSERT, DELETE ON inbox TO "{login_role}"; '
                     f'GRANT SELECT, INSERT, UPDATE ON inbox_offsets TO "{login_role}"')
    try:
        r = check(cfg)  # the daemon would run; inboxd requeue would not
        assert r.rc == EXIT_OK, r
        st, rest = r.lines()["privileges"]
        assert st == "warn" and "inboxd status and requeue would fail" in rest, r
        assert "GRANT UPDATE (status, attempts, next_attempt_at, processed_at) ON public.inbox" in r.fix("privileges")
        assert r.lines()["statements"][0] == "ok", r

        srv, _ = _server()
        try:
            r = check({**cfg, "deliver.url": f"http://127.0.0.1:{srv.server_port}/inbox"})
            assert failed(r) == {"privileges"}, r
            # EXECUTE on the functions is PUBLIC's by default: only UPDATE is missing.
            assert r.lines()["privileges"][1].split(" -- fix: ")[0] == (f'role "{login_role}" lacks what inboxd needs for the HTTP push: '
                                                  "UPDATE on public.inbox"), r
            assert "sql/inbox_roles.sql -v inbox_push=on" in r.fix("privileges")
        finally:
            srv.shutdown()
            srv.server_close()
    finally:
        inbox_db.execute(f'REVOKE ALL ON inbox, inbox_offsets FROM "{login_role}"')


class _Handler(http.server.BaseHTTPRequestHandler):
    requests = 0

    def do_POST(self):  # noqa: N802
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, _Handler


def test_inbox_check_push_url(check):
    """deliver.url: the service accepts connections (nothing is sent), or FAIL with the fix."""
    srv, handler = _server()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/inbox"
        r = check({"deliver.url": url})
        assert r.rc == EXIT_OK, r
        assert r.lines()["deliver_url"] == ("ok", f"{url} accepts connections (nothing was sent)"), r
        assert "handoff: HTTP push to " + url in r.lines()["config"][1]
        assert handler.requests == 0
    finally:
        srv.shutdown()
        srv.server_close()
    r = check({"deliver.url": url})  # nothing listens there now
    assert failed(r) == {"deliver_url"}, r
    assert f"cannot connect to {url}" in r.lines()["deliver_url"][1] and "start the service" in r.fix("deliver_url")


def test_inbox_check_topics_and_group(check, inboxd, inbox_db, inbox_topic, kafka, topic_prefix):
    """A topic that does not exist: FAIL; a regex matching none: warn. With inboxd running:
    the group is Stable with one member and the positions it stored are counted."""
    r = check({"inbox.topics": f"{inbox_topic}, {topic_prefix}.nope, ^{topic_prefix}\\.zz.*"})
    assert failed(r) == {"topics"}, r
    assert r.lines()["topics"][1].startswith(f"{topic_prefix}.nope does not exist: inboxd would consume nothing")
    assert f"--create --topic {topic_prefix}.nope" in r.fix("topics")
    r = check({"inbox.topics": f"{inbox_topic}, ^{topic_prefix}\\.zz.*"})
    assert r.rc == EXIT_OK and r.lines()["topics"][0] == "warn" and "matches no topic" in r.lines()["topics"][1], r

    d = inboxd()
    d.wait_for_log(r"consuming 1 topic", 30)
    for i in range(5):
        kafka.produce(inbox_topic, f"m{i}", key=f"k{i}", headers=[("id", f"c-{i}".encode())])
    wait_until(lambda: inbox_db.scalar("SELECT count(*) FROM inbox") == 5, 60, 0.2, "5 messages recorded")
    wait_until(lambda: "Stable, 1 member" in check().lines()["group"][1], 30, 0.5, "the group Stable in check")
    st, rest = check().lines()["group"]
    assert st == "ok" and "(inboxd instances consuming now)" in rest, rest
    assert re.search(r"positions stored in public\.inbox_offsets for \d+ partitions?, 0 messages not recorded yet",
                     rest), rest
    assert d.terminate() == 0


def test_inbox_check_postgres_and_kafka_unreachable(check):
    r = check({"postgres.conninfo": "host=127.0.0.1 port=1 dbname=x connect_timeout=3",
               "kafka.bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 1000})
    assert r.rc == EXIT_FAILED and failed(r) == {"postgres", "kafka"}, r
    assert "cannot connect to PostgreSQL" in r.lines()["postgres"][1]
    for name in ("inbox_table", "offsets_table", "functions", "privileges", "statements", "topics", "group"):
        assert r.lines()[name][0] == "skip", (name, r)
    # A configuration inboxd refuses: one FAIL line, the rest still checked where they can be.
    r = check({"inbox.retention": "soon"})
    assert failed(r) == {"config"} and "invalid value 'soon' for inbox.retention" in r.lines()["config"][1], r
    assert r.lines()["kafka"][0] == "skip"
