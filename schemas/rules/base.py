"""What every rule kind is made of, and what the tracker hands it on each frame (pure).

A kind is one module of :mod:`vsa.schemas.rules.kinds` with a module-level ``KIND``: a
:class:`RuleKind` that holds

- ``config``: the pydantic model of the rule in a camera config (``kind: <name>`` plus its own
  fields; the shared ones come from :class:`RuleConfig`);
- ``compile``: the rule and its camera's config -> a :class:`CompiledRule` (zones and lines
  resolved to arrays, defaults applied), once per config change;
- ``evaluate``: one frame -> the rule's new :class:`~.table.RuleTable`, the alerts it fires
  (:class:`Firing`; the tracker turns them into ``Alert`` messages with deterministic ids) and
  the periods of counts it closes (:class:`CountRecord`);
- ``phrase``: an alert of the kind in the captioner's words (None for kinds that never alert).

Units: times are capture times in UNIX seconds, durations seconds; boxes pixels of the frame;
zone and line points (and anchor points) normalised 0..1 of the frame's width and height.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from ..common import ClassFilter, FrameRef, Identifier, Seconds, VsaModel
from .geometry import Anchor, PolygonEdges, points_in_polygon
from .table import BASE, COOLDOWN_UNTIL, EPISODE, FIRED, Layout, RuleTable

if TYPE_CHECKING:
    from ..alerts import Alert
    from ..camera_config import CameraConfig

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class RuleConfig(VsaModel):
    """The fields every rule has; a kind's model adds ``kind`` and its own."""

    if TYPE_CHECKING:  # every kind's model has it, as a Literal of its name
        kind: str

    rule_id: Identifier
    classes: ClassFilter = Field(
        None, description="Classes the rule applies to; null: the zone's classes, else all."
    )
    cooldown_s: Seconds = Field(
        10.0,
        description="Seconds after an alert before the same rule may alert again for the same "
        "track (or zone); raise it to cut repeated alerts, lower it to catch repeats sooner.",
    )

    def references(self) -> list[tuple[str, str]]:
        """``(field, id)`` of the zone (``zone_id``) and line (``line_id``) the rule names."""
        return [
            (name, str(getattr(self, name)))
            for name in ("zone_id", "line_id")
            if getattr(self, name, None) is not None
        ]

    def problem(self, camera: CameraConfig) -> str | None:
        """What is wrong with the rule in its camera's config beyond its own fields and the
        ids it references (checked by ``CameraConfig``), or None."""
        return None


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate: what every kind's compiled form has.

    Attributes:
        rule_id, kind: from the config.
        target_id: the zone_id or line_id the rule is about ('' if none).
        classes: class names the rule applies to; None: every class.
        cooldown_s: seconds after an alert before the rule alerts again for the same track
            (or zone).
    """

    rule_id: str
    kind: str
    target_id: str
    classes: frozenset[str] | None
    cooldown_s: float


@dataclass(frozen=True)
class ZoneShape:
    """A zone's polygon ``(k, 2)`` (normalised) and its edges prepared for point tests."""

    zone_id: str
    polygon: F64
    edges: PolygonEdges


def class_set(classes: list[str] | None) -> frozenset[str] | None:
    """A rule's class filter as a set; None: every class."""
    return None if classes is None else frozenset(classes)


@dataclass(frozen=True)
class FrameContext:
    """The frame the rules run on: who, when, how large, and where its JPEG is."""

    camera_id: str
    frame_seq: int
    capture_ts: float
    width: int
    height: int
    frame: FrameRef


@dataclass(frozen=True, eq=False)
class TrackView:
    """The tracks of one frame as the rules see them, one row per track, sorted by id.

    Only confirmed tracks are here (tentative ones have no id), so no rule can alert on an
    unconfirmed track.

    Attributes:
        track_ids: ``(m,)`` int64.
        xyxy: ``(m, 4)`` float64 boxes, pixels.
        class_names: the class name of each track.
        observed: ``(m,)`` confirmed tracks matched on this frame.
        confirmed: ``(m,)`` confirmed tracks, matched or lost.
        velocity_px_s: ``(m, 2)`` box-centre velocity, px/s.
        direction_deg: ``(m,)`` heading, degrees (0 right, 90 down).
    """

    track_ids: I64
    xyxy: F64
    class_names: tuple[str, ...]
    observed: Bools
    confirmed: Bools
    velocity_px_s: F64
    direction_deg: F64


@dataclass(eq=False)
class RuleFrame:
    """Everything one frame offers every rule of the camera, computed once however many rules
    share it: the tracks, their anchor points ``(m, 2)`` (normalised), which lie inside each
    zone, which tracks each class filter admits, and which tracks are stationary (marked by
    stationary rules, which run first)."""

    context: FrameContext
    tracks: TrackView
    points: F64
    anchor: Anchor = "center"
    still: Bools | None = None
    _inside: dict[tuple[str, bytes], Bools] = field(default_factory=dict)
    _classes: dict[frozenset[str] | None, Bools] = field(default_factory=dict)

    def inside(self, zone: ZoneShape) -> Bools:
        """``(m,)`` which anchor points lie inside the zone."""
        key = (zone.zone_id, zone.polygon.tobytes())
        mask = self._inside.get(key)
        if mask is None:
            mask = self._inside[key] = points_in_polygon(self.points, zone.edges)
        return mask

    def class_ok(self, classes: frozenset[str] | None) -> Bools:
        """``(m,)`` which tracks are of one of ``classes`` (None: all)."""
        mask = self._classes.get(classes)
        if mask is None:
            names = self.tracks.class_names
            if classes is None:
                mask = np.ones(len(names), bool)
            else:
                mask = np.fromiter((name in classes for name in names), bool, len(names))
            self._classes[classes] = mask
        return mask

    def observed_in(self, classes: frozenset[str] | None, zone: ZoneShape | None) -> Bools:
        """``(m,)`` tracks matched on this frame, of ``classes``, inside ``zone`` (None:
        anywhere)."""
        mask = self.tracks.observed & self.class_ok(classes)
        return mask if zone is None else mask & self.inside(zone)

    def stationary(self) -> Bools:
        """``(m,)`` tracks a stationary rule found still (none without such a rule)."""
        if self.still is None:
            return np.zeros(len(self.tracks.track_ids), bool)
        return self.still

    def with_still(self, still: Bools | None) -> RuleFrame:
        """This frame with ``still`` added to the tracks already marked stationary."""
        if still is None:
            return self
        return replace(self, still=still if self.still is None else self.still | still)


