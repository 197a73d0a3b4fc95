"""The messages one frame produces, built straight from the tracking core's arrays (pure).

Validating a pydantic ``TrackedObject`` costs about 7 µs; at 20 objects a frame that was more
than the Kalman filter and the matching together. The service only needs the bytes, so
:class:`FrameOutputs` keeps JSON-ready documents (plain dicts in the models' field order) and
serialises them with pydantic-core's own serializer: ``tracks_json()`` and ``keyframe_json()``
are byte for byte what ``tracks.to_bytes()`` and ``keyframe.to_bytes()`` give (a unit test
checks it on the golden scenes). The models themselves are built, and fully validated, only
when someone reads ``tracks`` or ``keyframe`` (the offline replay, the golden tests).

The documents hold data the tracker computed from a validated ``Detections`` message; what the
schema would check per object is checked on the arrays at once (finite numbers), the rest holds
by construction (ids >= 1 and unique, boxes with x1 <= x2 and y1 <= y2, scores from the input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from pydantic_core import to_json

from vsa.schemas import (
    SCHEMA_VERSION,
    Alert,
    Counts,
    Detections,
    Keyframe,
    KeyframeReason,
    Tracks,
)

from .core import STATUS_NAMES, TrackOutputs

#: One tracked object as the tracks topic carries it (TrackedObject's fields, in order).
ObjectDoc = dict[str, Any]


def object_docs(outputs: TrackOutputs, class_names: dict[int, str]) -> list[ObjectDoc]:
    """The tracks topic's objects from the core's columnar output, as documents.

    Raises ValueError if the core produced a non-finite number (JSON cannot carry it).
    """
    xyxy, velocity, scores = outputs.xyxy, outputs.velocity_px_s, outputs.scores
    if not (np.isfinite(xyxy).all() and np.isfinite(velocity).all() and np.isfinite(scores).all()):
        raise ValueError(f"frame_seq {outputs.frame_seq}: the tracker produced non-finite values")
    ids, classes = outputs.track_ids.tolist(), outputs.class_ids.tolist()
    ages, status = outputs.age_frames.tolist(), outputs.status.tolist()
    boxes, speeds, confidences = xyxy.tolist(), velocity.tolist(), scores.tolist()
    return [
        {
            "track_id": ids[i],
            "xyxy": boxes[i],
            "class_id": classes[i],
            "class_name": class_names.get(classes[i]) or f"class-{classes[i]}",
            "score": confidences[i],
            "velocity_px_s": speeds[i],
            "age_frames": ages[i],
            "state": STATUS_NAMES[status[i]],
        }
        for i in range(len(ids))
    ]


@dataclass(frozen=True, eq=False)
class FrameOutputs:
    """What one frame produces: its tracks message, its alerts, the count periods it closed
    and maybe a keyframe.

    Attributes:
        message: the frame's detections message (camera, frame_seq, frame reference, time, size).
        objects: every tracked object of the frame (:func:`object_docs`).
        alerts: alerts fired on this frame.
        keyframe_reason: why this frame is a keyframe, or None when it is not one.
        keyframe_track_ids: the tracks the keyframe is about.
        restarted_from: when this frame restarted the camera's frame_seq, the last frame_seq
            applied before it (the camera started over); otherwise None.
        counts: count periods (line counts, occupancy) this frame closed.
    """

    message: Detections
    objects: list[ObjectDoc]
    alerts: list[Alert] = field(default_factory=list)
    keyframe_reason: KeyframeReason | None = None
    keyframe_track_ids: list[int] = field(default_factory=list)
    restarted_from: int | None = None
    counts: list[Counts] = field(default_factory=list)

    def _frame_fields(self) -> dict[str, Any]:
        m = self.message
        return {
            "schema_version": SCHEMA_VERSION,
            "camera_id": m.camera_id,
            "frame_seq": m.frame_seq,
            "frame": m.frame,
            "capture_ts": m.capture_ts,
        }

    def tracks_doc(self) -> dict[str, Any]:
        """The tracks message as a document (``Tracks`` fields in order)."""
        return {**self._frame_fields(), "tracks": self.objects}

    def tracks_json(self) -> bytes:
        """The tracks topic's value: the same bytes as ``self.tracks.to_bytes()``."""
        return to_json(self.tracks_doc())

    @cached_property
    def tracks(self) -> Tracks:
        """The tracks message as a validated model (built on first use)."""
        return Tracks.model_validate(self.tracks_doc())

    def keyframe_doc(self) -> dict[str, Any] | None:
        """The keyframe message as a document (``Keyframe`` fields in order), or None."""
        if self.keyframe_reason is None:
            return None
        return {
            **self._frame_fields(),
            "reason": self.keyframe_reason,
            "track_ids": self.keyframe_track_ids,
            "alert_ids": [alert.alert_id for alert in self.alerts],
            "objects": self.objects,
            "width": self.message.width,
            "height": self.message.height,
            "alerts": self.alerts,
        }

    def keyframe_json(self) -> bytes | None:
        """The keyframes topic's value (the bytes of ``self.keyframe.to_bytes()``), or None."""
        doc = self.keyframe_doc()
        return None if doc is None else to_json(doc)

    @cached_property
    def keyframe(self) -> Keyframe | None:
        """The keyframe as a validated model (built on first use), or None."""
        doc = self.keyframe_doc()
        return None if doc is None else Keyframe.model_validate(doc)
