"""``vsa track``: replay detections JSON lines through the tracker offline, to tune rules without
Kafka; ``vsa tracker``: run the tracker service (the Faust app, see ``service.py``).

Input: a file (or ``-`` for stdin) of detections messages, one JSON object per line, exactly as
on the detections topic. Output on stdout, one JSON object per line: by default
``{"topic": "tracks"|"alerts"|"counts"|"keyframes", "key": camera_id, "value": {...}}``; with
``--only alerts`` (or tracks, counts, keyframes) just the values of that topic, as the topic would
carry them.
A line that is not a valid detections message is reported on stderr with its line number and
skipped (as the service sends it to its dead-letter topic); the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vsa.helptext import add_print_config, settings_epilog
from vsa.runtime.settings import ConfigError, read_yaml
from vsa.topic_flags import add_topic_prefix, topic_overrides

if TYPE_CHECKING:  # the command imports numpy, scipy and the schemas only when it runs
    from vsa.schemas import CameraConfig, Detections, JsonMessage

    from .rules import CameraRules

TOPICS = ("tracks", "alerts", "counts", "keyframes")
#: ``vsa track --help`` text: the module docstring without its reST markup.
TRACK_DESCRIPTION = (__doc__ or "").replace("``", "'")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa tracker`` (the service) and ``vsa track`` (the offline replay)."""
    service = sub.add_parser(
        "tracker",
        help="Run the tracker service (detections → tracks, alerts, keyframes topics).",
        description="Run the tracker service: a Faust worker that keeps every camera's state in "
        "a table backed by its changelog topic.",
        epilog=settings_epilog("TrackerSettings", "VSA_TRACKER_"),
    )
    service.add_argument("--config", type=Path, help="YAML file with TrackerSettings keys.")
    service.add_argument("--rules", type=Path, help="YAML camera configs (sets rules_file).")
    add_print_config(service)
    add_topic_prefix(service, "VSA_TRACKER_TOPICS__PREFIX")
    service.set_defaults(func=tracker_main)
    _register_track(sub)


def _register_track(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "track",
        help="Replay detections JSON lines through the tracker and rules; print JSON lines.",
        description=TRACK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="Detections JSON lines (the detections topic format), or '-'.")
    p.add_argument(
        "--rules",
        type=Path,
        action="append",
        default=[],
        help="YAML camera config(s): one mapping or 'cameras: [...]' (repeatable).",
    )
    p.add_argument(
        "--camera-config",
        type=Path,
        action="append",
        default=[],
        help="camera-config topic JSON lines (the latest per camera wins; repeatable).",
    )
    p.add_argument(
        "--classes",
        default="coco",
        help="Class names rules may use: 'coco' (the default detector's 80), 'any' (no "
        "check), a comma list, or @FILE with one name per line.",
    )
    p.add_argument(
        "--anchor",
        choices=["center", "bottom_center"],
        default="center",
        help="Point of a box tested against zones and lines.",
    )
    p.add_argument(
        "--tracker-config",
        type=Path,
        help="YAML with TrackerConfig keys (thresholds, buffers, noise).",
    )
    p.add_argument("--only", choices=TOPICS, help="Print only this topic's values.")
    p.set_defaults(func=track_main)


def tracker_main(args: argparse.Namespace) -> int:
    """``vsa tracker``: run the service until SIGTERM/SIGINT."""
    from pydantic_settings import SettingsError

    from vsa.runtime.settings import load_settings

    from .config import TrackerSettings
    from .service import run_tracker

    overrides: dict[str, Any] = {"rules_file": args.rules} if args.rules is not None else {}
    overrides.update(topic_overrides(args))
    try:
        settings = load_settings(TrackerSettings, args.config, **overrides)
    except SettingsError as exc:  # e.g. an environment value that is not valid JSON
        raise ConfigError(f"invalid TrackerSettings from environment: {exc}") from exc
    if args.print_config:
        from vsa.runtime.print_config import print_config

        return print_config(settings, args.config, overrides)
    return run_tracker(settings)


