"""The camera-config topic (compacted, key camera_id): zones, lines, rules and sampling per camera.

Geometry is normalised: a point ``(x, y)`` is a fraction 0..1 of the image width and height,
origin at the top-left corner, x to the right, y down, so one config fits any stream
resolution. The tracker scales points by the frame's width and height.

Class names (``classes``) are free strings here; the tracker checks them against its detector's
class list when it applies the config and reports unknown ones, because only it knows the model.
``classes: null`` means every class; an empty list is refused (it would silently never fire).

A record with a null value (tombstone) deletes the camera's config; decode only non-null values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, StringConstraints, model_validator
from typing_extensions import Self

from .calibration import Calibration
from .codec import JsonMessage
from .common import (
    DEFAULT_HYSTERESIS_BOX_HEIGHTS,
    BoxHeights,
    CameraId,
    ClassFilter,
    CrossingDirection,
    Identifier,
    NormCoord,
    Point,
    Seconds,
    VsaModel,
)
from .rules import RuleUnion
from .rules.kinds.crowding import CrowdingRule
from .rules.kinds.line_crossing import LineCrossingRule
from .rules.kinds.loitering import LoiteringRule
from .rules.kinds.zone_intrusion import ZoneIntrusionRule
from .timezone import TimeZoneName

Name = Annotated[str, StringConstraints(max_length=128)]

#: Most vertices a zone polygon may have (the intersection check is quadratic in this).
MAX_POLYGON_POINTS = 256

_MIN_POLYGON_AREA = 1e-9  # in normalised units: ~0.2 px^2 of a 640x480 frame


def _cross(o: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float:
    """z of (a - o) x (b - o): > 0 when o->a->b turns one way, < 0 the other, 0 if collinear."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _within_box(p: Sequence[float], a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether p, known collinear with segment a-b, lies on it."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_intersect(
    p1: Sequence[float], p2: Sequence[float], q1: Sequence[float], q2: Sequence[float]
) -> bool:
    """Whether closed segments p1-p2 and q1-q2 share a point (touching and overlap count)."""
    d1 = _sign(_cross(q1, q2, p1))
    d2 = _sign(_cross(q1, q2, p2))
    d3 = _sign(_cross(p1, p2, q1))
    d4 = _sign(_cross(p1, p2, q2))
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return (
        (d1 == 0 and _within_box(p1, q1, q2))
        or (d2 == 0 and _within_box(p2, q1, q2))
        or (d3 == 0 and _within_box(q1, p1, p2))
        or (d4 == 0 and _within_box(q2, p1, p2))
    )


def polygon_problem(points: Sequence[Sequence[float]]) -> str | None:
    """Why ``points`` (implicitly closed) is not a simple polygon, or None when it is.

    Refused: repeated vertices (including repeating the first point at the end), an edge that
    doubles back over the previous one, edges that cross or touch, and zero area.
    """
    n = len(points)
    first_seen: dict[tuple[float, float], int] = {}
    for i, p in enumerate(points):
        key = (p[0], p[1])
        if key in first_seen:
            hint = " (do not repeat the first point at the end)" if i == n - 1 else ""
            return f"vertices {first_seen[key]} and {i} are the same point{hint}"
        first_seen[key] = i
    for i in range(n):
        a, b, c = points[i - 1], points[i], points[(i + 1) % n]
        doubles_back = (a[0] - b[0]) * (c[0] - b[0]) + (a[1] - b[1]) * (c[1] - b[1]) > 0
        if _cross(a, b, c) == 0 and doubles_back:
            return f"edges meeting at vertex {i} run back over each other"
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            if segments_intersect(points[i], points[i + 1], points[j], points[(j + 1) % n]):
                return f"self-intersecting: edge {i}-{i + 1} crosses edge {j}-{(j + 1) % n}"
    area2 = sum(_cross((0.0, 0.0), points[i], points[(i + 1) % n]) for i in range(n))
    if abs(area2) / 2 < _MIN_POLYGON_AREA:
        return "polygon has zero area"
    return None


def _check_polygon(points: list[Point]) -> list[Point]:
    problem = polygon_problem(points)
    if problem is not None:
        raise ValueError(problem)
    return points


class Zone(VsaModel):
    """A region of the image that rules refer to."""

    zone_id: Identifier
    name: Name = Field("", description="Human-readable name for alerts and captions.")
    polygon: Annotated[
        list[Point],
        Field(min_length=3, max_length=MAX_POLYGON_POINTS),
        AfterValidator(_check_polygon),
    ] = Field(
        description="Vertices [x, y] normalised 0..1, implicitly closed (do not repeat the first "
        "point); a simple polygon: no crossing or touching edges, non-zero area."
    )
    classes: ClassFilter = Field(
        None, description="Classes the zone's rules apply to by default; null: all classes."
    )


