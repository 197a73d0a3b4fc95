"""What ``vsa topics delete`` checks before it deletes: which topics exist and how many messages
each holds (high minus low watermark, summed over partitions), and the refusal rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from vsa.runtime.settings import KafkaSettings


def message_counts(
    kafka: KafkaSettings, names: Iterable[str], timeout_s: float = 10.0
) -> dict[str, int]:
    """Messages retained per existing topic among ``names`` (missing topics are left out)."""
    consumer = Consumer(
        {**kafka.client_config(), "group.id": "vsa-topics-admin", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        counts: dict[str, int] = {}
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                continue
            total = 0
            for partition in topic.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, partition), timeout=timeout_s
                )
                total += max(0, high - low)
            counts[name] = total
        return counts
    finally:
        consumer.close()


def delete_refusal(
    counts: Mapping[str, int], *, prefix: str, yes: bool, force: bool, interactive: bool
) -> str | None:
    """Why a delete must not go ahead without asking (None: go ahead, or ask when interactive).

    Non-interactive runs need ``--yes``; topics that hold messages need ``--force``.
    """
    full = sorted(name for name, count in counts.items() if count > 0)
    if full and not force:
        listed = ", ".join(f"{name} ({counts[name]} messages)" for name in full)
        return f"refusing to delete topics that hold messages: {listed}; add --force"
    if not yes and not interactive:
        where = "the PRODUCTION topics (no --prefix)" if not prefix else "these topics"
        return f"refusing to delete {where} without confirmation; add --yes"
    return None


def unreachable(kafka: KafkaSettings, timeout_s: float = 5.0) -> str | None:
    """One line saying Kafka cannot be reached within ``timeout_s`` (None when it answers).

    librdkafka's own connection-refused lines go to a silent logger, so the caller prints one
    clear line instead of a flood.
    """
    import logging

    from confluent_kafka.admin import AdminClient

    silent = logging.getLogger("vsa.topics.librdkafka")
    silent.setLevel(logging.CRITICAL + 1)
    silent.propagate = False
    config: dict[str, Any] = {**kafka.client_config(), "logger": silent}
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return (
            f"Kafka at {kafka.bootstrap_servers} is unreachable (no answer in {timeout_s:g} s); "
            "start it with: vsa devstack up, or set KAFKA_BOOTSTRAP_SERVERS"
        )
    return None
