"""Frames in, one :class:`~vsa.schemas.Detections` message per frame out: the detector's core.

No Kafka here: the runner (:mod:`.service`) turns records into :class:`FrameInput` and the
results into messages and dead letters. A frame that cannot be used (corrupt JPEG, a size other
than its metadata says, too many pixels) becomes a :class:`~.jpeg.FrameError` in its slot; the
rest of the batch goes to the backend in one call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vsa.schemas import Detection, Detections, FrameMeta, FrameRef

from .backends.base import DetectorBackend
from .jpeg import DecodedFrame, FrameError, decode_frame
from .pipeline import detect_decoded
from .postprocess import SelectionParams
from .preprocess import Resizer, resize_bilinear
from .records import DetectionArrays

#: Decimals kept in messages: 1/100 pixel for boxes, 1/10000 for scores.
BOX_DECIMALS = 2
SCORE_DECIMALS = 4


@dataclass(frozen=True)
class FrameInput:
    """One frame to detect on: its metadata (from the record headers), where the record lives,
    and the JPEG."""

    meta: FrameMeta
    ref: FrameRef
    jpeg: bytes


@dataclass(frozen=True)
class ReadyFrame:
    """A decoded frame waiting for its batch's inference; ``decode_ms`` is its decode time
    (None when it was decoded outside the detector, e.g. by PyAV)."""

    meta: FrameMeta
    ref: FrameRef
    frame: DecodedFrame
    decode_ms: float | None


def to_message(
    meta: FrameMeta,
    ref: FrameRef,
    found: DetectionArrays,
    class_names: Sequence[str],
    model_id: str,
    timings_ms: dict[str, float],
) -> Detections:
    """The detections message of one frame; boxes in pixels of the frame as sent."""
    boxes = [
        Detection(
            xyxy=(
                round(float(x1), BOX_DECIMALS),
                round(float(y1), BOX_DECIMALS),
                round(float(x2), BOX_DECIMALS),
                round(float(y2), BOX_DECIMALS),
            ),
            class_id=int(class_id),
            class_name=class_names[int(class_id)],
            score=round(float(score), SCORE_DECIMALS),
        )
        for (x1, y1, x2, y2), score, class_id in zip(
            found.xyxy.tolist(), found.scores.tolist(), found.class_ids.tolist(), strict=True
        )
    ]
    return Detections(
        camera_id=meta.camera_id,
        frame_seq=meta.frame_seq,
        frame=ref,
        capture_ts=meta.capture_ts,
        width=meta.width,
        height=meta.height,
        model_id=model_id,
        boxes=boxes,
        timings={name: round(ms, 3) for name, ms in timings_ms.items()},
    )


class DetectorCore(Protocol):
    """What the service needs from a detector core (CPU :class:`FrameDetector` or the GPU
    :class:`~.torch_core.TorchFrameDetector`)."""

    @property
    def model_id(self) -> str:
        """Written into every message."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names by class id."""

    def detect(self, frames: Sequence[FrameInput]) -> list[Detections | FrameError]:
        """One result per frame, in order: its detections, or why it could not be used."""


class FrameDetector:
    """Runs one model over batches of frames.

    Args:
        backend: The loaded model (already warmed up).
        params: Thresholds, NMS, top-k and class filter.
        model_id: Written into every message (name, input size or file digest).
        decode_downscale: Decode large JPEGs at 1/2, 1/4 or 1/8 scale when that still covers
            the network input (see :mod:`.jpeg`); off decodes every frame at full size.
        max_frame_pixels: Frames with more pixels are refused before decoding.
        resize: The letterbox's bilinear resize (numpy by default; :class:`.resize.OrtResizer`
            is ~5x faster).
    """

    def __init__(
        self,
        backend: DetectorBackend,
        params: SelectionParams,
        model_id: str,
        *,
        decode_downscale: bool = True,
        max_frame_pixels: int | None = None,
        resize: Resizer = resize_bilinear,
    ) -> None:
        self.backend = backend
        self.params = params
        self.model_id = model_id
        self.decode_downscale = decode_downscale
        self.max_frame_pixels = max_frame_pixels
        self.resize = resize

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names of the model, by class id."""
        return self.backend.model.class_names

    def decode(self, frame: FrameInput) -> DecodedFrame:
        """Decode and check one frame's JPEG; :class:`FrameError` if it cannot be used."""
        return decode_frame(
            frame.jpeg,
            expected_size=(frame.meta.width, frame.meta.height),
            net_size=self.backend.input_size if self.decode_downscale else None,
            max_pixels=self.max_frame_pixels,
        )

    def detect(self, frames: Sequence[FrameInput]) -> list[Detections | FrameError]:
        """One result per frame, in order: its detections, or why it could not be used."""
        errors: dict[int, FrameError] = {}
        ready: list[ReadyFrame] = []
        slots: list[int] = []
        for index, frame in enumerate(frames):
            started = time.perf_counter()
            try:
                decoded = self.decode(frame)
            except FrameError as exc:
                errors[index] = exc
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            ready.append(ReadyFrame(frame.meta, frame.ref, decoded, elapsed_ms))
            slots.append(index)
        messages = dict(zip(slots, self.detect_ready(ready), strict=True))
        return [messages[i] if i in messages else errors[i] for i in range(len(frames))]

    def detect_decoded(
        self, items: Sequence[tuple[FrameMeta, FrameRef, DecodedFrame]]
    ) -> list[Detections]:
        """Messages for frames decoded elsewhere (e.g. video frames from PyAV)."""
        return self.detect_ready([ReadyFrame(meta, ref, frame, None) for meta, ref, frame in items])

    def detect_ready(self, items: Sequence[ReadyFrame]) -> list[Detections]:
        """One backend call for all ``items``; batch stage times are split evenly per frame."""
        if not items:
            return []
        result = detect_decoded(
            self.backend, [item.frame for item in items], self.params, self.resize
        )
        share = {name: ms / len(items) for name, ms in result.timings_ms.items()}
        return [
            to_message(
                item.meta,
                item.ref,
                found,
                self.class_names,
                self.model_id,
                share if item.decode_ms is None else {"decode": item.decode_ms, **share},
            )
            for item, found in zip(items, result.detections, strict=True)
        ]