def known_classes(spec: str) -> tuple[str, ...] | None:
    """The class list named by ``--classes`` (None: do not check)."""
    if spec == "any":
        return None
    if spec == "coco":
        from vsa.services.detector.models import COCO_CLASS_NAMES

        return tuple(COCO_CLASS_NAMES)
    if spec.startswith("@"):
        path = Path(spec[1:])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"--classes: cannot read {path}: {exc.strerror}") from exc
        return tuple(line.strip() for line in lines if line.strip())
    return tuple(name.strip() for name in spec.split(",") if name.strip())


def load_rules(args: argparse.Namespace) -> dict[str, CameraRules]:
    """Compiled rules per camera from ``--rules`` YAML and ``--camera-config`` JSON lines."""

    from .rules import RuleConfigError, compile_rules, load_camera_configs

    configs: dict[str, CameraConfig] = {}
    try:
        for path in args.rules:
            configs.update((c.camera_id, c) for c in load_camera_configs(path))
        for path in args.camera_config:
            for number, line in enumerate(path.read_bytes().splitlines(), 1):
                if line.strip():
                    config = _parse(line, f"{path}:{number}")
                    configs[config.camera_id] = config
        classes = known_classes(args.classes)
        return {cam: compile_rules(c, classes, args.anchor) for cam, c in configs.items()}
    except (RuleConfigError, OSError) as exc:
        raise ConfigError(str(exc)) from exc


def _parse(line: bytes, where: str) -> CameraConfig:
    from vsa.schemas import CameraConfig, SchemaError

    try:
        return CameraConfig.from_bytes(line)
    except SchemaError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def read_messages(
    lines: Iterable[bytes], name: str, errors: IO[str], bad: list[int]
) -> Iterator[Detections]:
    """Parse detections lines; report bad ones on ``errors`` and record their numbers."""
    from vsa.schemas import Detections, SchemaError

    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield Detections.from_bytes(line)
        except SchemaError as exc:
            bad.append(number)
            print(f"{name}:{number}: skipped: {exc}", file=errors)


def track_main(args: argparse.Namespace) -> int:
    """``vsa track``: replay, print, summarise on stderr."""
    from .core import TrackerConfig
    from .replay import ReplayStats, replay, rules_coverage_warnings

    rules = load_rules(args)
    config = TrackerConfig()
    if args.tracker_config is not None:
        data: Any = read_yaml(args.tracker_config)
        try:
            config = TrackerConfig.model_validate(data)
        except ValueError as exc:
            raise ConfigError(f"{args.tracker_config}: {exc}") from exc
    source: IO[bytes] = sys.stdin.buffer if args.file == "-" else _open(Path(args.file))
    bad: list[int] = []
    stats = ReplayStats()
    with source:
        messages = read_messages(source, args.file, sys.stderr, bad)
        try:
            _print_outputs(replay(messages, rules, config, stats=stats), args.only)
        except BrokenPipeError:  # the reader went away (| head): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    for warning in rules_coverage_warnings(rules, stats.cameras):
        print(f"vsa track: {warning}", file=sys.stderr)
    counts = ", ".join(f"{n} {t}" for t, n in stats.outputs.items())
    print(
        f"vsa track: {stats.applied} frames applied, {stats.skipped} already applied "
        f"(skipped), {len(bad)} bad lines; {counts}",
        file=sys.stderr,
    )
    return 1 if bad else 0


def _print_outputs(outputs: Iterable[tuple[str, JsonMessage]], only: str | None) -> None:
    """Envelopes of every output, or the raw values of one topic."""
    write = sys.stdout.write
    for topic, value in outputs:
        if only is None:
            value_json = value.model_dump_json()
            camera = json.dumps(getattr(value, "camera_id", None))
            write(f'{{"topic":"{topic}","key":{camera},"value":{value_json}}}\n')
        elif topic == only:
            write(value.model_dump_json() + "\n")


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
