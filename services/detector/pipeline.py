"""The detector's core step: a batch of RGB frames in, one detection record per frame out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .backends.base import DetectorBackend
from .jpeg import DecodedFrame
from .postprocess import SelectionParams, postprocess
from .preprocess import (
    Resizer,
    detections_to_images,
    letterbox,
    resize_bilinear,
    with_source_scales,
)
from .records import DetectionArrays


@dataclass(frozen=True)
class BatchResult:
    """Detections per frame (image pixels) and the batch's time per stage in milliseconds."""

    detections: list[DetectionArrays]
    timings_ms: dict[str, float]


def detect_batch(
    backend: DetectorBackend,
    frames: Sequence[npt.NDArray[np.uint8]],
    params: SelectionParams,
    resize: Resizer = resize_bilinear,
) -> BatchResult:
    """Letterbox ``frames`` (``(h, w, 3)`` uint8 RGB), infer, decode, NMS, map back.

    Returns:
        One record per frame, in frame order, boxes in pixels of that frame.
    """
    return detect_decoded(backend, [DecodedFrame.full(frame) for frame in frames], params, resize)


def detect_decoded(
    backend: DetectorBackend,
    frames: Sequence[DecodedFrame],
    params: SelectionParams,
    resize: Resizer = resize_bilinear,
) -> BatchResult:
    """Like :func:`detect_batch` for frames decoded at reduced scales (see :mod:`.jpeg`).

    One backend call for the whole batch. Boxes come back in pixels of each *source* image
    (the JPEG's own size), whatever scale it was decoded at.

    Returns:
        One record per frame, in frame order; ``timings_ms`` are for the whole batch.
    """
    started = time.perf_counter()
    decoded = letterbox([frame.image for frame in frames], backend.input_size, resize=resize)
    batch = with_source_scales(
        decoded, [(f.width, f.height) for f in frames], [f.downscale for f in frames]
    )
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
