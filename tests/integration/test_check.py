"""outboxd check (preflight) and outboxd status (the slot's position and health).

check: one line per check, "ok"/"warn"/"FAIL"/"skip", the check's name, what it found and,
on failure, "-- fix: ..."; exit 0 only when no check failed, else 2. Against a server that
misses one prerequisite at a time it must report exactly that line, with the fix.
status: the slot's position, lag, WAL retention and the process streaming it; exit 0 when
the slot exists, 1 when it does not, 2 when it cannot tell.

Needs the local stack (scripts/stack.sh start) and a built outboxd (docs/testing.md). The
output_plugin_libraries test changes the stack's PostgreSQL settings (ALTER SYSTEM) and
always restores them; the wal_level test starts a throwaway PostgreSQL (pg_replica, conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql as psql
import pytest

from harness import (
    PG2_PASSWORD,
    PLUGIN_LIBS_OK,
    REPO,
    SANITIZER_REPORT,
    create_database,
    drop_database,
    free_port,
    lsn_to_int,
    set_plugin_libraries,
    wait_metric,
    wait_until,
    write_config,
)

EXIT_OK = 0
EXIT_NO_SLOT = 1
EXIT_FAILED = 2

# The checks of a configuration with one outbox table and no dead-letter topic, in order.
CHECKS = ["config", "postgres", "server_version", "wal_level", "wal2json", "max_replication_slots",
          "max_wal_senders", "replication_privilege", "table public.outbox", "slot", "progress", "kafka", "topics"]
LINE = re.compile(r"^(ok|warn|FAIL|skip)\s+(config|postgres|server_version|wal_level|wal2json|pgoutput|"
                  r"max_replication_slots|max_wal_senders|replication_privilege|table \S+|publication|messages|slot|"
                  r"other_slots|progress|standby_slots|standby \S+|kafka|topics|dead_letter_topic)\s+(.*)$")
# The same with postgres.plugin = pgoutput: the plugin's line, and the publication's after the table.
CHECKS_PGOUTPUT = [{"wal2json": "pgoutput"}.get(c, c) for c in CHECKS]
CHECKS_PGOUTPUT.insert(CHECKS_PGOUTPUT.index("slot"), "publication")


# --------------------------------------------------------------------------- helpers


class Run:
    def __init__(self, r: subprocess.CompletedProcess, took: float):
        self.rc, self.stdout, self.stderr, self.took = r.returncode, r.stdout, r.stderr, took

    def lines(self) -> dict[str, tuple[str, str]]:
        """check name -> (status, rest of the line), from the text output."""
        out = {}
        for line in self.stdout.splitlines():
            m = LINE.match(line)
            if m:
                out[m.group(2)] = (m.group(1), m.group(3))
        return out

    def failed(self) -> set[str]:
        return {name for name, (st, _) in self.lines().items() if st == "FAIL"}

    def __str__(self):
        return f"exit {self.rc} after {self.took:.1f}s\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


@pytest.fixture
def run(outboxd_bin, tmp_path, db, stack, topic_template):
    """run(command, config=None, *args, defaults=True, timeout=60) -> Run: runs
    `outboxd COMMAND -c FILE ARGS` to completion. The file holds the outboxd fixture's
    defaults (db's conninfo, slot <db>_slot, the test's topic template, the stack's broker)
    updated by config (None drops a key). No OUTBOXD_* variable reaches the process."""
    n = [0]

    def _run(command: str, config: dict | None = None, *args: str, defaults: bool = True,
             timeout: float = 60) -> Run:
        n[0] += 1
        cfg = {"postgres.conninfo": db.conninfo, "postgres.slot": f"{db.dbname}_slot",
               "outbox.topic": topic_template, "kafka.bootstrap.servers": stack.kafka} if defaults else {}
        cfg.update(config or {})
        conf = write_config(tmp_path / f"{command}-{n[0]}.conf", {k: v for k, v in cfg.items() if v is not None})
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOXD_")}
        t0 = time.monotonic()
        r = subprocess.run([str(outboxd_bin), command, "-c", str(conf), *args], capture_output=True, text=True,
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL)
        res = Run(r, time.monotonic() - t0)
        m = SANITIZER_REPORT.search(r.stdout + r.stderr)
        assert not m, f"sanitizer report:\n{res}"
        return res

    return _run


def check_json(run, config=None, *args) -> tuple[int, list[dict]]:
    r = run("check", config, "--json", *args)
    doc = json.loads(r.stdout)
    assert isinstance(doc, list), r
    for item in doc:
        assert set(item) == {"check", "status", "detail", "fix"}, item
        assert item["status"] in ("ok", "warn", "fail", "skip"), item
        assert isinstance(item["detail"], str) and item["detail"], item
        assert (item["fix"] is None) == (item["status"] in ("ok", "skip")), item
    return r.rc, doc


def assert_only_failure(r: Run, expected: set[str]):
    assert r.rc == EXIT_FAILED, r
    assert r.failed() == expected, r
    for name in r.failed():
        assert " -- fix: " in r.lines()[name][1], f"{name}: no fix\n{r}"
    for ref in re.findall(r"\b(?:sql|docs)/[\w./-]+\.(?:sql|md)\b", r.stdout):
        assert (REPO / ref).is_file(), f"the output refers to {ref}, which does not exist:\n{r}"


def fix_of(r: Run, name: str) -> str:
    status, rest = r.lines()[name]
    return rest.split(" -- fix: ", 1)[1]


def check_slots_left(db) -> list[str]:
    with db.stack.pg_connect() as c:
        return [row[0] for row in c.execute("SELECT slot_name FROM pg_replication_slots "
                                            "WHERE slot_name LIKE 'outboxd_check_%'")]


# --------------------------------------------------------------------------- check: a correct setup


def test_check_passes_on_a_correct_setup(run, db):
    r = run("check")
    assert r.rc == EXIT_OK, r
    lines = r.lines()
    assert list(lines) == CHECKS, r
    assert all(st == "ok" for st, _ in lines.values()), r
    assert "all needed checks passed" in r.stdout
    assert "wal_level = logical" in lines["wal_level"][1]
    assert re.match(r"PostgreSQL \d+\.\d+", lines["server_version"][1]), r
    assert f'"{db.dbname}_slot" does not exist yet' in lines["slot"][1]
    # The wal2json test slot is gone, and the check created no other slot.
    assert check_slots_left(db) == [] and db.slots() == []

    rc, doc = check_json(run)
    assert rc == EXIT_OK
    assert [i["check"] for i in doc] == CHECKS
    assert {i["status"] for i in doc} == {"ok"}, doc


def test_check_literal_topic_exists_or_is_auto_created(run, kafka, topic_prefix):
    kafka.create_topic(f"{topic_prefix}.fixed", 2)
    r = run("check", {"outbox.topic": f"{topic_prefix}.fixed"})
    assert r.rc == EXIT_OK, r
    assert r.lines()["topics"] == ("ok", f"topic {topic_prefix}.fixed exists (2 partitions)"), r
    # Missing, but the stack's broker creates topics: a warning (default partition count), exit 0.
    r = run("check", {"outbox.topic": f"{topic_prefix}.missing", "outbox.on_invalid": "dead-letter",
                      "outbox.dead_letter.topic": f"{topic_prefix}.fixed"})
    assert r.rc == EXIT_OK, r
    st, rest = r.lines()["topics"]
    assert st == "warn" and "does not exist yet" in rest and "auto.create.topics.enable = true" in rest, r
    assert r.lines()["dead_letter_topic"][0] == "ok", r
    assert f"{topic_prefix}.missing" not in kafka.topics(topic_prefix), "check must not create topics"


def test_check_resolves_the_template_against_the_rows(run, db, kafka, topic_prefix, login_role):
    """A templated topic: check resolves it against the aggregate types the rows in the outbox
    table hold and the auto-creation setting. A needed topic that does not exist and is not
    created is a FAILure (exit 2, a deploy pipeline stops), not a warning; with auto-creation a
    warning that names it; once it exists, ok. check never creates topics."""
    kafka.create_topic(f"{topic_prefix}.order", 1)
    db.insert_event("order", "1", "e", {})
    db.insert_event("invoice", "2", "e", {})
    db.insert_event("order", "3", "e", {})
    no_create = {"kafka.allow.auto.create.topics": "false"}
    r = run("check", no_create)
    assert_only_failure(r, {"topics"})
    st, rest = r.lines()["topics"]
    assert (f"template {topic_prefix}.${{aggregate_type}}: of the 2 topics the rows in the outbox table need, 1 does "
            f"not exist and the broker does not create topics (kafka.allow.auto.create.topics = false): "
            f"{topic_prefix}.invoice; outboxd would stop at the first event for it") in rest, r
    assert f"--create --topic {topic_prefix}.invoice" in fix_of(r, "topics")
    rc, doc = check_json(run, no_create)
    assert rc == EXIT_FAILED and [i["status"] for i in doc if i["check"] == "topics"] == ["fail"]

    # The stack's broker creates topics: a warning naming it.
    r = run("check")
    assert r.rc == EXIT_OK, r
    st, rest = r.lines()["topics"]
    assert st == "warn" and f"do not exist yet ({topic_prefix}.invoice)" in rest.replace("does not", "do not"), r
    assert f"{topic_prefix}.invoice" not in kafka.topics(topic_prefix), "check must not create topics"

    kafka.create_topic(f"{topic_prefix}.invoice", 1)
    r = run("check", no_create)
    assert r.rc == EXIT_OK, r
    assert r.lines()["topics"] == ("ok", f"template {topic_prefix}.${{aggregate_type}}: all 2 topics the rows in "
                                         f"the outbox table need exist"), r

    # A role that may not read the table: the types are unknown, a warning says why.
    db.execute(f'ALTER ROLE "{login_role}" REPLICATION')
    r = run("check", {**no_create, "postgres.conninfo": f"{db.conninfo} user={login_role}"})
    st, rest = r.lines()["topics"]
    assert st == "warn" and "which topics the rows need is unknown" in rest and "permission denied" in rest, r


# --------------------------------------------------------------------------- check: one prerequisite missing


def test_check_outbox_table_missing(run, db):
    db.execute("DROP TABLE outbox")
    r = run("check")
    assert_only_failure(r, {"table public.outbox"})
    assert "public.outbox does not exist" in r.lines()["table public.outbox"][1]
    assert "psql -f sql/outbox.sql" in fix_of(r, "table public.outbox")
    assert "outbox.table" in fix_of(r, "table public.outbox")


def test_check_mapped_column_missing(run):
    r = run("check", {"outbox.column.payload": "nope"})
    assert_only_failure(r, {"table public.outbox"})
    assert 'has no column "nope"' in r.lines()["table public.outbox"][1]
    assert "outbox.column" in fix_of(r, "table public.outbox")


def test_check_role_without_replication(run, db, login_role):
    conninfo = psycopg.conninfo.make_conninfo(db.conninfo, user=login_role)
    r = run("check", {"postgres.conninfo": conninfo})
    # The replication connection is refused; the other checks go on over an ordinary one.
    assert_only_failure(r, {"postgres", "replication_privilege"})
    for name in ("postgres", "replication_privilege"):
        assert fix_of(r, name) == f'run ALTER ROLE "{login_role}" REPLICATION; as a superuser (see sql/roles.sql)', r
    assert r.lines()["wal2json"][0] == "skip"
    assert r.lines()["table public.outbox"][0] == "ok", r

    rc, doc = check_json(run, {"postgres.conninfo": conninfo})
    assert rc == EXIT_FAILED
    failed = {i["check"]: i for i in doc if i["status"] == "fail"}
    assert set(failed) == {"postgres", "replication_privilege"}
    assert f'ALTER ROLE "{login_role}" REPLICATION;' in failed["replication_privilege"]["fix"]


def test_check_and_start_with_pgoutput(run, db, stack, login_role, outboxd, kafka, topic_prefix):
    """postgres.plugin = pgoutput: check tests the plugin and the publication. A superuser
    (or the tables' owner) gets it created by outboxd; a role that does not own the outbox
    gets a FAIL with the CREATE PUBLICATION to run, and outboxd stops with the same fix
    (exit 2) until it exists; a publication that does not publish inserts is refused with
    the ALTER PUBLICATION that fixes it."""
    pgo = {"postgres.plugin": "pgoutput"}
    r = run("check", pgo)
    assert r.rc == EXIT_OK, r
    assert list(r.lines()) == CHECKS_PGOUTPUT, r
    assert "built in and allowed by output_plugin_libraries" in r.lines()["pgoutput"][1], r
    assert 'publication "outboxd" does not exist yet: outboxd creates it' in r.lines()["publication"][1], r
    assert check_slots_left(db) == [] and db.slots() == []

    with stack.pg_connect() as su:
        su.execute(psql.SQL("ALTER ROLE {} REPLICATION").format(psql.Identifier(login_role)))
    role = {**pgo, "postgres.conninfo": psycopg.conninfo.make_conninfo(db.conninfo, user=login_role),
            "progress.table": ""}
    r = run("check", role)
    assert r.lines()["publication"][0] == "FAIL", r
    create = ('CREATE PUBLICATION "outboxd" FOR TABLE "public"."outbox" WITH (publish = \'insert\', '
              "publish_via_partition_root = true)")
    assert create in fix_of(r, "publication"), r
    p = outboxd(role)
    assert p.wait_exit(60) == 2, p.log_tail()
    assert "cannot create the publication pgoutput streams through" in p.log_text() and create in p.log_text()

    db.execute(create)  # as the owner (sql/roles.sql -v pgoutput=on)
    r = run("check", role)
    assert r.lines()["publication"][0] == "ok", r
    assert 'publishes the inserts of every outbox table' in r.lines()["publication"][1], r
    p = outboxd(role)
    p.wait_for_log("streaming slot", timeout=60)
    ev = db.insert_event("order", "k", "e", {"n": 1})
    assert [x.header("id").decode() for x in kafka.consume(f"{topic_prefix}.order", n=1, timeout=30)] == [ev]
    assert p.terminate() == 0

    db.execute("ALTER PUBLICATION outboxd SET (publish = 'update')")
    r = run("check", pgo)
    assert r.lines()["publication"][0] == "FAIL" and "does not publish inserts" in r.lines()["publication"][1], r
    assert "ALTER PUBLICATION \"outboxd\" SET (publish = 'insert'" in fix_of(r, "publication"), r
    p = outboxd(pgo)
    assert p.wait_exit(60) == 2, p.log_tail()
    assert 'publication "outboxd" does not publish inserts' in p.log_text(), p.log_tail()


def test_check_wal2json_not_in_output_plugin_libraries(run, db, stack):
    try:
        set_plugin_libraries(stack, "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding", False)
        r = run("check")
        assert_only_failure(r, {"wal2json"})
        assert "does not allow wal2json as an output plugin" in r.lines()["wal2json"][1]
        assert fix_of(r, "wal2json") == f"as a superuser run: {PLUGIN_LIBS_OK}; SELECT pg_reload_conf();", r
        assert "output_plugin_libraries = pgoutput, test_decoding" in r.lines()["server_version"][1]
        assert check_slots_left(db) == []
    finally:
        set_plugin_libraries(stack, PLUGIN_LIBS_OK, True)


def test_check_wal_level_replica(run, pg_replica):
    conninfo = f"host=127.0.0.1 port={pg_replica} user=postgres dbname=postgres password={PG2_PASSWORD}"
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS public.outbox")
        c.execute((REPO / "sql" / "outbox.sql").read_text())
    r = run("check", {"postgres.conninfo": conninfo})
    assert_only_failure(r, {"wal_level"})
    assert "wal_level is 'replica'" in r.lines()["wal_level"][1]
    assert fix_of(r, "wal_level") == "run ALTER SYSTEM SET wal_level = logical; as a superuser and restart PostgreSQL"
    assert r.lines()["wal2json"][0] == "skip"
    assert PG2_PASSWORD not in r.stdout + r.stderr


def test_check_kafka_unreachable(run):
    r = run("check", {"kafka.bootstrap.servers": "127.0.0.1:1", "startup.timeout.ms": 2000})
    assert_only_failure(r, {"kafka"})
    assert "bootstrap.servers=127.0.0.1:1" in r.lines()["kafka"][1]
    assert fix_of(r, "kafka") == "start the broker or fix kafka.bootstrap.servers"
    assert r.lines()["topics"][0] == "skip"
    assert r.took < 6, f"took {r.took:.1f}s with startup.timeout.ms = 2000"


def test_check_postgres_unreachable_skips_the_rest(run):
    r = run("check", {"postgres.conninfo": "host=127.0.0.1 port=1 dbname=x connect_timeout=3"})
    assert_only_failure(r, {"postgres"})
    assert fix_of(r, "postgres") == "start PostgreSQL, or fix host and port in postgres.conninfo"
    skipped = {name for name, (st, _) in r.lines().items() if st == "skip"}
    assert skipped == set(CHECKS[2:11]), r
    assert r.lines()["kafka"][0] == "ok"
    # One line per check (libpq's two-line message included), a blank line and the summary.
    assert len(r.stdout.splitlines()) == len(CHECKS) + 2, r


@pytest.mark.parametrize("case", ["other_plugin", "create_false"])
def test_check_slot_problems(run, db, case):
    slot = f"{db.dbname}_slot"
    if case == "other_plugin":
        db.create_slot(slot, "test_decoding")
        r = run("check")
        assert "uses plugin test_decoding, but postgres.plugin = wal2json" in r.lines()["slot"][1]
        assert f"pg_drop_replication_slot('{slot}')" in fix_of(r, "slot")
    else:
        r = run("check", {"postgres.slot.create": "false"})
        assert "postgres.slot.create is false" in r.lines()["slot"][1]
        assert f"pg_create_logical_replication_slot('{slot}', 'wal2json')" in fix_of(r, "slot")
    assert_only_failure(r, {"slot"})


# --------------------------------------------------------------------------- check: warnings (exit 0)


def test_check_does_not_hang_behind_a_long_transaction(run, db):
    """Creating a logical slot waits for every running transaction: the wal2json test gives
    up after min(startup.timeout.ms, 10 s), names the oldest transaction and warns."""
    c = db.connect(autocommit=False)
    holder = db.scalar("SELECT pg_backend_pid()", conn=c)
    db.scalar("SELECT txid_current()", conn=c)  # an xid: slot creation waits for it
    try:
        r = run("check", {"startup.timeout.ms": 1000})
    finally:
        c.rollback()
    assert r.rc == EXIT_OK, r
    st, rest = r.lines()["wal2json"]
    assert st == "warn" and "waited 1000 ms" in rest and f"PID {holder}" in rest, r
    assert r.took < 5, r
    assert check_slots_left(db) == []


def test_check_warns_when_cleanup_cannot_delete(run, db, login_role):
    db.execute(f'ALTER ROLE "{login_role}" REPLICATION')
    db.execute(f'GRANT SELECT, INSERT, UPDATE ON outboxd_progress TO "{login_role}"')  # as sql/roles.sql
    conninfo = psycopg.conninfo.make_conninfo(db.conninfo, user=login_role)
    try:
        r = run("check", {"postgres.conninfo": conninfo, "outbox.cleanup": "delete"})
    finally:
        db.execute(f'REVOKE ALL ON outboxd_progress FROM "{login_role}"')  # or the role cannot be dropped
    assert r.rc == EXIT_OK, r
    st, rest = r.lines()["table public.outbox"]
    assert st == "warn" and "may not DELETE" in rest, r
    assert f'GRANT DELETE ON "public"."outbox" TO "{login_role}";' in fix_of(r, "table public.outbox")
    assert {name for name, (st, _) in r.lines().items() if st != "ok"} == {"table public.outbox"}, r


def test_check_progress_record(run, db, login_role, outboxd):
    """progress: a role that may not write progress.table gets a warning with the grant (the
    relay runs, but could not recover a lost slot by itself); with the grant and a record,
    the line says what the record says."""
    db.execute(f'ALTER ROLE "{login_role}" REPLICATION')
    conninfo = psycopg.conninfo.make_conninfo(db.conninfo, user=login_role)
    r = run("check", {"postgres.conninfo": conninfo})
    st, rest = r.lines()["progress"]
    assert st == "warn" and f'role "{login_role}" may not read and write public.outboxd_progress' in rest, r
    assert "GRANT SELECT, INSERT, UPDATE ON public.outboxd_progress" in fix_of(r, "progress")
    assert r.rc == EXIT_OK, r
    d = outboxd()
    d.wait_for_log("streaming slot")
    r = run("check")
    st, rest = r.lines()["progress"]
    assert st == "ok" and re.search(rf'slot "{db.dbname}_slot" published up to [0-9A-F]+/[0-9A-F]+ \(timeline 1, '
                                    r"horizon xid \d+, written ", rest), r


# --------------------------------------------------------------------------- status


def socket_owner_has(pid: int, local_port: int, remote_port: int) -> bool:
    """True when process pid holds the TCP socket 127.0.0.1:local_port -> :remote_port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == local_port and int(f[2].split(":")[1], 16) == remote_port:
            inodes.add(f[9])
    fds = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fd) in {f"socket:[{i}]" for i in inodes} for fd in fds.iterdir())


