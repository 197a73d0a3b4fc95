"""What the line kinds share: a line resolved from the camera config, and crossings with
hysteresis (line crossing alerts, line counts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from ..common import CrossingDirection
from .base import CompiledRule, RuleConfig, RuleFrame, class_set
from .geometry import crosses_segment, side_beyond_band
from .table import BASE, PX, PY, SIDE, Layout, RuleTable

if TYPE_CHECKING:
    from ..camera_config import CameraConfig

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class LineRule(CompiledRule):
    """A rule about one line.

    Attributes:
        line: ``(2, 2)`` normalised end points a, b.
        direction: crossings the rule takes: 'a_to_b', 'b_to_a' or 'both'.
        hysteresis_box_heights: half-width of the line's dead band in heights of the track's
            box: a track changes side only beyond it. 0: no band.
    """

    line: F64
    direction: CrossingDirection = "both"
    hysteresis_box_heights: float = 0.0


#: A rule's own dead band for its line (line kinds' ``hysteresis_box_heights`` field).
HysteresisOverride = Field(
    None,
    description="Dead band on each side of the line, in heights of the track's box (see the "
    "line's field); null: the line's own.",
)

LineRuleT = TypeVar("LineRuleT", bound=LineRule)


def compile_line_rule(
    rule: RuleConfig,
    line_id: str,
    camera: CameraConfig,
    overrides: tuple[CrossingDirection | None, float | None] = (None, None),
    compiled: type[LineRuleT] = LineRule,  # type: ignore[assignment]
    **extra: Any,
) -> LineRuleT:
    """A line rule with the line's end points; ``overrides`` (direction, dead band) replace the
    line's own where not None; ``compiled`` is the kind's compiled class and ``extra`` its own
    fields."""
    line = camera.line(line_id)
    direction, band = overrides
    return compiled(
        rule_id=rule.rule_id,
        kind=rule.kind,
        target_id=line_id,
        classes=class_set(rule.classes),
        cooldown_s=rule.cooldown_s,
        line=np.array([line.a, line.b], np.float64),
        direction=direction or line.direction,
        hysteresis_box_heights=line.hysteresis_box_heights if band is None else band,
        **extra,
    )


@dataclass(frozen=True)
class Crossings:
    """The crossings of one frame: ``table`` (a writable copy with every observed track's row
    updated), ``rows`` (frame rows of the observed tracks), ``idx`` (their table rows),
    ``crossed`` (which of them crossed in a direction the rule takes, of its classes) and
    ``a_to_b`` (the direction of each)."""

    table: RuleTable
    rows: IntArray
    idx: IntArray
    crossed: Bools
    a_to_b: Bools


def crossings(
    table: RuleTable, rule: LineRule, frame: RuleFrame, layout: Layout = BASE
) -> Crossings | None:
    """Which observed tracks' anchors moved through the segment from one side to the other.

    SIDE and the point (PX, PY) of a row are the last side the track was on beyond the dead
    band and where it was last seen there; points within the band change neither, so a track
    standing on the line does not cross however its box jitters, and one that stops in the band
    and turns back does not cross either. Lost tracks are not looked at. None when no track is
    observed on the frame. New rows get the defaults of ``layout`` (the table's columns).
    """
    tracks, context = frame.tracks, frame.context
    rows = tracks.observed.nonzero()[0]
    if rows.size == 0:
        return None
    a, b = rule.line[0], rule.line[1]
    here = frame.points[rows]
    band_px = rule.hysteresis_box_heights * (tracks.xyxy[rows, 3] - tracks.xyxy[rows, 1])
    side = side_beyond_band(here, a, b, context.width, context.height, band_px)
    table, idx = table.with_rows(tracks.track_ids[rows], layout)
    last = table.ints[idx, SIDE]
    start = table.floats[idx, PX : PY + 1]
    flipped = (side != 0) & (last != 0) & (side != last)
    crossed = flipped & crosses_segment(start, here, a, b)
    a_to_b = last < 0
    wanted = {"both": crossed, "a_to_b": crossed & a_to_b, "b_to_a": crossed & ~a_to_b}
    beyond = side != 0
    table.ints[idx[beyond], SIDE] = side[beyond]
    table.floats[idx[beyond], PX : PY + 1] = here[beyond]
    taken = wanted[rule.direction] & frame.class_ok(rule.classes)[rows]
    return Crossings(table, rows, idx, taken, a_to_b)
