"""Which frames the captioner should describe, and why (pure).

At most one keyframe per frame, with the most important reason:

1. ``alert``: an alert fired on this frame (its tracks and alert ids are listed);
2. ``new_track``: a track was confirmed on this frame (a new object worth describing);
3. ``periodic``: the camera's ``keyframe_interval_s`` passed since the last keyframe and a
   confirmed object is in view (0 turns periodic keyframes off).

Any keyframe restarts the periodic interval, so a busy scene is not described twice as often.
The time of the last keyframe lives in the camera's state.
"""

from __future__ import annotations

from collections.abc import Sequence

from vsa.schemas import Alert, Detections, Keyframe, KeyframeReason, TrackedObject


def decide_keyframe(
    last_keyframe_ts: float | None,
    interval_s: float,
    message: Detections,
    objects: Sequence[TrackedObject],
    new_track_ids: Sequence[int],
    alerts: Sequence[Alert],
) -> tuple[float | None, Keyframe | None]:
    """The keyframe of this frame, if any, and the new last-keyframe time.

    Args:
        last_keyframe_ts: capture time of the camera's last keyframe, or None for none yet.
        interval_s: seconds between periodic keyframes; 0 = off.
        message: the frame's detections message (camera, frame_seq, frame reference, time).
        objects: every tracked object of the frame, as in the tracks topic.
        new_track_ids: tracks confirmed on this frame.
        alerts: alerts fired on this frame.
    """
    ts = message.capture_ts
    reason: KeyframeReason | None = None
    track_ids: list[int] = []
    if alerts:
        reason = "alert"
        track_ids = sorted({tid for alert in alerts for tid in alert.track_ids})
    elif new_track_ids:
        reason = "new_track"
        track_ids = sorted(new_track_ids)
    elif _periodic_due(last_keyframe_ts, interval_s, ts, objects):
        reason = "periodic"
    if reason is None:
        return last_keyframe_ts, None
    keyframe = Keyframe(
        camera_id=message.camera_id,
        frame_seq=message.frame_seq,
        frame=message.frame,
        capture_ts=ts,
        reason=reason,
        track_ids=track_ids,
        alert_ids=[alert.alert_id for alert in alerts],
        objects=list(objects),
        width=message.width,
        height=message.height,
        alerts=list(alerts),
    )
    return ts, keyframe


def _periodic_due(
    last_keyframe_ts: float | None, interval_s: float, ts: float, objects: Sequence[TrackedObject]
) -> bool:
    """Periodic keyframes are on, one is due, and a confirmed object is in view."""
    if interval_s <= 0 or not any(obj.state == "confirmed" for obj in objects):
        return False
    return last_keyframe_ts is None or ts - last_keyframe_ts >= interval_s
