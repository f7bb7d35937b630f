"""Delivery latency across services (docs/operations.md, "Delivery latency across services"):
outboxd's commit time header on each record, inboxd's commit -> recorded and commit ->
processed histograms per topic and consumer group, and a W3C traceparent passed from the
outbox row to the Kafka record and on to the HTTP push.

Needs the local stack (scripts/stack.sh start) and built daemons (docs/testing.md)."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from harness import free_port, scrape, wait_metric, wait_until

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
COMMIT_HEADER = "outboxd.commit_time_us"


@pytest.mark.timeout(180)
def test_commit_time_header_and_traceparent(outboxd, db, kafka, topic_prefix):
    """Every record streamed from the WAL carries its transaction's commit time (microseconds,
    PostgreSQL's clock); a traceparent from the headers column or from a column named in
    outbox.header.columns arrives as the record header `traceparent`."""
    db.execute("ALTER TABLE outbox ADD COLUMN trace text")
    d = outboxd({"outbox.header.columns": "trace:traceparent"})
    d.wait_for_log("streaming slot")
    with db.connect() as c:
        with c.transaction():
            before_us = int(db.scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint", conn=c))
            c.execute("INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers, trace) "
                      "VALUES ('order', 'o1', 'Created', '{\"n\": 1}', '{\"tracestate\": \"k=v\"}', %s)",
                      (TRACEPARENT,))
        after_us = int(db.scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint"))
    db.insert_event("order", "o2", "Created", {"n": 2}, headers={"traceparent": TRACEPARENT.replace("01", "00", 1)})
    recs = kafka.consume(f"{topic_prefix}.order", n=2, timeout=60)
    assert len(recs) == 2
    by_key = {r.key: r for r in recs}
    first, second = by_key[b"o1"], by_key[b"o2"]
    commit_us = int(first.header(COMMIT_HEADER))
    assert before_us <= commit_us <= after_us, (before_us, commit_us, after_us)
    assert int(second.header(COMMIT_HEADER)) > commit_us
    assert first.header("traceparent") == TRACEPARENT.encode()
    assert first.header("tracestate") == b"k=v"
    assert second.header("traceparent") == TRACEPARENT.replace("01", "00", 1).encode()
    assert [n for n, _ in first.headers].count(COMMIT_HEADER) == 1


class _Push(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Push.seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def hist(scraped: dict[str, float], name: str, labels: str) -> tuple[float, float]:
    """(count, sum) of histogram `name` with the given label text."""
    return scraped.get(f"{name}_count{{{labels}}}", 0), scraped.get(f"{name}_sum{{{labels}}}", 0)


@pytest.mark.timeout(240)
def test_inboxd_commit_latency_histograms(outboxd, db, inboxd, inbox_db, inbox_topic, kafka):
    """outboxd -> Kafka -> inboxd: inboxd_commit_to_recorded_seconds counts each message when
    its inbox transaction commits, inboxd_commit_to_processed_seconds when its row becomes done
    (here by the SQL handoff's inbox_complete), both labelled with the group and the topic;
    a message without the header is in neither."""
    o = outboxd({"outbox.topic": inbox_topic})
    o.wait_for_log("streaming slot")
    port = free_port()
    group = f"{inbox_db.dbname}_g"
    i = inboxd({"http.listen": f"127.0.0.1:{port}", "inbox.metrics.interval.ms": 300})
    i.wait_for_log(r"consuming 1 topic")
    labels = f'group="{group}",topic="{inbox_topic}"'
    for n in range(5):
        db.insert_event("order", f"o{n}", "Created", {"n": n})
    kafka.produce(inbox_topic, '{"n": 99}', key="x", headers=[("id", b"no-header-1")])
    wait_until(lambda: inbox_db.scalar("SELECT count(*) FROM inbox") == 6, 60, 0.2, "6 messages recorded")
    s = wait_metric(port, f"inboxd_commit_to_recorded_seconds_count{{{labels}}}", lambda v: v == 5)
    count, total = hist(s, "inboxd_commit_to_recorded_seconds", labels)
    assert 0 < total < 5 * 30, total
    assert s[f'inboxd_commit_to_recorded_seconds_bucket{{{labels},le="+Inf"}}'] == 5
    assert s[f'inboxd_commit_to_recorded_seconds_bucket{{{labels},le="600"}}'] == 5
    assert hist(s, "inboxd_commit_to_processed_seconds", labels) == (0, 0)  # nothing done yet
    time.sleep(0.5)  # processed_at after the poller's starting point
    ids = [r[0] for r in inbox_db.execute("SELECT message_id FROM inbox ORDER BY id")]
    for mid in ids:
        assert inbox_db.scalar("SELECT inbox_complete(%s)", (mid,))
    s = wait_metric(port, f"inboxd_commit_to_processed_seconds_count{{{labels}}}", lambda v: v == 5)
    count, total = hist(s, "inboxd_commit_to_processed_seconds", labels)
    assert total >= hist(s, "inboxd_commit_to_recorded_seconds", labels)[1] > 0
    time.sleep(1)  # the next polls count nothing twice
    assert hist(scrape(port), "inboxd_commit_to_processed_seconds", labels)[0] == 5
    assert i.terminate() == 0 and o.terminate() == 0


@pytest.mark.timeout(180)
def test_push_sends_traceparent_under_its_own_name(outboxd, db, inboxd, inbox_db, inbox_topic):
    """With deliver.header.prefix, Kafka headers reach the service prefixed, but traceparent
    and tracestate keep their names: OpenTelemetry's HTTP server instrumentation continues
    the trace the writer of the outbox row started."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Push)
    _Push.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        o = outboxd({"outbox.topic": inbox_topic})
        o.wait_for_log("streaming slot")
        i = inboxd({"deliver.url": f"http://127.0.0.1:{srv.server_port}/in", "deliver.header.prefix": "Kafka-"})
        i.wait_for_log(r"consuming 1 topic")
        db.insert_event("order", "o1", "Created", {"n": 1}, headers={"traceparent": TRACEPARENT, "tenant": "a"})
        wait_until(lambda: len(_Push.seen) == 1, 60, 0.2, "one push")
        h = {k.lower(): v for k, v in _Push.seen[0].items()}
        assert h["traceparent"] == TRACEPARENT
        assert h["kafka-tenant"] == "a"
        assert "kafka-traceparent" not in h
        assert int(h["kafka-outboxd.commit_time_us"]) > 0
        assert i.terminate() == 0 and o.terminate() == 0
    finally:
        srv.shutdown()
        srv.server_close()