class Line(VsaModel):
    """A tripwire from point a to point b, for line-crossing rules.

    Sides: walking from a to b on the image (x right, y down), the right-hand side is +1 and the
    left-hand side -1 (see :meth:`side_of`). ``a_to_b`` counts an object whose box centre moves
    from side -1 to side +1 (the direction a->b turned clockwise by 90 degrees on screen),
    ``b_to_a`` the opposite, ``both`` either.

    Hysteresis: a track is on a side only once its point is more than ``hysteresis_box_heights``
    times its box height (in pixels) from the line; nearer, it keeps the side it had, so box
    noise of a track standing on the line neither crosses nor flip-flops. A crossing is a change
    from one such side to the other whose path (last point on the old side to first point on
    the new one) passes through the segment a-b, not the line beyond its ends.
    """

    line_id: Identifier
    name: Name = Field("", description="Human-readable name for alerts and captions.")
    a: Point = Field(description="First end point [x, y], normalised 0..1.")
    b: Point = Field(description="Second end point [x, y], normalised 0..1; differs from a.")
    direction: CrossingDirection = Field(
        "both", description="Crossings the line counts: 'a_to_b' (-1 to +1 side), 'b_to_a', 'both'."
    )
    hysteresis_box_heights: BoxHeights = Field(
        DEFAULT_HYSTERESIS_BOX_HEIGHTS,
        description="Dead band on each side of the line, in heights of the track's box: a track "
        "changes side only once its point is farther than this from the line. Raise it if "
        "people standing on the line cause crossings; lower it (0: none) if short steps over "
        "the line are missed.",
    )

    @model_validator(mode="after")
    def _distinct_ends(self) -> Self:
        if self.a == self.b:
            raise ValueError("a and b are the same point")
        return self

    def side_of(self, x: float, y: float) -> int:
        """+1 right of a->b (as seen on the image), -1 left, 0 on the line. Normalised x, y."""
        return _sign(_cross(self.a, self.b, (x, y)))


#: One rule of any kind, told apart by ``kind`` (the kinds of ``vsa.schemas.rules``).
Rule = RuleUnion

__all__ = [
    "DEFAULT_HYSTERESIS_BOX_HEIGHTS",
    "BoxHeights",
    "CameraConfig",
    "CrossingDirection",
    "CrowdingRule",
    "Line",
    "LineCrossingRule",
    "LoiteringRule",
    "NormCoord",
    "Point",
    "Rule",
    "Zone",
    "ZoneIntrusionRule",
    "polygon_problem",
    "segments_intersect",
]


def _duplicate(ids: list[str]) -> str | None:
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            return value
        seen.add(value)
    return None


class CameraConfig(JsonMessage):
    """Everything operators configure for one camera; the latest record per camera wins."""

    LOGICAL_TOPIC: ClassVar[str] = "camera-config"

    camera_id: CameraId
    enabled: bool = Field(True, description="False: ingest skips the camera, tracker ignores it.")
    source_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        None,
        description="Where ingest reads the camera (rtsp://, http://, file path). Every reader "
        "of this topic sees it: keep credentials out of it where the source allows.",
    )
    fps_target: float | None = Field(
        None,
        gt=0,
        le=120,
        allow_inf_nan=False,
        description="Frames per second ingest samples, (0, 120]; null: the source's rate. Lower "
        "it to save detector time, raise it for fast motion.",
    )
    zones: list[Zone] = Field(default_factory=list, max_length=256)
    lines: list[Line] = Field(default_factory=list, max_length=256)
    rules: list[Rule] = Field(default_factory=list, max_length=1024)
    calibration: Calibration | None = Field(
        None,
        description="Image to ground (a scale or a four-point homography), for speed rules in "
        "m/s; null: speeds in pixels per second only.",
    )
    keyframe_interval_s: Seconds = Field(
        0.0,
        description="Seconds between periodic keyframes, 0 = off; new-track and alert keyframes "
        "are sent regardless. Lower it for denser search coverage, at captioning cost.",
    )
    timezone: TimeZoneName | None = Field(
        None,
        description="IANA time zone where the camera is (Europe/Paris), for the time of day in "
        "its captions ('Morning', 'Evening'); null: the captioner's timezone setting, by "
        "default the captioner host's time zone.",
    )

    @model_validator(mode="after")
    def _references(self) -> Self:
        where = f"camera {self.camera_id!r}"
        for field, ids in (
            ("zones", [z.zone_id for z in self.zones]),
            ("lines", [line.line_id for line in self.lines]),
            ("rules", [r.rule_id for r in self.rules]),
        ):
            dup = _duplicate(ids)
            if dup is not None:
                raise ValueError(f"{where}: {field}: id {dup!r} is used twice")
        known = {
            "zone_id": {z.zone_id for z in self.zones},
            "line_id": {line.line_id for line in self.lines},
        }
        for index, rule in enumerate(self.rules):
            for field, target in rule.references():
                if target not in known[field]:
                    raise ValueError(
                        f"{where}: rules[{index}].{field}: unknown {field[:-3]} {target!r} "
                        f"(rule {rule.rule_id!r}; known: {sorted(known[field])})"
                    )
            problem = rule.problem(self)
            if problem is not None:
                raise ValueError(f"{where}: rules[{index}]: {problem} (rule {rule.rule_id!r})")
        return self

    def zone(self, zone_id: str) -> Zone:
        """The zone with this id (KeyError if none)."""
        for zone in self.zones:
            if zone.zone_id == zone_id:
                return zone
        raise KeyError(zone_id)

    def line(self, line_id: str) -> Line:
        """The line with this id (KeyError if none)."""
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise KeyError(line_id)
