"""What the zone kinds share: a zone resolved from the camera config, and the dwell logic of
zone intrusion and loitering (one alert per visit after a dwell time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .base import (
    CompiledRule,
    Evaluation,
    Phrase,
    RuleConfig,
    RuleFrame,
    RuleKind,
    ZoneShape,
    class_set,
    fire,
)
from .geometry import polygon_edges
from .table import COOLDOWN_UNTIL, ENTER_TS, FIRED, RuleTable

if TYPE_CHECKING:
    from ..camera_config import CameraConfig


@dataclass(frozen=True)
class ZoneRule(CompiledRule):
    """A rule about one zone. ``dwell_s``: seconds inside before alerting (dwell kinds)."""

    zone: ZoneShape
    dwell_s: float = 0.0


def zone_shape(camera: CameraConfig, zone_id: str) -> ZoneShape:
    """The zone's polygon as arrays."""
    polygon = np.array(camera.zone(zone_id).polygon, np.float64)
    return ZoneShape(zone_id, polygon, polygon_edges(polygon))


def zone_classes(camera: CameraConfig, zone_id: str, classes: list[str] | None) -> list[str] | None:
    """A rule's classes: its own, else its zone's (None: every class)."""
    return classes if classes is not None else camera.zone(zone_id).classes


def compile_zone_rule(
    kind: str,
    rule_id: str,
    zone_id: str,
    classes: list[str] | None,
    cooldown_s: float,
    camera: CameraConfig,
    dwell_s: float = 0.0,
) -> ZoneRule:
    """A zone rule with its zone's polygon, and its zone's classes when it names none."""
    return ZoneRule(
        rule_id=rule_id,
        kind=kind,
        target_id=zone_id,
        classes=class_set(zone_classes(camera, zone_id, classes)),
        cooldown_s=cooldown_s,
        zone=zone_shape(camera, zone_id),
        dwell_s=dwell_s,
    )


def evaluate_dwell(table: RuleTable, rule: ZoneRule, frame: RuleFrame) -> Evaluation:
    """Zone intrusion and loitering: alert once per visit after ``dwell_s`` inside.

    Looks at confirmed tracks matched on this frame: a lost track (coasting on its prediction)
    neither enters nor leaves, its row waits unchanged until it is seen again or removed, so a
    short occlusion does not restart a dwell time. Leaving the zone (seen outside) ends the
    visit. A track that a stationary rule marks still keeps its row as it is (it neither enters
    nor leaves, so box jitter across the zone's edge cannot start a new visit) and starts no
    alert until it moves again.
    """
    tracks = frame.tracks
    moving = tracks.observed if frame.still is None else tracks.observed & ~frame.still
    rows = moving.nonzero()[0]
    if rows.size == 0:
        return Evaluation(table)
    ts = frame.context.capture_ts
    inside = frame.inside(rule.zone)[rows] & frame.class_ok(rule.classes)[rows]
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
    firings = []
    for k in due.nonzero()[0]:
        details: dict[str, str | float] = {
            "zone_id": rule.target_id,
            "dwell_s": ts - float(entered[k]),
        }
        firings.append(fire(table, int(idx[k]), rule, frame.context, [int(rows[k])], details))
    return Evaluation(table, firings)


ConfigT = TypeVar("ConfigT", bound=RuleConfig)


def dwell_kind(
    name: str,
    config: type[ConfigT],
    zone_and_dwell: Callable[[ConfigT], tuple[str, float]],
    phrase: Phrase,
) -> RuleKind[ConfigT, ZoneRule]:
    """A kind that alerts once per visit after a dwell time (zone intrusion, loitering):
    ``zone_and_dwell`` reads a rule's zone_id and dwell time (seconds) from its config."""

    def compile_rule(rule: ConfigT, camera: CameraConfig) -> ZoneRule:
        zone_id, dwell_s = zone_and_dwell(rule)
        return compile_zone_rule(
            name, rule.rule_id, zone_id, rule.classes, rule.cooldown_s, camera, dwell_s
        )

    return RuleKind(name, config, compile_rule, evaluate_dwell, phrase)
