"""``vsa cameras add|set|remove|list``: the cameras of the compacted camera-config topic.

Every service reads that topic (ingest runs the cameras, the tracker applies their zones, lines
and rules, the captioner names zones), so this is where a camera is added, changed or removed
while the pipeline runs. A config is built from the flags and an optional rules file, validated
with the topic's own model (``CameraConfig``: polygons, references, unknown keys) and checked
against the detector's class names as the tracker does, all before anything is published; an
error is one line naming the file (or the flags), the camera and the field. ``add`` refuses a
camera that exists and ``set`` one that does not, by reading the topic first (two operators
adding the same camera at the same moment both succeed; the later record wins).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsa.runtime.redact import mask_url
from vsa.runtime.settings import ConfigError, KafkaSettings
from vsa.schemas import CameraConfig, SchemaError

from .common import add_actions, add_topic_prefix

#: CameraConfig keys a rules file may not set (the command line names the camera).
RULES_KEYS_REFUSED = ("schema_version",)
#: What ``--no-rules`` clears.
GEOMETRY_KEYS = ("zones", "lines", "rules")
#: Seconds to read the camera-config topic to its end before giving up.
READ_TIMEOUT_S = 30.0

ACTIONS = {
    "add": "Publish a new camera (refused when it exists: use set).",
    "set": "Change an existing camera: only the given flags and rules file change.",
    "remove": "Remove a camera: publishes its tombstone; ingest stops it, the tracker drops "
    "its rules.",
    "list": "List the cameras: source URL (credentials masked), fps, zones, lines, rules.",
}


@dataclass(frozen=True)
class CameraChanges:
    """What the flags of ``add``/``set`` change; None leaves a field as it is."""

    source_url: str | None = None
    fps_target: float | None = None
    enabled: bool | None = None
    keyframe_interval_s: float | None = None
    timezone: str | None = None
    no_rules: bool = False

    def fields(self) -> dict[str, Any]:
        """The CameraConfig fields the flags set."""
        values: dict[str, Any] = {
            "source_url": self.source_url,
            "fps_target": self.fps_target,
            "enabled": self.enabled,
            "keyframe_interval_s": self.keyframe_interval_s,
            "timezone": self.timezone,
        }
        changed = {key: value for key, value in values.items() if value is not None}
        if self.no_rules:
            changed.update({key: [] for key in GEOMETRY_KEYS})
        return changed


def rules_file_fields(path: Path, camera_id: str) -> tuple[dict[str, Any], str | None]:
    """The camera-config fields a rules file gives for ``camera_id``, and the camera the file
    itself names when that differs (None otherwise).

    The file holds one camera config (a mapping, ``camera_id`` optional: the command line's wins,
    so one file can serve many cameras) or ``cameras: [...]`` (the entry of ``camera_id``), as
    ``vsa track --rules`` and the tracker's ``rules_file`` read it."""
    data = _read_yaml(path)
    if isinstance(data, Mapping) and "cameras" in data and "camera_id" not in data:
        entries = data["cameras"] if isinstance(data["cameras"], list) else []
        found = [e for e in entries if isinstance(e, Mapping) and e.get("camera_id") == camera_id]
        if not found:
            names = sorted(str(e.get("camera_id")) for e in entries if isinstance(e, Mapping))
            raise ConfigError(f"{path}: no camera {camera_id!r} under 'cameras' (found: {names})")
        data = found[-1]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a camera config mapping or 'cameras: [...]'")
    for key in RULES_KEYS_REFUSED:
        if key in data:
            raise ConfigError(f"{path}: {key}: not set in a rules file")
    fields = {str(k): v for k, v in data.items() if k != "camera_id"}
    named = data.get("camera_id")
    return fields, (str(named) if named is not None and named != camera_id else None)


