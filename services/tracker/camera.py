"""One camera's whole tracker state and the frame adapter: a ``Detections`` message in, the
``Tracks`` message, alerts and keyframe of that frame out. Pure (no Kafka, no Faust).

The Faust app keeps one :class:`CameraState` per camera_id in a table whose values are
``CameraState.to_bytes()``; for every detections message it calls :func:`process`, produces the
outputs and writes the new state back once Kafka acknowledged them. A redelivered message
(frame_seq not above the last applied one) returns the state unchanged and no outputs, unless
it restarts the camera's frame_seq (captured well after the last applied frame). The
outputs are built as JSON documents straight from the core's arrays (see ``outputs.py``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from vsa.schemas import Detections, TrackedObject
from vsa.services.appearance.wire import decode_vectors

from .core import (
    DEFAULT_CONFIG,
    STATUS_CONFIRMED,
    STATUS_NAMES,
    FrameDetections,
    StateFormatError,
    TrackerConfig,
    TrackerState,
    TrackOutputs,
    restarts_sequence,
    step,
)
from .core.binary import Reader, Writer
from .keyframes import keyframe_due
from .outputs import FrameOutputs, object_docs
from .rules import CameraRules, FrameContext, RuleOutputs, RuleState, TrackView, run_rules

#: First bytes of an encoded camera state; the last byte is the format version: 2, rule tables
#: with their column counts (kinds with columns of their own). Version 1 is still read.
MAGIC = b"VSACAM\x00\x02"
MAGIC_V1 = b"VSACAM\x00\x01"
_KEYFRAME = struct.Struct("<?d")  # has a last keyframe, its capture_ts
_COUNT = struct.Struct("<I")
_CLASS_ID = struct.Struct("<q")


@dataclass(frozen=True, eq=False)
class CameraState:
    """Everything the tracker remembers about one camera.

    Attributes:
        tracker: tracks, Kalman states, the id counter and the last applied frame_seq.
        rules: per-rule rows (dwell starts, line sides, episodes, cooldown ends).
        last_keyframe_ts: capture time of the last keyframe, or None.
        class_names: class id -> name, learned from the detections (the names tracks carry).
    """

    tracker: TrackerState = field(default_factory=TrackerState)
    rules: RuleState = field(default_factory=RuleState)
    last_keyframe_ts: float | None = None
    class_names: dict[int, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Encode exactly: parsing the bytes and encoding again gives the same bytes."""
        out = Writer()
        out.raw(MAGIC)
        self.tracker.write(out)
        self.rules.write(out)
        out.pack(_KEYFRAME, self.last_keyframe_ts is not None, self.last_keyframe_ts or 0.0)
        out.pack(_COUNT, len(self.class_names))
        for class_id, name in self.class_names.items():
            out.pack(_CLASS_ID, class_id)
            out.text(name)
        return out.getvalue()

    def restarted(self) -> CameraState:
        """The camera starting over after its frame_seq restarted: no tracks and no rule visit
        (track ids, alert episodes and cooldowns go on), keyframes due afresh."""
        return CameraState(self.tracker.restarted(), self.rules.restarted(), None, self.class_names)

    @classmethod
    def from_bytes(cls, data: bytes) -> CameraState:
        """Decode :meth:`to_bytes`; :class:`StateFormatError` for anything else."""
        src = Reader(bytes(data))
        magic = src.raw(len(MAGIC))
        if magic not in (MAGIC, MAGIC_V1):
            raise StateFormatError("not a camera state of format version 1 or 2 (bad magic bytes)")
        tracker = TrackerState.read(src)
        rules = RuleState.read(src, version=magic[-1])
        has_keyframe, keyframe_ts = src.unpack(_KEYFRAME)
        (count,) = src.unpack(_COUNT)
        names = {}
        for _ in range(count):
            (class_id,) = src.unpack(_CLASS_ID)
            names[int(class_id)] = src.text()
        src.done()
        return cls(tracker, rules, float(keyframe_ts) if has_keyframe else None, names)


__all__ = ["CameraState", "FrameOutputs", "detection_arrays", "process", "tracked_objects"]


