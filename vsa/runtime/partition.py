"""Kafka's default key partitioner (murmur2), as the Java client, aiokafka and librdkafka's
``murmur2_random`` compute it. Used to find which partition holds a camera's messages."""

from __future__ import annotations

_MASK32 = 0xFFFFFFFF
_M = 0x5BD1E995
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """32-bit murmur2 of ``data`` as an unsigned int (Kafka's ``Utils.murmur2`` bit pattern)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    full = length - length % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = length % 4
    if tail == 3:
        h ^= data[full + 2] << 16
    if tail >= 2:
        h ^= data[full + 1] << 8
    if tail >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h


def partition_for_key(key: str | bytes, partitions: int) -> int:
    """Partition a keyed message lands in, for a topic with ``partitions`` partitions."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    data = key.encode("utf-8") if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions
