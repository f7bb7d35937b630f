"""The local test stack (PostgreSQL + Kafka started by scripts/stack.sh): stack.env and fault injection."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

REPO = Path(__file__).resolve().parents[3]
STACK_SH = REPO / "scripts" / "stack.sh"
DEFAULT_STACK_DIR = "/tmp/outboxd-stack"


class StackNotRunning(Exception):
    pass


@dataclass
class Stack:
    """The running local stack, as described by <stack dir>/stack.env."""

    dir: Path
    pg_conninfo: str
    pg_port: int
    kafka: str  # bootstrap servers, "127.0.0.1:19092"
    kafka_libs: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, stack_dir: str | os.PathLike | None = None) -> "Stack":
        d = Path(stack_dir or os.environ.get("OUTBOXD_STACK_DIR") or DEFAULT_STACK_DIR)
        env_file = d / "stack.env"
        if not env_file.is_file():
            raise StackNotRunning(
                f"no test stack: {env_file} does not exist. Start one with: scripts/stack.sh start"
            )
        env = parse_env_file(env_file)
        try:
            return cls(
                dir=d,
                pg_conninfo=env["OUTBOXD_STACK_PG_CONNINFO"],
                pg_port=int(env["OUTBOXD_STACK_PG_PORT"]),
                kafka=env["OUTBOXD_STACK_KAFKA"],
                kafka_libs=Path(env["OUTBOXD_STACK_KAFKA_LIBS"]),
                env=env,
            )
        except KeyError as e:
            raise StackNotRunning(f"{env_file} lacks {e}; restart the stack: scripts/stack.sh stop && scripts/stack.sh start")

    @property
    def kafka_port(self) -> int:
        return int(self.kafka.rsplit(":", 1)[1])

    def pg_conninfo_for(self, dbname: str) -> str:
        return make_conninfo(self.pg_conninfo, dbname=dbname)

    def pg_connect(self, dbname: str = "postgres", autocommit: bool = True, **kw) -> psycopg.Connection:
        return psycopg.connect(self.pg_conninfo_for(dbname), autocommit=autocommit, **kw)

    def check(self, timeout: float = 5.0) -> None:
        """Raises StackNotRunning unless PostgreSQL and Kafka both answer."""
        try:
            with self.pg_connect(connect_timeout=max(2, int(timeout))) as c:
                c.execute("SELECT 1")
        except psycopg.Error as e:
            raise StackNotRunning(
                f"PostgreSQL of the test stack ({self.pg_conninfo}) is not reachable: {e}\n"
                f"Start the stack with: scripts/stack.sh start"
            )
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.kafka}).list_topics(timeout=timeout)
        except Exception as e:  # KafkaException
            raise StackNotRunning(
                f"Kafka of the test stack ({self.kafka}) is not reachable: {e}\n"
                f"Start the stack with: scripts/stack.sh start"
            )

    # --- fault injection: scripts/stack.sh subcommands --------------------------

    def ctl(self, command: str, timeout: float = 180) -> str:
        """Runs scripts/stack.sh COMMAND on this stack; returns its output; raises on failure."""
        env = dict(os.environ, OUTBOXD_STACK_DIR=str(self.dir))
        r = subprocess.run(
            [str(STACK_SH), command],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise RuntimeError(f"scripts/stack.sh {command} failed ({r.returncode}):\n{r.stdout}")
        return r.stdout

    def pg_running(self) -> bool:
        try:
            with self.pg_connect(connect_timeout=2) as c:
                c.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False


def parse_env_file(path: Path) -> dict[str, str]:
    """Parses `export NAME='value'` lines as written by scripts/stack.sh."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        if words and words[0] == "export":
            words = words[1:]
        for w in words:
            k, sep, v = w.partition("=")
            if sep:
                env[k] = v
    return env


class StackFaults:
    """Stops/kills/restarts the stack's servers for fault tests; whatever a test took
    down is brought back by restore() (the `faults` fixture calls it at teardown)."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self._pg_down = False
        self._kafka_down = False

    def pg_stop(self):
        self._pg_down = True
        return self.stack.ctl("pg-stop")

    def pg_kill(self):
        """Crash PostgreSQL (immediate shutdown; crash recovery at the next start)."""
        self._pg_down = True
        return self.stack.ctl("pg-kill")

    def pg_start(self):
        out = self.stack.ctl("pg-start")
        self._pg_down = False
        return out

    def pg_restart(self):
        self._pg_down = True
        out = self.stack.ctl("pg-restart")
        self._pg_down = False
        return out

    def kafka_stop(self):
        self._kafka_down = True
        return self.stack.ctl("kafka-stop")

    def kafka_kill(self):
        self._kafka_down = True
        return self.stack.ctl("kafka-kill")

    def kafka_start(self):
        out = self.stack.ctl("kafka-start")
        self._kafka_down = False
        return out

    def kafka_restart(self):
        self.kafka_stop()
        return self.kafka_start()

    def kafka_pid(self) -> int:
        return int((self.stack.dir / "kafka" / "kafka.pid").read_text().strip())

    def kafka_pause(self):
        """SIGSTOP the broker: it hangs with every connection open (restore() resumes it)."""
        os.kill(self.kafka_pid(), signal.SIGSTOP)
        self._kafka_paused = True

    def kafka_resume(self):
        os.kill(self.kafka_pid(), signal.SIGCONT)
        self._kafka_paused = False

    def restore(self):
        if getattr(self, "_kafka_paused", False):
            self.kafka_resume()
        if self._pg_down:
            self.pg_start()
        if self._kafka_down:
            self.kafka_start()