def detection_arrays(message: Detections, with_appearance: bool = False) -> FrameDetections:
    """The columnar input of the tracking core from a detections message; with
    ``with_appearance`` the boxes' appearance vectors too, when the message carries them
    (only then: a state that keeps vectors costs 5 KB more per track in the changelog)."""
    boxes = message.boxes
    return FrameDetections(
        np.array([box.xyxy for box in boxes], np.float64).reshape(-1, 4),
        np.array([box.score for box in boxes], np.float64),
        np.array([box.class_id for box in boxes], np.int64),
        decode_vectors(message) if with_appearance else None,
    )


def tracked_objects(outputs: TrackOutputs, class_names: dict[int, str]) -> list[TrackedObject]:
    """The tracks topic's objects from the core's columnar output."""
    return [
        TrackedObject(
            track_id=int(outputs.track_ids[i]),
            xyxy=tuple(outputs.xyxy[i].tolist()),
            class_id=int(outputs.class_ids[i]),
            class_name=class_names.get(int(outputs.class_ids[i]), f"class-{outputs.class_ids[i]}"),
            score=float(outputs.scores[i]),
            velocity_px_s=tuple(outputs.velocity_px_s[i].tolist()),
            age_frames=int(outputs.age_frames[i]),
            state=STATUS_NAMES[outputs.status[i]],
        )
        for i in range(len(outputs))
    ]


def process(
    state: CameraState,
    message: Detections,
    rules: CameraRules | None = None,
    config: TrackerConfig = DEFAULT_CONFIG,
) -> tuple[CameraState, FrameOutputs | None]:
    """Apply one detections message to its camera's state.

    ``rules`` are the camera's compiled rules (None: track only). A camera whose config has
    ``enabled: false`` is ignored, as is a message already applied: both return the state
    unchanged and None. A message that restarts the camera's frame_seq (see
    :func:`~.core.restarts_sequence`) is applied to a camera starting over: tracks and rule
    visits end, track ids, alert episodes and cooldowns go on; its outputs say so in
    ``restarted_from``.
    """
    if rules is not None and not rules.enabled:
        return state, None
    seq, ts = message.frame_seq, message.capture_ts
    restart = restarts_sequence(state.tracker, seq, ts, config)
    restarted_from = state.tracker.last_frame_seq if restart else None
    reattach = config.reattach_min_similarity is not None
    detections = detection_arrays(message, with_appearance=reattach)
    tracker, outputs = step(state.tracker, detections, ts, seq, config)
    if outputs is None:
        return state, None
    if restart:
        state = state.restarted()  # for the rules and keyframes; step restarted the tracker
    names = {**state.class_names, **{box.class_id: box.class_name for box in message.boxes}}
    objects = object_docs(outputs, names)
    class_names = tuple(obj["class_name"] for obj in objects)
    ruled = _apply_rules(state.rules, rules, outputs, class_names, message)
    alerts = ruled.alerts
    keyframe_ts, reason, keyframe_tracks = keyframe_due(
        state.last_keyframe_ts,
        rules.keyframe_interval_s if rules is not None else 0.0,
        message.capture_ts,
        bool((outputs.status == STATUS_CONFIRMED).any()),
        outputs.new_confirmed_ids.tolist(),
        alerts,
    )
    new_state = CameraState(tracker, ruled.state, keyframe_ts, names)
    return new_state, FrameOutputs(
        message, objects, alerts, reason, keyframe_tracks, restarted_from, ruled.counts
    )


def _apply_rules(
    state: RuleState,
    rules: CameraRules | None,
    outputs: TrackOutputs,
    class_names: tuple[str, ...],
    message: Detections,
) -> RuleOutputs:
    if rules is None or not rules.rules:
        return RuleOutputs(RuleState())
    view = TrackView(
        track_ids=outputs.track_ids,
        xyxy=outputs.xyxy,
        class_names=class_names,
        observed=outputs.status == STATUS_CONFIRMED,
        confirmed=outputs.confirmed(),
        velocity_px_s=outputs.velocity_px_s,
        direction_deg=outputs.direction_deg,
    )
    frame = FrameContext(
        camera_id=message.camera_id,
        frame_seq=message.frame_seq,
        capture_ts=message.capture_ts,
        width=message.width,
        height=message.height,
        frame=message.frame,
    )
    return run_rules(state, rules, view, frame)
