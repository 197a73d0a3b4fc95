"""Line crossing: alert when a tracked object's anchor point crosses a line (in a direction)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ...common import BoxHeights, CrossingDirection, Identifier
from ..base import AlertWords, Evaluation, RuleConfig, RuleFrame, RuleKind, fire
from ..lines import HysteresisOverride, LineRule, compile_line_rule, crossings
from ..table import COOLDOWN_UNTIL, RuleTable

if TYPE_CHECKING:
    from ...alerts import Alert
    from ...camera_config import CameraConfig


class LineCrossingRule(RuleConfig):
    """Alert when a tracked object's box centre crosses a line."""

    kind: Literal["line_crossing"] = "line_crossing"
    line_id: Identifier
    direction: CrossingDirection | None = Field(
        None, description="Crossings that alert; null: the line's own direction."
    )
    hysteresis_box_heights: BoxHeights | None = HysteresisOverride


def compile_rule(rule: LineCrossingRule, camera: CameraConfig) -> LineRule:
    return compile_line_rule(
        rule, rule.line_id, camera, (rule.direction, rule.hysteresis_box_heights)
    )


def evaluate(table: RuleTable, rule: LineRule, frame: RuleFrame) -> Evaluation:
    """An alert per crossing in an allowed direction; one during the cooldown is consumed
    without an alert (see :func:`~..lines.crossings` for sides and the dead band)."""
    found = crossings(table, rule, frame)
    if found is None:
        return Evaluation(table)
    table, rows, idx = found.table, found.rows, found.idx
    context = frame.context
    due = found.crossed & (context.capture_ts >= table.floats[idx, COOLDOWN_UNTIL])
    firings = []
    for k in due.nonzero()[0]:
        details: dict[str, str | float] = {
            "line_id": rule.target_id,
            "direction": "a_to_b" if found.a_to_b[k] else "b_to_a",
            "heading_deg": float(frame.tracks.direction_deg[rows[k]]),
        }
        firings.append(fire(table, int(idx[k]), rule, context, [int(rows[k])], details))
    return Evaluation(table, firings)


def phrase(alert: Alert, words: AlertWords) -> str:
    """ "a person crossed line 'gate' (a_to_b)"."""
    line = words.line(alert.details.get("line_id", alert.rule_id))
    return f"{words.subject} crossed line '{line}' ({alert.details.get('direction', 'crossing')})"


KIND = RuleKind("line_crossing", LineCrossingRule, compile_rule, evaluate, phrase)
