"""The detector's core step: a batch of RGB frames in, one detection record per frame out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .backends.base import DetectorBackend
from .postprocess import SelectionParams, postprocess
from .preprocess import detections_to_images, letterbox
from .records import DetectionArrays


@dataclass(frozen=True)
class BatchResult:
    """Detections per frame (image pixels) and the batch's time per stage in milliseconds."""

    detections: list[DetectionArrays]
    timings_ms: dict[str, float]


def detect_batch(
    backend: DetectorBackend, frames: Sequence[npt.NDArray[np.uint8]], params: SelectionParams
) -> BatchResult:
    """Letterbox ``frames`` (``(h, w, 3)`` uint8 RGB), infer, decode, NMS, map back.

    Returns:
        One record per frame, in frame order, boxes in pixels of that frame.
    """
    started = time.perf_counter()
    batch = letterbox(frames, backend.input_size)
    letterboxed = time.perf_counter()
    output = backend.infer(batch.pixels)
    inferred = time.perf_counter()
    model = backend.model
    found = postprocess(output, model.layout, model.class_names, params)
    detections = detections_to_images(found, batch)
    finished = time.perf_counter()
    timings = {
        "preprocess": (letterboxed - started) * 1000,
        "infer": (inferred - letterboxed) * 1000,
        "postprocess": (finished - inferred) * 1000,
    }
    return BatchResult(detections, timings)
