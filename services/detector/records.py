"""The detector's in-process record: one frame's detections as columns of arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vsa.runtime.columns import set_detection_columns

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, eq=False)
class DetectionArrays:
    """Detections of one frame, one row per object.

    Attributes:
        xyxy: ``(n, 4)`` float32 boxes ``x1, y1, x2, y2`` in pixels (network-input pixels before
            :func:`~vsa.services.detector.preprocess.boxes_to_image`, image pixels after).
        scores: ``(n,)`` float32 confidences, 0..1.
        class_ids: ``(n,)`` int32 indices into the model's class names.

    Shapes and dtypes are checked once, here; arrays of other dtypes are converted.
    """

    xyxy: F32
    scores: F32
    class_ids: I32

    def __post_init__(self) -> None:
        set_detection_columns(self, np.float32, np.int32)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls) -> DetectionArrays:
        """A record with no detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
