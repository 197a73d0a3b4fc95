"""Zone occupancy over time: how many objects were in a zone during each period of
``interval_s`` seconds, sent as one message per period on the ``counts`` topic (no alerts).

Every confirmed track counts, a lost one at its predicted box (as for crowding), so one missed
detection does not dip the count. Per period: ``min`` and ``max`` objects seen on a frame,
``mean`` (time-weighted: each frame's count holds until the next frame), ``frames`` and
``observed_s`` (seconds of the period the camera was watched). A count carries across a
period's end when the frames continue; after a gap of a whole period the next one starts at
its first frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from ...common import Identifier
from ..base import CountRecord, Evaluation, RuleConfig, RuleFrame, RuleKind
from ..periods import IntervalField, period_start
from ..table import BASE, N_FLOAT_COLS, N_INT_COLS, ZONE_ROW, RuleTable
from ..zones import ZoneRule, compile_zone_rule

if TYPE_CHECKING:
    from ...camera_config import CameraConfig

# Columns of the zone row.
LOW: Final = N_INT_COLS  # fewest objects on a frame in the open period
HIGH: Final = N_INT_COLS + 1  # most objects on a frame
LAST_COUNT: Final = N_INT_COLS + 2  # objects on the last frame
FRAMES: Final = N_INT_COLS + 3  # frames in the open period
PERIOD_START: Final = N_FLOAT_COLS  # start of the open period, -1 before the first frame
AREA: Final = N_FLOAT_COLS + 1  # objects x seconds so far in the open period
LAST_TS: Final = N_FLOAT_COLS + 2  # capture_ts of the last frame
WATCHED_FROM: Final = N_FLOAT_COLS + 3  # when the open period's observation began
LAYOUT: Final = BASE.extended(ints=(0, 0, 0, 0), floats=(-1.0, 0.0, -1.0, -1.0))


class OccupancyRule(RuleConfig):
    """Objects in a zone over time: min, max and mean per ``interval_s``."""

    kind: Literal["occupancy"] = "occupancy"
    zone_id: Identifier
    interval_s: float = IntervalField


@dataclass(frozen=True)
class OccupancyZoneRule(ZoneRule):
    """An occupancy rule: its zone and period."""

    interval_s: float = 60.0


def compile_rule(rule: OccupancyRule, camera: CameraConfig) -> OccupancyZoneRule:
    return compile_zone_rule(
        rule, rule.zone_id, camera, OccupancyZoneRule, interval_s=rule.interval_s
    )


def _record(table: RuleTable, zone: int, rule: OccupancyZoneRule, end: float) -> CountRecord:
    """The open period's numbers, its count held from the last frame until ``end``."""
    ints, floats = table.ints[zone], table.floats[zone]
    area = float(floats[AREA]) + int(ints[LAST_COUNT]) * (end - float(floats[LAST_TS]))
    watched = end - float(floats[WATCHED_FROM])
    values: dict[str, float] = {
        "min": int(ints[LOW]),
        "max": int(ints[HIGH]),
        "mean": round(area / watched, 6) if watched > 0 else float(ints[LAST_COUNT]),
        "frames": int(ints[FRAMES]),
        "observed_s": round(watched, 6),
    }
    start = float(floats[PERIOD_START])
    return CountRecord(rule.rule_id, rule.kind, rule.target_id, start, end, values)


def _open(table: RuleTable, zone: int, start: float, since: float, count: int) -> None:
    """Start a period at ``start``, watched from ``since`` with ``count`` objects so far."""
    table.floats[zone, [PERIOD_START, AREA, WATCHED_FROM]] = (start, 0.0, since)
    table.ints[zone, [LOW, HIGH, FRAMES]] = (count, count, 0)


def evaluate(table: RuleTable, rule: OccupancyZoneRule, frame: RuleFrame) -> Evaluation:
    """Close the open period if this frame is past its end, then add this frame's count."""
    tracks, ts = frame.tracks, frame.context.capture_ts
    inside = tracks.confirmed & frame.class_ok(rule.classes) & frame.inside(rule.zone)
    count = int(np.count_nonzero(inside))
    table, (zone,) = table.with_rows(np.array([ZONE_ROW], np.int64), LAYOUT)
    start = float(table.floats[zone, PERIOD_START])
    closed = []
    if start < 0:
        _open(table, zone, period_start(ts, rule.interval_s), ts, count)
    elif ts >= start + rule.interval_s:
        end = start + rule.interval_s
        closed.append(_record(table, zone, rule, end))
        held = int(table.ints[zone, LAST_COUNT])
        new_start = period_start(ts, rule.interval_s)
        if new_start == end and ts > new_start:  # the last count held into this period
            _open(table, zone, new_start, new_start, held)
            table.floats[zone, AREA] = held * (ts - new_start)
        else:
            _open(table, zone, new_start, ts, count)
    else:
        last_ts = float(table.floats[zone, LAST_TS])
        table.floats[zone, AREA] += int(table.ints[zone, LAST_COUNT]) * (ts - last_ts)
    table.ints[zone, LOW] = min(int(table.ints[zone, LOW]), count)
    table.ints[zone, HIGH] = max(int(table.ints[zone, HIGH]), count)
    table.ints[zone, FRAMES] += 1
    table.ints[zone, LAST_COUNT] = count
    table.floats[zone, LAST_TS] = ts
    return Evaluation(table, counts=closed)


KIND = RuleKind(
    "occupancy", OccupancyRule, compile_rule, evaluate, None, layout=LAYOUT, counts=True
)
