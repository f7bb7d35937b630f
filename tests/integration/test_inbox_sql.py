"""The SQL handoff of sql/inbox.sql against a real PostgreSQL: inbox_claim (per-key order,
SKIP LOCKED, leases), inbox_complete, inbox_fail (backoff with jitter, dead after max
attempts), inbox_requeue_dead, the status views, NOTIFY and idempotent re-runs.

Rows are inserted directly here, as inboxd would; test_inbox.py covers inboxd itself.
"""

from __future__ import annotations

import random
import threading
import time

import psycopg
import pytest

import helpers


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
    inbox_db.conn.execute(helpers.INBOX_SQL.read_text())
    names = {r[0] for r in inbox_db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace")}
    for f in ("inbox_claim(integer,interval)", "inbox_complete(text)",
              "inbox_fail(text,text,integer,interval,interval)", "inbox_requeue_dead(text)",
              "inbox_text(bytea)", "inbox_json(bytea)", "inbox_notify()"):
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
