"""Speed: alert when a tracked object moves faster than a threshold, in pixels/s or in m/s.

Speed is the track's Kalman velocity (of the box centre), measured at its anchor point: in
pixels per second of the frame, or in metres per second through the camera's calibration (a
scale, or a four-point homography of the ground plane; see ``vsa.schemas.calibration``). An
object must stay at or above ``min_speed`` for ``min_duration_s`` before it alerts (a new
track's first velocity estimates are rough), once per episode: the episode ends when it slows
below 90 % of the threshold, and the cooldown runs from the alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from ...common import Identifier, Seconds
from ..base import (
    AlertWords,
    CompiledRule,
    Evaluation,
    RuleConfig,
    RuleFrame,
    RuleKind,
    ZoneShape,
    class_set,
    fire,
)
from ..geometry import apply_homography, homography
from ..table import BASE, COOLDOWN_UNTIL, FIRED, N_FLOAT_COLS, RuleTable
from ..zones import OptionalZoneField, optional_zone

if TYPE_CHECKING:
    from ...alerts import Alert
    from ...camera_config import CameraConfig

F64 = npt.NDArray[np.float64]

SpeedUnit = Literal["px_s", "m_s"]
UNIT_WORDS: Final = {"px_s": "px/s", "m_s": "m/s"}
#: An episode ends when the speed falls below this fraction of the threshold (hysteresis).
REARM_FRACTION: Final = 0.9
#: Step of the numeric derivative through a homography, seconds.
_DT_S: Final = 0.1

OVER_SINCE: Final = N_FLOAT_COLS  # capture_ts the track reached the threshold, -1 below it
LAYOUT: Final = BASE.extended(floats=(-1.0,))


class SpeedRule(RuleConfig):
    """Alert when a tracked object moves at ``min_speed`` or faster for ``min_duration_s``."""

    kind: Literal["speed"] = "speed"
    min_speed: float = Field(
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="Threshold in the rule's unit. Raise it to catch only the fastest objects.",
    )
    unit: SpeedUnit = Field(
        "px_s",
        description="'px_s': pixels per second of the frame; 'm_s': metres per second (needs "
        "the camera's calibration).",
    )
    zone_id: Identifier | None = OptionalZoneField
    min_duration_s: Seconds = Field(
        0.5,
        description="Seconds at or above the threshold before alerting; raise it to ignore "
        "speed spikes of a jittery box, lower it to alert sooner.",
    )

    def problem(self, camera: CameraConfig) -> str | None:
        if self.unit == "m_s" and camera.calibration is None:
            return "unit 'm_s' needs the camera's calibration (metres_per_pixel or a homography)"
        return None


@dataclass(frozen=True)
class CompiledSpeed(CompiledRule):
    """A speed rule's threshold and how speeds are measured: ``scale`` (metres per pixel, or
    1 for pixels) or ``ground`` (a homography from normalised image points to metres)."""

    min_speed: float
    unit: SpeedUnit
    min_duration_s: float
    zone: ZoneShape | None
    scale: float = 1.0
    ground: F64 | None = None


def compile_rule(rule: SpeedRule, camera: CameraConfig) -> CompiledSpeed:
    scale, ground = 1.0, None
    calibration = camera.calibration
    if rule.unit == "m_s" and calibration is not None:
        if calibration.metres_per_pixel is not None:
            scale = calibration.metres_per_pixel
        elif calibration.image_points is not None and calibration.ground_points is not None:
            image = np.array(calibration.image_points, np.float64)
            ground = homography(image, np.array(calibration.ground_points, np.float64))
    return CompiledSpeed(
        rule_id=rule.rule_id,
        kind=rule.kind,
        target_id=rule.zone_id or "",
        classes=class_set(rule.classes),
        cooldown_s=rule.cooldown_s,
        min_speed=rule.min_speed,
        unit=rule.unit,
        min_duration_s=rule.min_duration_s,
        zone=optional_zone(camera, rule.zone_id),
        scale=scale,
        ground=ground,
    )


def speeds(rule: CompiledSpeed, frame: RuleFrame, rows: npt.NDArray[np.intp]) -> F64:
    """``(k,)`` speed of the tracks at ``rows`` in the rule's unit."""
    velocity = frame.tracks.velocity_px_s[rows]
    if rule.ground is None:
        result: F64 = np.hypot(velocity[:, 0], velocity[:, 1]) * rule.scale
        return result
    size = np.array([frame.context.width, frame.context.height], np.float64)
    here = frame.points[rows]
    later = here + velocity / size * _DT_S
    step = apply_homography(rule.ground, later) - apply_homography(rule.ground, here)
    metres_s: F64 = np.hypot(step[:, 0], step[:, 1]) / _DT_S
    return metres_s


def evaluate(table: RuleTable, rule: CompiledSpeed, frame: RuleFrame) -> Evaluation:
    """Observed tracks of the rule's classes (and zone): alert once per episode over the
    threshold, after ``min_duration_s``; lost tracks wait unchanged."""
    tracks, context = frame.tracks, frame.context
    rows = frame.observed_in(rule.classes, rule.zone).nonzero()[0]
    if rows.size == 0:
        return Evaluation(table)
    ts = context.capture_ts
    speed = speeds(rule, frame, rows)
    table, idx = table.with_rows(tracks.track_ids[rows], LAYOUT)
    over = speed >= rule.min_speed
    since = table.floats[idx, OVER_SINCE]
    since = np.where(over, np.where(since < 0, ts, since), -1.0)
    table.floats[idx, OVER_SINCE] = since
    slow = speed < REARM_FRACTION * rule.min_speed
    table.ints[idx, FIRED] = np.where(slow, 0, table.ints[idx, FIRED])
    due = (
        over
        & (table.ints[idx, FIRED] == 0)
        & (ts - since >= rule.min_duration_s)
        & (ts >= table.floats[idx, COOLDOWN_UNTIL])
    )
    firings = []
    for k in due.nonzero()[0]:
        details: dict[str, str | float] = {
            "speed": round(float(speed[k]), 3),
            "unit": UNIT_WORDS[rule.unit],
            "min_speed": rule.min_speed,
        }
        if rule.target_id:
            details["zone_id"] = rule.target_id
        firings.append(fire(table, int(idx[k]), rule, context, [int(rows[k])], details))
    return Evaluation(table, firings)


def phrase(alert: Alert, words: AlertWords) -> str:
    """ "a white car moving at 14.2 m/s (limit 8 m/s)"."""
    unit = alert.details.get("unit", "px/s")
    speed = float(alert.details.get("speed", 0))
    limit = float(alert.details.get("min_speed", 0))
    return f"{words.subject} moving at {speed:.1f} {unit} (limit {limit:g} {unit})"


KIND = RuleKind("speed", SpeedRule, compile_rule, evaluate, phrase, layout=LAYOUT)
