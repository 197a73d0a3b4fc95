"""The alerts topic (one message per alert) and the keyframes topic (frames worth describing).

Alert ids are deterministic so that a redelivered frame overwrites instead of duplicating:
:func:`make_alert_id` hashes (camera_id, rule_id, track_id, episode).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints, model_validator
from typing_extensions import Self

from .codec import FrameMessage, JsonMessage
from .common import (
    AlertId,
    CameraId,
    ClassName,
    Dimension,
    Finite,
    FrameRef,
    FrameSeq,
    Identifier,
    TrackId,
    UnixTs,
    VsaModel,
    Xyxy,
    check_frame_ref,
)
from .detections import MAX_BOXES, TrackedObject, check_unique_track_ids
from .rules import AlertKind

#: Hex digits of an alert id: BLAKE2b with a 16-byte digest (128 bits).
ALERT_ID_HEX_DIGITS = 32

DetailName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
DetailValue = (
    bool
    | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    | Finite
    | Annotated[str, StringConstraints(max_length=1000)]
)
KeyframeReason = Literal["new_track", "alert", "periodic"]


def make_alert_id(camera_id: str, rule_id: str, track_id: int, episode: int) -> str:
    """Deterministic id of one alert episode: 32 lowercase hex digits.

    The id is the BLAKE2b-128 hex digest of the UTF-8 bytes of the compact JSON array
    ``[camera_id, rule_id, track_id, episode]`` (``json.dumps(..., separators=(",", ":"))``,
    e.g. ``["cam-1","door",7,0]``). JSON makes the joined text unambiguous whatever the ids
    contain, and the digest is the same in every process, language and Python version.

    ``track_id`` is the track that triggered the alert, or 0 for rules not about one track
    (crowding). ``episode`` counts the times this rule fired for this track (or zone), from 0:
    the tracker keeps it in its rule state, so reprocessing a frame after a restart yields the
    same id and the alert overwrites itself downstream.
    """
    for name, value in (("track_id", track_id), ("episode", episode)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    canonical = json.dumps([camera_id, rule_id, track_id, episode], separators=(",", ":"))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).hexdigest()


class AlertSnapshot(VsaModel):
    """The frame that triggered an alert and the box to highlight in it."""

    frame: FrameRef = Field(description="The frames-topic record of the triggering frame.")
    xyxy: Xyxy = Field(
        description="Box to highlight, pixels of the original image: the triggering track's "
        "box, or for crowding the box around all counted tracks."
    )


class Alert(JsonMessage):
    """One alert: a rule of a camera fired for one or more tracks."""

    LOGICAL_TOPIC: ClassVar[str] = "alerts"

    alert_id: AlertId
    camera_id: CameraId
    rule_id: Identifier = Field(description="Id of the rule in the camera's config.")
    kind: AlertKind = Field(description="Which kind of rule fired.")
    track_ids: list[TrackId] = Field(
        min_length=1,
        max_length=MAX_BOXES,
        description="Tracks involved: one for intrusion, crossing and loitering; the counted "
        "tracks for crowding. Unique.",
    )
    class_name: ClassName = Field(description="Class of the (first) track, e.g. 'person'.")
    ts: UnixTs = Field(description="Capture time of the triggering frame, UNIX seconds.")
    frame_seq: FrameSeq
    snapshot: AlertSnapshot
    details: dict[DetailName, DetailValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Rule specifics, e.g. dwell_s (seconds), direction ('a_to_b'), count, "
        "zone_id, line_id, episode.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_frame_ref(self.snapshot.frame, self.camera_id, self.frame_seq)
        if len(set(self.track_ids)) != len(self.track_ids):
            raise ValueError(f"track_ids has duplicates: {self.track_ids}")
        return self


class Keyframe(FrameMessage):
    """A frame worth describing, why, and everything the captioner needs besides the JPEG."""

    LOGICAL_TOPIC: ClassVar[str] = "keyframes"

    reason: KeyframeReason = Field(
        description="'new_track' (a track was confirmed), 'alert' (an alert fired on this "
        "frame) or 'periodic' (the camera's keyframe_interval_s elapsed)."
    )
    track_ids: list[TrackId] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="Tracks this keyframe is about (new tracks, alert tracks); each must be "
        "in objects.",
    )
    alert_ids: list[AlertId] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="Alerts fired on this frame; at least one when reason is 'alert'.",
    )
    objects: list[TrackedObject] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="Every tracked object in the frame, as in the tracks topic.",
    )
    width: Dimension | None = Field(None, description="Width of the frame, pixels (if known).")
    height: Dimension | None = Field(None, description="Height of the frame, pixels (if known).")
    alerts: list[Alert] = Field(
        default_factory=list,
        max_length=MAX_BOXES,
        description="The alerts of alert_ids in full (rule, kind, dwell and zone details), so the "
        "captioner can describe them without reading the alerts topic; may be empty.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_unique_track_ids(self.objects, "objects")
        stray = [a.alert_id for a in self.alerts if a.alert_id not in self.alert_ids]
        if stray:
            raise ValueError(f"alerts {stray} are not listed in alert_ids")
        known = {obj.track_id for obj in self.objects}
        missing = [tid for tid in self.track_ids if tid not in known]
        if missing:
            raise ValueError(f"track_ids {missing} are not in objects")
        if self.reason == "alert" and not self.alert_ids:
            raise ValueError("reason 'alert' needs at least one alert_id")
        return self
