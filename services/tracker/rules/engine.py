"""Evaluate a camera's rules on one frame of tracks: pure, deterministic, one pass per rule.

Which tracks a rule looks at:

- zone intrusion, loitering and line crossing: confirmed tracks matched on this frame. A lost
  track (coasting on its prediction) neither enters, leaves nor crosses anything; its rows
  wait unchanged until it is seen again or removed, so a short occlusion does not restart a
  dwell time or fake a crossing.
- crowding: every confirmed track, lost ones included at their predicted box, so one missed
  detection does not end a crowd and start a new alert.

A zone rule alerts once per visit: when a track has been inside for the rule's dwell time
(``min_dwell_s`` for intrusion, ``dwell_s`` for loitering) and the rule's cooldown for that
track has passed. Leaving the zone (seen outside) ends the visit. A line rule alerts when a
track's anchor point moves from one side of the line to the other through the segment, in an
allowed direction; a crossing during the cooldown is consumed without an alert. Sides have
hysteresis: a point within the rule's dead band (``hysteresis_box_heights`` times the track's
box height, in pixels, either side of the line) keeps the track's last side, so a track standing
on the line does not cross, however its box jitters, and one that stops in the band and turns
back does not cross either. A crowding rule
alerts when at least ``min_count`` tracks of its classes are in the zone, once per crowd (the
count must drop below ``min_count`` before the next), after the cooldown.

Every alert's id is ``make_alert_id(camera, rule, track, episode)``, where ``episode`` counts the
alerts of that rule for that track (0 for zone-wide rules), kept in the rule state: replaying the
same input from the same state gives the same alerts with the same ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vsa.schemas import Alert, AlertSnapshot, FrameRef, make_alert_id

from .compile import CameraRules, CompiledRule
from .geometry import anchor_points, crosses_segment, points_in_polygon, side_beyond_band
from .state import (
    COOLDOWN_UNTIL,
    ENTER_TS,
    EPISODE,
    FIRED,
    PX,
    PY,
    SIDE,
    ZONE_ROW,
    RuleState,
    RuleTable,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class FrameContext:
    """The frame the rules run on: who, when, how large, and where its JPEG is."""

    camera_id: str
    frame_seq: int
    capture_ts: float
    width: int
    height: int
    frame: FrameRef


@dataclass(frozen=True, eq=False)
class TrackView:
    """The tracks of one frame as the rules see them, one row per track, sorted by id.

    Attributes:
        track_ids: ``(m,)`` int64.
        xyxy: ``(m, 4)`` float64 boxes, pixels.
        class_names: the class name of each track.
        observed: ``(m,)`` confirmed tracks matched on this frame.
        confirmed: ``(m,)`` confirmed tracks, matched or lost.
        velocity_px_s: ``(m, 2)`` box-centre velocity, px/s.
        direction_deg: ``(m,)`` heading, degrees (0 right, 90 down).
    """

    track_ids: I64
    xyxy: F64
    class_names: tuple[str, ...]
    observed: Bools
    confirmed: Bools
    velocity_px_s: F64
    direction_deg: F64


@dataclass(frozen=True, eq=False)
class Anchors:
    """This frame's anchor points ``(m, 2)`` (normalised) and, per zone, which lie inside it.

    The zone test runs once per zone and frame, however many rules (intrusion, loitering,
    crowding) share the zone.
    """

    points: F64
    inside_zone: dict[tuple[str, bytes], Bools] = field(default_factory=dict)

    def inside(self, rule: CompiledRule) -> Bools:
        """``(m,)`` which anchor points lie inside the rule's zone polygon."""
        key = (rule.target_id, rule.polygon.tobytes())
        mask = self.inside_zone.get(key)
        if mask is None:
            mask = self.inside_zone[key] = points_in_polygon(self.points, rule.edges)
        return mask


Evaluator = Callable[
    [RuleTable, CompiledRule, TrackView, Anchors, Bools, FrameContext],
    tuple[RuleTable, list[Alert]],
]


def evaluate(
    state: RuleState, rules: CameraRules, tracks: TrackView, frame: FrameContext
) -> tuple[RuleState, list[Alert]]:
    """Run every rule of the camera on this frame's tracks.

    Returns the new rule state (tables of rules no longer configured are dropped, rows of
    removed tracks too) and the alerts, in rule order then track order.
    """
    anchors = Anchors(anchor_points(tracks.xyxy, frame.width, frame.height, rules.anchor))
    tables: dict[str, RuleTable] = {}
    alerts: list[Alert] = []
    masks: dict[frozenset[str] | None, Bools] = {}
    for rule in rules.rules:
        table = state.table(rule.rule_id).keep(tracks.track_ids)
        class_ok = masks.get(rule.classes)
        if class_ok is None:
            class_ok = masks[rule.classes] = _class_mask(tracks.class_names, rule.classes)
        table, fired = _EVALUATORS[rule.kind](table, rule, tracks, anchors, class_ok, frame)
        tables[rule.rule_id] = table
        alerts.extend(fired)
    return RuleState(tables), alerts


def _class_mask(names: tuple[str, ...], classes: frozenset[str] | None) -> Bools:
    if classes is None:
        return np.ones(len(names), bool)
    return np.fromiter((name in classes for name in names), bool, len(names))


