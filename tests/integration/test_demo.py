"""scripts/demo.sh end to end: orders -> outboxd -> Kafka -> inboxd -> inventory, on a
stack of its own (not the suite's shared one), checked by its exit code and the figures
it prints."""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from harness import REPO, default_outboxd_bin, wait_until

DEMO = REPO / "scripts" / "demo.sh"


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A directory in /tmp that the postgres user can reach (pytest's tmp_path is private)."""
    d = Path(tempfile.mkdtemp(prefix="outboxd-demo-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    # A test that failed half-way (a timeout under load) may leave the demo's daemons, each in
    # a session of its own, holding the demo's ports: the next test would meet them.
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(d) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    if (d / "stack").exists():
        subprocess.run([str(REPO / "scripts" / "stack.sh"), "stop"], capture_output=True, timeout=120,
                       env={**os.environ, "OUTBOXD_STACK_DIR": str(d / "stack")})
    shutil.rmtree(d, ignore_errors=True)


def demo_env(d: Path) -> dict[str, str]:
    """The demo's own stack in d: ports 5 above the shared stack's (whose ports end in 2 by
    convention, so no other stack uses them), overridable with OUTBOXD_TEST_DEMO_PG_PORT
    and OUTBOXD_TEST_DEMO_KAFKA_PORT."""
    pg = int(os.environ.get("OUTBOXD_STACK_PG_PORT", "15432")) + 5
    kafka = int(os.environ.get("OUTBOXD_STACK_KAFKA_PORT", "19092")) + 5
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOXD_STACK_")}
    env.update(
        DEMO_STACK_DIR=str(d / "stack"),
        DEMO_PG_PORT=os.environ.get("OUTBOXD_TEST_DEMO_PG_PORT", str(pg)),
        DEMO_KAFKA_PORT=os.environ.get("OUTBOXD_TEST_DEMO_KAFKA_PORT", str(kafka)),
    )
    build = default_outboxd_bin().parent
    if (build / "CMakeCache.txt").exists():  # the build under test (nothing to rebuild)
        env["DEMO_BUILD_DIR"] = str(build)
    return env


def figure(out: str, pattern: str) -> tuple[str, ...]:
    m = re.search(pattern, out, re.M)
    assert m, f"no line matching {pattern!r} in the demo's output:\n{out[-3000:]}"
    return m.groups()


@pytest.mark.timeout(420)
def test_demo_end_to_end(demo_dir):
    n = 6
    r = subprocess.run([str(DEMO), "--orders", str(n)], env=demo_env(demo_dir), capture_output=True,
                       text=True, timeout=400)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    assert "demo OK" in out
    resent = (n + 4) // 5

    # Each hop, line by line.
    written = re.findall(r"^  orders    \| order (\d+): (\d) x (\S+) for \w+, committed with outbox event \w{8}$",
                         out, re.M)
    assert sorted(int(o) for o, _, _ in written) == list(range(1, n + 1))
    kafka = re.findall(r"^  kafka     \| p\d o\d+ key=(\d+) headers=id=([0-9a-f-]{36}),event_type=OrderPlaced,", out, re.M)
    resent_orders = re.findall(r"^  resend    \| order (\d+) again", out, re.M)
    assert len(resent_orders) == resent
    # Every order once, plus the re-sent ones a second time with the same id.
    assert collections.Counter(k for k, _ in kafka) == collections.Counter(
        [str(i) for i in range(1, n + 1)] + resent_orders)
    assert len(set(kafka)) == n
    applied = re.findall(r"^  inventory \| order (\d+): (\S+) (\d+) -> (\d+) \(-(\d)\), message \w{8} done$", out, re.M)
    assert sorted(int(o) for o, *_ in applied) == list(range(1, n + 1)), "each order applied exactly once"
    qty = {o: (sku, q) for o, q, sku in written}
    for o, sku, before, after, q in applied:
        assert qty[o] == (sku, q) and int(before) - int(after) == int(q)

    # The summary's figures.
    assert figure(out, r"^  orders written +(\d+) \(\+1 rolled back\)$") == (str(n),)
    assert figure(out, r"^  events published +(\d+) to outbox\.event\.order \(rolled-back events seen: (\d+)\)$") == (
        str(n), "0")
    assert figure(out, r"^  events re-sent +(\d+) ") == (str(resent),)
    assert figure(out, r"^  messages in the inbox +(\d+), (\d+) done \(inboxd recorded (\d+), duplicates skipped (\d+)\)$") \
        == (str(n), str(n), str(n), str(resent))
    assert figure(out, r"^  stock updated +(\d+) orders applied once each$") == (str(n),)
    now, = figure(out, r"^  stock now +(.+)$")
    expected = {s: 1000 for s in ("A-100", "B-200", "C-300")}
    for _, q, sku in written:
        expected[sku] -= int(q)
    assert now == " ".join(f"{s}={v}" for s, v in sorted(expected.items()))
    assert figure(out, r"^  exit codes +outboxd (\d+), inboxd (\d+), inventory service (\d+)$") == ("0", "0", "0")
    # The demo removes its stack.
    assert sorted(p.name for p in demo_dir.iterdir()) == ["stack.lock"]


@pytest.mark.timeout(300)
def test_demo_keep_running_until_ctrl_c(demo_dir):
    """--keep-running goes on writing orders until Ctrl-C (SIGINT to the terminal's process
    group), then stops, checks and removes everything like a bounded run."""
    env = demo_env(demo_dir)
    log = demo_dir / "demo.out"
    with open(log, "w") as f:
        # SIGINT at its default: a suite started in the background of a non-interactive shell
        # inherits it ignored, and bash cannot trap a signal ignored when it started.
        p = subprocess.Popen([str(DEMO), "--orders", "2", "--keep-running"], env=env, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # It goes on past the bounded part (orders 1, 2; id 3 went to the rolled-back one): 4, 5, ...
        try:
            wait_until(lambda: re.search(r"^  inventory \| order 5: ", log.read_text(), re.M)
                       or p.poll() is not None, 200, 0.5, "order 5 processed in --keep-running mode")
        except AssertionError as e:
            raise AssertionError(f"{e}; output:\n{log.read_text()[-3000:]}") from None
        assert p.poll() is None, log.read_text()[-3000:]
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole process group
        try:
            rc = p.wait(90)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the demo did not stop within 90 s of Ctrl-C; output:\n{log.read_text()[-3000:]}") \
                from None
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    out = log.read_text()
    # Ctrl-C stops the orders; then the same checks as a bounded run, on every order written.
    assert rc == 0 and "demo OK" in out, out[-3000:]
    written, = figure(out, r"^  orders written +(\d+) \(\+1 rolled back\)$")
    assert int(written) >= 4
    assert figure(out, r"^  stock updated +(\d+) orders applied once each$") == (written,)
    assert figure(out, r"^  messages in the inbox +(\d+), (\d+) done \(inboxd recorded (\d+), duplicates skipped (\d+)\)$") \
        == (written, written, written, "1")
    assert sorted(p.name for p in demo_dir.iterdir()) == ["demo.out", "stack.lock"], "the demo left its stack behind"


def pids_running(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z":
                out.append(pid)
        except (FileNotFoundError, IndexError):
            pass
    return out


@pytest.mark.timeout(600)
def test_demo_recovers_from_a_killed_run(demo_dir):
    """`kill -9` of a running demo leaves its daemons (each in a session of its own), its
    stack (slot "demo", the topic, the group's offsets) and its working directory behind.
    The next run says so, kills what is left, starts on a fresh stack and passes."""
    env = demo_env(demo_dir)
    log = demo_dir / "killed.out"
    work = demo_dir / "stack-run"
    with open(log, "w") as f:
        p = subprocess.Popen([str(DEMO), "--orders", "2", "--keep-running"], env=env, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True)
    left: dict[str, int] = {}
    try:
        try:
            wait_until(lambda: re.search(r"^  inventory \| order 1: ", log.read_text(), re.M)
                       or p.poll() is not None, 200, 0.5, "the first run to process order 1")
        except AssertionError as e:
            raise AssertionError(f"{e}; output:\n{log.read_text()[-3000:]}") from None
        assert p.poll() is None, log.read_text()[-3000:]
        p.kill()  # the script alone: no cleanup trap runs
        p.wait()
        left = {n: int((work / f"{n}.pid").read_text()) for n in ("outboxd", "inboxd", "inventory")}
        assert pids_running(list(left.values())) == list(left.values()), "the killed run left nothing running"

        r = subprocess.run([str(DEMO), "--orders", "3"], env=env, capture_output=True, text=True, timeout=400)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "demo OK" in out, out[-5000:]
        assert f"cleaning up after an earlier run that did not finish ({demo_dir / 'stack'})" in out, out[:3000]
        for n, pid in left.items():
            assert f"  killing its {n} (pid {pid})" in out, out[:3000]
        assert f"  stack: removed {demo_dir / 'stack'}" in out, out[:3000]
        assert figure(out, r"^  orders written +(\d+) \(\+1 rolled back\)$") == ("3",)
        assert figure(out, r"^  messages in the inbox +(\d+), (\d+) done \(inboxd recorded (\d+), duplicates "
                           r"skipped (\d+)\)$") == ("3", "3", "3", "1")
        wait_until(lambda: not pids_running(list(left.values())), 10, 0.2, "the leftover processes to be gone")
        assert sorted(x.name for x in demo_dir.iterdir()) == ["killed.out", "stack.lock"], "the demo left files behind"
    finally:  # whatever the outcome: nothing of either run keeps running
        for pid in [p.pid, *left.values()]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if (demo_dir / "stack").exists():
            subprocess.run([str(REPO / "scripts" / "stack.sh"), "stop"], capture_output=True, timeout=120,
                           env={**env, "OUTBOXD_STACK_DIR": str(demo_dir / "stack")})


@pytest.mark.parametrize("args, message", [
    (["--orders", "x"], "demo: --orders needs a number of orders, 1 or more"),
    (["--orders", "0"], "demo: --orders needs a number of orders, 1 or more"),
    (["--bogus"], "demo: unknown argument --bogus (see --help)"),
])
def test_demo_bad_arguments(args, message, demo_dir):
    r = subprocess.run([str(DEMO), *args], env=demo_env(demo_dir), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.strip() == message, r


def test_demo_scripts_pass_shellcheck():
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck is not installed: run scripts/install-deps.sh", pytrace=False)
    scripts = [DEMO, *sorted((REPO / "demo").rglob("*.sh")),
               *sorted((REPO / "docker").rglob("*.sh"))]
    r = subprocess.run([tool, *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