def test_status_as_a_replication_role_without_read_all_stats(run, outboxd, db, login_role, kafka, stack):
    """The documented outboxd role (LOGIN REPLICATION, sql/roles.sql) may not read the
    walsender's state and reply time in pg_stat_replication (pg_read_all_stats): `outboxd
    status` as that role prints a complete line that says so, not one with gaps."""
    db.execute(f'ALTER ROLE "{login_role}" REPLICATION')
    as_role = {"postgres.conninfo": f"{db.conninfo} user={login_role}"}
    p = outboxd(as_role)
    p.wait_for_log(r"streaming slot", timeout=60)
    r = run("status", as_role)
    assert r.rc == EXIT_OK, r
    lines = r.stdout.splitlines()
    active = next(i for i, line in enumerate(lines) if line.startswith("active "))
    second = lines[active + 1].strip()
    assert re.fullmatch(r"connected since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; state and last status update not shown: "
                        rf'role "{login_role}" may not read them \(as a superuser: GRANT pg_read_all_stats TO '
                        rf'"{login_role}";\)', second), r
    # With the grant, the line has them.
    db.execute(f'GRANT pg_read_all_stats TO "{login_role}"')
    try:
        r = run("status", as_role)
        second = r.stdout.splitlines()[active + 1].strip()
        assert re.fullmatch(r"state \w+, connected since \S+Z, last status update \d+\.\d s ago", second), r
    finally:
        db.execute(f'REVOKE pg_read_all_stats FROM "{login_role}"')
        assert p.terminate(30) == 0


