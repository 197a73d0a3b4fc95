"""Evaluate a camera's rules on one frame of tracks: pure, deterministic, one pass per rule.

Each rule's evaluation is its kind's (``vsa.schemas.rules.kinds``: which tracks it looks at, when
it fires); this module runs them in order on one shared :class:`~vsa.schemas.rules.RuleFrame`
(anchor points, zone tests and class masks computed once per frame), keeps each rule's table,
and turns what they fire into ``Alert`` messages.

Every alert's id is ``make_alert_id(camera, rule, track, episode)``, where ``episode`` counts the
alerts of that rule for that track (0 for zone-wide rules), kept in the rule state: replaying the
same input from the same state gives the same alerts with the same ids.
"""

from __future__ import annotations

from vsa.schemas import Alert, AlertSnapshot, make_alert_id
from vsa.schemas.rules import Firing, FrameContext, RuleFrame, TrackView, rule_kind
from vsa.schemas.rules.geometry import anchor_points

from .compile import CameraRules
from .state import RuleState, RuleTable

__all__ = ["FrameContext", "TrackView", "evaluate"]


def evaluate(
    state: RuleState, rules: CameraRules, tracks: TrackView, frame: FrameContext
) -> tuple[RuleState, list[Alert]]:
    """Run every rule of the camera on this frame's tracks.

    Returns the new rule state (tables of rules no longer configured are dropped, rows of
    removed tracks too) and the alerts, in rule order then track order.
    """
    points = anchor_points(tracks.xyxy, frame.width, frame.height, rules.anchor)
    view = RuleFrame(frame, tracks, points, rules.anchor)
    tables: dict[str, RuleTable] = {}
    alerts: list[Alert] = []
    for rule in rules.rules:
        kind = rule_kind(rule.kind)
        table = kind.keep(state.table(rule.rule_id).fit(kind.layout), rule, view)
        result = kind.evaluate(table, rule, view)
        tables[rule.rule_id] = result.table
        alerts.extend(alert_of(firing, view) for firing in result.firings)
        view = view.with_still(result.still)
    return RuleState(tables), alerts


def alert_of(firing: Firing, view: RuleFrame) -> Alert:
    """The alerts-topic message of a firing: the tracks it names, the box around them (the
    snapshot to highlight) and its deterministic id."""
    tracks, frame, rows = view.tracks, view.context, firing.track_rows
    boxes = tracks.xyxy[rows]
    box = (*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist())
    return Alert(
        alert_id=make_alert_id(frame.camera_id, firing.rule_id, firing.key_track, firing.episode),
        camera_id=frame.camera_id,
        rule_id=firing.rule_id,
        kind=firing.kind,
        track_ids=[int(tracks.track_ids[r]) for r in rows],
        class_name=tracks.class_names[rows[0]],
        ts=frame.capture_ts,
        frame_seq=frame.frame_seq,
        snapshot=AlertSnapshot(frame=frame.frame, xyxy=box),
        details={**firing.details, "episode": firing.episode},
    )
