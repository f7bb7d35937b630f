"""The SQL handoff of sql/inbox.sql against a real PostgreSQL: inbox_claim (per-key order,
SKIP LOCKED, leases), inbox_complete, inbox_fail (backoff with jitter, dead after max
attempts), inbox_requeue_dead, the status views, NOTIFY and idempotent re-runs; the
commands `inboxd status` and `inboxd requeue` that read and requeue the same rows.

Rows are inserted directly here, as inboxd would; test_inbox.py covers inboxd itself.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import threading
import time

import psycopg
import pytest

from harness import (
    INBOX_SQL,
    REPO,
    SANITIZER_REPORT,
    default_inboxd_bin,
    drop_roles_of,
    psql_file,
    unique_name,
    write_config,
)


def add(db, message_id, key, *, topic="t", partition=0, offset=None, payload=b"p", conn=None):
    """Inserts one inbox row (as inboxd does) and returns its id."""
    if offset is None:
        offset = db.scalar(
            "SELECT coalesce(max(\"offset\") + 1, 0) FROM inbox WHERE topic = %s AND partition = %s",
            (topic, partition), conn=conn)
    return db.scalar(
        "INSERT INTO inbox (message_id, topic, partition, \"offset\", key, payload) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (message_id, topic, partition, offset, key.encode() if isinstance(key, str) else key, payload), conn=conn)


def claim(db, n=10, lease="5 minutes", conn=None):
    return [r[0] for r in db.execute("SELECT message_id FROM inbox_claim(%s, %s::interval)", (n, lease), conn=conn)]


def row(db, message_id):
    cur = db.conn.execute("SELECT * FROM inbox WHERE message_id = %s", (message_id,))
    r = cur.fetchone()
    return dict(zip([d.name for d in cur.description], r)) if r else None


def test_sql_is_idempotent_and_complete(inbox_db):
    # A second run changes nothing and fails on nothing.
    inbox_db.conn.execute(INBOX_SQL.read_text())
    names = {r[0] for r in inbox_db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace")}
    for f in ("inbox_claim(integer,interval)", "inbox_complete(text)",
              "inbox_fail(text,text,integer,interval,interval)", "inbox_requeue_dead(text)",
              "inbox_text(bytea)", "inbox_json(bytea)", "inbox_notify()", "inbox_schema_version()"):
        assert f in names, names
    views = {r[0] for r in inbox_db.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")}
    assert {"inbox_status", "inbox_dead", "inbox_messages"} <= views
    with pytest.raises(psycopg.errors.CheckViolation):
        inbox_db.execute("INSERT INTO inbox (message_id, topic, partition, \"offset\", status) "
                         "VALUES ('x', 't', 0, 0, 'weird')")
    add(inbox_db, "dup", "k")
    with pytest.raises(psycopg.errors.UniqueViolation):
        add(inbox_db, "dup", "k")


def test_claim_per_key_order_and_keyless(inbox_db):
    add(inbox_db, "a1", "a")
    add(inbox_db, "b1", "b", partition=1)
    add(inbox_db, "a2", "a")
    add(inbox_db, "n1", None)
    add(inbox_db, "n2", None)
    add(inbox_db, "b2", "b", partition=1)
    # One per key, oldest first; keyless messages are independent.
    assert claim(inbox_db) == ["a1", "b1", "n1", "n2"]
    r = row(inbox_db, "a1")
    assert r["status"] == "processing" and r["attempts"] == 1
    assert claim(inbox_db) == []  # a2, b2 wait for their predecessors
    assert inbox_db.scalar("SELECT inbox_complete('a1')") is True
    assert inbox_db.scalar("SELECT inbox_complete('a1')") is False  # already done: harmless
    assert claim(inbox_db) == ["a2"]
    assert inbox_db.scalar("SELECT inbox_complete('b1')") is True
    assert claim(inbox_db, 1) == ["b2"]
    assert claim(inbox_db, 0) == []
    assert inbox_db.scalar("SELECT inbox_complete('nope')") is False
    done = row(inbox_db, "a1")
    assert done["status"] == "done" and done["processed_at"] is not None


def test_claim_skips_rows_locked_by_another_claimer(inbox_db):
    add(inbox_db, "a1", "a")
    add(inbox_db, "a2", "a")
    add(inbox_db, "b1", "b")
    c1 = inbox_db.connect(autocommit=False)
    c2 = inbox_db.connect(autocommit=False)
    # c1 claims and processes inside its transaction (not committed yet).
    assert claim(inbox_db, 1, conn=c1) == ["a1"]
    # c2 does not wait: it skips a1 (locked), a2 (a1 not done) and takes b1.
    t0 = time.monotonic()
    assert claim(inbox_db, 10, conn=c2) == ["b1"]
    assert time.monotonic() - t0 < 2
    c2.commit()
    inbox_db.execute("SELECT inbox_complete('a1')", conn=c1)
    c1.commit()
    assert claim(inbox_db, 10, conn=c2) == ["a2"]
    c2.commit()
    # A claim rolled back with its transaction leaves the message pending.
    assert inbox_db.scalar("SELECT inbox_complete('a2')") is True
    add(inbox_db, "a3", "a")
    assert claim(inbox_db, 10, conn=c1) == ["a3"]
    c1.rollback()
    r = row(inbox_db, "a3")
    assert r["status"] == "pending" and r["attempts"] == 0


def test_lease_expiry_reclaims(inbox_db):
    add(inbox_db, "a1", "a")
    add(inbox_db, "a2", "a")
    assert claim(inbox_db, 10, "300 milliseconds") == ["a1"]  # committed: a two-transaction claimer
    assert claim(inbox_db) == []
    time.sleep(0.4)
    # The claimer died: after the lease the message is claimed again (at least once).
    assert claim(inbox_db) == ["a1"]
    assert row(inbox_db, "a1")["attempts"] == 2


def test_fail_backoff_then_dead_then_requeue(inbox_db):
    add(inbox_db, "a1", "a")
    add(inbox_db, "a2", "a")
    add(inbox_db, "b1", "b")
    assert claim(inbox_db) == ["a1", "b1"]
    for attempt in (1, 2):
        t0 = inbox_db.scalar("SELECT now()")
        assert inbox_db.scalar("SELECT inbox_fail('a1', %s, 3, '200 milliseconds', '1 hour')",
                               (f"boom {attempt}",)) == "failed"
        r = row(inbox_db, "a1")
        assert r["status"] == "failed" and r["last_error"] == f"boom {attempt}"
        # Exponential backoff with jitter: 50-100 % of 200 ms * 2^(attempt-1).
        delay = (r["next_attempt_at"] - t0).total_seconds()
        full = 0.2 * 2 ** (attempt - 1)
        assert full * 0.5 - 0.01 <= delay <= full + 0.01, (attempt, delay)
        assert claim(inbox_db) == []  # not due yet, and a2 waits behind it
        time.sleep(delay + 0.05)
        assert claim(inbox_db) == ["a1"]
        assert row(inbox_db, "a1")["attempts"] == attempt + 1
    assert inbox_db.scalar("SELECT inbox_fail('a1', 'boom 3', 3)") == "dead"
    r = row(inbox_db, "a1")
    assert r["status"] == "dead" and r["last_error"] == "boom 3" and r["processed_at"] is not None
    assert inbox_db.scalar("SELECT inbox_fail('a1', 'again', 3)") is None  # dead stays dead
    # Dead counts as settled: the next message of the key goes.
    assert claim(inbox_db) == ["a2"]

    status = {s: (n, age) for s, n, _, age in inbox_db.execute("SELECT * FROM inbox_status")}
    assert [s for s in status] == ["pending", "processing", "failed", "dead", "done"]
    assert status["dead"][0] == 1 and status["processing"][0] == 2 and status["pending"][0] == 0
    assert status["pending"][1] is None and status["processing"][1] is not None
    dead = inbox_db.execute("SELECT message_id, key_text, attempts, last_error FROM inbox_dead")
    assert dead == [("a1", "a", 3, "boom 3")]

    assert inbox_db.scalar("SELECT inbox_requeue_dead('nope')") == 0
    assert inbox_db.scalar("SELECT inbox_requeue_dead()") == 1
    r = row(inbox_db, "a1")
    assert r["status"] == "pending" and r["attempts"] == 0 and r["processed_at"] is None
    assert r["last_error"] == "boom 3"  # kept until the next failure
    assert claim(inbox_db) == ["a1"]
    assert inbox_db.scalar("SELECT inbox_requeue_dead()") == 0


def test_fail_max_attempts_default_and_setting(inbox_db):
    add(inbox_db, "a1", "a")
    add(inbox_db, "b1", "b")
    # Default: 10 attempts.
    inbox_db.execute("UPDATE inbox SET attempts = 9")
    assert inbox_db.scalar("SELECT inbox_fail('a1', 'x')") == "failed"
    inbox_db.execute("UPDATE inbox SET attempts = 10 WHERE message_id = 'a1'")
    assert inbox_db.scalar("SELECT inbox_fail('a1', 'x')") == "dead"
    # The inbox.max_attempts setting (e.g. ALTER DATABASE ... SET inbox.max_attempts = 1).
    inbox_db.execute("SET inbox.max_attempts = 1")
    assert inbox_db.scalar("SELECT inbox_fail('b1', 'y')") == "dead"
    # Backoff is capped.
    add(inbox_db, "c1", "c")
    inbox_db.execute("UPDATE inbox SET attempts = 30 WHERE message_id = 'c1'")
    t0 = inbox_db.scalar("SELECT now()")
    assert inbox_db.scalar("SELECT inbox_fail('c1', 'z', 100, '1 second', '2 seconds')") == "failed"
    delay = (row(inbox_db, "c1")["next_attempt_at"] - t0).total_seconds()
    assert 0.99 <= delay <= 2.01


def test_views_decode_bytes(inbox_db):
    add(inbox_db, "j", "k1", payload=b'{"a": 1}')
    add(inbox_db, "bin", b"\xff\x00", payload=b"\xff\xfe")
    add(inbox_db, "tomb", None, payload=None)
    rows = {r[0]: r[1:] for r in inbox_db.execute(
        "SELECT message_id, key_text, payload_text, payload_json FROM inbox_messages")}
    assert rows["j"] == ("k1", '{"a": 1}', {"a": 1})
    assert rows["bin"] == (None, None, None)
    assert rows["tomb"] == (None, None, None)


def test_concurrent_claimers_keep_per_key_order(inbox_db):
    """Six claimers, each processing in the claiming transaction (effect + done commit
    together), with random failures and retries: per key, the effects are in offset order,
    and each message takes effect exactly once."""
    rnd = random.Random(4)
    nkeys, nmsgs, nworkers = 30, 1500, 6
    inbox_db.execute("CREATE TABLE effects (seq bigserial PRIMARY KEY, message_id text UNIQUE, key bytea, "
                     "inbox_id bigint, worker int)")
    offsets = [0, 0, 0, 0]
    rows = []
    for i in range(nmsgs):
        k = f"key{rnd.randrange(nkeys)}"
        p = int(k[3:]) % 4  # one key, one partition: as Kafka keyed records
        rows.append((f"m{i}", "t", p, offsets[p], k.encode(), b"x"))
        offsets[p] += 1
    with inbox_db.conn.cursor() as cur:
        cur.executemany("INSERT INTO inbox (message_id, topic, partition, \"offset\", key, payload) "
                        "VALUES (%s, %s, %s, %s, %s, %s)", rows)

    errors: list[BaseException] = []
    stats = {"fails": 0, "claims": 0}
    lock = threading.Lock()

    def worker(w: int):
        try:
            c = inbox_db.connect(autocommit=False)
            wr = random.Random(w)
            idle_since = None
            while True:
                with c.transaction():
                    got = c.execute("SELECT message_id, key, id FROM inbox_claim(3)").fetchall()
                    for mid, key, iid in got:
                        if wr.random() < 0.1:
                            c.execute("SELECT inbox_fail(%s, 'flaky', 1000, '1 millisecond', '5 milliseconds')",
                                      (mid,))
                            with lock:
                                stats["fails"] += 1
                        else:
                            c.execute("INSERT INTO effects (message_id, key, inbox_id, worker) VALUES (%s, %s, %s, %s)",
                                      (mid, key, iid, w))
                            c.execute("SELECT inbox_complete(%s)", (mid,))
                with lock:
                    stats["claims"] += len(got)
                if got:
                    idle_since = None
                    continue
                open_ = c.execute("SELECT count(*) FROM inbox WHERE status <> 'done'").fetchone()[0]
                c.commit()
                if open_ == 0:
                    return
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 30:
                    raise AssertionError(f"worker {w}: {open_} messages open but none claimable for 30 s")
                time.sleep(0.003)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(nworkers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not errors, errors
    elapsed = time.monotonic() - t0
    print(f"{nmsgs} messages, {nworkers} claimers: {elapsed:.2f}s, {stats}")

    effects = inbox_db.execute("SELECT seq, message_id, key, inbox_id, worker FROM effects ORDER BY seq")
    assert len(effects) == nmsgs
    assert len({e[1] for e in effects}) == nmsgs
    assert stats["fails"] > 0
    assert len({e[4] for e in effects}) > 1  # the work was really shared
    by_key: dict[bytes, list[int]] = {}
    for _, _, key, iid, _ in effects:
        by_key.setdefault(bytes(key), []).append(iid)
    for key, ids in by_key.items():
        assert ids == sorted(ids), f"key {key!r} took effect out of order: {ids}"
    # Arrival order is offset order per partition here; check against offsets too.
    off = dict(inbox_db.execute("SELECT id, \"offset\" FROM inbox"))
    for key, ids in by_key.items():
        offs = [off[i] for i in ids]
        assert offs == sorted(offs)
    assert inbox_db.scalar("SELECT count(*) FROM inbox WHERE status = 'done'") == nmsgs


def test_notify_on_insert(inbox_db):
    listener = psycopg.connect(inbox_db.conninfo, autocommit=True)
    try:
        listener.execute("LISTEN inbox")
        c = inbox_db.connect(autocommit=False)
        add(inbox_db, "x1", "k", conn=c)
        add(inbox_db, "x2", "k", conn=c)
        # Nothing before the commit, one notification after it.
        assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
        c.commit()
        got = list(listener.notifies(timeout=5, stop_after=1))
        assert [(n.channel, n.payload) for n in got] == [("inbox", "public.inbox")]
        # An insert that adds nothing (all duplicates) notifies nobody.
        inbox_db.execute("INSERT INTO inbox (message_id, topic, partition, \"offset\") VALUES ('x1', 't', 0, 9) "
                         "ON CONFLICT (message_id) DO NOTHING")
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    finally:
        listener.close()


# --------------------------------------------------------------------------- NOTIFY of requeue


def schema_copy(sql_text: str, schema: str, table: str) -> str:
    """sql/inbox.sql for another schema and inbox table name, edited as docs/inboxd.md says
    (replace "public." throughout), the inbox table's name included."""
    return re.sub(r"public\.inbox\b", f"{schema}.{table}", sql_text).replace("public.", f"{schema}.")


