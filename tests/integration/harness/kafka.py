"""Kafka of the stack: topics, producing and reading records, consumer groups' offsets and assignments."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from .util import unique_name, wait_until


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int

    def header(self, name: str) -> bytes | None:
        """The last header called name (None if absent)."""
        v = None
        for k, hv in self.headers:
            if k == name:
                v = hv
        return v


class Kafka:
    """Helpers around confluent_kafka for the test stack's broker."""

    def __init__(self, bootstrap: str, config: dict | None = None):
        """config: more client settings for every client (e.g. SASL_SSL for the TLS stack)."""
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.config = dict(config or {})
        self.admin = AdminClient({"bootstrap.servers": bootstrap, **self.config})

    # --- topics -------------------------------------------------------------------

    def topics(self, prefix: str = "") -> list[str]:
        md = self.admin.list_topics(timeout=10)
        return sorted(t for t in md.topics if t.startswith(prefix) and not t.startswith("__"))

    def partition_count(self, topic: str) -> int | None:
        """Number of partitions of topic; None if it does not exist."""
        md = self.admin.list_topics(timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return None
        return len(t.partitions)

    def create_topic(self, topic: str, partitions: int = 3, config: dict | None = None,
                     timeout: float = 30) -> None:
        """Creates topic and waits until its metadata shows all partitions."""
        from confluent_kafka.admin import NewTopic

        fs = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
            operation_timeout=timeout,
        )
        fs[topic].result(timeout)
        wait_until(lambda: self.partition_count(topic) == partitions, timeout, 0.1,
                   f"topic {topic} with {partitions} partitions")

    def delete_topics(self, topics: Sequence[str], timeout: float = 30) -> None:
        if not topics:
            return
        for f in self.admin.delete_topics(list(topics), operation_timeout=timeout).values():
            f.result(timeout)

    # --- produce / consume -----------------------------------------------------------

    def produce(self, topic: str, value: bytes | str | None, key: bytes | str | None = None,
                headers: list | dict | None = None, partition: int | None = None,
                config: dict | None = None) -> tuple[int, int]:
        """Produces one record (acks=all) and waits; returns (partition, offset)."""
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", **self.config, **(config or {})})
        result: dict = {}

        def cb(err, msg):
            result["err"], result["msg"] = err, msg

        kw = {"key": key, "value": value, "headers": headers, "on_delivery": cb}
        if partition is not None:
            kw["partition"] = partition
        p.produce(topic, **kw)
        if p.flush(30) != 0:
            raise AssertionError(f"produce to {topic}: not delivered in 30 s")
        if result.get("err") is not None:
            raise AssertionError(f"produce to {topic} failed: {result['err']}")
        return result["msg"].partition(), result["msg"].offset()

    def consume(self, topics: str | Iterable[str], n: int | None = None, timeout: float = 30,
                settle: float | None = None, isolation: str = "read_uncommitted") -> list[Record]:
        """Reads the given topics from the beginning (no consumer group: partitions are
        assigned directly; topics created while reading are picked up).

        Stops when n records were read, or, with n=None, once no new record arrived
        for `settle` seconds (default 2) - or at `timeout` either way. Returns the
        records in arrival order (per partition: offset order); may return fewer than
        n: assert on the result.  For "exactly n, no more" use n=None with settle.
        isolation: "read_uncommitted" (every record written, also of aborted Kafka
        transactions) or "read_committed" (what exactly-once consumers see).
        """
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

        topics = [topics] if isinstance(topics, str) else list(topics)
        if n is None and settle is None:
            settle = 2.0
        c = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": unique_name("harness"),  # required by librdkafka; never joined
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "topic.metadata.refresh.interval.ms": 500,
            **self.config,
        })
        out: list[Record] = []
        assigned: set[tuple[str, int]] = set()
        try:
            deadline = time.monotonic() + timeout
            last_new = time.monotonic()
            next_md = 0.0
            while True:
                now = time.monotonic()
                if now >= next_md:  # (re)assign: topics/partitions may appear meanwhile
                    md = c.list_topics(timeout=5)
                    new = []
                    for t in topics:
                        tm = md.topics.get(t)
                        if tm is None or tm.error is not None:
                            continue
                        for p in tm.partitions:
                            if (t, p) not in assigned:
                                assigned.add((t, p))
                                new.append(TopicPartition(t, p, OFFSET_BEGINNING))
                    if new:
                        c.incremental_assign(new)
                    next_md = now + 0.5
                if n is not None and len(out) >= n:
                    break
                if now >= deadline:
                    break
                if settle is not None and n is None and now - last_new >= settle and assigned:
                    break
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().retriable() or msg.error().code() < 0:
                        continue  # transient (e.g. partition EOF, transport) - keep reading
                    raise AssertionError(f"consume {topics}: {msg.error()}")
                out.append(Record(
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers=[(k, v) for k, v in (msg.headers() or [])],
                    timestamp=msg.timestamp()[1],
                ))
                last_new = time.monotonic()
        finally:
            c.close()
        return out

    # --- consumer groups ----------------------------------------------------------------

    def group_assignment(self, group: str, timeout: float = 10) -> dict[str, list[tuple[str, int]]] | None:
        """The group's assignment as the broker sees it: {member's client.id: sorted
        [(topic, partition)]}; None unless the group is Stable (a rebalance is under way,
        or the group is empty or unknown). Members that share a client.id are told apart
        as "<client.id>/<member id>"."""
        from confluent_kafka import ConsumerGroupState

        desc = self.admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout)
        if desc.state != ConsumerGroupState.STABLE:
            return None
        ids = [m.client_id for m in desc.members]
        out: dict[str, list[tuple[str, int]]] = {}
        for m in desc.members:
            name = m.client_id if ids.count(m.client_id) == 1 else f"{m.client_id}/{m.member_id}"
            tps = m.assignment.topic_partitions if m.assignment else []
            out[name] = sorted((tp.topic, tp.partition) for tp in tps)
        return out


def kafka_committed(bootstrap: str, group: str, topic: str, partitions: int,
                    config: dict | None = None) -> dict[int, int]:
    """The group's committed offsets of topic's partitions ({partition: offset}; -1001: none).
    config: more client settings (e.g. SASL_SSL)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **(config or {})})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()
