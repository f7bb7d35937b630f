"""The compose tier: `docker compose up` for real (docs/testing.md, "Compose tier").

Starts a Docker daemon confined to this machine (scripts/dockerd.sh), builds the local
stand-ins of the official base images (scripts/docker-local.sh: debootstrap + docker import),
builds the project's images from docker-compose.yml and runs the whole demo: orders in, stock
out, exactly once, across a kill -9 of outboxd and inboxd in the middle of the flow. Also checks
that a container cannot open a connection to the host.

Slow (the first run debootstraps Debian and fetches Kafka's jars: about 10 minutes; later
runs about 3) and needs root and Docker: it runs only with OUTBOXD_TEST_COMPOSE=1. It runs
`docker compose` (v2, the CLI plugin scripts/install-deps.sh builds with
OUTBOXD_TEST_COMPOSE=1), or Debian's docker-compose 1.29 where that plugin is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from harness import REPO, unique_name, wait_until

pytestmark = pytest.mark.skipif(os.environ.get("OUTBOXD_TEST_COMPOSE") != "1",
                                reason="the compose tier runs with OUTBOXD_TEST_COMPOSE=1 (docs/testing.md)")

DOCKER = shutil.which("docker", path="/usr/bin") or "docker"  # Debian's CLI, matching its daemon


def run(*cmd: str, env: dict | None = None, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def docker_env():
    """A confined Docker daemon and the local base images; the environment that points
    docker-compose.yml at them."""
    if os.geteuid() != 0:
        pytest.fail("the compose tier needs root (dockerd, debootstrap)", pytrace=False)
    for tool in ("dockerd", "docker-compose", "debootstrap", "iptables"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed: run scripts/install-deps.sh", pytrace=False)
    env = {**os.environ, "DOCKER": DOCKER}
    already = run(DOCKER, "info", check=False, timeout=60).returncode == 0
    run(str(REPO / "scripts/dockerd.sh"), "start", env=env, timeout=120)
    try:
        run(str(REPO / "scripts/docker-local.sh"), "images", env=env, timeout=1800)
        images = run(str(REPO / "scripts/docker-local.sh"), "env", env=env).stdout
        for line in images.split():
            k, _, v = line.partition("=")
            env[k] = v
        env["OUTBOXD_BUILD_NETWORK"] = "none"  # the builds reach no package archive either
        env["DOCKER_HOST"] = "unix:///var/run/docker.sock"
        env["PATH"] = "/usr/bin:" + env["PATH"]  # docker-compose, docker: Debian's
        yield env
    finally:
        if not already:
            run(str(REPO / "scripts/dockerd.sh"), "stop", env=env, timeout=120, check=False)


def compose_cli(env: dict) -> list[str]:
    """`docker compose` (v2) when the plugin is installed, else Debian's docker-compose (v1)."""
    if run(DOCKER, "compose", "version", env=env, check=False, timeout=60).returncode == 0:
        return [DOCKER, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no compose CLI: run OUTBOXD_TEST_COMPOSE=1 scripts/install-deps.sh", pytrace=False)


class Compose:
    def __init__(self, env: dict):
        self.env = env
        self.cli = compose_cli(env)
        self.project = unique_name("outboxd_compose")

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return run(*self.cli, "-p", self.project, *args, env=self.env, timeout=timeout, check=check)

    def sql(self, service: str, db: str, query: str) -> str:
        return self("exec", "-T", service, "psql", "-U", "postgres", "-d", db, "-qAtX", "-c", query,
                    timeout=60).stdout.strip()

    def health(self, service: str) -> str:
        """The healthcheck status of the service's container ("" when it has none or no container)."""
        cid = self("ps", "-q", service, timeout=60, check=False).stdout.strip()
        if not cid:
            return ""
        r = run(DOCKER, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", cid,
                env=self.env, timeout=60, check=False)
        return r.stdout.strip()


@pytest.fixture
def compose(docker_env):
    c = Compose(docker_env)
    yield c
    c("logs", "--no-color", "--tail", "30", timeout=120, check=False)
    c("down", "-v", "--remove-orphans", "-t", "20", timeout=300, check=False)


def healthy(c: Compose, services: list[str]) -> bool:
    return all(c.health(s) == "healthy" for s in services)


@pytest.mark.timeout(2700)
def test_compose_up_orders_in_stock_out_exactly_once(compose):
    c = compose
    c("build", timeout=1500)
    c("up", "-d", timeout=600)
    wait_until(lambda: healthy(c, ["postgres-orders", "postgres-inventory", "kafka", "outboxd", "inboxd"]),
               300, 2, "the databases, Kafka, outboxd and inboxd to be healthy")

    def processed() -> int:
        return int(c.sql("postgres-inventory", "inventory", "SELECT count(*) FROM stock_changes") or 0)

    wait_until(lambda: processed() >= 4, 180, 2, "the inventory service to process 4 orders")
    # Crash both daemons in the middle of the flow; the order service keeps writing.
    c("kill", "-s", "KILL", "outboxd", "inboxd", timeout=60)
    time.sleep(5)
    c("start", "outboxd", "inboxd", timeout=300)  # the same containers: their logs keep both runs
    wait_until(lambda: healthy(c, ["outboxd", "inboxd"]), 180, 2, "outboxd and inboxd healthy again")
    time.sleep(6)  # a few more orders after the restart
    c("stop", "-t", "20", "order-service", timeout=120)
    orders = int(c.sql("postgres-orders", "orders", "SELECT count(*) FROM orders"))
    assert orders >= 6
    wait_until(lambda: processed() == orders, 240, 2, f"all {orders} orders processed")
    # Exactly once: one stock change per order, the stock moved by exactly the ordered
    # quantities, every inbox row done, each order once in the inbox.
    per_order = c.sql("postgres-inventory", "inventory",
                      "SELECT count(DISTINCT order_id) || ' ' || count(*) FROM stock_changes")
    assert per_order == f"{orders} {orders}"
    ordered = c.sql("postgres-orders", "orders", "SELECT string_agg(sku || '=' || q, ',' ORDER BY sku) "
                    "FROM (SELECT sku, sum(qty) AS q FROM orders GROUP BY sku) s")
    moved = c.sql("postgres-inventory", "inventory", "SELECT string_agg(sku || '=' || (1000 - on_hand), ',' "
                  "ORDER BY sku) FROM stock WHERE on_hand < 1000")
    assert moved == ordered
    assert c.sql("postgres-inventory", "inventory",
                 "SELECT count(*) || ' ' || count(*) FILTER (WHERE status = 'done') || ' ' || "
                 "count(DISTINCT inbox_json(payload)->>'order_id') FROM inbox") == f"{orders} {orders} {orders}"
    # The relay and the sidecar reported their own crash recovery, not an error.
    logs = c("logs", "--no-color", "outboxd", "inboxd", timeout=120).stdout
    assert logs.count("streaming slot") >= 2, logs[-3000:]
    assert " ERROR: " not in logs, logs[-3000:]


@pytest.mark.timeout(600)
def test_containers_cannot_connect_to_the_host(docker_env):
    """scripts/dockerd.sh's INPUT rule: a container reaches other containers and nothing on
    the host; here a listener on all of the host's addresses, dialled at the bridge gateway."""
    env = docker_env
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen(5)
    port = srv.getsockname()[1]
    accepted: list = []

    def accept():
        srv.settimeout(20)
        try:
            accepted.append(srv.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        # The image has neither Python nor iproute2: bash's /dev/tcp, the gateway from /proc/net/route.
        script = (f"gw=$(awk '$2==\"00000000\" {{print $3}}' /proc/net/route | head -1); "
                  "ip=$(printf '%d.%d.%d.%d' 0x${gw:6:2} 0x${gw:4:2} 0x${gw:2:2} 0x${gw:0:2}); "
                  f"if timeout 5 bash -c \"exec 3<>/dev/tcp/$ip/{port}\"; then echo connected $ip; else echo blocked $ip; fi")
        r = run(DOCKER, "run", "--rm", env["OUTBOXD_DEBIAN_IMAGE"], "bash", "-c", script, env=env, timeout=120)
        assert r.stdout.startswith("blocked 10.213."), r.stdout + r.stderr
        assert not accepted
    finally:
        srv.close()
        t.join(25)
