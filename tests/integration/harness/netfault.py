"""Network faults between a daemon and its servers: a network namespace of its own, a bridge to the stack, iptables rules.

The daemon runs inside a network namespace that the test creates (`ip netns add`). The
stack's servers listen on 127.0.0.1 of the root namespace and Kafka advertises
127.0.0.1:<port>, so the daemon keeps its usual addresses: in the namespace, a bridge
listens on 127.0.0.1:<port> for every server port and relays each connection to the
same port in the root namespace (the bridge runs in the test process; its listening
sockets are created in the namespace with setns(2) and stay there). The daemon's
connections to the bridge are real TCP connections over the namespace's loopback, and
the faults act on them, packet by packet, with iptables in the namespace:

- loss(port, pct): `-m statistic --mode random --probability` DROP, both directions;
- partition(port): DROP both directions (no RST, no ICMP: the peer hears nothing);
- half_open(port): DROP server -> daemon on the connections established now; new
  connections work (a middlebox that forgot the connection, a peer host that died);
- delay(port, ms): this kernel has no netem qdisc (docs/reliability.md), so the bridge
  holds every chunk ms/2 in each direction before passing it on, in order: each round
  trip takes ms longer.

The bridge's own connections to the servers are never faulted: a server sees the bridge
as its client (as it would see a proxy), so what a server notices of a partition is
silence, as with a real one. Everything is removed by close(); a namespace left behind by
a killed test run (name fx<pid>-...) is removed by the next run once its pid is gone.
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL(None, use_errno=True)


def available() -> str | None:
    """None when network faults can be injected here, else why not."""
    if os.geteuid() != 0:
        return "network fault tests need root (ip netns, iptables)"
    for tool in ("ip", "iptables", "ss"):
        if not shutil.which(tool):
            return f"{tool} not found: run scripts/install-deps.sh"
    return None


def _run(*argv: str, check: bool = True) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def remove_stale() -> None:
    """Removes namespaces fx<pid>-* whose creating process no longer exists."""
    if not NETNS_DIR.is_dir():
        return
    for p in NETNS_DIR.iterdir():
        m = re.fullmatch(r"fx(\d+)-\w+", p.name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _run("ip", "netns", "del", p.name, check=False)


def run_in_netns(ns_path: Path, fn):
    """fn() run by a short-lived thread that entered the namespace (setns changes only the
    calling thread's namespace; sockets made there stay in it); returns its result."""
    out: dict = {}

    def enter():
        fd = os.open(ns_path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                out["err"] = OSError(ctypes.get_errno(), f"setns({ns_path})")
                return
            out["v"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            out["err"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=enter, name="setns")
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["v"]


def _listen_in_netns(ns_path: Path, port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port inside the namespace."""
    def listen():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        return s
    return run_in_netns(ns_path, listen)


class _Pipe:
    """One direction of a bridged connection: reads src, writes dst after `delay` seconds
    (read at each chunk), in order."""

    def __init__(self, src: socket.socket, dst: socket.socket, bridge: "Bridge", name: str):
        self.src, self.dst, self.bridge = src, dst, bridge
        self.q: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, name=f"{name}-r", daemon=True)
        self.writer = threading.Thread(target=self._write, name=f"{name}-w", daemon=True)
        self.reader.start()
        self.writer.start()

    def _read(self):
        try:
            while True:
                data = self.src.recv(65536)
                if not data:
                    break
                self.q.put((time.monotonic() + self.bridge.delay / 2, data))
        except OSError:
            pass
        self.q.put((0.0, None))

    def _write(self):
        try:
            while True:
                due, data = self.q.get()
                if data is None:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.dst.sendall(data)
        except OSError:
            # The other side is gone: close both, so that the peer sees it too.
            for s in (self.src, self.dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Bridge:
    """127.0.0.1:port in the namespace -> 127.0.0.1:port in the root namespace."""

    def __init__(self, ns_path: Path, port: int):
        self.port = port
        self.delay = 0.0  # seconds added to each round trip
        self.listener = _listen_in_netns(ns_path, port)
        self.conns: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept, name=f"bridge-{port}", daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()  # the server is down: the daemon sees the connection closed
                continue
            for s in (down, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.accepted += 1
            self.conns.append((down, up))
            _Pipe(down, up, self, f"b{self.port}-up")
            _Pipe(up, down, self, f"b{self.port}-down")

    def close(self):
        self._closed = True
        try:
            self.listener.close()
        except OSError:
            pass
        for pair in self.conns:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


class NetNs:
    """A network namespace with a bridge for each of `ports`; `prefix` is the argv prefix
    that runs a command inside it. Use as a context manager (or call close())."""

    def __init__(self, ports: list[int]):
        remove_stale()
        self.name = f"fx{os.getpid()}-{os.urandom(3).hex()}"
        _run("ip", "netns", "add", self.name)
        self.path = NETNS_DIR / self.name
        self.bridges: dict[int, Bridge] = {}
        self.rules: list[list[str]] = []
        try:
            self.ip("link", "set", "lo", "up")
            for p in ports:
                self.bridges[p] = Bridge(self.path, p)
        except BaseException:
            self.close()
            raise

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args: str) -> str:
        return _run("ip", "-n", self.name, *args)

    def iptables(self, *args: str) -> str:
        return _run(*self.prefix, "iptables", "-w", *args)

    # --- faults -------------------------------------------------------------------------

    def _add(self, rule: list[str]) -> None:
        self.iptables("-A", "OUTPUT", *rule)
        self.rules.append(rule)

    def partition(self, port: int) -> None:
        """Every packet to and from the server's port is dropped (new connections too)."""
        self._add(["-p", "tcp", "--dport", str(port), "-j", "DROP"])
        self._add(["-p", "tcp", "--sport", str(port), "-j", "DROP"])

    def loss(self, port: int, percent: float) -> None:
        """Each packet to or from the server's port is dropped with this probability."""
        for d in ("--dport", "--sport"):
            self._add(["-p", "tcp", d, str(port), "-m", "statistic", "--mode", "random",
                       "--probability", f"{percent / 100:.4f}", "-j", "DROP"])

    def established(self, port: int) -> list[int]:
        """The daemon-side ports of the connections to the server's port established now."""
        out = _run(*self.prefix, "ss", "-tnH", "state", "established", f"( dport = :{port} )")
        return sorted({int(line.split()[2].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()})

    def half_open(self, port: int) -> list[int]:
        """The connections to the server's port established now stop receiving: packets from
        the server to the daemon are dropped, the daemon's own packets still arrive. New
        connections are not affected. Returns the daemon-side ports."""
        local = self.established(port)
        for lp in local:
            self._add(["-p", "tcp", "--sport", str(port), "--dport", str(lp), "-j", "DROP"])
        return local

    def connect(self, port: int, timeout: float = 5) -> socket.socket:
        """A TCP connection from inside the namespace to 127.0.0.1:port (through the bridge)."""
        return run_in_netns(self.path, lambda: socket.create_connection(("127.0.0.1", port), timeout=timeout))

    def dropped(self) -> int:
        """Packets dropped so far by the fault rules."""
        out = self.iptables("-L", "OUTPUT", "-v", "-x", "-n")
        return sum(int(line.split()[0]) for line in out.splitlines()[2:] if "DROP" in line)

    def delay(self, port: int, ms: float) -> None:
        """Adds ms to each round trip to the server's port (ms/2 in each direction)."""
        self.bridges[port].delay = ms / 1000.0

    def heal(self) -> None:
        """Removes every fault."""
        for rule in reversed(self.rules):
            self.iptables("-D", "OUTPUT", *rule)
        self.rules.clear()
        for b in self.bridges.values():
            b.delay = 0.0

    def close(self) -> None:
        for b in self.bridges.values():
            b.close()
        _run("ip", "netns", "del", self.name, check=False)

    def __enter__(self) -> "NetNs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
