"""A PostgreSQL primary + streaming standby (scripts/pgpair.sh) for failover tests: start,
crash the primary, promote the standby, read the pair's connection strings."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import psycopg

from .stack import REPO

PGPAIR = REPO / "scripts" / "pgpair.sh"


class PgPair:
    """One pair in `directory` with n1 on `port` and n2 on port+1 (version 15: host
    binaries; 17: the trixie root of scripts/pg17-root.sh). The conninfo properties name
    database `dbname` (created on the primary by create_database)."""

    def __init__(self, directory: Path, port: int, version: int = 15, dbname: str = "postgres"):
        self.dir, self.port, self.version, self.dbname = Path(directory), port, version, dbname

    def _run(self, *args: str, timeout: float = 600) -> str:
        env = dict(os.environ, PGPAIR_DIR=str(self.dir), PGPAIR_PORT=str(self.port),
                   PGPAIR_VERSION=str(self.version))
        r = subprocess.run([str(PGPAIR), *args], env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"pgpair.sh {shlex.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def start(self) -> "PgPair":
        self._run("start", str(self.dir), str(self.port))
        return self

    def stop(self) -> None:
        self._run("stop")

    def kill_primary(self) -> None:
        self._run("kill-primary")

    def promote(self) -> None:
        self._run("promote")

    def reseed(self) -> None:
        self._run("reseed")

    def wait_synced(self, slot: str, seconds: int = 60) -> None:
        self._run("wait-synced", slot, str(seconds), timeout=seconds + 30)

    def env(self) -> dict[str, str]:
        """pair.env as a dict (PGPAIR_PRIMARY_PORT, PGPAIR_CONNINFO, ...); re-read each time:
        a promotion rewrites it."""
        out = {}
        for line in (self.dir / "pair.env").read_text().splitlines():
            if line.startswith("export "):
                k, _, v = line[len("export "):].partition("=")
                out[k] = shlex.split(v)[0] if v else ""
        return out

    def _with_db(self, conninfo: str) -> str:
        return conninfo.replace("dbname=postgres", f"dbname={self.dbname}")

    @property
    def conninfo(self) -> str:
        """Both nodes, target_session_attrs=read-write: whichever is the primary."""
        return self._with_db(self.env()["PGPAIR_CONNINFO"])

    @property
    def primary_conninfo(self) -> str:
        return self._with_db(self.env()["PGPAIR_PRIMARY_CONNINFO"])

    def create_database(self, dbname: str, schema_sql: Path) -> None:
        """Creates dbname on the primary with schema_sql applied (the standby replicates it)."""
        admin = self.env()["PGPAIR_PRIMARY_CONNINFO"]
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{dbname}"')
        self.dbname = dbname
        with psycopg.connect(self.primary_conninfo, autocommit=True) as c:
            c.execute(schema_sql.read_text())