@dataclass(frozen=True)
class Firing:
    """An alert a rule fired, before the tracker makes the ``Alert`` message of it.

    ``key_track`` (the triggering track, or 0 for zone-wide rules) and ``episode`` make the
    deterministic alert id; ``track_rows`` index the frame's :class:`TrackView`; ``details``
    are the alert's rule specifics (the episode is added by the tracker).
    """

    rule_id: str
    kind: str
    key_track: int
    episode: int
    track_rows: list[int]
    details: dict[str, str | float]


@dataclass(frozen=True)
class CountRecord:
    """A closed period of a counting rule, before the tracker makes the ``counts`` message.

    ``values`` are the kind's numbers for ``[period_start_ts, period_end_ts)`` (e.g. crossings
    per direction, or occupancy min/max/mean).
    """

    rule_id: str
    kind: str
    target_id: str
    period_start_ts: float
    period_end_ts: float
    values: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """What one rule did on one frame: its new table, alerts, closed count periods, and (for
    stationary rules) which tracks it found still."""

    table: RuleTable
    firings: list[Firing] = field(default_factory=list)
    counts: list[CountRecord] = field(default_factory=list)
    still: Bools | None = None


def fire(
    table: RuleTable,
    row: int,
    rule: CompiledRule,
    context: FrameContext,
    track_rows: list[int],
    details: dict[str, str | float],
) -> Firing:
    """Record an alert in the rule's row (episode, visit flag, cooldown; the table must be a
    writable copy) and describe it."""
    episode = int(table.ints[row, EPISODE])
    table.ints[row, EPISODE] = episode + 1
    table.ints[row, FIRED] = 1
    table.floats[row, COOLDOWN_UNTIL] = context.capture_ts + rule.cooldown_s
    key_track = int(table.track_ids[row])
    return Firing(rule.rule_id, rule.kind, key_track, episode, track_rows, details)


def plain_noun(class_name: str, count: int) -> str:
    """ "1 person", "3 cars": the captioner passes its own, better words."""
    return f"{count} {class_name}" if count == 1 else f"{count} {class_name}s"


@dataclass(frozen=True)
class AlertWords:
    """What a phrase needs besides the alert: its subject in words (e.g. "a person in red"),
    the camera's zone and line names (id -> name) and a way to say a number of objects."""

    subject: str
    zones: Mapping[str, str] = field(default_factory=dict)
    lines: Mapping[str, str] = field(default_factory=dict)
    noun: Callable[[str, int], str] = plain_noun

    def zone(self, zone_id: object) -> str:
        """The display name of a zone id (the id itself if it has none)."""
        return self.zones.get(str(zone_id), str(zone_id))

    def line(self, line_id: object) -> str:
        """The display name of a line id (the id itself if it has none)."""
        return self.lines.get(str(line_id), str(line_id))


ConfigT = TypeVar("ConfigT", bound=RuleConfig)
CompiledT = TypeVar("CompiledT", bound=CompiledRule)

#: An alert of the kind in words, e.g. "a person in red entered zone 'gate'".
Phrase = Callable[["Alert", AlertWords], str]


def keep_live(table: RuleTable, rule: Any, frame: RuleFrame) -> RuleTable:
    """The default pruning: rows of tracks still alive, and the zone rows."""
    return table.keep(frame.tracks.track_ids)


@dataclass(frozen=True)
class RuleKind(Generic[ConfigT, CompiledT]):
    """One kind of rule, everything about it (see the module docstring).

    Attributes:
        name: the ``kind`` value in configs and alerts.
        config: its config model.
        compile: (rule, camera config) -> compiled rule.
        evaluate: (table, compiled rule, frame) -> :class:`Evaluation`.
        phrase: the captioner's words for its alerts; None: the kind never alerts.
        layout: its table's columns.
        counts: it closes count periods (the ``counts`` topic).
        stage: rules of a lower stage run first on each frame (stationary rules: 0, so that
            the others see which tracks are still); the rest keep the config's order.
        keep: drops the rows of the table it no longer needs before each frame.
    """

    name: str
    config: type[ConfigT]
    compile: Callable[[ConfigT, CameraConfig], CompiledT]
    evaluate: Callable[[RuleTable, CompiledT, RuleFrame], Evaluation]
    phrase: Phrase | None
    layout: Layout = BASE
    counts: bool = False
    stage: int = 1
    keep: Callable[[RuleTable, CompiledT, RuleFrame], RuleTable] = keep_live

    def alerts(self) -> bool:
        """Whether rules of this kind alert."""
        return self.phrase is not None
