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


def keyframe_due(
    last_keyframe_ts: float | None,
    interval_s: float,
    ts: float,
    any_confirmed: bool,
    new_track_ids: Sequence[int],
    alerts: Sequence[Alert],
) -> tuple[float | None, KeyframeReason | None, list[int]]:
    """Whether this frame is a keyframe: ``(new last-keyframe time, reason or None, track ids)``.

    Args:
        last_keyframe_ts: capture time of the camera's last keyframe, or None for none yet.
        interval_s: seconds between periodic keyframes; 0 = off.
        ts: this frame's capture time, UNIX seconds.
        any_confirmed: a confirmed track is seen on this frame (periodic keyframes need one).
        new_track_ids: tracks confirmed on this frame.
        alerts: alerts fired on this frame.
    """
    if alerts:
        return ts, "alert", sorted({tid for alert in alerts for tid in alert.track_ids})
    if new_track_ids:
        return ts, "new_track", sorted(new_track_ids)
    if _periodic_due(last_keyframe_ts, interval_s, ts, any_confirmed):
        return ts, "periodic", []
    return last_keyframe_ts, None, []


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
    confirmed = any(obj.state == "confirmed" for obj in objects)
    ts, reason, track_ids = keyframe_due(
        last_keyframe_ts, interval_s, message.capture_ts, confirmed, new_track_ids, alerts
    )
    if reason is None:
        return ts, None
    keyframe = Keyframe(
        camera_id=message.camera_id,
        frame_seq=message.frame_seq,
        frame=message.frame,
        capture_ts=message.capture_ts,
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
    last_keyframe_ts: float | None, interval_s: float, ts: float, any_confirmed: bool
) -> bool:
    """Periodic keyframes are on, one is due, and a confirmed object is in view."""
    if interval_s <= 0 or not any_confirmed:
        return False
    return last_keyframe_ts is None or ts - last_keyframe_ts >= interval_s
