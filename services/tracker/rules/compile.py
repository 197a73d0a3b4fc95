"""Camera configs turned into what the rule engine evaluates, with the tracker's own checks.

The ``CameraConfig`` schema already refuses unknown keys, self-intersecting polygons, negative
dwell times and references to missing zones or lines, naming the camera and the field. Only the
tracker knows its detector's class list, so :func:`compile_rules` adds that check: a class name
in a zone or rule that the detector cannot produce would make a rule that silently never fires.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from vsa.schemas import (
    AlertKind,
    CameraConfig,
    CrossingDirection,
    CrowdingRule,
    LineCrossingRule,
    LoiteringRule,
    SchemaError,
    ZoneIntrusionRule,
)

from .geometry import Anchor, PolygonEdges, polygon_edges

F64 = npt.NDArray[np.float64]


class RuleConfigError(ValueError):
    """A camera's rules cannot be used; the message names the camera and the field."""

    def __init__(self, message: str, *, camera_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.camera_id = camera_id
        self.field = field


@dataclass(frozen=True)
class CompiledRule:
    """One rule ready to evaluate.

    Attributes:
        rule_id, kind: from the config.
        polygon: ``(k, 2)`` normalised zone vertices (zone rules), else ``(0, 2)``.
        edges: the polygon's edges prepared for point tests.
        line: ``(2, 2)`` normalised end points a, b (line rules), else ``(0, 2)``.
        target_id: the zone_id or line_id.
        classes: class names the rule applies to; None: every class.
        cooldown_s: seconds after an alert before this rule alerts again for the same track
            (for crowding: the same zone).
        dwell_s: seconds inside before alerting (intrusion: min_dwell_s, loitering: dwell_s).
        min_count: objects that make a crowd (crowding).
        direction: crossings that alert (line rules): 'a_to_b', 'b_to_a' or 'both'.
        hysteresis_box_heights: half-width of the line's dead band in heights of the track's
            box (line rules): a track changes side only beyond it. 0: no band.
    """

    rule_id: str
    kind: AlertKind
    target_id: str
    polygon: F64
    edges: PolygonEdges
    line: F64
    classes: frozenset[str] | None
    cooldown_s: float
    dwell_s: float = 0.0
    min_count: int = 0
    direction: CrossingDirection = "both"
    hysteresis_box_heights: float = 0.0


@dataclass(frozen=True)
class CameraRules:
    """Everything the tracker applies for one camera, from its ``CameraConfig``.

    ``anchor`` is the point of a box that zones and lines test: 'center' (the box centre, as the
    camera-config contract describes line crossings) or 'bottom_center' (the feet of a person
    seen from the side, better for ground-plane zones on oblique cameras).
    """

    camera_id: str
    enabled: bool
    rules: tuple[CompiledRule, ...]
    keyframe_interval_s: float
    anchor: Anchor = "center"

    @classmethod
    def none(cls, camera_id: str) -> CameraRules:
        """A camera without configuration: tracked, no rules, no periodic keyframes."""
        return cls(camera_id=camera_id, enabled=True, rules=(), keyframe_interval_s=0.0)


def compile_rules(
    config: CameraConfig, known_classes: Collection[str] | None, anchor: Anchor = "center"
) -> CameraRules:
    """Check ``config`` against the detector's class names and compile its rules.

    ``known_classes=None`` skips the class check (use it only when the class list is unknown).
    Raises :class:`RuleConfigError` naming the camera and the field, e.g.
    ``camera 'gate': rules[1].classes[0]: unknown class 'persn' (did you mean 'person'?)``.
    """
    if known_classes is not None:
        _check_classes(config, frozenset(known_classes))
    zones = {zone.zone_id: zone for zone in config.zones}
    compiled = []
    for rule in config.rules:
        if isinstance(rule, LineCrossingRule):
            line = config.line(rule.line_id)
            compiled.append(
                CompiledRule(
                    rule_id=rule.rule_id,
                    kind=rule.kind,
                    target_id=line.line_id,
                    polygon=np.zeros((0, 2)),
                    edges=polygon_edges(np.zeros((0, 2))),
                    line=np.array([line.a, line.b], np.float64),
                    classes=_class_set(rule.classes),
                    cooldown_s=rule.cooldown_s,
                    direction=rule.direction or line.direction,
                    hysteresis_box_heights=(
                        line.hysteresis_box_heights
                        if rule.hysteresis_box_heights is None
                        else rule.hysteresis_box_heights
                    ),
                )
            )
        else:
            compiled.append(
                _zone_rule(rule, zones[rule.zone_id].polygon, zones[rule.zone_id].classes)
            )
    return CameraRules(
        camera_id=config.camera_id,
        enabled=config.enabled,
        rules=tuple(compiled),
        keyframe_interval_s=config.keyframe_interval_s,
        anchor=anchor,
    )


def _zone_rule(
    rule: ZoneIntrusionRule | LoiteringRule | CrowdingRule,
    polygon: list[tuple[float, float]],
    zone_classes: list[str] | None,
) -> CompiledRule:
    dwell = 0.0
    if isinstance(rule, ZoneIntrusionRule):
        dwell = rule.min_dwell_s
    elif isinstance(rule, LoiteringRule):
        dwell = rule.dwell_s
    return CompiledRule(
        rule_id=rule.rule_id,
        kind=rule.kind,
        target_id=rule.zone_id,
        polygon=np.array(polygon, np.float64),
        edges=polygon_edges(np.array(polygon, np.float64)),
        line=np.zeros((0, 2)),
        classes=_class_set(rule.classes if rule.classes is not None else zone_classes),
        cooldown_s=rule.cooldown_s,
        dwell_s=dwell,
        min_count=rule.min_count if isinstance(rule, CrowdingRule) else 0,
    )


def _class_set(classes: list[str] | None) -> frozenset[str] | None:
    return None if classes is None else frozenset(classes)


def _check_classes(config: CameraConfig, known: frozenset[str]) -> None:
    """Raise RuleConfigError for the first class name the detector does not know."""
    fields: list[tuple[str, list[str] | None]] = [
        (f"zones[{i}].classes", zone.classes) for i, zone in enumerate(config.zones)
    ]
    fields += [(f"rules[{i}].classes", rule.classes) for i, rule in enumerate(config.rules)]
    for field, classes in fields:
        for j, name in enumerate(classes or ()):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"{len(known)} known classes"
                raise RuleConfigError(
                    f"camera {config.camera_id!r}: {field}[{j}]: unknown class {name!r} ({hint})",
                    camera_id=config.camera_id,
                    field=f"{field}[{j}]",
                )


def load_camera_configs(path: Path) -> list[CameraConfig]:
    """Camera configs from a YAML (or JSON) file.

    The file holds one camera config (a mapping with ``camera_id``), or ``cameras:`` with a list
    of them. Errors name the file, the camera and the field.
    """
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleConfigError(f"{path}: cannot read rules: {exc}") from exc
    if isinstance(data, Mapping) and "cameras" in data and "camera_id" not in data:
        items = data["cameras"]
    else:
        items = [data]
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise RuleConfigError(f"{path}: expected a camera config mapping or 'cameras: [...]'")
    configs = []
    for item in items:
        try:
            configs.append(CameraConfig.from_dict(item))
        except SchemaError as exc:
            raise RuleConfigError(f"{path}: {exc}", field=exc.field) from exc
    return configs
