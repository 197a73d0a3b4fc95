"""Golden files of the tracker: recorded detection sequences replayed through tracking, rules and
keyframes, compared with stored output.

Each case in ``tests/golden/tracker/`` is three files:

- ``NAME.detections.jsonl``: detections messages, one per line, exactly as on the topic;
- ``NAME.rules.yaml``: the camera config(s) applied;
- ``NAME.expected.jsonl``: what the replay produced when the file was last accepted, one
  ``{"topic": ..., "value": ...}`` per line (tracks, alerts, keyframes in production order).

Commands::

    python -m vsa.services.tracker.golden            # check every case; exit 1 on a difference
    python -m vsa.services.tracker.golden --update   # accept the current output as expected
    python -m vsa.services.tracker.golden --record   # rebuild the inputs (needs motmetrics)

Run ``--update`` after an intended change of tracking or rule behaviour and review the diff of
the expected files before committing them. Floats are compared with a relative tolerance of
1e-9, so the files survive last-bit differences between numpy builds; ids must match exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vsa.schemas import Detections

from .replay import replay
from .rules import CameraRules, compile_rules, load_camera_configs

#: Where the golden files live in the repository (services/tracker/golden.py -> repo root).
GOLDEN_DIR = Path(__file__).resolve().parents[2] / "tests" / "golden" / "tracker"
REL_TOL = 1e-9
ABS_TOL = 1e-9


def case_names(directory: Path = GOLDEN_DIR) -> list[str]:
    """Names of the cases in ``directory`` (one per ``*.detections.jsonl``)."""
    return sorted(
        p.name.removesuffix(".detections.jsonl") for p in directory.glob("*.detections.jsonl")
    )


def read_detections(path: Path) -> list[Detections]:
    """Every line of a detections JSONL file, parsed (blank lines skipped)."""
    lines = path.read_bytes().splitlines()
    return [Detections.from_bytes(line) for line in lines if line.strip()]


def run_case(name: str, directory: Path = GOLDEN_DIR) -> list[dict[str, Any]]:
    """Replay one case and return its outputs as ``{"topic", "value"}`` dicts."""
    messages = read_detections(directory / f"{name}.detections.jsonl")
    known = {box.class_name for message in messages for box in message.boxes}
    rules: dict[str, CameraRules] = {
        config.camera_id: compile_rules(config, known)
        for config in load_camera_configs(directory / f"{name}.rules.yaml")
    }
    return [
        {"topic": topic, "value": value.model_dump(mode="json")}
        for topic, value in replay(messages, rules)
    ]


def read_expected(name: str, directory: Path = GOLDEN_DIR) -> list[dict[str, Any]]:
    path = directory / f"{name}.expected.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_expected(name: str, outputs: list[dict[str, Any]], directory: Path = GOLDEN_DIR) -> Path:
    path = directory / f"{name}.expected.jsonl"
    text = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in outputs)
    path.write_text(text, encoding="utf-8")
    return path


def differences(expected: Any, actual: Any, path: str = "") -> Iterator[str]:
    """Where two decoded JSON values differ (floats within tolerance count as equal)."""
    if isinstance(expected, float) or isinstance(actual, float):
        ok = isinstance(expected, int | float) and isinstance(actual, int | float)
        if not ok or not math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            yield f"{path}: expected {expected!r}, got {actual!r}"
    elif isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in expected or key not in actual:
                yield f"{path}.{key}: only in {'actual' if key in actual else 'expected'}"
            else:
                yield from differences(expected[key], actual[key], f"{path}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{path}: expected {len(expected)} items, got {len(actual)}"
        for index, (e, a) in enumerate(zip(expected, actual, strict=False)):
            yield from differences(e, a, f"{path}[{index}]")
    elif expected != actual:
        yield f"{path}: expected {expected!r}, got {actual!r}"


def check(directory: Path = GOLDEN_DIR, limit: int = 10) -> list[str]:
    """Every case's differences (at most ``limit`` per case), prefixed with the case name."""
    problems = []
    for name in case_names(directory):
        found = list(differences(read_expected(name, directory), run_case(name, directory)))
        problems += [f"{name}: {line}" for line in found[:limit]]
        if len(found) > limit:
            problems.append(f"{name}: ... {len(found) - limit} more differences")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="Accept current output.")
    parser.add_argument("--record", action="store_true", help="Rebuild the input files first.")
    parser.add_argument("--dir", type=Path, default=GOLDEN_DIR, help="Golden folder.")
    args = parser.parse_args(argv)
    if args.record:
        from .golden_inputs import record_all

        for path in record_all(args.dir):
            print(f"recorded {path}")
    if args.update:
        for name in case_names(args.dir):
            print(f"updated {write_expected(name, run_case(name, args.dir), args.dir)}")
        return 0
    problems = check(args.dir)
    for line in problems:
        print(line)
    print("golden files match" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