def notifies(listener, timeout=5.0) -> list[tuple[str, str]]:
    return [(n.channel, n.payload) for n in listener.notifies(timeout=timeout, stop_after=1)]


def test_requeue_notifies_with_the_payload_of_the_insert_trigger(inbox_db):
    """inbox_requeue_dead's NOTIFY names the table it requeued in, exactly as the insert
    trigger does: also for a copy in another schema under a name that needs quoting."""
    inbox_db.execute("CREATE SCHEMA app2")
    copy = schema_copy(INBOX_SQL.read_text(), "app2", '"InBox"')
    inbox_db.conn.execute(copy)
    inbox_db.conn.execute(copy)  # idempotent there too
    listener = psycopg.connect(inbox_db.conninfo, autocommit=True)
    try:
        listener.execute("LISTEN inbox")
        for table, fn_schema in (("public.inbox", "public"), ('app2."InBox"', "app2")):
            inbox_db.execute(f"INSERT INTO {table} (message_id, topic, partition, \"offset\") VALUES ('d1', 't', 0, 0)")
            on_insert = notifies(listener)
            assert len(on_insert) == 1, on_insert
            inbox_db.execute(f"UPDATE {table} SET status = 'dead', processed_at = now()")
            assert inbox_db.scalar(f"SELECT {fn_schema}.inbox_requeue_dead()") == 1
            assert notifies(listener) == on_insert, table
            assert inbox_db.scalar(f"SELECT status FROM {table} WHERE message_id = 'd1'") == "pending"
            # Nothing requeued, nothing sent.
            assert inbox_db.scalar(f"SELECT {fn_schema}.inbox_requeue_dead()") == 0
            assert notifies(listener, 0.3) == []
        assert on_insert == [("inbox", "app2.InBox")]
    finally:
        listener.close()


