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

import yaml

from vsa.schemas import CameraConfig, SchemaError
from vsa.schemas.rules import RULE_KINDS, CompiledRule, rule_kind
from vsa.schemas.rules.geometry import Anchor


class RuleConfigError(ValueError):
    """A camera's rules cannot be used; the message names the camera and the field."""

    def __init__(self, message: str, *, camera_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.camera_id = camera_id
        self.field = field


@dataclass(frozen=True)
class CameraRules:
    """Everything the tracker applies for one camera, from its ``CameraConfig``.

    ``rules`` are in the config's order, except that kinds of a lower stage come first (a
    stationary rule marks still tracks before the zone rules look at them). ``anchor`` is the
    point of a box that zones and lines test: 'center' (the box centre, as the camera-config
    contract describes line crossings) or 'bottom_center' (the feet of a person seen from the
    side, better for ground-plane zones on oblique cameras).
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
    """Check ``config`` against the detector's class names and compile its rules, each by its
    kind's compile step (``vsa.schemas.rules``).

    ``known_classes=None`` skips the class check (use it only when the class list is unknown).
    Raises :class:`RuleConfigError` naming the camera and the field, e.g.
    ``camera 'gate': rules[1].classes[0]: unknown class 'persn' (did you mean 'person'?)``.
    """
    if known_classes is not None:
        _check_classes(config, frozenset(known_classes))
    compiled = [rule_kind(rule.kind).compile(rule, config) for rule in config.rules]
    compiled.sort(key=lambda rule: RULE_KINDS[rule.kind].stage)  # stable: config order kept
    return CameraRules(
        camera_id=config.camera_id,
        enabled=config.enabled,
        rules=tuple(compiled),
        keyframe_interval_s=config.keyframe_interval_s,
        anchor=anchor,
    )


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
