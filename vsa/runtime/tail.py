"""Read a topic as a bystander: every partition assigned by hand, no consumer group, no commits.

:class:`TopicTail` is how an operator's tool (``vsa alerts tail``) follows a topic without
disturbing the pipeline: it joins no group (no rebalance of anyone's partitions), commits nothing
(no offsets left behind), and starts either at the beginning of every partition or at its current
end. "From now" means the end offsets read when the tail starts, not librdkafka's logical
``OFFSET_END`` (which is resolved later, when fetching starts, and would skip a message produced
in between).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from vsa.runtime.kafka import consumer_config
from vsa.runtime.settings import KafkaSettings


@dataclass(frozen=True)
class TailRecord:
    """One record of the followed topic (the Kafka edge stays here)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class TopicMissingError(Exception):
    """The topic to follow does not exist."""


class TopicTail:
    """Follows ``topic`` from its beginning or from its end at :meth:`start`.

    Args:
        client_id: Kafka client id; the consumer's ``group.id`` is derived from it and the
            process id, and is never joined (partitions are assigned) nor committed to.
        from_beginning: start at each partition's first retained record instead of its end.
    """

    def __init__(
        self, kafka: KafkaSettings, topic: str, client_id: str, from_beginning: bool = False
    ) -> None:
        self.topic, self.from_beginning = topic, from_beginning
        self.partitions = 0
        self._consumer = Consumer(
            consumer_config(kafka, client_id, f"vsa-{client_id}-{os.getpid()}")
        )

    def start(self, timeout_s: float = 10.0) -> int:
        """Assign every partition at its start offset; returns the partition count.

        Raises :class:`TopicMissingError` when the topic does not exist."""
        meta = self._consumer.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TopicMissingError(self.topic)
        assignment = []
        for partition in sorted(meta.partitions):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=timeout_s
            )
            assignment.append(
                TopicPartition(self.topic, partition, low if self.from_beginning else high)
            )
        self._consumer.assign(assignment)
        self.partitions = len(assignment)
        return self.partitions

    def poll(self, timeout_s: float = 0.5, max_records: int = 500) -> Iterator[TailRecord]:
        """The records that arrived within ``timeout_s``. A fatal client error raises
        ``RuntimeError``; others (a broker restarting) are librdkafka's to retry."""
        for msg in self._consumer.consume(max_records, timeout_s):
            error = msg.error()
            if error is None:
                yield TailRecord(msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value())
            elif error.fatal():
                raise RuntimeError(f"{self.topic}: {error.str()}")

    def close(self) -> None:
        self._consumer.close()
