"""Line counts: objects crossing a line, per direction, summed per period of ``interval_s``
seconds and sent as one message per period on the ``counts`` topic (no alerts).

A crossing is what a line-crossing rule would alert on (the anchor point moving through the
segment from one side to the other, beyond the line's dead band; see ``..lines``), counted
whatever the cooldown: ``a_to_b`` (side -1 to +1), ``b_to_a`` and their ``total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

from ...common import BoxHeights, CrossingDirection, Identifier
from ..base import CountRecord, Evaluation, RuleConfig, RuleFrame, RuleKind
from ..lines import HysteresisOverride, LineRule, compile_line_rule, crossings
from ..periods import IntervalField, period_start
from ..table import BASE, N_FLOAT_COLS, N_INT_COLS, ZONE_ROW, RuleTable

if TYPE_CHECKING:
    from ...camera_config import CameraConfig

A_TO_B: Final = N_INT_COLS  # crossings so far in the open period (zone row)
B_TO_A: Final = N_INT_COLS + 1
PERIOD_START: Final = N_FLOAT_COLS  # start of the open period, -1 before the first frame
LAYOUT: Final = BASE.extended(ints=(0, 0), floats=(-1.0,))


class LineCountRule(RuleConfig):
    """Count crossings of a line per direction, one counts message per ``interval_s``."""

    kind: Literal["line_count"] = "line_count"
    line_id: Identifier
    interval_s: float = IntervalField
    hysteresis_box_heights: BoxHeights | None = HysteresisOverride


@dataclass(frozen=True)
class CountLineRule(LineRule):
    """A line count: crossings in both directions, per period of ``interval_s``."""

    interval_s: float = 60.0


def compile_rule(rule: LineCountRule, camera: CameraConfig) -> CountLineRule:
    overrides: tuple[CrossingDirection, float | None] = ("both", rule.hysteresis_box_heights)
    return compile_line_rule(
        rule, rule.line_id, camera, overrides, CountLineRule, interval_s=rule.interval_s
    )


def evaluate(table: RuleTable, rule: CountLineRule, frame: RuleFrame) -> Evaluation:
    """Close the open period if this frame is past its end, then count this frame's crossings."""
    found = crossings(table, rule, frame, LAYOUT)
    table = table if found is None else found.table
    table, (zone,) = table.with_rows(np.array([ZONE_ROW], np.int64), LAYOUT)
    ts = frame.context.capture_ts
    start = float(table.floats[zone, PERIOD_START])
    closed = []
    if start < 0 or ts >= start + rule.interval_s:
        if start >= 0:
            a_to_b, b_to_a = (int(n) for n in table.ints[zone, [A_TO_B, B_TO_A]])
            values: dict[str, float] = {
                "a_to_b": a_to_b,
                "b_to_a": b_to_a,
                "total": a_to_b + b_to_a,
            }
            closed.append(
                CountRecord(
                    rule.rule_id, rule.kind, rule.target_id, start, start + rule.interval_s, values
                )
            )
        table.floats[zone, PERIOD_START] = period_start(ts, rule.interval_s)
        table.ints[zone, [A_TO_B, B_TO_A]] = 0
    if found is not None:
        crossed = found.crossed
        table.ints[zone, A_TO_B] += int(np.count_nonzero(crossed & found.a_to_b))
        table.ints[zone, B_TO_A] += int(np.count_nonzero(crossed & ~found.a_to_b))
    return Evaluation(table, counts=closed)


KIND = RuleKind(
    "line_count", LineCountRule, compile_rule, evaluate, None, layout=LAYOUT, counts=True
)
