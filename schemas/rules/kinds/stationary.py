"""Stationary objects: an object that has not moved for ``still_s`` seconds is stationary until
it moves again; meanwhile it starts no zone intrusion or loitering alert, and a new track where
a stationary object was (the detector lost the parked car for a moment and the tracker started
over) is the same stationary object, not a new arrival.

A track settles where its anchor point is; it moves again when the point goes farther than
``max_move_box_heights`` times its box height (pixels) from there, and settles anew. Becoming
stationary alerts once (``alert: false`` only marks). A stationary object whose track ends is
remembered for ``forget_s`` seconds: a new track of the same class within the same distance of
where it rested takes over its state (still, alerted, resting since then). Stationary rules run
before the other rules of the camera on every frame, so those see which tracks are still
(``RuleFrame.stationary``); zone rules keep a still track's visit as it is, so box jitter across
a zone's edge cannot start a new visit either.
"""

from __future__ import annotations

import zlib
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
from ..table import BASE, COOLDOWN_UNTIL, FIRED, N_FLOAT_COLS, N_INT_COLS, ZONE_ROW, RuleTable
from ..zones import OptionalZoneField, optional_zone

if TYPE_CHECKING:
    from ...alerts import Alert
    from ...camera_config import CameraConfig

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

STILL: Final = N_INT_COLS  # 1 while the track (or remembered object) is stationary
CLASS_CODE: Final = N_INT_COLS + 1  # CRC-32 of the class name, to match a remembered object
REST_X: Final = N_FLOAT_COLS  # where the anchor settled, pixels
REST_Y: Final = N_FLOAT_COLS + 1
REST_SINCE: Final = N_FLOAT_COLS + 2  # capture_ts it settled there
LAST_SEEN: Final = N_FLOAT_COLS + 3  # capture_ts it was last observed
LAYOUT: Final = BASE.extended(ints=(0, 0), floats=(0.0, 0.0, -1.0, -1.0))


class StationaryRule(RuleConfig):
    """Mark objects that have not moved for ``still_s`` seconds; they stop triggering zone and
    loitering alerts until they move again."""

    kind: Literal["stationary"] = "stationary"
    still_s: float = Field(
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="Seconds without moving that make an object stationary. Set it above the "
        "dwell times of loitering rules that should still fire for objects standing still.",
    )
    zone_id: Identifier | None = OptionalZoneField
    max_move_box_heights: float = Field(
        0.5,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="How far (in heights of the object's box) its anchor may wander from where "
        "it settled and still count as not moving. Raise it for jittery boxes; lower it to "
        "notice small moves.",
    )
    forget_s: Seconds = Field(
        600.0,
        le=7 * 86_400,
        description="Seconds a stationary object whose track ended is remembered, so that the "
        "track that picks it up again is known as the same stationary object.",
    )
    alert: bool = Field(True, description="Alert once when an object becomes stationary.")


@dataclass(frozen=True)
class CompiledStationary(CompiledRule):
    """A stationary rule ready to evaluate."""

    still_s: float
    zone: ZoneShape | None
    max_move_box_heights: float
    forget_s: float
    alert: bool


def compile_rule(rule: StationaryRule, camera: CameraConfig) -> CompiledStationary:
    return CompiledStationary(
        rule_id=rule.rule_id,
        kind=rule.kind,
        target_id=rule.zone_id or "",
        classes=class_set(rule.classes),
        cooldown_s=rule.cooldown_s,
        still_s=rule.still_s,
        zone=optional_zone(camera, rule.zone_id),
        max_move_box_heights=rule.max_move_box_heights,
        forget_s=rule.forget_s,
        alert=rule.alert,
    )


def class_codes(names: tuple[str, ...] | list[str]) -> I64:
    """A stable number per class name (CRC-32), the same in every process."""
    return np.array([zlib.crc32(name.encode("utf-8")) for name in names], np.int64)


def keep(table: RuleTable, rule: CompiledStationary, frame: RuleFrame) -> RuleTable:
    """Rows of live tracks, and of ended tracks that were stationary and were seen within
    ``forget_s`` (the remembered objects)."""
    live = table.keep(frame.tracks.track_ids)
    if len(live) == len(table):
        return table
    ended = ~np.isin(table.track_ids, live.track_ids)
    recent = frame.context.capture_ts - table.floats[:, LAST_SEEN] <= rule.forget_s
    remembered = ended & (table.ints[:, STILL] == 1) & recent & (table.track_ids > ZONE_ROW)
    return table.select(~ended | remembered)