def test_abandoned_slot_in_status_check_and_metrics(run, outboxd, db, stack):
    """A first start against the wrong database leaves a wal2json slot there that keeps WAL
    until someone drops it. status, check and the metrics show it with the statement that
    drops it (the slot is named after the database here: any wal2json slot besides
    postgres.slot that nothing streams); dropping it clears them."""
    wrong = create_database(stack)
    leftover = f"{wrong.dbname}_slot"
    try:
        p = outboxd({"postgres.conninfo": wrong.conninfo, "postgres.slot": leftover})
        p.wait_for_log(r"streaming slot", timeout=60)
        assert p.terminate(30) == 0
        wrong.execute("CREATE TABLE filler AS SELECT g FROM generate_series(1, 20000) g")  # WAL it keeps

        port = free_port()
        relay = outboxd({"http.listen": f"127.0.0.1:{port}"})
        relay.wait_for_log(rf'1 wal2json replication slot besides "{db.dbname}_slot" is not streamed and keeps WAL: '
                           rf'"{leftover}" \(database {wrong.dbname}, retains .+\); if no outboxd uses it any more, '
                           rf"drop it \(SELECT pg_drop_replication_slot\('{leftover}'\);\)", timeout=30)
        m = wait_metric(port, "outboxd_other_inactive_slots", lambda v: v == 1)
        assert m["outboxd_other_inactive_slots_retained_bytes"] > 100_000, m

        r = run("status")
        assert r.rc == EXIT_OK, r
        assert re.search(rf'^other slots\s+1 inactive wal2json slot besides "{db.dbname}_slot" keeps WAL: '
                         rf'"{leftover}" \(database {wrong.dbname}, retains \d', r.stdout, re.M), r
        assert f"SELECT pg_drop_replication_slot('{leftover}');" in r.stdout
        rc, s = status_json(run)
        assert [(o["slot"], o["database"]) for o in s["other_inactive_slots"]] == [(leftover, wrong.dbname)], s
        assert s["other_inactive_slots"][0]["retained_bytes"] > 100_000
        # Asked for a slot that does not exist: the leftover is named, it may be the one meant.
        r = run("status", {"postgres.slot": "nope_slot"})
        assert r.rc == EXIT_NO_SLOT and f'inactive wal2json slots on it: "{leftover}"' in r.stdout, r

        c = run("check")
        st, rest = c.lines()["other_slots"]
        assert st == "warn" and f'"{leftover}" (database {wrong.dbname}' in rest, c
        assert fix_of(c, "other_slots").endswith(f"drop it: SELECT pg_drop_replication_slot('{leftover}');"), c

        wrong.execute("SELECT pg_drop_replication_slot(%s)", (leftover,))
        wait_metric(port, "outboxd_other_inactive_slots", lambda v: v == 0)
        assert "other_slots" not in run("check").lines()
        assert "other slots" not in run("status").stdout
        assert relay.terminate(30) == 0
    finally:
        drop_database(wrong)


