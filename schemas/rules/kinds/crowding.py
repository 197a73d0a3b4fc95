"""Crowding: alert when at least ``min_count`` tracked objects are in a zone at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from ...common import Identifier
from ..base import AlertWords, Evaluation, RuleConfig, RuleFrame, RuleKind, fire
from ..table import COOLDOWN_UNTIL, FIRED, ZONE_ROW, RuleTable
from ..zones import ZoneRule, compile_zone_rule

if TYPE_CHECKING:
    from ...alerts import Alert
    from ...camera_config import CameraConfig


class CrowdingRule(RuleConfig):
    """Alert when at least ``min_count`` tracked objects are in a zone at once."""

    kind: Literal["crowding"] = "crowding"
    zone_id: Identifier
    min_count: int = Field(ge=2, le=100_000, description="Objects in the zone that make a crowd.")


@dataclass(frozen=True)
class CrowdRule(ZoneRule):
    """A crowding rule: ``min_count`` objects make a crowd."""

    min_count: int = 2


def compile_rule(rule: CrowdingRule, camera: CameraConfig) -> CrowdRule:
    return compile_zone_rule(rule, rule.zone_id, camera, CrowdRule, min_count=rule.min_count)


def evaluate(table: RuleTable, rule: CrowdRule, frame: RuleFrame) -> Evaluation:
    """One alert per crowd, after the cooldown: the count must drop below ``min_count``
    before the next. Every confirmed track counts, lost ones at their predicted box, so one
    missed detection does not end a crowd and start a new alert."""
    tracks = frame.tracks
    rows = (tracks.confirmed & frame.class_ok(rule.classes) & frame.inside(rule.zone)).nonzero()[0]
    table, idx = table.with_rows(np.array([ZONE_ROW], np.int64))
    row = int(idx[0])
    if rows.size < rule.min_count:
        table.ints[row, FIRED] = 0
        return Evaluation(table)
    if table.ints[row, FIRED] or frame.context.capture_ts < table.floats[row, COOLDOWN_UNTIL]:
        return Evaluation(table)
    details: dict[str, str | float] = {
        "zone_id": rule.target_id,
        "count": int(rows.size),
        "min_count": rule.min_count,
    }
    return Evaluation(table, [fire(table, row, rule, frame.context, rows.tolist(), details)])


def phrase(alert: Alert, words: AlertWords) -> str:
    """ "4 people crowding zone 'plaza'"."""
    count = int(alert.details.get("count", len(alert.track_ids)))
    zone = words.zone(alert.details.get("zone_id", ""))
    return f"{words.noun(alert.class_name, count)} crowding zone '{zone}'"


KIND = RuleKind("crowding", CrowdingRule, compile_rule, evaluate, phrase)
