"""Throwaway PostgreSQL databases of the stack (outbox or inbox schema), their slots, and LSN arithmetic."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .stack import REPO, Stack
from .util import unique_name, wait_until

OUTBOX_SQL = REPO / "sql" / "outbox.sql"
INBOX_SQL = REPO / "sql" / "inbox.sql"


class Db:
    """A throwaway database of the test stack holding the default outbox table."""

    def __init__(self, stack: Stack, dbname: str):
        self.stack = stack
        self.dbname = dbname
        self.conninfo = stack.pg_conninfo_for(dbname)
        self._conns: list[psycopg.Connection] = []
        self.conn = self.connect()

    # --- connections -------------------------------------------------------------

    def connect(self, autocommit: bool = True, **kw) -> psycopg.Connection:
        """A new connection to this database; closed at teardown."""
        c = psycopg.connect(self.conninfo, autocommit=autocommit, **kw)
        self._conns.append(c)
        return c

    def reconnect(self) -> psycopg.Connection:
        """Replaces self.conn (e.g. after a PostgreSQL restart broke it)."""
        try:
            self.conn.close()
        except Exception:
            pass
        self.conn = self.connect()
        return self.conn

    def execute(self, query, params=None, conn: psycopg.Connection | None = None) -> list[tuple]:
        """Runs one statement on conn (default self.conn); returns its rows ([] if none)."""
        cur = (conn or self.conn).execute(query, params)
        return cur.fetchall() if cur.description else []

    def scalar(self, query, params=None, conn: psycopg.Connection | None = None):
        rows = self.execute(query, params, conn)
        return rows[0][0] if rows else None

    # --- outbox -------------------------------------------------------------------------

    def insert_event(
        self,
        aggregate_type: str,
        aggregate_id: str,
        event_type: str,
        payload: Any,
        headers: Any = None,
        conn: psycopg.Connection | None = None,
        table: str = "public.outbox",
    ) -> str:
        """Inserts one outbox row; returns its id (uuid as str).

        payload/headers: a str is taken as JSON text (cast to jsonb as is); anything
        else (dict, list, number, bool, Jsonb) is serialised to JSON. headers=None
        stores SQL NULL. With conn inside an open transaction, the row is part of it.
        """
        q = sql.SQL(
            "INSERT INTO {} (aggregate_type, aggregate_id, event_type, payload, headers) "
            "VALUES (%s, %s, %s, %s::jsonb, %s::jsonb) RETURNING id"
        ).format(sql.SQL(table))
        row = (conn or self.conn).execute(
            q, (aggregate_type, aggregate_id, event_type, _jsonb(payload), _jsonb(headers))
        ).fetchone()
        return str(row[0])

    def emit_message(self, content: str | bytes, prefix: str = "outbox", transactional: bool = True,
                     conn: psycopg.Connection | None = None) -> str:
        """pg_logical_emit_message(transactional, prefix, content); returns its LSN."""
        return str(
            (conn or self.conn)
            .execute("SELECT pg_logical_emit_message(%s, %s, %s)", (transactional, prefix, content))
            .fetchone()[0]
        )

    # --- WAL and slots ----------------------------------------------------------------

    def current_wal_lsn(self) -> str:
        return str(self.scalar("SELECT pg_current_wal_lsn()"))

    def create_slot(self, slot: str, plugin: str = "wal2json") -> str:
        """Creates a logical slot in this database; returns its consistent point LSN."""
        return str(self.scalar("SELECT lsn FROM pg_create_logical_replication_slot(%s, %s)", (slot, plugin)))

    def create_outboxd_slot(self, slot: str, plugin: str = "wal2json", tables: str = "public.outbox") -> str:
        """Creates the slot outboxd streams with plugin; for pgoutput first the publication
        outboxd would create ("outboxd", publish = 'insert', publish_via_partition_root): pgoutput
        cannot decode WAL written before its publication existed."""
        if plugin == "pgoutput" and not self.scalar("SELECT count(*) FROM pg_publication WHERE pubname = 'outboxd'"):
            self.execute(f"CREATE PUBLICATION outboxd FOR TABLE {tables} "
                         "WITH (publish = 'insert', publish_via_partition_root = true)")
        return self.create_slot(slot, plugin)

    def slot_info(self, slot: str) -> dict | None:
        """The slot's row of pg_replication_slots as a dict (None if there is no such
        slot): slot_name, plugin, slot_type, database, temporary, active, active_pid,
        restart_lsn, confirmed_flush_lsn (LSNs as str), wal_status, and
        lag_bytes = pg_current_wal_lsn() - confirmed_flush_lsn."""
        with self.stack.pg_connect() as c:
            cur = c.execute(
                "SELECT slot_name, plugin, slot_type, database, temporary, active, active_pid, "
                "restart_lsn::text, confirmed_flush_lsn::text, wal_status, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag_bytes "
                "FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([d.name for d in cur.description], row))

    def slots(self) -> list[str]:
        """Names of the replication slots of this database."""
        with self.stack.pg_connect() as c:
            return [r[0] for r in c.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = %s ORDER BY 1", (self.dbname,))]

    def wait_slot_confirmed(self, slot: str, lsn: str, timeout: float = 30) -> dict:
        """Waits until the slot's confirmed_flush_lsn >= lsn; returns slot_info."""
        target = lsn_to_int(lsn)

        def ok():
            i = self.slot_info(slot)
            if i and i["confirmed_flush_lsn"] and lsn_to_int(i["confirmed_flush_lsn"]) >= target:
                return i
            return None

        return wait_until(ok, timeout, 0.1, f"slot {slot} confirmed_flush_lsn >= {lsn}")

    def drop_slots(self, timeout: float = 30) -> None:
        """Terminates the walsenders using this database's slots and drops the slots."""
        deadline = time.monotonic() + timeout
        with self.stack.pg_connect() as c:
            while True:
                rows = c.execute(
                    "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s",
                    (self.dbname,),
                ).fetchall()
                if not rows:
                    return
                for name, pid in rows:
                    try:
                        if pid is not None:
                            c.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
                        c.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                    except psycopg.Error:
                        if time.monotonic() >= deadline:
                            raise
                        time.sleep(0.1)  # reacquired or still active: retry

    def close(self) -> None:
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._conns.clear()


def _jsonb(v):
    if v is None:
        return None
    if isinstance(v, Jsonb):
        return v
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode()
    if isinstance(v, str):
        return v
    return Jsonb(v)


def lsn_to_int(lsn: str) -> int:
    """'16/B374D848' -> integer position."""
    hi, lo = str(lsn).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def int_to_lsn(v: int) -> str:
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def create_database(stack: Stack, dbname: str | None = None, outbox: bool = True) -> Db:
    """CREATE DATABASE <dbname> (default t_<random>) with sql/outbox.sql applied."""
    dbname = dbname or unique_name("t")
    with stack.pg_connect() as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db = Db(stack, dbname)
    if outbox:
        db.conn.execute(OUTBOX_SQL.read_text())
    return db


def drop_database(db: Db) -> None:
    db.close()
    if not db.stack.pg_running():
        db.stack.ctl("pg-start")  # a fault test left it down
    db.drop_slots()
    with db.stack.pg_connect() as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.dbname)))


def create_inbox_database(stack: Stack, dbname: str | None = None) -> Db:
    """CREATE DATABASE <dbname> (default t_<random>) with sql/inbox.sql applied (no outbox)."""
    db = create_database(stack, dbname, outbox=False)
    db.conn.execute(INBOX_SQL.read_text())
    return db