def status_json(run, config=None) -> tuple[int, dict]:
    r = run("status", config, "--json")
    return r.rc, json.loads(r.stdout)


def test_status_while_outboxd_streams(run, outboxd, db, kafka, topic_prefix, stack):
    slot = f"{db.dbname}_slot"
    p = outboxd()
    p.wait_for_log(r"streaming slot", timeout=60)
    assert p.terminate(30) == 0
    # Stopped: events pile up behind the slot.
    with db.connect(autocommit=False) as c:
        for i in range(200):
            db.insert_event("st", f"k{i}", "e", {"i": i, "pad": "x" * 200}, conn=c)
        c.commit()
    rc, s = status_json(run)
    assert rc == EXIT_OK, s
    assert s["slot"] == slot and s["exists"] and s["plugin"] == "wal2json" and s["database"] == db.dbname
    assert s["active"] is False and s["active_pid"] is None
    assert s["lag_bytes"] > 50_000, s  # 200 rows of ~250 bytes
    assert s["retained_bytes"] >= s["lag_bytes"]
    assert s["wal_status"] == "reserved" and s["safe_wal_size"] is None
    assert lsn_to_int(s["current_wal_lsn"]) - lsn_to_int(s["confirmed_flush_lsn"]) == s["lag_bytes"]

    p.start()
    p.wait_for_log(r"streaming slot", timeout=60)
    assert len(kafka.consume(f"{topic_prefix}.st", n=200, timeout=30)) == 200

    def caught_up():
        rc2, s2 = status_json(run)
        return s2 if rc2 == EXIT_OK and s2["active"] and s2["lag_bytes"] < 8192 else None

    s = wait_until(caught_up, 20, 0.3, "status showing the slot active with lag < 8 KiB")
    info = db.slot_info(slot)
    assert s["active_pid"] == info["active_pid"], (s, info)
    assert s["application_name"] == "outboxd" and s["client_addr"] == "127.0.0.1"
    assert s["state"] == "streaming"
    # The walsender's client is this outboxd process.
    assert socket_owner_has(p.pid, s["client_port"], stack.pg_port), s

    r = run("status")
    assert r.rc == EXIT_OK, r
    assert re.search(rf"^active\s+yes: walsender PID {s['active_pid']}, application_name outboxd, "
                     rf"client 127\.0\.0\.1:\d+$", r.stdout, re.M), r
    assert re.search(r"^lag\s+\d+ bytes", r.stdout, re.M), r
    for label in ("slot", "confirmed_flush_lsn", "restart_lsn", "current WAL", "retained WAL", "wal_status",
                  "safe_wal_size"):
        assert re.search(rf"^{label}\s+\S", r.stdout, re.M), f"no {label} line:\n{r}"

    # check sees the running relay too, and stays at exit 0.
    c = run("check")
    assert c.rc == EXIT_OK, c
    st, rest = c.lines()["slot"]
    assert st == "ok" and f"is active: streamed by walsender PID {s['active_pid']}" in rest, c
    assert "one of them streaming slot" in c.lines()["max_wal_senders"][1]


