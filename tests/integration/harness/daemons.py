"""The outboxd and inboxd processes under test: their binaries, config files, logs and sanitizer reports."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .stack import REPO

# outboxd maps every OUTBOXD_<KEY> environment variable onto a config key and refuses
# unknown ones; the harness's own variables (OUTBOXD_STACK_*, OUTBOXD_BIN, ...) must
# not reach it. Only variables a test passes explicitly do.
HARNESS_ENV_PREFIX = "OUTBOXD_"


# setpriv (util-linux) execs outboxd with PR_SET_PDEATHSIG=SIGKILL: if pytest dies
# (kill -9, timeout of the CI job), no orphaned relay keeps a slot busy. The pid is
# outboxd's own, as setpriv execs it.
_SETPRIV = shutil.which("setpriv")


def default_outboxd_bin() -> Path:
    return Path(os.environ.get("OUTBOXD_BIN") or REPO / "build" / "outboxd")


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Writes `key = value` lines (None values are left out; bools as true/false)."""
    lines = ["# written by tests/integration (outboxd fixture)"]
    for k, v in config.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        v = str(v)
        if "\n" in v:
            raise ValueError(f"config value of {k} has a newline")
        lines.append(f"{k} = {v}")
    path.write_text("\n".join(lines) + "\n")
    return path


SANITIZER_REPORT = re.compile(
    r"(ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: |SUMMARY: UndefinedBehaviorSanitizer)"
)


class Outboxd:
    """One outboxd process started with `-c <config file>`; output goes to log_path.

    start() may be called again after the process exited (restart with the same
    config); the log file is appended to and wait_for_log() only looks at the output
    of the latest start unless told otherwise.
    """

    def __init__(self, binary: Path, config_path: Path, log_path: Path,
                 args: Sequence[str] = (), env: dict[str, str] | None = None,
                 config: dict[str, Any] | None = None):
        self.binary = Path(binary)
        self.config = dict(config or {})  # what config_path holds
        self.config_path = config_path
        self.log_path = log_path
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        # argv prefix that runs the daemon elsewhere, e.g. in a network namespace
        # (["ip", "netns", "exec", NAME], which execs: the pid stays the daemon's).
        self.wrap: list[str] = []
        self.starts = 0
        self._log_start = 0  # byte offset in the log where the latest run begins

    @property
    def argv(self) -> list[str]:
        return [str(self.binary), "-c", str(self.config_path), *self.args]

    name = "outboxd"  # the daemon, in messages
    bin_env = "OUTBOXD_BIN"  # the variable that points the tests at another binary
    dropped_env_prefixes: tuple[str, ...] = (HARNESS_ENV_PREFIX,)  # not passed to the daemon

    def start(self) -> "Outboxd":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} already running (pid {self.proc.pid})")
        if not self.binary.is_file():
            raise AssertionError(
                f"{self.name} binary {self.binary} not found: build it (cmake -S . -B build -G Ninja && "
                f"ninja -C build) or set {self.bin_env}"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(self.dropped_env_prefixes)}
        env.update(self.extra_env)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"==== harness: start #{self.starts}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self._log_start = log.tell()
            argv = self.argv
            if _SETPRIV and threading.current_thread() is threading.main_thread():
                argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
            argv = [*self.wrap, *argv]
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.log_path.parent,
            )
        return self

    # --- state ------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, "outboxd not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def rss_kb(self) -> int:
        """Resident set size (VmRSS) in kB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for pid {self.pid} (exited?)")

    # --- log ------------------------------------------------------------------------------

    def log_text(self, all_runs: bool = True) -> str:
        """The captured stdout+stderr (of every start, or only the latest)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        if not all_runs:
            data = data[self._log_start:]
        return data.decode("utf-8", "replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = 30, all_runs: bool = False,
                     after: int = 0) -> re.Match:
        """Waits until the log (of the latest start, by default) matches pattern
        (re.search, MULTILINE); returns the match. Fails early if outboxd exits first.
        `after`: only look at text after this character offset of log_text()."""
        rx = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            exited = self.returncode is not None  # read before the log: no lost lines
            m = rx.search(self.log_text(all_runs), after)
            if m:
                return m
            if exited:
                raise AssertionError(
                    f"outboxd exited ({self.returncode}) before logging /{rx.pattern}/; log tail:\n"
                    + self.log_tail())
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"outboxd did not log /{rx.pattern}/ within {timeout}s; log tail:\n" + self.log_tail())
            time.sleep(0.05)

    # --- stopping ---------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        if self.is_running():
            self.proc.send_signal(sig)

    def kill9(self) -> int | None:
        """SIGKILL and reap; returns the exit code (-9)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, wait up to timeout; returns the exit code. Raises if it does not exit."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 30) -> int:
        """Waits for the process to exit on its own; returns the exit code (-N: signal N)."""
        assert self.proc is not None, "outboxd not started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"outboxd (pid {self.pid}) still running after {timeout}s; log tail:\n"
                                 + self.log_tail())

    def sanitizer_report(self) -> str | None:
        """The first ASan/UBSan report line in the log, if any."""
        m = SANITIZER_REPORT.search(self.log_text())
        if not m:
            return None
        text = self.log_text()
        start = text.rfind("\n", 0, m.start()) + 1
        return text[start:text.find("\n", m.end())]


def default_inboxd_bin() -> Path:
    """build/inboxd, or $OUTBOXD_TEST_INBOXD_BIN (a harness variable: OUTBOXD_* never reaches the daemons)."""
    return Path(os.environ.get("OUTBOXD_TEST_INBOXD_BIN") or REPO / "build" / "inboxd")


class Inboxd(Outboxd):
    """One inboxd process started with `-c <config file>`, as Outboxd (same methods). Its
    environment has neither the harness's OUTBOXD_* nor any INBOXD_* variable, except
    those a test passes in env."""

    name = "inboxd"
    bin_env = "OUTBOXD_TEST_INBOXD_BIN"
    dropped_env_prefixes = (HARNESS_ENV_PREFIX, "INBOXD_")
