"""Kafka's murmur2 partitioner, checked against the Java client's own test vectors."""

import pytest

from vsa.runtime.partition import murmur2, partition_for_key


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka_java_client(data: bytes, expected: int) -> None:
    assert _signed(murmur2(data)) == expected


def test_partition_is_positive_hash_modulo_partitions() -> None:
    assert partition_for_key(b"foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7
    assert partition_for_key("foobar", 7) == partition_for_key(b"foobar", 7)


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="partitions"):
        partition_for_key("cam-1", 0)