def test_status_of_a_missing_slot_exits_1(run, db):
    slot = f"{db.dbname}_slot"
    r = run("status")
    assert r.rc == EXIT_NO_SLOT, r
    assert f'replication slot "{slot}" does not exist' in r.stdout
    assert f"pg_create_logical_replication_slot('{slot}', 'wal2json')" in r.stdout
    rc, s = status_json(run)
    assert rc == EXIT_NO_SLOT and s["exists"] is False and s["slot"] == slot and "pg_create" in s["fix"]


def test_status_when_postgres_is_unreachable_exits_2(run):
    r = run("status", {"postgres.conninfo": "host=127.0.0.1 port=1 dbname=x connect_timeout=3"})
    assert r.rc == EXIT_FAILED, r
    assert "cannot connect to PostgreSQL" in r.stderr


# --------------------------------------------------------------------------- check: no headroom


def test_check_no_free_replication_slot(run, db, stack):
    """Every slot of max_replication_slots taken (physical slots that reserve nothing): the
    slot cannot be created (a failure: outboxd would stop at its first start), and wal2json
    cannot be verified (a warning: nothing says it is broken)."""
    admin = stack.pg_connect()
    most = int(admin.execute("SHOW max_replication_slots").fetchone()[0])
    used = admin.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]
    fillers = [f"{db.dbname}_fill{i}" for i in range(most - used)]
    try:
        for name in fillers:
            admin.execute("SELECT pg_create_physical_replication_slot(%s)", (name,))
        r = run("check")
        assert r.rc == EXIT_FAILED, r
        status, detail = r.lines()["max_replication_slots"]
        assert status == "FAIL", r
        assert r.failed() == {"max_replication_slots"}, r
        assert f"{most} of {most} in use and slot {db.dbname}_slot does not exist yet: outboxd cannot create it" in detail
        assert "raise max_replication_slots" in fix_of(r, "max_replication_slots")
        assert r.lines()["wal2json"][0] == "warn" and "all replication slots are in use" in r.lines()["wal2json"][1]
    finally:
        for name in fillers:
            admin.execute("SELECT pg_drop_replication_slot(%s) WHERE EXISTS (SELECT 1 FROM pg_replication_slots "
                          "WHERE slot_name = %s)", (name, name))
        admin.close()


def test_check_no_free_wal_sender(run, db, stack):
    """Every walsender of max_wal_senders taken by idle replication connections: the
    replication connection fails (postgres), the other checks go on over an ordinary one,
    and max_wal_senders says why."""
    import psycopg

    admin = stack.pg_connect()
    most = int(admin.execute("SHOW max_wal_senders").fetchone()[0])
    used = admin.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0]
    holders = []
    try:
        for _ in range(most - used):
            holders.append(psycopg.connect(db.conninfo + " replication=database", autocommit=True))
        r = run("check")
        assert r.rc == EXIT_FAILED, r
        status, detail = r.lines()["postgres"]
        assert status == "FAIL" and "max_wal_senders" in detail, r
        status, detail = r.lines()["max_wal_senders"]
        assert status == "warn" and f"all {most} in use: outboxd cannot open its replication connection" in detail, r
        assert "raise max_wal_senders" in fix_of(r, "max_wal_senders")
        assert r.lines()["wal_level"][0] == "ok"  # checked over the ordinary connection
    finally:
        for h in holders:
            h.close()
        admin.close()
