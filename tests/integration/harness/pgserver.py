"""PostgreSQL server-level setup: output_plugin_libraries, login roles, a throwaway wal_level=replica server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from psycopg import sql

from .stack import Stack
from .util import unique_name, wait_until

# --------------------------------------------------------------------------- output_plugin_libraries

PLUGIN_LIBS_OK = "ALTER SYSTEM SET output_plugin_libraries = pgoutput, test_decoding, wal2json"


def set_plugin_libraries(stack: Stack, statement: str, want_wal2json: bool) -> None:
    """Runs an ALTER SYSTEM statement on the stack's server, reloads it and waits until new
    sessions see output_plugin_libraries with (or without) wal2json."""
    with stack.pg_connect() as c:
        c.execute(statement)
        c.execute("SELECT pg_reload_conf()")

    def applied():  # new backends see the reloaded value once the postmaster has processed SIGHUP
        with stack.pg_connect() as c:
            v = c.execute("SHOW output_plugin_libraries").fetchone()[0]
        return ("wal2json" in v) == want_wal2json

    wait_until(applied, 10, what=f"output_plugin_libraries {'with' if want_wal2json else 'without'} "
                                 f"wal2json")


# --------------------------------------------------------------------------- roles


def create_login_role(stack: Stack, prefix: str = "r") -> str:
    """CREATE ROLE <prefix>_<random> LOGIN (no REPLICATION); returns its name."""
    role = unique_name(prefix)
    with stack.pg_connect() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    return role


def drop_role(stack: Stack, role: str) -> None:
    with stack.pg_connect() as c:
        c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def psql_file(stack: Stack, dbname: str, path, *variables: str) -> None:
    """psql -f path on dbname as the superuser, with -v variables ("name=value"); fails the
    test with psql's stderr unless it succeeds (ON_ERROR_STOP)."""
    r = subprocess.run(["psql", stack.pg_conninfo_for(dbname), "-qX", "-v", "ON_ERROR_STOP=1",
                        *[a for v in variables for a in ("-v", v)], "-f", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def drop_roles_of(stack: Stack, dbname: str, *roles: str) -> None:
    """DROP OWNED BY each role in dbname (its grants there), then DROP ROLE IF EXISTS."""
    with stack.pg_connect(dbname) as c:
        for r in roles:
            if c.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (r,)).fetchone()[0]:
                c.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(r)))
    for r in roles:
        drop_role(stack, r)


# --------------------------------------------------------------------------- a throwaway PostgreSQL

PG2_PASSWORD = "right-Pw-42"


def pg2_port() -> int:
    """OUTBOXD_TEST_PG2_PORT, or a port that is free right now (tried from 25632 up: other
    stacks and throwaway servers of parallel runs may hold some)."""
    if os.environ.get("OUTBOXD_TEST_PG2_PORT"):
        return int(os.environ["OUTBOXD_TEST_PG2_PORT"])
    for port in range(25632, 25732):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 25632..25731 for the throwaway PostgreSQL")


@contextlib.contextmanager
def throwaway_postgres(stack: Stack) -> Iterator[int]:
    """A second PostgreSQL (the stack's binaries) with wal_level = replica and scram-sha-256
    password authentication (PG2_PASSWORD for user postgres) on 127.0.0.1. Yields its port;
    stopped and deleted afterwards."""
    pgbin = Path(stack.env.get("OUTBOXD_STACK_PGBIN", "/usr/lib/postgresql/15/bin"))
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    d = Path(tempfile.mkdtemp(prefix="outboxd-pg2-", dir="/tmp"))
    data = d / "data"
    try:
        if as_pg:
            shutil.chown(d, "postgres", "postgres")
        pwfile = d / "pw"
        pwfile.write_text(PG2_PASSWORD + "\n")
        if as_pg:
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(as_pg + [str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
                                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                                "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, timeout=120)
        for attempt in range(5):  # the port may be taken between the check and the start
            port = pg2_port()
            with open(data / "postgresql.conf", "a") as f:  # the last port line wins
                f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{d}'\n"
                        "wal_level = replica\nfsync = off\n")
            r = subprocess.run(as_pg + [str(pgbin / "pg_ctl"), "-D", str(data), "-l", str(d / "log"), "-w",
                                        "-t", "60", "start"], capture_output=True, timeout=90)
            if r.returncode == 0:
                break
            log = (d / "log").read_text(errors="replace") if (d / "log").exists() else ""
            if "could not bind" not in log or attempt == 4:
                raise RuntimeError(f"throwaway PostgreSQL did not start on port {port}:\n{r.stderr.decode()}\n{log}")
        yield port
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(as_pg + [str(pgbin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)
