"""Columnar records the tracking core reads and writes: one frame's detections and tracks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from vsa.runtime.columns import set_detection_columns

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

# Codes of TrackOutputs.status, in the words of the tracks topic (TrackedObject.state).
STATUS_TENTATIVE: Final = 0
STATUS_CONFIRMED: Final = 1
STATUS_LOST: Final = 2
STATUS_NAMES: Final = ("tentative", "confirmed", "lost")


@dataclass(frozen=True, eq=False)
class FrameDetections:
    """The detections of one frame, one row per box.

    Attributes:
        xyxy: ``(n, 4)`` float64 boxes ``x1, y1, x2, y2``, pixels of the original image.
        scores: ``(n,)`` float64 confidences, 0..1.
        class_ids: ``(n,)`` int64 class indices of the detector's class list.
        appearance: ``(n, dims)`` float32 unit vectors of the boxes' crops
            (:mod:`vsa.services.appearance`), or None when the detections carry none; the
            tracker re-attaches lost tracks by them when ``reattach_min_similarity`` is set.

    Shapes and finiteness are checked and dtypes converted once, here.
    """

    xyxy: F64
    scores: F64
    class_ids: I64
    appearance: F32 | None = None

    def __post_init__(self) -> None:
        set_detection_columns(self, np.float64, np.int64)
        if not (np.isfinite(self.xyxy).all() and np.isfinite(self.scores).all()):
            raise ValueError("xyxy and scores must be finite (no NaN or infinity)")
        if self.appearance is not None:
            vectors = np.asarray(self.appearance, np.float32)
            if vectors.ndim != 2 or len(vectors) != len(self.scores):
                raise ValueError(
                    f"appearance must be (n, dims) with n = {len(self.scores)} boxes, "
                    f"got shape {vectors.shape}"
                )
            if not np.isfinite(vectors).all():
                raise ValueError("appearance must be finite (no NaN or infinity)")
            object.__setattr__(self, "appearance", vectors)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls) -> FrameDetections:
        """A frame without detections."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))


@dataclass(frozen=True, eq=False)
class TrackOutputs:
    """Every live confirmed track after one frame, one row per track, sorted by track id.

    Tentative tracks are not here: they have no id until they are confirmed (their first row
    is then in ``new_confirmed_ids``), so nothing downstream can name one.

    Several arrays are views of the new state's read-only arrays: copy before changing them.

    Attributes:
        frame_seq: the frame these tracks belong to.
        capture_ts: its capture time, UNIX seconds.
        track_ids: ``(m,)`` int64 per-camera ids (>= 1).
        xyxy: ``(m, 4)`` float64 boxes, pixels: the Kalman estimate after this frame's match
            (for lost tracks the prediction; it may reach past the image edge).
        class_ids: ``(m,)`` int64 majority class of each track.
        scores: ``(m,)`` float64 score of each track's last matched detection.
        velocity_px_s: ``(m, 2)`` float64 velocity of the box centre ``(vx, vy)``, px/s, x right,
            y down.
        direction_deg: ``(m,)`` float64 heading of that velocity, degrees in [-180, 180]:
            0 = moving right, 90 = down, -90 = up (0 for a still object).
        age_frames: ``(m,)`` int64 frame_seq distance since the track was created (0 on its
            first frame).
        status: ``(m,)`` uint8 :data:`STATUS_CONFIRMED` (matched on this frame) or
            :data:`STATUS_LOST` (confirmed, coasting without a match); never
            :data:`STATUS_TENTATIVE`, which only old messages of the tracks topic carry.
        new_confirmed_ids: ids of tracks confirmed on this frame, given to them on this frame
            (new objects worth a keyframe).
        removed_ids: ids of confirmed tracks removed on this frame (lost too long, or the
            camera started over); tentative tracks that end had no id and are not listed.
    """

    frame_seq: int
    capture_ts: float
    track_ids: I64
    xyxy: F64
    class_ids: I64
    scores: F64
    velocity_px_s: F64
    direction_deg: F64
    age_frames: I64
    status: U8
    new_confirmed_ids: I64
    removed_ids: I64

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def observed(self) -> npt.NDArray[np.bool_]:
        """``(m,)`` rows of confirmed tracks matched on this frame."""
        mask: npt.NDArray[np.bool_] = self.status == STATUS_CONFIRMED
        return mask

    def confirmed(self) -> npt.NDArray[np.bool_]:
        """``(m,)`` rows of confirmed tracks, matched or lost."""
        mask: npt.NDArray[np.bool_] = self.status != STATUS_TENTATIVE
        return mask
