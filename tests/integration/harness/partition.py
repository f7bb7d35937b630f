"""The partition oracle: Java Kafka's default partitioner, in pure Python and run by a JVM."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Iterable

PARTITION_JAVA = Path(__file__).resolve().parents[1] / "java" / "Partition.java"


def murmur2(data: bytes) -> int:
    """Java Kafka's Utils.murmur2 (signed 32-bit result), in pure Python."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & mask
        k ^= k >> r  # k is unsigned here, so >> is Java's >>>
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rem = length % 4
    base = length & ~3
    if rem == 3:
        h ^= data[base + 2] << 16
    if rem >= 2:
        h ^= data[base + 1] << 8
    if rem >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def python_partition(key: bytes, num_partitions: int) -> int:
    """toPositive(murmur2(key)) % n, as Java's default partitioner (pure Python)."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


def java_partitions(pairs: Iterable[tuple[bytes, int]], kafka_libs: Path) -> list[int]:
    """Partitions Java's Kafka producer picks for (key, num_partitions) pairs, computed
    by running tests/integration/java/Partition.java (one JVM for the whole batch)."""
    pairs = list(pairs)
    if not pairs:
        return []
    stdin = "".join(f"{n} {bytes(k).hex()}\n" for k, n in pairs)
    r = subprocess.run(
        ["java", "-Xshare:auto", "-cp", f"{kafka_libs}/*", str(PARTITION_JAVA)],
        input=stdin, capture_output=True, text=True, timeout=120,
    )
    if r.returncode != 0:
        raise RuntimeError(f"Partition.java failed ({r.returncode}): {r.stderr}")
    out = [int(x) for x in r.stdout.split()]
    if len(out) != len(pairs):
        raise RuntimeError(f"Partition.java returned {len(out)} results for {len(pairs)} keys: {r.stderr}")
    return out


def java_partition(key: bytes, num_partitions: int, kafka_libs: Path) -> int:
    return java_partitions([(key, num_partitions)], kafka_libs)[0]


def random_keys(count: int, seed: int | None = None) -> list[bytes]:
    """count keys of 0..40 random bytes, including the empty key and some UTF-8 text."""
    import random

    rnd = random.Random(seed)
    keys = [b"", b"a", "ключ".encode(), str(uuid.UUID(int=rnd.getrandbits(128))).encode()]
    while len(keys) < count:
        keys.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 40))))
    return keys[:count]
