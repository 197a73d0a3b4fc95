"""A frame by its reference: the JPEG read back from the frames topic, optionally with the
frame's tracked boxes drawn (the tracks message of the same camera and frame_seq).

Only the configured frames topic is served (a reference naming another topic is refused), and a
record whose headers name another camera or frame_seq than the reference is not returned. The
tracks message is looked up in the tracks partition that holds the camera (murmur2 of the key,
as every vsa producer partitions), from the first record written at or after the frame's capture
time less a minute (Kafka's time index), reading at most ``tracks_scan`` records; the tracker
handles a camera's frames in order, so the scan also ends at a later frame_seq of that camera.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Final

import numpy as np
import simplejpeg
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from vsa.runtime.kafka import consumer_config
from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings, TopicNames
from vsa.schemas import FrameMeta, FrameRef, SchemaError, Tracks
from vsa.services.detector.drawing import JPEG_QUALITY, annotate_tracks

#: The tracks of a frame are looked for from this long before its capture time, ms (clocks of
#: the ingest and tracker machines may differ a little).
TRACKS_LOOKBACK_MS: Final = 60_000


class FrameNotFoundError(LookupError):
    """No such frame (any more): not in the topic, or the record is another camera's frame."""


class FramesUnavailableError(Exception):
    """Kafka did not answer within the timeout."""


@dataclass(frozen=True)
class FrameRecord:
    """One frames-topic record: the JPEG and its metadata."""

    jpeg: bytes
    meta: FrameMeta


def draw_tracks(jpeg: bytes, tracks: Tracks) -> bytes:
    """The frame with every tracked (not lost) object boxed and labelled, as a JPEG."""
    image = np.asarray(simplejpeg.decode_jpeg(jpeg, colorspace="RGB"))
    return bytes(simplejpeg.encode_jpeg(annotate_tracks(image, tracks), quality=JPEG_QUALITY))


def is_frame_of(meta: FrameMeta, ref: FrameRef) -> bool:
    """Whether a record's metadata is the frame the reference names."""
    return meta.camera_id == ref.camera_id and meta.frame_seq == ref.frame_seq


class FrameSource:
    """Reads frames and tracks records by position (one consumer, assigned per read; nothing is
    committed). Thread-safe: reads take turns."""

    def __init__(
        self, kafka: KafkaSettings, topics: TopicNames, timeout_s: float, tracks_scan: int
    ) -> None:
        self.frames_topic = topics.name("frames")
        self.tracks_topic = topics.name("tracks")
        self.timeout_s, self.tracks_scan = timeout_s, tracks_scan
        group = f"vsa-api-frames-{os.getpid()}"  # never joined, never committed
        options = {"enable.partition.eof": True}
        self._consumer = Consumer(consumer_config(kafka, "api-frames", group, **options))
        self._lock = threading.Lock()

    def close(self) -> None:
        self._consumer.close()

    def frame(self, ref: FrameRef) -> FrameRecord:
        """The record ``ref`` names. Raises :class:`FrameNotFoundError` (not there, or another
        frame) or :class:`FramesUnavailableError` (Kafka did not answer)."""
        if ref.topic != self.frames_topic:
            raise FrameNotFoundError(f"only frames of {self.frames_topic} are served")
        with self._lock:
            self._check_partition(ref.topic, ref.partition)
            msg = self._read_at(ref.topic, ref.partition, ref.offset)
        try:
            meta = FrameMeta.from_headers(msg.headers() or [])
        except SchemaError as exc:
            raise FrameNotFoundError(f"{_where(ref)} is not a vsa frame: {exc}") from exc
        if not is_frame_of(meta, ref):
            raise FrameNotFoundError(
                f"{_where(ref)} holds {meta.camera_id} frame {meta.frame_seq}, "
                f"not {ref.camera_id} frame {ref.frame_seq}"
            )
        return FrameRecord(msg.value() or b"", meta)

    def tracks(self, meta: FrameMeta) -> Tracks | None:
        """The tracks message of this frame, or None when it is not found within the scan."""
        with self._lock:
            partitions = self._check_partition(self.tracks_topic, 0)
            partition = partition_for_key(meta.camera_id, partitions)
            since_ms = int(meta.capture_ts * 1000) - TRACKS_LOOKBACK_MS
            start = self._consumer.offsets_for_times(
                [TopicPartition(self.tracks_topic, partition, since_ms)], timeout=self.timeout_s
            )[0].offset
            if start < 0:  # no record at or after that time: nothing to find
                return None
            return self._scan_tracks(partition, start, meta)

    def _scan_tracks(self, partition: int, start: int, meta: FrameMeta) -> Tracks | None:
        key = meta.camera_id.encode("utf-8")
        self._consumer.assign([TopicPartition(self.tracks_topic, partition, start)])
        deadline = time.monotonic() + self.timeout_s
        read = 0
        while read < self.tracks_scan and time.monotonic() < deadline:
            for msg in self._consumer.consume(500, 0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return None
                    continue
                read += 1
                if msg.key() != key:
                    continue
                try:
                    tracks = Tracks.from_bytes(msg.value() or b"")
                except SchemaError:
                    continue
                if tracks.frame_seq == meta.frame_seq:
                    return tracks
                if tracks.frame_seq > meta.frame_seq:
                    return None
        return None

    def _check_partition(self, topic: str, partition: int) -> int:
        """The topic's partition count; :class:`FrameNotFoundError` if ``partition`` is not one."""
        try:
            meta = self._consumer.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
        except Exception as exc:  # KafkaException: broker transport down
            raise FramesUnavailableError(f"Kafka did not answer: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise FrameNotFoundError(f"topic {topic} does not exist")
        if partition >= len(meta.partitions):
            raise FrameNotFoundError(f"{topic} has no partition {partition}")
        return len(meta.partitions)

    def _read_at(self, topic: str, partition: int, offset: int) -> Message:
        """The record at ``offset``; not found when it is past the end or already deleted."""
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            for msg in self._consumer.consume(1, 0.5):
                error = msg.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    continue  # transient; librdkafka retries until the deadline
                if error is None and msg.offset() == offset:
                    return msg
                # end of partition, or a later record (the wanted one was deleted)
                raise FrameNotFoundError(f"{topic}[{partition}]@{offset} is not in Kafka (now)")
        raise FramesUnavailableError(
            f"no answer from {topic}[{partition}] in {self.timeout_s:.0f} s; retry later"
        )


def _where(ref: FrameRef) -> str:
    return f"{ref.topic}[{ref.partition}]@{ref.offset}"