def _take_over(
    table: RuleTable, new_idx: npt.NDArray[np.intp], memory: Bools, reach_px: F64
) -> Bools:
    """Let each new row take over the nearest remembered object of its class within its reach
    (pixels); returns the memory rows taken (to drop)."""
    taken = np.zeros(len(table), bool)
    for k, row in enumerate(new_idx.tolist()):
        same = memory & ~taken & (table.ints[:, CLASS_CODE] == table.ints[row, CLASS_CODE])
        if not same.any():
            continue
        candidates = same.nonzero()[0]
        rest = table.floats[candidates][:, [REST_X, REST_Y]]
        here = table.floats[row, [REST_X, REST_Y]]
        distance = np.hypot(*(rest - here).T)
        best = int(np.argmin(distance))
        if distance[best] > reach_px[k]:
            continue
        source = int(candidates[best])
        table.floats[row, [REST_X, REST_Y, REST_SINCE]] = table.floats[
            source, [REST_X, REST_Y, REST_SINCE]
        ]
        table.ints[row, [STILL, FIRED]] = table.ints[source, [STILL, FIRED]]
        taken[source] = True
    return taken


def evaluate(table: RuleTable, rule: CompiledStationary, frame: RuleFrame) -> Evaluation:
    """Settle, move and mark the observed tracks of the rule's classes (and zone)."""
    tracks, context = frame.tracks, frame.context
    rows = frame.observed_in(rule.classes, rule.zone).nonzero()[0]
    if rows.size == 0:
        return Evaluation(table)
    ts = context.capture_ts
    here = frame.points[rows] * np.array([context.width, context.height], np.float64)
    reach = rule.max_move_box_heights * (tracks.xyxy[rows, 3] - tracks.xyxy[rows, 1])
    ids = tracks.track_ids[rows]
    new = ~np.isin(ids, table.track_ids)
    table, idx = table.with_rows(ids, LAYOUT)
    memory = ~np.isin(table.track_ids, tracks.track_ids) & (table.track_ids > ZONE_ROW)
    table.ints[idx[new], CLASS_CODE] = class_codes([tracks.class_names[r] for r in rows[new]])
    table.floats[idx[new], REST_X] = here[new, 0]
    table.floats[idx[new], REST_Y] = here[new, 1]
    table.floats[idx[new], REST_SINCE] = ts
    taken = _take_over(table, idx[new], memory, reach[new])
    rest = table.floats[idx][:, [REST_X, REST_Y]]
    moved = np.hypot(*(here - rest).T) > reach
    table.floats[idx[moved], REST_X] = here[moved, 0]
    table.floats[idx[moved], REST_Y] = here[moved, 1]
    table.floats[idx[moved], REST_SINCE] = ts
    table.ints[idx[moved], STILL] = 0
    table.ints[idx[moved], FIRED] = 0
    still = ts - table.floats[idx, REST_SINCE] >= rule.still_s
    table.ints[idx, STILL] = still
    table.floats[idx, LAST_SEEN] = ts
    firings = []
    if rule.alert:
        due = still & (table.ints[idx, FIRED] == 0) & (ts >= table.floats[idx, COOLDOWN_UNTIL])
        for k in due.nonzero()[0]:
            details: dict[str, str | float] = {
                "still_s": ts - float(table.floats[idx[k], REST_SINCE])
            }
            if rule.target_id:
                details["zone_id"] = rule.target_id
            firings.append(fire(table, int(idx[k]), rule, context, [int(rows[k])], details))
    marked = np.zeros(len(tracks.track_ids), bool)
    marked[rows] = still
    if taken.any():
        table = table.select(~taken)
    return Evaluation(table, firings, still=marked)


def phrase(alert: Alert, words: AlertWords) -> str:
    """ "a white car has been stationary for 62 s"."""
    still_s = float(alert.details.get("still_s", 0))
    zone_id = alert.details.get("zone_id")
    where = f" in zone '{words.zone(zone_id)}'" if zone_id else ""
    return f"{words.subject} has been stationary{where} for {still_s:.0f} s"


KIND = RuleKind(
    "stationary", StationaryRule, compile_rule, evaluate, phrase, layout=LAYOUT, stage=0, keep=keep
)
