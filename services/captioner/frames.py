"""Keyframe images: fetched from the frames topic by reference, decoded small, thumbnailed.

Images are never copied down the pipeline: a keyframe carries a frame reference
``(topic, partition, offset)`` and the captioner reads that one record back. Several
partitions are read in parallel: every round assigns each partition at its next wanted offset.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import simplejpeg
from confluent_kafka import Consumer, TopicPartition

from vsa.runtime.kafka import consumer_config
from vsa.runtime.logs import event
from vsa.runtime.service import TransientError
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import MAX_THUMBNAIL_BYTES, FrameRef

log = logging.getLogger("vsa.captioner.frames")

U8 = npt.NDArray[np.uint8]
#: Qualities tried, best first, until the thumbnail fits in MAX_THUMBNAIL_BYTES.
THUMBNAIL_QUALITIES = (75, 60, 45, 30)


class FramesUnreachableError(TransientError):
    """The frames topic did not answer at all (a broker outage): the batch waits and retries."""


class FrameFetcher:
    """Reads JPEGs back from the frames topic by (topic, partition, offset)."""

    def __init__(self, kafka: KafkaSettings, client_id: str, timeout_s: float = 5.0) -> None:
        self.consumer = Consumer(
            consumer_config(
                kafka, client_id, f"{client_id}-fetch", **{"enable.partition.eof": True}
            )
        )
        self.timeout_s = timeout_s

    def fetch(self, refs: Sequence[FrameRef]) -> dict[tuple[str, int, int], bytes]:
        """JPEG bytes keyed by (topic, partition, offset); refs no longer in Kafka are absent."""
        wanted: dict[tuple[str, int], list[int]] = defaultdict(list)
        for ref in refs:
            wanted[(ref.topic, ref.partition)].append(ref.offset)
        queues = {tp: sorted(set(offsets)) for tp, offsets in wanted.items()}
        found: dict[tuple[str, int, int], bytes] = {}
        while queues:
            heads = {tp: offsets.pop(0) for tp, offsets in queues.items()}
            found.update(self._round(heads))
            queues = {tp: offsets for tp, offsets in queues.items() if offsets}
        missing = len({(r.topic, r.partition, r.offset) for r in refs}) - len(found)
        if missing:
            event(log, "frames_missing", logging.WARNING, count=missing)
        return found

    def _round(self, heads: dict[tuple[str, int], int]) -> dict[tuple[str, int, int], bytes]:
        """Read one record at the given offset of each partition."""
        self.consumer.assign([TopicPartition(t, p, o) for (t, p), o in heads.items()])
        pending = dict(heads)
        found: dict[tuple[str, int, int], bytes] = {}
        deadline = time.monotonic() + self.timeout_s
        answered = False
        while pending and time.monotonic() < deadline:
            for msg in self.consumer.consume(len(pending), 0.5):
                answered = True
                key = (msg.topic() or "", msg.partition() or 0)
                if key not in pending:
                    continue
                if msg.error() is None and msg.offset() == pending[key]:
                    found[(key[0], key[1], pending[key])] = msg.value() or b""
                # Past the wanted offset (it was deleted) or at the end: nothing more to read.
                if msg.error() is not None or (msg.offset() or 0) >= pending[key]:
                    del pending[key]
        if pending and not answered:
            # Not one record, end-of-partition or error in timeout_s: Kafka is unreachable, not
            # the frame gone (a deleted one is answered by later records or the end). Captioning
            # without the image now would lose its thumbnail for good.
            raise FramesUnreachableError(
                f"no answer from the frames topic in {self.timeout_s:.0f} s for "
                + ", ".join(f"{t}[{p}]@{o}" for (t, p), o in pending.items())
            )
        return found

    def close(self) -> None:
        self.consumer.close()


@dataclass(frozen=True)
class SmallFrame:
    """A frame decoded at reduced scale: RGB pixels and the original ``(width, height)``."""

    pixels: U8
    original_size: tuple[int, int]


def decode_small(jpeg: bytes, max_width: int = 480) -> SmallFrame:
    """Decode a JPEG at the largest DCT scale (1/1, 1/2, 1/4, 1/8) no wider than ``max_width``.

    Scaled decoding skips most of the inverse DCT work: a 1080p frame decodes to 480×270 several
    times faster than at full size. Raises ValueError for data that is not a decodable JPEG.
    """
    height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    factor = 1
    while factor < 8 and width / factor > max_width:
        factor *= 2
    pixels = simplejpeg.decode_jpeg(
        jpeg, colorspace="RGB", min_width=width // factor, min_height=height // factor
    )
    return SmallFrame(np.asarray(pixels), (int(width), int(height)))


def thumbnail(pixels: U8, max_width: int = 320) -> bytes:
    """A JPEG thumbnail of at most ``MAX_THUMBNAIL_BYTES``: halved until ≤ ``max_width`` wide,
    then encoded at the best quality that fits."""
    while pixels.shape[1] > max_width:
        pixels = pixels[::2, ::2]
    pixels = np.ascontiguousarray(pixels)
    while True:
        for quality in THUMBNAIL_QUALITIES:
            data = bytes(simplejpeg.encode_jpeg(pixels, quality, colorspace="RGB"))
            if len(data) <= MAX_THUMBNAIL_BYTES:
                return data
        pixels = np.ascontiguousarray(pixels[::2, ::2])
