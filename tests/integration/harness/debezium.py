"""The real Debezium next to outboxd (issue 18): the rows both relays read, the converter
settings compared, a Kafka Connect standalone worker running the Debezium PostgreSQL
connector (pgoutput) with its Outbox Event Router, and the recorded Debezium output
(tests/data/debezium/records.json) that the fast tests compare outboxd with.

The jars (Kafka Connect 3.9.1, Debezium 3.1.3) are the benchmark's: bench/debezium/pom.xml,
fetched from Maven Central by scripts/debezium-libs.sh into the cache.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .kafka import Kafka, Record
from .stack import REPO
from .util import wait_until

POM = REPO / "bench" / "debezium" / "pom.xml"
FIXTURE = REPO / "tests" / "data" / "debezium" / "records.json"
LIBS_SCRIPT = REPO / "scripts" / "debezium-libs.sh"
PARTITIONS = 6  # of every topic, on both sides
AGGREGATE_TYPES = ("Order", "Customer")



def table_sql(payload_type: str = "jsonb") -> str:
    """Debezium's documented outbox table ("outboxevent", payload jsonb), in its own schema,
    and the publication its connectors use."""
    return f"""
CREATE SCHEMA dbz;
CREATE TABLE dbz.outboxevent (
    id            uuid         NOT NULL PRIMARY KEY,
    aggregatetype varchar(255) NOT NULL,
    aggregateid   varchar(255) NOT NULL,
    type          varchar(255) NOT NULL,
    payload       {payload_type}
);
CREATE PUBLICATION dbz_pub FOR TABLE dbz.outboxevent;
"""


TABLE_SQL = table_sql()
TABLE = "dbz.outboxevent"


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _big_doc() -> str:
    items = ", ".join(f'{{"sku": "SKU-{i:05d}", "qty": {i % 7}, "price": {i}.25, "name": "Artículo n° {i}"}}'
                      for i in range(110))
    return f'{{"order": 1001, "items": [{items}]}}'


# The transactions both relays see, in order. Each is (action, rows): action "commit" or
# "rollback"; a row is (n, aggregatetype, aggregateid, type, payload SQL literal or None).
# ("delete", n) deletes row n in the same transaction; ("update", n) updates it.
O, C = AGGREGATE_TYPES
TRANSACTIONS: list[tuple[str, list]] = [
    ("commit", [(1, O, "1001", "OrderCreated", """'{"id": 1001, "customer": "Jürgen Größe", "total": 12.50}'""")]),
    ("commit", [(2, O, "1002", "OrderCreated", """'{"s": "é 日本 😀", "esc": "q\\"\\\\\\n\\t\\u0001/", "u2028": "\u2028"}'""")]),
    ("commit", [(3, C, "customer 7", "CustomerCreated", "'{}'"),
                (4, C, "customer 7", "CustomerUpdated", "'[]'"),
                (5, O, "1001", "OrderPaid", """'"a JSON string é 😀"'""")]),
    ("commit", [(6, O, "42 😀", "Weird", "'42'"),
                (7, O, "42 😀", "Weird", "'true'"),
                (8, O, "42 😀", "Weird", "'null'")]),
    ("commit", [(9, O, "1003", "OrderDeleted", None)]),  # NULL payload
    ("commit", [(10, C, "ключ 3", "CustomerCreated", "'" + _big_doc() + "'")]),
    ("rollback", [(11, O, "1004", "OrderCreated", """'{"never": true}'""")]),
    ("commit", [(12, O, "1005", "OrderCreated", """'{"id": 1005}'"""), ("delete", 12)]),  # insert-then-delete
    ("commit", [(13, C, "tab\there", "CustomerCreated", """'{"a": {"b": [1, 2.5, -3], "c": null}, "d": [{"x": 1}, {"y": "z"}]}'"""),
                ("update", 13)]),
    ("commit", [(14, O, "", "EmptyKey", """'{"f": 0.1, "g": 1e-7, "h": 123456789012, "i": -0.0, "j": 1.0}'""")]),
    ("commit", [(15, O, "\"quoted\\key\"", "OrderCreated", """'{"arr": [[1, 2], [3]], "e": [], "t": [true, false]}'""")]),
    ("commit", [(16, C, "1006", "CustomerCreated", None),
                (17, C, "1006", "CustomerCreated", """'{"after": "null"}'""")]),
    ("commit", [(18, O, "ü", "Mixed", """'[{"a": 1}, {"a": 2}]'""")]),
    ("commit", [(19, O, "1007", "Mixed", """'{"mixed": [1, "x"]}'""")]),
    ("commit", [(20, O, "1007", "Numbers", """'{"big": 123456789012345678901234567890, "e": 1.5e300, "m": 10000000.0}'""")]),
    ("commit", [(21, C, "ctl \x01\x1f\x7f/\r\n\b\f\\ \u00e9\u2028\U0001F600\U0010FFFF", "Controls", """'{"k": "\\u001f"}'""")]),
]


def published_ids() -> list[str]:
    """The ids of the rows that reach Kafka (committed inserts), in commit order."""
    out = []
    for action, rows in TRANSACTIONS:
        if action == "commit":
            out += [_uuid(r[0]) for r in rows if isinstance(r[0], int)]
    return out


def write_rows(db) -> None:
    """Runs TRANSACTIONS on db (which has TABLE_SQL)."""
    c = db.connect(autocommit=False)
    try:
        for action, rows in TRANSACTIONS:
            for r in rows:
                if r[0] == "delete":
                    c.execute(f"DELETE FROM {TABLE} WHERE id = %s", (_uuid(r[1]),))
                elif r[0] == "update":
                    c.execute(f"UPDATE {TABLE} SET type = type || '!' WHERE id = %s", (_uuid(r[1]),))
                else:
                    n, at, aid, typ, payload = r
                    c.execute(f"INSERT INTO {TABLE} (id, aggregatetype, aggregateid, type, payload) "
                              f"VALUES (%s, %s, %s, %s, {payload if payload is not None else 'NULL'})",
                              (_uuid(n), at, aid, typ))
            if action == "commit":
                c.commit()
            else:
                c.rollback()
    finally:
        c.close()


# --------------------------------------------------------------------------- settings

STRING = "org.apache.kafka.connect.storage.StringConverter"
JSON = "org.apache.kafka.connect.json.JsonConverter"


@dataclass(frozen=True)
class Setting:
    """One Debezium converter setting and the outboxd configuration that reproduces it."""
    name: str
    debezium: dict  # connector properties on top of the router's defaults
    outboxd: dict   # outboxd keys on top of outbox.table and outbox.topic


def _conv(key: str, value: str) -> dict:
    d = {"key.converter": key, "value.converter": value}
    if key == JSON:
        d["key.converter.schemas.enable"] = "false"
    if value == JSON:
        d["value.converter.schemas.enable"] = "false"
    return d


SETTINGS = [
    Setting("string", _conv(STRING, STRING), {"outbox.preset": "debezium"}),
    Setting("json", _conv(JSON, JSON), {"outbox.preset": "debezium-json"}),
    Setting("json-tombstone", {**_conv(JSON, JSON), "transforms.outbox.route.tombstone.on.empty.payload": "true"},
            {"outbox.preset": "debezium-json", "outbox.payload.null": "tombstone"}),
    Setting("string-key-json-value", _conv(STRING, JSON),
            {"outbox.preset": "debezium-json", "outbox.key.format": "raw"}),
]


def topics_for(prefix: str) -> list[str]:
    return [f"{prefix}.{a}" for a in AGGREGATE_TYPES]


def outboxd_config(setting: Setting, prefix: str) -> dict:
    return {"outbox.table": TABLE, "outbox.topic": f"{prefix}.${{aggregate_type}}", **setting.outboxd}


# --------------------------------------------------------------------------- records


def _b(v: bytes | None):
    if v is None:
        return None
    try:
        return {"utf8": v.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(v).decode()}


def _unb(v) -> bytes | None:
    if v is None:
        return None
    return v["utf8"].encode() if "utf8" in v else base64.b64decode(v["base64"])


def record_dict(r: Record, prefix: str) -> dict:
    """A record as stored in the fixture: the topic without the run's prefix, the bytes of
    key, value and headers (null for null), the partition."""
    assert r.topic.startswith(prefix + "."), r.topic
    return {"id": (r.header("id") or b"").decode(), "topic": r.topic[len(prefix) + 1:], "key": _b(r.key),
            "value": _b(r.value), "headers": [[k, _b(v)] for k, v in r.headers], "partition": r.partition}


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in records}


def collect(kafka: Kafka, prefix: str, timeout: float = 90, want: int | None = None) -> list[dict]:
    """Every record of prefix's topics once `want` (default: as many as published_ids())
    arrived and nothing more came for 3 s."""
    want = len(published_ids()) if want is None else want
    topics = topics_for(prefix)
    first = kafka.consume(topics, n=want, timeout=timeout)
    assert len(first) >= want, f"{prefix}: only {len(first)} of {want} records in {timeout}s"
    return [record_dict(r, prefix) for r in kafka.consume(topics, timeout=timeout, settle=3.0)]


def compare(setting: str, want: list[dict], got: list[dict]) -> list[str]:
    """Field-by-field differences between two record lists (empty: equal), plus per-key
    order: the ids of each (topic, key) in the same order."""
    diffs = []
    w, g = by_id(want), by_id(got)
    if sorted(w) != sorted(g) or len(want) != len(got):
        diffs.append(f"{setting}: ids differ: want {sorted(w)} ({len(want)} records), got {sorted(g)} ({len(got)})")
    for i in sorted(set(w) & set(g)):
        for f in ("topic", "key", "value", "headers", "partition"):
            if w[i][f] != g[i][f]:
                diffs.append(f"{setting}: event {i}: {f}: Debezium {w[i][f]!r}, outboxd {g[i][f]!r}")

    def order(recs):
        out: dict = {}
        for r in recs:
            out.setdefault((r["topic"], json.dumps(r["key"])), []).append(r["id"])
        return out

    if not diffs and order(want) != order(got):
        diffs.append(f"{setting}: per-key order differs: {order(want)} vs {order(got)}")
    return diffs


def load_fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def save_fixture(records: dict[str, list[dict]]) -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    doc = {"about": "Records of Debezium 3.1.3 (PostgreSQL connector, pgoutput, Outbox Event Router) on Kafka "
                    "Connect 3.9.1 for harness/debezium.py's TRANSACTIONS, one list per converter setting; "
                    "written by test_debezium_live with OUTBOXD_TEST_RECORD_DEBEZIUM=1. Topics without the "
                    "run's prefix; bytes as {\"utf8\": text} or {\"base64\": ...}; null for null.",
           "partitions": PARTITIONS,
           "settings": {name: sorted(recs, key=lambda r: r["id"]) for name, recs in records.items()}}
    FIXTURE.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


# --------------------------------------------------------------------------- Debezium


def libs_dir() -> Path:
    """The jars, fetched when missing (scripts/debezium-libs.sh prints the directory)."""
    r = subprocess.run([str(LIBS_SCRIPT)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise AssertionError(f"scripts/debezium-libs.sh failed:\n{r.stdout}\n{r.stderr}")
    return Path(r.stdout.strip().splitlines()[-1])


class Debezium:
    """A Kafka Connect standalone worker with one Debezium connector per (name, prefix, slot,
    properties): each its own slot, topics prefix.<aggregatetype>, converters."""

    def __init__(self, workdir: Path, libs: Path, stack, dbname: str):
        self.dir, self.libs, self.stack, self.dbname = workdir, libs, stack, dbname
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "connect.log"

    def start(self, connectors: list[tuple[str, str, str, dict]]) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        (d / "worker.properties").write_text(
            f"bootstrap.servers={self.stack.kafka}\n"
            f"key.converter={STRING}\nvalue.converter={STRING}\n"
            f"offset.storage.file.filename={d}/offsets\noffset.flush.interval.ms=500\n"
            "listeners=http://127.0.0.1:0\n")
        files = []
        for name, prefix, slot, props in connectors:
            base = {
                "name": f"dbz-{name}", "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "tasks.max": "1", "plugin.name": "pgoutput", "database.hostname": "127.0.0.1",
                "database.port": str(self.stack.pg_port), "database.user": "postgres", "database.password": "unused",
                "database.dbname": self.dbname, "topic.prefix": f"dbz{name.replace('-', '')}", "slot.name": slot,
                "publication.name": "dbz_pub", "publication.autocreate.mode": "disabled",
                "table.include.list": TABLE, "snapshot.mode": "no_data",
                "transforms": "outbox", "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
                "transforms.outbox.route.topic.replacement": f"{prefix}.${{routedByValue}}",
            }
            f = d / f"connector-{name}.properties"
            f.write_text("".join(f"{k}={v}\n" for k, v in {**base, **props}.items()))
            files.append(str(f))
        (d / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\nlog4j.logger.io.debezium=INFO\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOXD_")}
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "java", "-Xms128m", "-Xmx768m", "-XX:+UseSerialGC",
             "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{d}/log4j.properties",
             "-cp", f"{self.libs}/*", "org.apache.kafka.connect.cli.ConnectStandalone", str(d / "worker.properties"),
             *files], stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env)

    def wait_streaming(self, db, slots: list[str], timeout: float = 120) -> None:
        """Until every connector's slot exists and is active (the connector streams)."""
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"Kafka Connect exited {self.proc.returncode}:\n{self.log_tail()}")
            rows = db.execute("SELECT slot_name FROM pg_replication_slots WHERE active AND slot_name = ANY(%s)",
                              (slots,))
            return len(rows) == len(slots)
        wait_until(ok, timeout, 0.5, f"Debezium slots {slots} active")
        time.sleep(2)  # the streaming loop starts right after the slot is taken

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def errors(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [ln for ln in text.splitlines() if re.search(r"\b(ERROR|WARN)\b.*(outbox|EventRouter|JSON)", ln)]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
