"""What the zone kinds share: a zone resolved from the camera config, and the dwell logic of
zone intrusion and loitering (one alert per visit after a dwell time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import Field

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


#: The field of kinds that may be limited to a zone (speed, stationary).
OptionalZoneField = Field(
    None, description="Only objects inside this zone; null: anywhere in the image."
)


def optional_zone(camera: CameraConfig, zone_id: str | None) -> ZoneShape | None:
    """The zone's shape, or None for a rule about the whole image."""
    return None if zone_id is None else zone_shape(camera, zone_id)


def zone_classes(camera: CameraConfig, zone_id: str, classes: list[str] | None) -> list[str] | None:
    """A rule's classes: its own, else its zone's (None: every class)."""
    return classes if classes is not None else camera.zone(zone_id).classes


ZoneRuleT = TypeVar("ZoneRuleT", bound=ZoneRule)


def compile_zone_rule(
    rule: RuleConfig,
    zone_id: str,
    camera: CameraConfig,
    compiled: type[ZoneRuleT] = ZoneRule,  # type: ignore[assignment]
    **extra: Any,
) -> ZoneRuleT:
    """A zone rule with its zone's polygon, and its zone's classes when it names none;
    ``compiled`` is the kind's compiled class and ``extra`` its own fields."""
    return compiled(
        rule_id=rule.rule_id,
        kind=rule.kind,
        target_id=zone_id,
        classes=class_set(zone_classes(camera, zone_id, rule.classes)),
        cooldown_s=rule.cooldown_s,
        zone=zone_shape(camera, zone_id),
        **extra,
    )


def evaluate_dwell(table: RuleTable, rule: ZoneRule, frame: RuleFrame) -> Evaluation:
    """Zone intrusion and loitering: alert once per visit after ``dwell_s`` inside.

    Looks at confirmed tracks matched on this frame: a lost track (coasting on its prediction)
    neither enters nor leaves, its row waits unchanged until it is seen again or removed, so a
    short occlusion does not restart a dwell time. Leaving the zone (seen outside) ends the
    visit. A visit spent still (a track a stationary rule marks) counts as alerted: it alerts
    neither while the object stands nor when it moves off within the zone; once it has left and
    comes back, it alerts again.
    """
    tracks = frame.tracks
    rows = tracks.observed.nonzero()[0]
    if rows.size == 0:
        return Evaluation(table)
    ts = frame.context.capture_ts
    inside = frame.inside(rule.zone)[rows] & frame.class_ok(rule.classes)[rows]
    table, idx = table.with_rows(tracks.track_ids[rows])
    entered = table.floats[idx, ENTER_TS]
    entered = np.where(inside, np.where(entered < 0, ts, entered), -1.0)
    table.floats[idx, ENTER_TS] = entered
    table.ints[idx, FIRED] = np.where(inside, table.ints[idx, FIRED], 0)
    if frame.still is not None:
        table.ints[idx[inside & frame.still[rows]], FIRED] = 1
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
        return compile_zone_rule(rule, zone_id, camera, dwell_s=dwell_s)

    return RuleKind(name, config, compile_rule, evaluate_dwell, phrase)