def _zone_dwell(
    table: RuleTable,
    rule: CompiledRule,
    tracks: TrackView,
    anchors: Anchors,
    class_ok: Bools,
    frame: FrameContext,
) -> tuple[RuleTable, list[Alert]]:
    """Zone intrusion and loitering: alert once per visit after the dwell time."""
    rows = tracks.observed.nonzero()[0]
    if rows.size == 0:
        return table, []
    ts = frame.capture_ts
    inside = anchors.inside(rule)[rows] & class_ok[rows]
    table, idx = table.with_rows(tracks.track_ids[rows])
    entered = table.floats[idx, ENTER_TS]
    entered = np.where(inside, np.where(entered < 0, ts, entered), -1.0)
    table.floats[idx, ENTER_TS] = entered
    table.ints[idx, FIRED] = np.where(inside, table.ints[idx, FIRED], 0)
    due = (
        inside
        & (table.ints[idx, FIRED] == 0)
        & (ts - entered >= rule.dwell_s)
        & (ts >= table.floats[idx, COOLDOWN_UNTIL])
    )
    alerts = []
    for k in due.nonzero()[0]:
        details: dict[str, str | float] = {
            "zone_id": rule.target_id,
            "dwell_s": ts - float(entered[k]),
        }
        alerts.append(_fire(table, int(idx[k]), rule, tracks, [int(rows[k])], frame, details))
    return table, alerts


def _line_crossing(
    table: RuleTable,
    rule: CompiledRule,
    tracks: TrackView,
    anchors: Anchors,
    class_ok: Bools,
    frame: FrameContext,
) -> tuple[RuleTable, list[Alert]]:
    """Line crossing: the anchor moved through the segment from one side to the other.

    SIDE and the point (PX, PY) of a row are the last side the track was on beyond the dead
    band and where it was last seen there; points within the band change neither.
    """
    rows = tracks.observed.nonzero()[0]
    if rows.size == 0:
        return table, []
    a, b = rule.line[0], rule.line[1]
    here = anchors.points[rows]
    band_px = rule.hysteresis_box_heights * (tracks.xyxy[rows, 3] - tracks.xyxy[rows, 1])
    side = side_beyond_band(here, a, b, frame.width, frame.height, band_px)
    table, idx = table.with_rows(tracks.track_ids[rows])
    last = table.ints[idx, SIDE]
    start = table.floats[idx, PX : PY + 1]
    flipped = (side != 0) & (last != 0) & (side != last)
    crossed = flipped & crosses_segment(start, here, a, b)
    a_to_b = last < 0
    wanted = {"both": crossed, "a_to_b": crossed & a_to_b, "b_to_a": crossed & ~a_to_b}
    due = wanted[rule.direction] & class_ok[rows]
    due &= frame.capture_ts >= table.floats[idx, COOLDOWN_UNTIL]
    beyond = side != 0
    table.ints[idx[beyond], SIDE] = side[beyond]
    table.floats[idx[beyond], PX : PY + 1] = here[beyond]
    alerts = []
    for k in due.nonzero()[0]:
        details: dict[str, str | float] = {
            "line_id": rule.target_id,
            "direction": "a_to_b" if a_to_b[k] else "b_to_a",
            "heading_deg": float(tracks.direction_deg[rows[k]]),
        }
        alerts.append(_fire(table, int(idx[k]), rule, tracks, [int(rows[k])], frame, details))
    return table, alerts


def _crowding(
    table: RuleTable,
    rule: CompiledRule,
    tracks: TrackView,
    anchors: Anchors,
    class_ok: Bools,
    frame: FrameContext,
) -> tuple[RuleTable, list[Alert]]:
    """Crowding: at least min_count tracks in the zone; one alert per crowd."""
    rows = (tracks.confirmed & class_ok & anchors.inside(rule)).nonzero()[0]
    table, idx = table.with_rows(np.array([ZONE_ROW], np.int64))
    row = int(idx[0])
    if rows.size < rule.min_count:
        table.ints[row, FIRED] = 0
        return table, []
    if table.ints[row, FIRED] or frame.capture_ts < table.floats[row, COOLDOWN_UNTIL]:
        return table, []
    details: dict[str, str | float] = {
        "zone_id": rule.target_id,
        "count": int(rows.size),
        "min_count": rule.min_count,
    }
    return table, [_fire(table, row, rule, tracks, rows.tolist(), frame, details)]


def _fire(
    table: RuleTable,
    row: int,
    rule: CompiledRule,
    tracks: TrackView,
    track_rows: list[int],
    frame: FrameContext,
    details: dict[str, str | float],
) -> Alert:
    """Record the alert in the rule's row (episode, visit flag, cooldown) and build it."""
    episode = int(table.ints[row, EPISODE])
    table.ints[row, EPISODE] = episode + 1
    table.ints[row, FIRED] = 1
    table.floats[row, COOLDOWN_UNTIL] = frame.capture_ts + rule.cooldown_s
    ids = [int(tracks.track_ids[r]) for r in track_rows]
    key_track = int(table.track_ids[row])
    boxes = tracks.xyxy[track_rows]
    box = (*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist())
    return Alert(
        alert_id=make_alert_id(frame.camera_id, rule.rule_id, key_track, episode),
        camera_id=frame.camera_id,
        rule_id=rule.rule_id,
        kind=rule.kind,
        track_ids=ids,
        class_name=tracks.class_names[track_rows[0]],
        ts=frame.capture_ts,
        frame_seq=frame.frame_seq,
        snapshot=AlertSnapshot(frame=frame.frame, xyxy=box),
        details={**details, "episode": episode},
    )


_EVALUATORS: dict[str, Evaluator] = {
    "zone_intrusion": _zone_dwell,
    "loitering": _zone_dwell,
    "line_crossing": _line_crossing,
    "crowding": _crowding,
}