# --------------------------------------------------------------------------- inboxd status, requeue


@pytest.fixture
def inboxd_cmd(inbox_db, tmp_path):
    """inboxd_cmd(*args, config=None, env=None) -> CompletedProcess of `inboxd ARGS -c FILE`,
    FILE holding postgres.conninfo = inbox_db's updated by config. No OUTBOXD_* or INBOXD_*
    variable of the harness reaches it; env adds some."""
    n = [0]

    def run(*args, config=None, env=None, timeout=60):
        n[0] += 1
        cfg = {"postgres.conninfo": inbox_db.conninfo, **(config or {})}
        conf = write_config(tmp_path / f"cmd-{n[0]}.conf", {k: v for k, v in cfg.items() if v is not None})
        e = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOXD_", "INBOXD_"))}
        e.update(env or {})
        r = subprocess.run([str(default_inboxd_bin()), *args, "-c", str(conf)], capture_output=True,
                           text=True, timeout=timeout, env=e, stdin=subprocess.DEVNULL)
        m = SANITIZER_REPORT.search(r.stdout + r.stderr)
        assert not m, f"sanitizer report:\n{r.stdout}\n{r.stderr}"
        return r

    return run


def status_json(inboxd_cmd, *args, **kw) -> dict:
    r = inboxd_cmd("status", "--json", *args, **kw)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def test_inboxd_status_and_requeue(inbox_db, inboxd_cmd):
    add(inbox_db, "p1", "a")
    add(inbox_db, "p2", "b")
    add(inbox_db, "w1", "c")
    add(inbox_db, "d1", "d")
    add(inbox_db, "d2", b"\xff\x00")
    add(inbox_db, "ok", "e")
    inbox_db.execute("UPDATE inbox SET received_at = now() - interval '90 seconds' WHERE message_id = 'p1'")
    assert claim(inbox_db, 10) == ["p1", "p2", "w1", "d1", "d2", "ok"]
    inbox_db.execute("UPDATE inbox SET status = 'pending' WHERE message_id IN ('p1', 'p2')")
    assert inbox_db.scalar("SELECT inbox_fail('d1', 'HTTP 400: bad order\nline 2', 1)") == "dead"
    assert inbox_db.scalar("SELECT inbox_fail('d2', 'gone', 1)") == "dead"
    assert inbox_db.scalar("SELECT inbox_complete('ok')") is True

    s = status_json(inboxd_cmd)
    assert s["table"] == "public.inbox" and s["exists"] is True
    assert s["messages"] == {"pending": 2, "processing": 1, "failed": 0, "dead": 2, "done": 1}
    assert 89.5 <= s["oldest_pending_age_s"] <= 120, s
    assert s["oldest_age_s"]["pending"] == s["oldest_pending_age_s"] and s["oldest_age_s"]["failed"] is None
    assert s["dead_limit"] == 20
    assert [(m["message_id"], m["key"], m["attempts"], m["last_error"]) for m in s["dead"]] == [
        ("d1", "d", 1, "HTTP 400: bad order\nline 2"), ("d2", "\\xff00", 1, "gone")]
    where = dict(inbox_db.execute("SELECT message_id, \"offset\" FROM inbox"))
    assert all(m["topic"] == "t" and m["partition"] == 0 and m["offset"] == where[m["message_id"]] for m in s["dead"])
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["died_at"]) for m in s["dead"])
    s1 = status_json(inboxd_cmd, "--limit", "1")
    assert [m["message_id"] for m in s1["dead"]] == ["d1"] and s1["messages"]["dead"] == 2

    r = inboxd_cmd("status")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"^table\s+public\.inbox$", out, re.M), out
    assert re.search(r"^pending\s+2 \(the oldest received (9\d|1[01]\d)\.\d s ago\)$", out, re.M), out
    assert re.search(r"^done\s+1 ", out, re.M) and re.search(r"^failed\s+0$", out, re.M), out
    assert re.search(r"^oldest pending\s+\d+\.\d s$", out, re.M), out
    assert re.search(r"^dead messages\s+2$", out, re.M), out
    # One line per dead message, its error flattened to that line.
    assert re.search(r"^  d1 \(t \[0\] offset \d+, key d\): 1 attempt, dead since \S+Z: HTTP 400: bad order line 2$",
                     out, re.M), out
    assert re.search(r"^  d2 \(t \[0\] offset \d+, key \\xff00\): 1 attempt, dead since \S+Z: gone$", out, re.M), out
    assert "dead messages        2, the oldest 1 below" in inboxd_cmd("status", "--limit", "1").stdout

    # requeue --id: each id said; one that is not dead makes the exit code 1.
    listener = psycopg.connect(inbox_db.conninfo, autocommit=True)
    try:
        listener.execute("LISTEN inbox")
        r = inboxd_cmd("requeue", "--json", "--id", "d1", "nope", "p1")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert json.loads(r.stdout) == {"table": "public.inbox", "requeued": 1, "messages": [
            {"message_id": "d1", "requeued": True, "status": "dead"},
            {"message_id": "nope", "requeued": False, "status": None},
            {"message_id": "p1", "requeued": False, "status": "pending"}]}
        assert notifies(listener) == [("inbox", "public.inbox")]
        r1 = row(inbox_db, "d1")
        assert (r1["status"], r1["attempts"]) == ("pending", 0)
        r = inboxd_cmd("requeue", "--id", "d1")
        assert r.returncode == 1 and "d1: not requeued: it is pending, not dead" in r.stdout, r.stdout
        # requeue --all
        r = inboxd_cmd("requeue", "--all")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "requeued 1 dead message of public.inbox\n"
        assert notifies(listener) == [("inbox", "public.inbox")]
        assert status_json(inboxd_cmd)["messages"]["dead"] == 0
        r = inboxd_cmd("requeue", "--all", "--json")
        assert r.returncode == 0 and json.loads(r.stdout) == {"table": "public.inbox", "requeued": 0}
        assert notifies(listener, 0.3) == []
    finally:
        listener.close()

    # Asking for nothing, or for both, is a usage error.
    for args in (("requeue",), ("requeue", "--all", "--id", "d1"), ("requeue", "--id"), ("status", "--limit", "x")):
        r = inboxd_cmd(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stdout == ""


def test_inboxd_status_and_requeue_of_another_table_from_env_and_x(inbox_db, inboxd_cmd):
    """inbox.table comes from the file, INBOXD_INBOX_TABLE or -X, as for the daemon; the
    functions of that table's schema do the requeue."""
    inbox_db.execute("CREATE SCHEMA app2")
    inbox_db.conn.execute(schema_copy(INBOX_SQL.read_text(), "app2", '"InBox"'))
    inbox_db.execute('INSERT INTO app2."InBox" (message_id, topic, partition, "offset", status, attempts, '
                     "last_error, processed_at) VALUES ('x1', 't', 0, 0, 'dead', 4, 'boom', now())")
    add(inbox_db, "public-one", "k")  # public.inbox is another table
    s = status_json(inboxd_cmd, env={"INBOXD_INBOX_TABLE": 'app2."InBox"'})
    assert s["table"] == 'app2."InBox"' and s["messages"]["dead"] == 1 and s["messages"]["pending"] == 0
    assert s["dead"][0]["last_error"] == "boom" and s["dead"][0]["attempts"] == 4
    listener = psycopg.connect(inbox_db.conninfo, autocommit=True)
    try:
        listener.execute("LISTEN inbox")
        r = inboxd_cmd("requeue", "--all", "-X", 'inbox.table=app2."InBox"', config={"inbox.table": "public.inbox"})
        assert r.returncode == 0 and r.stdout == 'requeued 1 dead message of app2."InBox"\n', (r.stdout, r.stderr)
        assert notifies(listener) == [("inbox", "app2.InBox")]
    finally:
        listener.close()
    assert inbox_db.scalar('SELECT status FROM app2."InBox"') == "pending"
    assert status_json(inboxd_cmd)["messages"]["pending"] == 1  # public.inbox: its own row only


def test_inboxd_status_and_requeue_errors(inbox_db, inboxd_cmd):
    # No such table: exit 1 with the fix.
    r = inboxd_cmd("status", config={"inbox.table": "public.nope"})
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "inbox table public.nope does not exist" in r.stdout and "psql -f sql/inbox.sql" in r.stdout
    r = inboxd_cmd("status", "--json", config={"inbox.table": "public.nope"})
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["exists"] is False and doc["table"] == "public.nope" and "sql/inbox.sql" in doc["fix"]
    assert inboxd_cmd("requeue", "--all", config={"inbox.table": "public.nope"}).returncode == 1
    # A table without the functions of sql/inbox.sql beside it: requeue cannot, status can.
    inbox_db.execute("CREATE SCHEMA bare")
    inbox_db.execute("CREATE TABLE bare.inbox (LIKE public.inbox INCLUDING ALL)")
    r = inboxd_cmd("requeue", "--all", config={"inbox.table": "bare.inbox"})
    assert r.returncode == 1
    assert "inbox_requeue_dead(text) of sql/inbox.sql for table bare.inbox is missing in schema bare" in r.stderr
    assert status_json(inboxd_cmd, config={"inbox.table": "bare.inbox"})["messages"]["pending"] == 0
    # PostgreSQL unreachable: exit 2.
    for cmd in (("status",), ("requeue", "--all")):
        r = inboxd_cmd(*cmd, config={"postgres.conninfo": "host=127.0.0.1 port=1 dbname=x connect_timeout=3"})
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        assert "cannot connect to PostgreSQL" in r.stderr and r.stdout == ""
    # A role without SELECT on the table: the query fails, exit 2 with the server's reason.
    role = unique_name("r")
    inbox_db.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        r = inboxd_cmd("status", config={"postgres.conninfo": psycopg.conninfo.make_conninfo(inbox_db.conninfo,
                                                                                           user=role)})
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "permission denied for table inbox" in r.stderr
    finally:
        inbox_db.execute(f'DROP ROLE "{role}"')


def test_inboxd_commands_as_the_roles_of_inbox_roles_sql(stack, inbox_db, inboxd_cmd):
    """Every documented operator command works for the inboxd role sql/inbox_roles.sql creates
    (SQL handoff setup, no inbox_push): status, requeue --all and --id. A statement PostgreSQL
    refuses for a missing privilege is one clean line naming the grant (SQLSTATE 42501, not the
    function body PostgreSQL puts in CONTEXT), with the GRANT as the fix."""
    role, proc = unique_name("inboxd"), unique_name("inbox_proc")
    try:
        psql_file(stack, inbox_db.dbname, REPO / "sql" / "inbox_roles.sql", f"inboxd_role={role}",
                  f"processor_role={proc}")
        as_role = {"postgres.conninfo": psycopg.conninfo.make_conninfo(inbox_db.conninfo, user=role)}
        add(inbox_db, "d1", "a")
        add(inbox_db, "d2", "b")
        inbox_db.execute("UPDATE inbox SET status = 'dead', processed_at = now()")
        r = inboxd_cmd("status", config=as_role)
        assert r.returncode == 0 and re.search(r"^dead\s+2 ", r.stdout, re.M), (r.stdout, r.stderr)
        r = inboxd_cmd("requeue", "--id", "d1", config=as_role)
        assert r.returncode == 0 and "d1: requeued (dead -> pending)" in r.stdout, (r.stdout, r.stderr)
        r = inboxd_cmd("requeue", "--all", config=as_role)
        assert (r.returncode, r.stdout) == (0, "requeued 1 dead message of public.inbox\n"), (r.stdout, r.stderr)
        assert inbox_db.scalar("SELECT count(*) FROM inbox WHERE status = 'pending' AND attempts = 0") == 2
        # The role may not rewrite messages: only the columns the requeue sets.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with psycopg.connect(as_role["postgres.conninfo"], autocommit=True) as c:
                c.execute("UPDATE inbox SET payload = 'x'")

        # Without the grant: one line, SQLSTATE 42501, the missing grant and the statement.
        inbox_db.execute(f'REVOKE UPDATE (status, attempts, next_attempt_at, processed_at) ON inbox FROM "{role}"')
        inbox_db.execute("UPDATE inbox SET status = 'dead', processed_at = now()")
        for args in (("requeue", "--all"), ("requeue", "--id", "d2")):
            r = inboxd_cmd(*args, config=as_role)
            assert r.returncode == 2 and r.stdout == "", (args, r.stdout, r.stderr)
            lines = r.stderr.splitlines()
            assert len(lines) == 1, r.stderr
            assert "CONTEXT" not in r.stderr and "WITH u AS" not in r.stderr, r.stderr
            assert "permission denied for table inbox (SQLSTATE 42501)" in r.stderr, r.stderr
            assert (f'role "{role}" lacks UPDATE (status, attempts, next_attempt_at, processed_at) on public.inbox: '
                    f'GRANT UPDATE (status, attempts, next_attempt_at, processed_at) ON public.inbox TO "{role}";'
                    ) in r.stderr, r.stderr
        inbox_db.execute(f'REVOKE SELECT ON inbox FROM "{role}"')
        r = inboxd_cmd("status", config=as_role)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert f'role "{role}" lacks SELECT on public.inbox: GRANT SELECT ON public.inbox TO "{role}";' in r.stderr
    finally:
        drop_roles_of(stack, inbox_db.dbname, role, proc)
