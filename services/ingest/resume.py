"""Continue frame_seq after a restart: read back the tail of each camera's frames partition.

frame_seq must grow per camera across restarts, because (camera_id, frame_seq) is the
idempotency key of everything derived from a frame. Kafka is the source of truth: the last frame
of a camera is near the end of the partition its key hashes to, so reading back a bounded number
of messages there finds it without any local state.

Kafka keeps frames only for the frames topic's retention (an hour by default): a camera idle for
longer has no frame left to read back, and starts at 0 again. That is logged as a
``frame_seq_not_recovered`` warning; the tracker recognises the restarted numbering (frame_seq
back, capture time later than its last frame) and starts the camera over.
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
    found: dict[str, int] = {}
    unknown: dict[str, tuple[int, str]] = {}  # camera_id -> (partition, reason)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return {}
        by_partition: dict[int, set[str]] = defaultdict(set)
        for camera_id in camera_ids:
            by_partition[partition_for_key(camera_id, len(meta.partitions))].add(camera_id)
        for partition, cameras in by_partition.items():
            tp = TopicPartition(topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            seqs = _scan_partition(consumer, tp, cameras, (max(low, high - scan), high), timeout_s)
            found.update(seqs)
            reason = unrecovered_reason(low, high, scan)
            if reason is not None:
                unknown.update({c: (partition, reason) for c in sorted(cameras - seqs.keys())})
    finally:
        consumer.close()
    for camera_id, seq in found.items():
        event(log, "frame_seq_resumed", camera_id=camera_id, frame_seq=seq + 1)
    for camera_id, (partition, reason) in unknown.items():
        _warn_unrecovered(camera_id, topic, partition, reason, scan)
    return found


def unrecovered_reason(low: int, high: int, scan: int) -> str | None:
    """Why a camera absent from the frames read back may still have sent frames before.

    ``low`` and ``high`` are the partition's first and next offsets, ``scan`` the most messages
    read back. ``"expired"``: older frames of the partition were deleted (retention, or records
    deleted by hand) and nothing left is the camera's; ``"beyond_scan"``: the partition holds
    more than ``scan`` frames, so the camera's last one may be further back. None: the whole
    partition, from offset 0, was read, so the camera never sent a frame to this topic.
    """
    if high - low > scan:
        return "beyond_scan"
    if low > 0:
        return "expired"
    return None


_UNRECOVERED_HINTS = {
    "expired": "no frame of the camera is left in its partition (retention deleted them): if it "
    "ran before, its frame_seq restarts at 0; the tracker sees the restart by the capture time "
    "and starts the camera over, and documents keyed by (camera_id, frame_seq) may be rewritten",
    "beyond_scan": "no frame of the camera among the last {scan} messages of its partition: if "
    "it ran before, raise VSA_INGEST_SEQ_RECOVERY_SCAN, or its frame_seq restarts at 0",
}


def _warn_unrecovered(camera_id: str, topic: str, partition: int, reason: str, scan: int) -> None:
    event(
        log,
        "frame_seq_not_recovered",
        logging.WARNING,
        camera_id=camera_id,
        frame_seq=0,
        topic=topic,
        partition=partition,
        reason=reason,
        hint=_UNRECOVERED_HINTS[reason].format(scan=scan),
    )


def _scan_partition(
    consumer: Consumer,
    tp: TopicPartition,
    cameras: set[str],
    offsets: tuple[int, int],
    timeout_s: float,
) -> dict[str, int]:
    """Highest frame_seq of each of ``cameras`` in the records at ``offsets`` [start, end)."""
    start, end = offsets
    if end <= start:
        return {}
    consumer.assign([TopicPartition(tp.topic, tp.partition, start)])
    found: dict[str, int] = {}
    position = start
    while position < end:
        # Never ask for more than is left: consume() waits for the count or the timeout, and
        # a count past the end of the partition would wait the whole timeout at every start.
        msgs = consumer.consume(min(256, end - position), timeout_s)
        if not msgs:
            break
        for msg in msgs:
            if msg.error() is not None:
                continue
            position = max(position, (msg.offset() or 0) + 1)
            try:
                meta = FrameMeta.from_headers(msg.headers())
            except SchemaError:
                continue
            if meta.camera_id in cameras:
                found[meta.camera_id] = max(found.get(meta.camera_id, -1), meta.frame_seq)
        if any(m.error() is not None for m in msgs):  # end of partition, or a fetch error
            break
    consumer.unassign()
    return found
