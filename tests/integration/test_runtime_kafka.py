"""The shared service runtime against the real local Kafka: partitioning, the batch loop's
commit-after-ack rule, dead letters, poison-message isolation, topic creation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from vsa.runtime.kafka import Output, Producer, ensure_topics
from vsa.runtime.partition import partition_for_key
from vsa.runtime.service import BatchLoop, BatchResult, LoopConfig
from vsa.runtime.settings import MAX_MESSAGE_BYTES, KafkaSettings, TopicNames, TopicSpec
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import DeadLetter

pytestmark = pytest.mark.integration


def _topics(kafka: KafkaSettings, *names: str, partitions: int = 1) -> None:
    ensure_topics(kafka, {n: TopicSpec(partitions=partitions) for n in names})


def _read_all(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 20
) -> list[Message]:
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"reader-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    try:
        import time

        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(100, 0.5) if m.error() is None)
    finally:
        consumer.close()
    return out


def _committed(kafka: KafkaSettings, group: str, topic: str, partition: int = 0) -> int:
    consumer = Consumer({**kafka.client_config(), "group.id": group})
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def _doubler(msgs: Sequence[Message], out_topic: str) -> BatchResult:
    result = BatchResult()
    for msg in msgs:
        try:
            n = json.loads(msg.value())["n"]
        except (ValueError, KeyError, TypeError) as exc:
            result.failures.append((msg, exc))
            continue
        result.outputs.append(Output(out_topic, msg.key(), json.dumps({"n": 2 * n}).encode()))
    return result


def test_our_partitioner_matches_what_the_producer_does(
    kafka: KafkaSettings, unique_name: str
) -> None:
    _topics(kafka, unique_name, partitions=7)
    producer = Producer(kafka, "test")
    keys = [f"cam-{i}" for i in range(40)]
    for key in keys:
        producer.produce(Output(unique_name, key, b"x"))
    producer.flush()
    seen = {m.key().decode(): m.partition() for m in _read_all(kafka, unique_name, len(keys))}
    assert seen == {key: partition_for_key(key, 7) for key in keys}


def test_batch_loop_outputs_dead_letters_and_commits(
    kafka: KafkaSettings, unique_name: str
) -> None:
    src, dst, dlq = f"{unique_name}-in", f"{unique_name}-out", f"{unique_name}-dlq"
    _topics(kafka, src, dst, dlq)
    producer = Producer(kafka, "test")
    bad = {5: b"{not json", 11: b'{"m": 1}'}
    for i in range(20):
        value = bad.get(i, json.dumps({"n": i}).encode())
        producer.produce(Output(src, f"cam-{i % 3}", value, headers=[("trace", b"t%d" % i)]))
    producer.flush()
    config = LoopConfig("test", f"{unique_name}-g", (src,), dlq, max_batch=7, idle_exit_s=3)
    BatchLoop(config, kafka, lambda msgs: _doubler(msgs, dst)).run()

    outputs = _read_all(kafka, dst, 18)
    assert sorted(json.loads(m.value())["n"] for m in outputs) == sorted(
        2 * i for i in range(20) if i not in bad
    )
    dead = _read_all(kafka, dlq, 2)
    assert sorted(m.value() for m in dead) == sorted(bad.values())
    for msg in dead:
        meta = DeadLetter.from_headers(msg.headers())
        assert meta.service == "test"
        assert meta.source_topic == src
        assert meta.source_offset in bad
        assert meta.error_class in ("JSONDecodeError", "KeyError")
        assert ("trace", b"t%d" % meta.source_offset) in msg.headers()
    assert _committed(kafka, f"{unique_name}-g", src) == 20


def test_poison_message_is_isolated_from_its_batch(kafka: KafkaSettings, unique_name: str) -> None:
    src, dst, dlq = f"{unique_name}-in", f"{unique_name}-out", f"{unique_name}-dlq"
    _topics(kafka, src, dst, dlq)
    producer = Producer(kafka, "test")
    for i in range(10):
        producer.produce(Output(src, "cam", b"POISON" if i == 4 else json.dumps({"n": i}).encode()))
    producer.flush()

    def fragile(msgs: Sequence[Message]) -> BatchResult:
        if any(m.value() == b"POISON" for m in msgs):
            raise RuntimeError("handler bug triggered by one message")
        return _doubler(msgs, dst)

    config = LoopConfig("test", f"{unique_name}-g", (src,), dlq, max_batch=10, idle_exit_s=3)
    BatchLoop(config, kafka, fragile).run()
    assert len(_read_all(kafka, dst, 9)) == 9
    [dead] = _read_all(kafka, dlq, 1)
    assert dead.value() == b"POISON"
    assert DeadLetter.from_headers(dead.headers()).error_class == "RuntimeError"
    assert _committed(kafka, f"{unique_name}-g", src) == 10


def test_nothing_is_committed_while_outputs_are_not_acknowledged(
    kafka: KafkaSettings, unique_name: str
) -> None:
    """A retriable delivery failure (here: the output topic does not exist, with a short
    message.timeout.ms) does not end the loop: the batch is handled again after a backoff, the
    loop is not ready meanwhile, a stop ends it, and nothing was committed."""
    src, dlq = f"{unique_name}-in", f"{unique_name}-dlq"
    _topics(kafka, src, dlq)
    producer = Producer(kafka, "test")
    for i in range(3):
        producer.produce(Output(src, "cam", json.dumps({"n": i}).encode()))
    producer.flush()
    missing_topic = f"{unique_name}-missing"  # auto creation is off: delivery fails
    config = LoopConfig("test", f"{unique_name}-g", (src,), dlq, stop_flush_s=3)
    loop = BatchLoop(
        config,
        kafka,
        lambda msgs: _doubler(msgs, missing_topic),
        producer_overrides={"message.timeout.ms": 2000},
    )

    def retries() -> float:
        return sum(
            s.value
            for metric in loop.metrics.batch_retries.collect()
            for s in metric.samples
            if s.name.endswith("_total")
        )

    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while retries() < 2 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert retries() >= 2
        assert thread.is_alive()
        assert not loop.health.serving
        assert "batch_retry" in loop.health.blockers
    finally:
        loop.stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert _committed(kafka, f"{unique_name}-g", src) < 0  # no offset stored for the group


def test_ensure_topics_is_idempotent_and_sets_limits(
    kafka: KafkaSettings, unique_name: str
) -> None:
    topics = TopicsSettings(names=TopicNames(prefix=f"{unique_name}."), partitions=3)
    specs = topics.specs()
    assert sorted(ensure_topics(kafka, specs)) == sorted(specs)
    assert ensure_topics(kafka, specs) == []
    admin = AdminClient(kafka.client_config())
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[f"{unique_name}.frames"].partitions) == 3
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, f"{unique_name}.camera-config")
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["cleanup.policy"].value == "compact"
    assert configs["max.message.bytes"].value == str(MAX_MESSAGE_BYTES)