def _read_yaml(path: Path) -> Any:
    """The file's YAML, or a one-line ``ConfigError`` (YAML's own messages span lines)."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None


def build_config(
    camera_id: str,
    base: CameraConfig | None,
    changes: CameraChanges,
    from_file: Mapping[str, Any] | None = None,
    file_name: str = "rules file",
    known_classes: Sequence[str] | None = None,
) -> CameraConfig:
    """The config to publish: ``base`` (the camera's current one, or none), then a rules
    file's fields (:func:`rules_file_fields`), then the flags; validated as the topic's model
    and against ``known_classes`` (None: no class check). ``ConfigError`` names the source,
    camera and field, e.g. ``rules.yaml: camera-config: camera 'gate': zones[0].polygon: ...``.
    """
    from vsa.services.tracker.rules import RuleConfigError, compile_rules

    merged: dict[str, Any] = base.model_dump(mode="json") if base is not None else {}
    merged.update(from_file or {})
    flags = changes.fields()
    merged.update(flags)
    merged["camera_id"] = camera_id
    try:
        config = CameraConfig.from_dict(merged)
        compile_rules(config, known_classes)
    except (SchemaError, RuleConfigError) as exc:
        field = (exc.field or "").split(".", 1)[0].split("[", 1)[0]
        if field in flags:
            source = "command-line arguments"
        elif from_file is not None and (field in from_file or not field):
            source = file_name
        else:
            source = "the camera's current config" if field else "command-line arguments"
        raise ConfigError(f"{source}: {exc}") from None
    return config


def names_classes(config: CameraConfig) -> bool:
    """Whether any zone or rule of ``config`` names object classes."""
    return any(z.classes for z in config.zones) or any(r.classes for r in config.rules)


def camera_rows(configs: Mapping[str, CameraConfig]) -> list[str]:
    """The ``list`` table: one line per camera, sorted by camera_id; URLs masked."""
    counts = f"{'zones':>5} {'lines':>5} {'rules':>5}"
    lines = [f"{'camera_id':<20} {'enabled':<7} {'fps':>6} {counts}  source"]
    for camera_id in sorted(configs):
        config = configs[camera_id]
        fps = "source" if config.fps_target is None else f"{config.fps_target:g}"
        source = "-" if config.source_url is None else mask_url(config.source_url)
        lines.append(
            f"{camera_id:<20} {'yes' if config.enabled else 'no':<7} {fps:>6} "
            f"{len(config.zones):>5} {len(config.lines):>5} {len(config.rules):>5}  {source}"
        )
    return lines


def camera_json(config: CameraConfig) -> dict[str, Any]:
    """One camera for ``list --json``: the config as on the topic, source URL masked."""
    data = config.model_dump(mode="json")
    if config.source_url is not None:
        data["source_url"] = mask_url(config.source_url)
    return data


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa cameras`` and its actions."""
    summary = "Add, change, remove or list cameras (the camera-config topic)."
    for action, a in add_actions(sub, "cameras", summary, __doc__ or "", ACTIONS):
        add_topic_prefix(a)
        if action != "list":
            a.add_argument("camera_id", help="The camera's id (its Kafka key everywhere).")
        if action in ("add", "set"):
            _add_config_flags(a)
        if action == "list":
            a.add_argument("--json", action="store_true", help="One JSON object per camera.")
        a.set_defaults(func=cameras_main)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="Where ingest reads the camera: rtsp://, http://, a file.")
    parser.add_argument("--fps", type=float, help="Frames/s ingest samples, (0, 120].")
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="YAML with zones, lines, rules (and keyframe_interval_s): one camera config "
        "(its camera_id is replaced) or 'cameras: [...]' (this camera's entry).",
    )
    parser.add_argument("--no-rules", action="store_true", help="Clear zones, lines and rules.")
    parser.add_argument(
        "--keyframe-interval",
        type=float,
        metavar="S",
        help="Seconds between periodic keyframes; 0: off.",
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA time zone of the camera (Europe/Paris), for the time of day in its captions "
        "(default: the captioner's).",
    )
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--enable", dest="enabled", action="store_true", default=None, help="Back on."
    )
    state.add_argument(
        "--disable",
        dest="enabled",
        action="store_false",
        default=None,
        help="Off: ingest stops the camera, the tracker ignores it (the config stays).",
    )
    parser.add_argument(
        "--classes",
        default="coco",
        help="Class names rules may use, as the tracker checks them: 'coco' (the default "
        "detector's 80), 'any' (no check), a comma list, or @FILE with one name per line.",
    )


