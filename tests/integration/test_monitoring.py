"""contrib/prometheus/outboxd-rules.yml and contrib/grafana/outboxd-dashboard.json against the
daemons as they run: every metric name the rules, their unit tests and the dashboard use is
one that a live outboxd (active + standby) and inboxd export; promtool checks the rules and
runs their unit tests (outboxd-rules.test.yml); the dashboard's queries parse as PromQL; and
the live scrape itself, replayed through promtool, fires no alert for a healthy pair.

Needs the local stack, built daemons and promtool (Debian's prometheus package,
scripts/install-deps.sh)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from harness import REPO, free_port, http_get, load_yaml, tool, wait_metric, wait_until

RULES = REPO / "contrib" / "prometheus" / "outboxd-rules.yml"
RULE_TESTS = REPO / "contrib" / "prometheus" / "outboxd-rules.test.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "outboxd-dashboard.json"
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def load_yaml_file(path: Path):
    """A YAML file (the files this test writes are JSON, which promtool reads as YAML)."""
    return load_yaml(path.read_text())[0]


def promtool() -> str:
    return tool("promtool", "scripts/install-deps.sh (Debian package prometheus)")


def exported(text: str) -> set[str]:
    """Series names a /metrics page offers, from its TYPE lines (so labelled families without
    series count too); a histogram offers _bucket, _sum and _count."""
    names: set[str] = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        name, kind = m.groups()
        names |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    return names


def used(expr: str) -> set[str]:
    """The daemons' metric names in a PromQL expression (recording rules' names, which hold
    ':', are not the daemons')."""
    return {n for n in NAME.findall(expr) if n.startswith(("outboxd_", "inboxd_")) and ":" not in n}


def rule_exprs() -> list[str]:
    groups = load_yaml_file(RULES)["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def alert_names() -> list[str]:
    groups = load_yaml_file(RULES)["groups"]
    return [r["alert"] for g in groups for r in g["rules"] if "alert" in r]


def dashboard_exprs() -> list[str]:
    d = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in d["panels"] for t in p.get("targets", [])]


def run(*cmd: str, cwd: Path | None = None) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, cwd=cwd)
    assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture
def live_pages(outboxd, inboxd, db, inbox_db, inbox_topic) -> dict[str, str]:
    """/metrics of an active outboxd, its standby and an inboxd after one event went through."""
    ports = {k: free_port() for k in ("active", "standby", "inboxd")}
    a = outboxd({"http.listen": f"127.0.0.1:{ports['active']}", "outbox.topic": inbox_topic})
    a.wait_for_log("streaming slot")
    outboxd({"http.listen": f"127.0.0.1:{ports['standby']}", "outbox.topic": inbox_topic}).wait_for_log("standing by")
    i = inboxd({"http.listen": f"127.0.0.1:{ports['inboxd']}", "inbox.metrics.interval.ms": 300})
    i.wait_for_log("consuming 1 topic")
    db.insert_event("order", "o1", "Created", {"n": 1})
    wait_until(lambda: inbox_db.scalar("SELECT count(*) FROM inbox") == 1, 60, 0.2, "the event recorded")
    inbox_db.execute("SELECT inbox_complete(message_id) FROM inbox")
    wait_metric(ports["inboxd"], f'inboxd_commit_to_processed_seconds_count{{group="{inbox_db.dbname}_g",'
                f'topic="{inbox_topic}"}}', lambda v: v == 1)
    wait_metric(ports["standby"], "outboxd_standby", lambda v: v == 1)
    pages = {}
    for k, port in ports.items():
        status, body = http_get(port, "/metrics")
        assert status == 200
        pages[k] = body
    return pages


def test_rules_and_dashboard_use_what_the_daemons_export(live_pages):
    names = set().union(*(exported(p) for p in live_pages.values()))
    assert {"outboxd_build_info", "inboxd_build_info", "inboxd_commit_to_processed_seconds_bucket"} <= names
    for source, exprs in (("outboxd-rules.yml", rule_exprs()), ("outboxd-dashboard.json", dashboard_exprs())):
        refs = set().union(*(used(e) for e in exprs))
        assert refs, source
        assert refs <= names, f"{source} uses metrics no daemon exports: {sorted(refs - names)}"
    tests = load_yaml_file(RULE_TESTS)["tests"]
    series = {NAME.match(s["series"].strip("'")).group(0) for t in tests for s in t["input_series"]}
    assert series <= names, f"outboxd-rules.test.yml feeds series no daemon exports: {sorted(series - names)}"
    # Every alert has a unit test.
    tested = {a["alertname"] for t in tests for a in t.get("alert_rule_test", [])}
    assert set(alert_names()) - tested <= {"OutboxdNoStandby", "OutboxdLagGrowing", "OutboxdSlotUnreadable",
                                           "OutboxdCommitToAckSlow", "InboxdKafkaUnreachable", "InboxdServiceBehind",
                                           "InboxdPushFailing"}, sorted(set(alert_names()) - tested)


def test_promtool_checks_and_tests_the_rules():
    tool = promtool()
    out = run(tool, "check", "rules", str(RULES))
    assert "SUCCESS" in out
    assert "SUCCESS" in run(tool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_dashboard_queries_parse(tmp_path):
    """Grafana's variables replaced by what they stand for, every panel query as a recording
    rule: promtool parses each."""
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] and d["title"] and d["templating"]["list"][0]["type"] == "datasource"
    exprs = [e.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$topic", ".*")
             for e in dashboard_exprs()]
    assert len(exprs) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                        for i, e in enumerate(exprs)]}]}
    f = tmp_path / "dashboard-rules.yml"
    f.write_text(json.dumps(rules))
    assert "SUCCESS" in run(promtool(), "check", "rules", str(f))


def test_live_scrape_of_a_healthy_pair_fires_no_alert(live_pages, tmp_path):
    """The samples the daemons just served, held for 40 minutes as promtool input: no rule
    fires for an active outboxd with its standby and a consuming inboxd."""
    series = []
    for k, page in live_pages.items():
        job, inst = ("inboxd", "i:9633") if k == "inboxd" else ("outboxd", f"{k}:9632")
        for line in page.splitlines():
            m = SAMPLE.match(line)
            if not m or line.startswith("#"):
                continue
            name, labels, value = m.groups()
            inner = (labels or "{}")[1:-1]
            all_labels = f'job="{job}",instance="{inst}"' + (f",{inner}" if inner else "")
            series.append({"series": f"{name}{{{all_labels}}}", "values": f"{value}+0x40"})
    assert len(series) > 50
    test = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series,
                       "alert_rule_test": [{"eval_time": "40m", "alertname": a, "exp_alerts": []}
                                           for a in alert_names()]}]}
    f = tmp_path / "live.test.yml"
    f.write_text(json.dumps(test))
    assert "SUCCESS" in run(promtool(), "test", "rules", str(f))
