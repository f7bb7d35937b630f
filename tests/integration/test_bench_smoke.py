"""The benchmark suite (bench/bench.py, run by bench/run.sh) runs on the test stack at tiny
sizes and reports sane numbers. Not a benchmark: the figures of a 2-core CI machine mean
nothing; this only keeps the suite working. Debezium is skipped (no JVM, no Maven)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness import REPO, default_outboxd_bin



@pytest.mark.timeout(330)
def test_bench_quick_run(stack, faults, tmp_path):
    # The latency workload reads commit times (pg_xact_commit_timestamp): scripts/stack.sh
    # turns track_commit_timestamp on; a stack started before that needs it set and a restart.
    with stack.pg_connect() as c:
        if c.execute("SHOW track_commit_timestamp").fetchone()[0] != "on":
            c.execute("ALTER SYSTEM SET track_commit_timestamp = on")
            restart = True
        else:
            restart = False
    if restart:
        faults.pg_restart()
    poller = default_outboxd_bin().parent / "baseline_polling_relay"
    assert poller.is_file(), f"{poller} not built (it is a target of the normal build)"
    producer = poller.parent / "baseline_producer"
    assert producer.is_file(), f"{producer} not built (it is a target of the normal build)"
    env = dict(os.environ, **stack.env)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--out", str(out),
         "--outboxd", str(default_outboxd_bin()), "--poller", str(poller),
         "--producer", str(producer), "--config", "smoke",
         "--repeats", "1", "--events", "600", "--small-events", "0", "--big", "3000",
         "--rates", "300", "--latency-secs", "2", "--timeout", "60", "--dup-events", "600", "--dup-txn", "600",
         "--relays", "outboxd,outboxd-pgoutput,outboxd-linger1,outboxd-eos,decode-floor,producer-floor,polling"],
        env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert "### Backlog drain" in r.stdout and "### Live latency" in r.stdout and "### Targets" in r.stdout
    res = json.loads((out / "results.json").read_text())
    s = res["summary"]

    for kind, per_txn in (("single", 1), ("batched", 100)):
        d = s["drain"][kind]
        assert d["events"] == 600 and d["per_txn"] == per_txn
        for rel in ("pg_recvlogical", "outboxd", "outboxd-linger1", "outboxd-eos", "polling"):
            assert 0 < d[rel]["secs"] < 60, (kind, rel, d[rel])
            assert d[rel]["rate"] > 10, (kind, rel, d[rel])
        assert 1_000 < d["outboxd"]["peak_rss_kb"] < 200_000
        assert 0 < d["outboxd_vs_recvlogical"] < 100
    for kind in ("single", "batched", "defaults", "partitioned"):  # both plugins, both pg_recvlogical rows
        d = s["drain"][kind]
        for rel in ("pg_recvlogical", "pg_recvlogical-pgoutput", "outboxd", "outboxd-pgoutput"):
            assert 0 < d[rel]["secs"] < 60 and d[rel]["rate"] > 10, (kind, rel, d[rel])
    assert s["drain"]["single"]["pgoutput_vs_recvlogical"] > 0
    # Duplicates: a clean stop sends nothing twice, also in the middle of a transaction.
    dups = s["duplicates"]
    assert dups["stream stop"]["duplicates_max"] == 0 and dups["bigtxn stop"]["duplicates_max"] == 0, dups
    assert 0 <= dups["stream kill"]["duplicates_median"] <= 600, dups
    assert "### Duplicates after a kill -9" in r.stdout
    b = s["bigtxn"]
    assert b["events"] == 3000 and 0 < b["outboxd_secs"] < 60 and 1_000 < b["outboxd_peak_rss_kb"] < 200_000

    lat = s["latency"]["300"]
    for rel in ("outboxd", "outboxd-pgoutput", "outboxd-linger1", "outboxd-eos", "polling"):
        x = lat[rel]
        assert x["missing"] == 0, (rel, x)
        assert x["rate_achieved"] > 100, (rel, x)
        # Commit, broker append and receipt are read from one clock: latencies are positive
        # (the broker's append time has ms resolution) and ordered.
        assert -1.5 < x["ack_p50_ms"] <= x["ack_p99_ms"] <= x["ack_max_ms"] < 10_000, (rel, x)
        assert x["ack_p50_ms"] - 1.5 <= x["recv_p50_ms"] <= x["recv_max_ms"] < 10_000, (rel, x)
    # The Kafka floor: records produced while pgbench writes, acked, latencies ordered.
    f = lat["producer-floor"]
    assert f["missing"] == 0 and f["rate_achieved"] > 100, f
    assert 0 < f["ack_p50_ms"] <= f["ack_p99_ms"] <= f["ack_max_ms"] < 10_000, f
    assert "| 300 | producer-floor |" in r.stdout
    # The PostgreSQL floor: pg_recvlogical received every commit, latencies ordered.
    f = lat["decode-floor"]
    assert f["missing"] == 0 and f["rate_achieved"] > 100, f
    assert 0 < f["ack_p50_ms"] <= f["ack_p99_ms"] <= f["ack_max_ms"] < 10_000, f
    assert "| 300 | decode-floor |" in r.stdout
    # A polling relay waits for its next poll (100 ms here); the log-tailing relay does not.
    assert lat["polling"]["ack_p50_ms"] > lat["outboxd"]["ack_p50_ms"], lat
    for raw in res["raw"]["latency"]:
        if raw["relay"] == "producer-floor":  # its records do not come from the database
            assert raw["missing"] == 0 and raw["written"] > 0, raw
        else:
            assert raw["received"] == raw["written"], raw
    assert "drain >= 0.7x pg_recvlogical (single)" in s["targets"]


def test_pg_timestamp_forms():
    """bench.py reads commit timestamps as PostgreSQL prints them: no fraction when the
    microseconds are zero (a full run once crashed on '2026-12-04 00:16:30+00'), fractions
    of 1 to 6 digits, and offsets with minutes."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench
    finally:
        sys.path.pop(0)
    t = 1796343390.0  # 2026-12-04 00:16:30 UTC
    assert bench.pg_timestamp("2026-12-04 00:16:30+00") == t
    assert bench.pg_timestamp("2026-12-04 00:16:30.5+00") == t + 0.5
    assert abs(bench.pg_timestamp("2026-12-04 00:16:30.123456+00") - (t + 0.123456)) < 1e-6
    assert bench.pg_timestamp("2026-12-04 05:46:30+05:30") == t
    assert bench.pg_timestamp("2026-12-03 21:16:30-03") == t
    with pytest.raises(ValueError):
        bench.pg_timestamp("yesterday")