def cameras_main(args: argparse.Namespace) -> int:
    from vsa.runtime.camera_configs import read_camera_configs
    from vsa.runtime.settings import KafkaSettings, load_settings

    from .common import topic_names, topic_problem

    # the follower's own lines (following, partitions) are noise here; errors still show
    logging.getLogger("vsa.camera_configs").setLevel(logging.WARNING)
    # a new camera's config is checked before Kafka is asked anything
    new = _config_from_args(args, None) if args.action == "add" else None
    names = topic_names(args.topic_prefix)
    topic = names.name("camera_config")
    kafka = load_settings(KafkaSettings)
    problem = topic_problem(kafka, topic, names.prefix)
    if problem is not None:
        print(f"vsa cameras {args.action}: {problem}", file=sys.stderr)
        return 1
    try:
        current = read_camera_configs(kafka, topic, "cameras-cli", READ_TIMEOUT_S)
    except TimeoutError as exc:
        print(f"vsa cameras {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.action == "list":
        return _list(current.snapshot(), args.json, current.invalid)
    existing = current.get(args.camera_id)
    refusal = _refusal(args.action, args.camera_id, existing)
    if refusal is not None:
        print(f"vsa cameras {args.action}: {refusal}", file=sys.stderr)
        return 1
    if args.action == "set":
        new = _config_from_args(args, existing)
    return _publish(kafka, topic, args.action, args.camera_id, new)


def _publish(
    kafka: KafkaSettings, topic: str, action: str, camera_id: str, config: CameraConfig | None
) -> int:
    """Write the camera's new config (None: its tombstone) and say so."""
    from vsa.runtime.camera_configs import publish_camera_config
    from vsa.runtime.kafka import DeliveryError

    try:
        publish_camera_config(kafka, topic, camera_id, config, "cameras-cli")
    except DeliveryError as exc:
        print(f"vsa cameras {action}: {topic}: not published: {exc}", file=sys.stderr)
        return 1
    done = {"add": "added", "set": "updated", "remove": "removed"}[action]
    print(f"camera {camera_id!r} {done} ({topic})")
    return 0


def _refusal(action: str, camera_id: str, existing: CameraConfig | None) -> str | None:
    if action == "add" and existing is not None:
        return f"camera {camera_id!r} exists already; change it with: vsa cameras set {camera_id}"
    if action in ("set", "remove") and existing is None:
        return f"no camera {camera_id!r}; add it with: vsa cameras add {camera_id}"
    return None


def _config_from_args(args: argparse.Namespace, existing: CameraConfig | None) -> CameraConfig:
    from vsa.services.tracker.cli import known_classes

    changes = CameraChanges(
        source_url=args.url,
        fps_target=args.fps,
        enabled=args.enabled,
        keyframe_interval_s=args.keyframe_interval,
        timezone=args.timezone,
        no_rules=args.no_rules,
    )
    from_file = None
    if args.rules is not None:
        from_file, named = rules_file_fields(args.rules, args.camera_id)
        if named is not None:
            print(
                f"note: {args.rules} names camera {named!r}; publishing it as {args.camera_id!r}",
                file=sys.stderr,
            )
    config = build_config(args.camera_id, existing, changes, from_file, str(args.rules))
    if not names_classes(config):
        return config  # nothing to check (and the class list costs an import of onnx)
    classes = known_classes(args.classes)
    return build_config(args.camera_id, existing, changes, from_file, str(args.rules), classes)


def _list(configs: Mapping[str, CameraConfig], as_json: bool, invalid: int) -> int:
    if as_json:
        for camera_id in sorted(configs):
            print(json.dumps(camera_json(configs[camera_id])))
    elif configs:
        print("\n".join(camera_rows(configs)))
    else:
        print("no cameras")
    if invalid:
        print(f"note: {invalid} invalid camera-config records were skipped", file=sys.stderr)
    return 0
