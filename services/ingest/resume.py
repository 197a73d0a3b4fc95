"""Continue frame_seq after a restart: read back the tail of each camera's frames partition.

frame_seq must grow per camera across restarts, because (camera_id, frame_seq) is the
idempotency key of everything derived from a frame. Kafka is the source of truth: the last frame
of a camera is near the end of the partition its key hashes to, so reading back a bounded number
of messages there finds it without any local state.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from vsa.runtime.kafka import consumer_config
from vsa.runtime.logs import event
from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import FrameMeta, SchemaError

log = logging.getLogger("vsa.ingest.resume")
RETRIES = 8
# Errors a broker gives for a partition whose leadership is still settling (a topic created a
# moment ago, a leader moving); librdkafka does not flag them retriable for offset queries.
_SETTLING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
    }
)


def last_frame_seqs(
    kafka: KafkaSettings, topic: str, camera_ids: Sequence[str], scan: int, timeout_s: float = 10.0
) -> dict[str, int]:
    """Highest frame_seq per camera among the last ``scan`` messages of its partition.

    Cameras not found are absent from the result (they start at 0). ``scan=0`` skips the lookup.
    Transient Kafka errors are retried; if the lookup still fails, :class:`ResumeError` is raised
    rather than silently restarting frame_seq at 0.
    """
    if scan <= 0 or not camera_ids:
        return {}
    for attempt in range(1, RETRIES + 1):
        try:
            return _lookup(kafka, topic, camera_ids, scan, timeout_s)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = error is not None and (error.retriable() or error.code() in _SETTLING)
            event(
                log,
                "resume_lookup_failed",
                logging.WARNING,
                topic=topic,
                error=str(exc),
                attempt=attempt,
                retriable=retriable,
            )
            if not retriable or attempt == RETRIES:
                raise ResumeError(
                    f"cannot read back the last frame_seq of cameras {list(camera_ids)} from "
                    f"{topic}: {exc}. Starting them at 0 would reuse (camera_id, frame_seq) keys; "
                    "set VSA_INGEST_SEQ_RECOVERY_SCAN=0 to do that on purpose."
                ) from exc
            time.sleep(min(0.25 * attempt, 2.0))
    return {}


class ResumeError(RuntimeError):
    """frame_seq could not be recovered from Kafka, so ingest must not start."""


def _lookup(
    kafka: KafkaSettings, topic: str, camera_ids: Sequence[str], scan: int, timeout_s: float
) -> dict[str, int]:
    consumer = Consumer(
        consumer_config(
            kafka, "ingest-resume", "vsa-ingest-resume", **{"enable.partition.eof": True}
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return {}
        by_partition: dict[int, set[str]] = defaultdict(set)
        for camera_id in camera_ids:
            by_partition[partition_for_key(camera_id, len(meta.partitions))].add(camera_id)
        found: dict[str, int] = {}
        for partition, cameras in by_partition.items():
            found.update(_scan_partition(consumer, topic, partition, cameras, scan, timeout_s))
    finally:
        consumer.close()
    for camera_id, seq in found.items():
        event(log, "frame_seq_resumed", camera_id=camera_id, frame_seq=seq + 1)
    return found


def _scan_partition(
    consumer: Consumer, topic: str, partition: int, cameras: set[str], scan: int, timeout_s: float
) -> dict[str, int]:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
    if high <= low:
        return {}
    consumer.assign([TopicPartition(topic, partition, max(low, high - scan))])
    found: dict[str, int] = {}
    while True:
        msgs = consumer.consume(256, timeout_s)
        if not msgs:
            break
        for msg in msgs:
            if msg.error() is not None:
                continue
            try:
                meta = FrameMeta.from_headers(msg.headers())
            except SchemaError:
                continue
            if meta.camera_id in cameras:
                found[meta.camera_id] = max(found.get(meta.camera_id, -1), meta.frame_seq)
        last_offset = msgs[-1].offset()
        if last_offset is not None and last_offset >= high - 1:
            break
        if any(m.error() is not None for m in msgs):
            break
    consumer.unassign()
    return found
