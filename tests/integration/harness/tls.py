"""The TLS/SASL servers of scripts/tls-stack.sh: where they are, their CA, secrets and connection settings.

The plain stack (stack.py) trusts everyone; this one speaks only TLS: PostgreSQL with a
hostssl-only pg_hba.conf and scram-sha-256, Kafka with SASL_SSL (SCRAM-SHA-512). The test
session starts it when it does not run (and stops it again at the end); a running one, with
the same state dir, is reused and left running.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .db import INBOX_SQL, OUTBOX_SQL, Db
from .stack import REPO, parse_env_file
from .util import unique_name

TLS_STACK_SH = REPO / "scripts" / "tls-stack.sh"
DEFAULT_TLS_STACK_DIR = "/tmp/outboxd-tls-stack"

# The PostgreSQL roles and Kafka users tls-stack.sh makes, and the files of their passwords.
PG_ROLES = ("postgres", "outboxd", "inboxd")
KAFKA_USERS = ("admin", "outboxd", "inboxd")


def tls_stack_dir() -> Path:
    return Path(os.environ.get("OUTBOXD_STACK_TLS_DIR") or DEFAULT_TLS_STACK_DIR)


@dataclass
class TlsStack:
    """The running TLS stack, as <dir>/tls-stack.env describes it."""

    dir: Path
    pg_host: str  # "localhost": the name the servers' certificate holds
    pg_port: int
    pg_socket_dir: Path  # trust, for the tests' own setup as postgres
    kafka: str  # SASL_SSL bootstrap, "localhost:19102"
    kafka_expired: str  # SASL_SSL with an expired certificate
    ca: Path  # signed the servers' certificates
    other_ca: Path  # signed nothing the servers use
    secrets_dir: Path
    pgbin: Path
    env: dict[str, str] = field(default_factory=dict)
    started_here: bool = False

    # --- the stack --------------------------------------------------------------------

    @classmethod
    def load(cls) -> "TlsStack":
        d = tls_stack_dir()
        env = parse_env_file(d / "tls-stack.env")
        return cls(
            dir=d,
            pg_host=env["OUTBOXD_STACK_TLS_PG_HOST"],
            pg_port=int(env["OUTBOXD_STACK_TLS_PG_PORT"]),
            pg_socket_dir=Path(env["OUTBOXD_STACK_TLS_PG_SOCKET_DIR"]),
            kafka=env["OUTBOXD_STACK_TLS_KAFKA"],
            kafka_expired=env["OUTBOXD_STACK_TLS_KAFKA_EXPIRED"],
            ca=Path(env["OUTBOXD_STACK_TLS_CA"]),
            other_ca=Path(env["OUTBOXD_STACK_TLS_OTHER_CA"]),
            secrets_dir=Path(env["OUTBOXD_STACK_TLS_SECRETS"]),
            pgbin=Path(env["OUTBOXD_STACK_TLS_PGBIN"]),
            env=env,
        )

    @classmethod
    def ensure(cls) -> "TlsStack":
        """The running TLS stack, started first when it does not run."""
        running = subprocess.run([str(TLS_STACK_SH), "status"], capture_output=True).returncode == 0
        started = False
        if not running:
            r = subprocess.run([str(TLS_STACK_SH), "start"], capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise AssertionError(f"scripts/tls-stack.sh start failed:\n{r.stdout}\n{r.stderr}")
            started = True
        s = cls.load()
        s.started_here = started
        return s

    def stop(self) -> None:
        subprocess.run([str(TLS_STACK_SH), "stop"], capture_output=True, timeout=120)

    def pg_cert(self, name: str) -> None:
        """PostgreSQL serves certificate name ("good" or "expired") from now on."""
        subprocess.run([str(TLS_STACK_SH), "pg-cert", name], check=True, capture_output=True, timeout=60)

    def secret(self, name: str) -> str:
        """A password of the stack: pg-postgres, pg-outboxd, pg-inboxd, kafka-admin, kafka-outboxd, kafka-inboxd."""
        return (self.secrets_dir / name).read_text()

    def secrets(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in self.secrets_dir.iterdir() if not p.name.startswith(".")}

    # --- PostgreSQL -------------------------------------------------------------------

    def pg_conninfo_for(self, dbname: str) -> str:
        """The tests' own connection: postgres over the unix socket (trust)."""
        return make_conninfo(host=str(self.pg_socket_dir), port=self.pg_port, user="postgres", dbname=dbname)

    def pg_connect(self, dbname: str = "postgres", autocommit: bool = True, **kw) -> psycopg.Connection:
        return psycopg.connect(self.pg_conninfo_for(dbname), autocommit=autocommit, **kw)

    def pg_running(self) -> bool:  # for harness.db.drop_database
        return True

    def tls_conninfo(self, dbname: str, user: str, host: str | None = None, **extra) -> str:
        """A daemon's conninfo: TCP with sslmode=verify-full against the stack's CA, no password."""
        params = {"host": host or self.pg_host, "port": self.pg_port, "dbname": dbname, "user": user,
                  "sslmode": "verify-full", "sslrootcert": str(self.ca)}
        params.update(extra)
        return make_conninfo(**params)

    def psql_file(self, dbname: str, path: Path, **variables: str) -> None:
        """psql -f path as postgres over the socket, with -v name=value variables."""
        argv = [str(self.pgbin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.pg_conninfo_for(dbname)]
        for k, v in variables.items():
            argv += ["-v", f"{k}={v}"]
        subprocess.run(argv + ["-f", str(path)], check=True, capture_output=True, timeout=60)

    def create_outbox_database(self) -> Db:
        """A new database with sql/outbox.sql and sql/roles.sql (role outboxd with the stack's
        password, DELETE for outbox.cleanup)."""
        db = self._create_database()
        db.conn.execute(OUTBOX_SQL.read_text())
        self.psql_file(db.dbname, REPO / "sql" / "roles.sql",
                       relay_password=_sql_literal(self.secret("pg-outboxd")), relay_cleanup="on")
        return db

    def create_inbox_database(self) -> Db:
        """A new database with sql/inbox.sql and sql/inbox_roles.sql (role inboxd, HTTP push grants)."""
        db = self._create_database()
        db.conn.execute(INBOX_SQL.read_text())
        self.psql_file(db.dbname, REPO / "sql" / "inbox_roles.sql",
                       inboxd_password=_sql_literal(self.secret("pg-inboxd")), inbox_push="on")
        return db

    def _create_database(self) -> Db:
        dbname = unique_name("tls")
        with self.pg_connect() as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return Db(self, dbname)  # type: ignore[arg-type]  (Db needs pg_conninfo_for only)

    def ssl_of(self, dbname: str) -> list[tuple[str, str, bool]]:
        """(application_name, user, ssl) of every client connection to dbname."""
        with self.pg_connect() as c:
            return c.execute(
                "SELECT a.application_name, a.usename, s.ssl FROM pg_stat_activity a "
                "JOIN pg_stat_ssl s USING (pid) WHERE a.datname = %s AND a.pid <> pg_backend_pid()",
                (dbname,)).fetchall()

    # --- Kafka --------------------------------------------------------------------------

    def kafka_client_config(self, user: str = "admin") -> dict[str, str]:
        """confluent_kafka settings for user over SASL_SSL with broker verification."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": self.secret(f"kafka-{user}"),
            "ssl.ca.location": str(self.ca),
        }

    def kafka_keys(self, user: str, bootstrap: str | None = None) -> dict[str, str]:
        """A daemon's kafka.* keys for user, without the password."""
        return {
            "kafka.bootstrap.servers": bootstrap or self.kafka,
            "kafka.security.protocol": "SASL_SSL",
            "kafka.sasl.mechanisms": "SCRAM-SHA-512",
            "kafka.sasl.username": user,
            "kafka.ssl.ca.location": str(self.ca),
        }


def _sql_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
