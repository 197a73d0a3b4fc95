"""Evaluate a camera's rules on one frame of tracks: pure, deterministic, one pass per rule.

Each rule's evaluation is its kind's (``vsa.schemas.rules.kinds``: which tracks it looks at, when
it fires); this module runs them in order on one shared :class:`~vsa.schemas.rules.RuleFrame`
(anchor points, zone tests and class masks computed once per frame), keeps each rule's table,
and turns what they fire into ``Alert`` messages and the periods they close into ``Counts``
messages.

Every alert's id is ``make_alert_id(camera, rule, track, episode)``, where ``episode`` counts the
alerts of that rule for that track (0 for zone-wide rules), kept in the rule state: replaying the
same input from the same state gives the same alerts with the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vsa.schemas import Alert, AlertSnapshot, Counts, make_alert_id, make_count_id
from vsa.schemas.rules import CountRecord, Firing, FrameContext, RuleFrame, TrackView, rule_kind
from vsa.schemas.rules.geometry import anchor_points

from .compile import CameraRules
from .state import RuleState, RuleTable

__all__ = ["FrameContext", "RuleOutputs", "TrackView", "evaluate", "run_rules"]


@dataclass(frozen=True)
class RuleOutputs:
    """What a camera's rules did on one frame: their new state, the alerts they fired (in rule
    order, then track order) and the count periods they closed."""

    state: RuleState
    alerts: list[Alert] = field(default_factory=list)
    counts: list[Counts] = field(default_factory=list)


def evaluate(
    state: RuleState, rules: CameraRules, tracks: TrackView, frame: FrameContext
) -> tuple[RuleState, list[Alert]]:
    """Run every rule of the camera on this frame's tracks: the new rule state (tables of rules
    no longer configured are dropped, rows of removed tracks too) and the alerts, in rule order
    then track order. :func:`run_rules` also gives the closed count periods."""
    outputs = run_rules(state, rules, tracks, frame)
    return outputs.state, outputs.alerts


def run_rules(
    state: RuleState, rules: CameraRules, tracks: TrackView, frame: FrameContext
) -> RuleOutputs:
    """Run every rule of the camera on this frame's tracks, each by its kind."""
    points = anchor_points(tracks.xyxy, frame.width, frame.height, rules.anchor)
    view = RuleFrame(frame, tracks, points, rules.anchor)
    tables: dict[str, RuleTable] = {}
    outputs = RuleOutputs(RuleState(tables))
    for rule in rules.rules:
        kind = rule_kind(rule.kind)
        table = kind.keep(state.table(rule.rule_id).fit(kind.layout), rule, view)
        result = kind.evaluate(table, rule, view)
        tables[rule.rule_id] = result.table
        outputs.alerts.extend(alert_of(firing, view) for firing in result.firings)
        outputs.counts.extend(counts_of(record, frame) for record in result.counts)
        view = view.with_still(result.still)
    return outputs


def counts_of(record: CountRecord, frame: FrameContext) -> Counts:
    """The counts-topic message of a closed period, with its deterministic id."""
    return Counts(
        count_id=make_count_id(frame.camera_id, record.rule_id, record.period_start_ts),
        camera_id=frame.camera_id,
        rule_id=record.rule_id,
        kind=record.kind,
        target_id=record.target_id,
        period_start_ts=record.period_start_ts,
        period_end_ts=record.period_end_ts,
        frame_seq=frame.frame_seq,
        values=record.values,
    )


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
