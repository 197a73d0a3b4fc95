"""The detector's ``appearance`` option: every box's crop embedded, the vectors sent with the
boxes (:class:`~vsa.schemas.AppearanceVectors`), for the tracker's re-attachment by appearance.

It wraps whichever core the service runs (CPU, torch or TensorRT) instead of reaching into
each: after the core's detections, the frame is decoded again at full size (simplejpeg; the core
may have decoded it downscaled, or on the GPU) and the crops are embedded in one batched run
per batch of frames (ONNX Runtime on the CPU, torch on CUDA; see
:mod:`vsa.services.appearance`). The embedding lives here rather than in the tracker because
the detector has the frame in hand and the GPU; the tracker would have to read every frame back
from the frames topic. Off by default: on the sample clip it did not pay (BENCHMARKS.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import simplejpeg

from vsa.schemas import Detections
from vsa.services.appearance.wire import encode_vectors

from .core import DetectorCore, FrameInput
from .jpeg import FrameError


class AppearanceCore:
    """A :class:`~.core.DetectorCore` whose messages carry their boxes' appearance vectors."""

    def __init__(self, inner: DetectorCore, embedder: Any) -> None:
        self.inner = inner
        self.embedder = embedder
        settings = embedder.settings
        self.model = f"mobilenetv2-imagenet@{settings.input_height}x{settings.input_width}"

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inner.class_names

    def detect(self, frames: Sequence[FrameInput]) -> list[Detections | FrameError]:
        """The inner core's results, each message with its vectors (timing ``appearance``)."""
        results = self.inner.detect(frames)
        started = time.perf_counter()
        crops: list[Any] = []
        owners: set[int] = set()
        for index, (frame, result) in enumerate(zip(frames, results, strict=True)):
            if isinstance(result, Detections) and result.boxes:
                pixels = np.asarray(simplejpeg.decode_jpeg(frame.jpeg, colorspace="RGB"))
                boxes = np.array([box.xyxy for box in result.boxes], np.float64)
                crops.append(self._crops(pixels, boxes))
                owners.add(index)
        vectors = self.embedder.embed_crops(np.concatenate(crops)) if crops else None
        per_frame_ms = round((time.perf_counter() - started) * 1000 / max(len(frames), 1), 3)
        out: list[Detections | FrameError] = []
        start = 0
        for index, result in enumerate(results):
            if not isinstance(result, Detections):
                out.append(result)
                continue
            update: dict[str, Any] = {"timings": {**result.timings, "appearance": per_frame_ms}}
            if index in owners and vectors is not None:
                rows = vectors[start : start + len(result.boxes)]
                start += len(result.boxes)
                update["appearance"] = encode_vectors(rows, self.model)
            out.append(result.model_copy(update=update))
        return out

    def _crops(self, pixels: Any, boxes: Any) -> Any:
        from vsa.services.appearance.embedder import crops

        settings = self.embedder.settings
        return crops(pixels, boxes, (settings.input_height, settings.input_width))
