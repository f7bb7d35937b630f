"""The daemons' HTTP endpoint from the tests' side: free ports, GET, /metrics scraping and waiting on metrics."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

from .util import wait_until

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now (for a daemon's http.listen)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> dict[str, float]:
    """Samples of /metrics: 'name' or 'name{labels}' -> value. Checks the text format."""
    status, body = http_get(port, "/metrics")
    assert status == 200, body
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[m.group(1) + (f"{{{m.group(2)}}}" if m.group(2) else "")] = float(m.group(3))
    return out


def wait_metric(port: int, name: str, pred, timeout: float = 30) -> dict[str, float]:
    """Scrapes /metrics until sample `name` exists and pred(value) holds; returns that scrape."""
    last: dict[str, float] = {}

    def ok():
        nonlocal last
        last = scrape(port)
        return name in last and pred(last[name])

    try:
        wait_until(ok, timeout, interval=0.3, what=f"{name} as expected")
    except Exception:
        raise AssertionError(f"{name} = {last.get(name)} after {timeout} s") from None
    return last


def wait_status(port: int, path: str, status: int, timeout: float = 30) -> str:
    """GETs path until it answers with status; returns the body."""
    last = (0, "")

    def ok():
        nonlocal last
        last = http_get(port, path)
        return last[0] == status

    try:
        wait_until(ok, timeout, interval=0.3, what=f"{path} {status}")
    except Exception:
        raise AssertionError(f"{path}: {last} instead of {status} after {timeout} s") from None
    return last[1]
