"""Tracker speed: frame updates per second of vsa's tracking core next to supervision's ByteTrack,
with 5, 20 and 100 objects per frame, measured in the same run on one core.

Scenes are synthetic and seeded: N objects move at constant velocity inside a 1920×1080 frame
(bouncing off the edges) with 2 px box jitter, 10 % missed boxes, one false positive per frame
and scores uniform in [0.3, 1]. Inputs are built before timing, in each tracker's own format
(vsa: ``FrameDetections`` arrays; supervision: ``sv.Detections``). Rows:

- ``vsa step``: the core's ``step()`` with the state kept in memory;
- ``vsa step + state bytes``: the same plus ``to_bytes()`` and ``from_bytes()`` of the state on
  every update, which is what the Faust app pays (the state lives in a table as bytes);
- ``state to_bytes + from_bytes``: that serialisation alone, and the state's size;
- ``vsa process()``: the whole frame adapter from a ``Detections`` message (pydantic) to the
  ``Tracks`` message, rule evaluation (a zone, a line, loitering and crowding rules) and
  keyframe decision, with state bytes: the tracker service's work per message minus Kafka;
- ``supervision ByteTrack``: ``ByteTrack(frame_rate=10).update_with_detections`` (baseline).

Rates are frame updates per CPU second of the benchmark process (``time.process_time``), i.e.
per core: everything runs in one thread, and time spent waiting for a core while other work
runs on a shared machine is not counted (cache and SMT contention still are). Each measurement
is repeated ``--repeat`` times, interleaving the trackers, and the median is reported. Compare
the ratio column, measured in the same run.

Usage::

    python benchmarks/tracker_speed.py [--frames 1500] [--repeat 5] [--objects 5 20 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import supervision as sv

from vsa.schemas import CameraConfig, Detection, Detections, FrameRef
from vsa.services.tracker.camera import CameraState, process
from vsa.services.tracker.core import FrameDetections, TrackerConfig, TrackerState, step
from vsa.services.tracker.rules import compile_rules

F64 = npt.NDArray[np.float64]
WIDTH, HEIGHT, FPS = 1920, 1080, 10.0
T0 = 1_767_225_600.0


@dataclass(frozen=True)
class Frame:
    """One frame of a synthetic scene: boxes (n, 4) px, scores (n,), class ids (n,)."""

    xyxy: F64
    scores: F64
    class_ids: npt.NDArray[np.int64]


def scene(objects: int, frames: int, seed: int = 0) -> list[Frame]:
    """Seeded synthetic frames: constant-velocity objects bouncing in the image."""
    rng = np.random.default_rng(seed)
    size = np.array([40.0, 90.0]) if objects <= 20 else np.array([24.0, 54.0])
    pos = rng.uniform(size, [WIDTH, HEIGHT] - size, (objects, 2))
    vel = rng.uniform(-150, 150, (objects, 2))  # px/s
    out = []
    for _ in range(frames):
        pos = pos + vel / FPS
        bounce = (pos < size) | (pos > [WIDTH, HEIGHT] - size)
        vel = np.where(bounce, -vel, vel)
        centre = pos[rng.random(objects) > 0.1] + rng.normal(0, 2, (1, 2))
        fp = rng.uniform([0, 0], [WIDTH, HEIGHT], (1, 2))
        centre = np.vstack([centre, fp])
        xyxy = np.hstack([centre - size / 2, centre + size / 2])
        out.append(Frame(xyxy, rng.uniform(0.3, 1.0, len(xyxy)), np.zeros(len(xyxy), np.int64)))
    return out


def time_run(run: Callable[[], object], frames: int) -> float:
    """Frame updates per CPU second of this process for one pass over all frames."""
    started = time.process_time()
    run()
    return frames / (time.process_time() - started)


def vsa_step(frames: list[Frame]) -> Callable[[], object]:
    inputs = [FrameDetections(f.xyxy, f.scores, f.class_ids) for f in frames]
    config = TrackerConfig()

    def run() -> TrackerState:
        state = TrackerState()
        for seq, dets in enumerate(inputs):
            state, _ = step(state, dets, T0 + seq / FPS, seq, config)
        return state

    return run


def vsa_step_bytes(frames: list[Frame]) -> Callable[[], object]:
    inputs = [FrameDetections(f.xyxy, f.scores, f.class_ids) for f in frames]
    config = TrackerConfig()

    def run() -> bytes:
        data = TrackerState().to_bytes()
        for seq, dets in enumerate(inputs):
            state, _ = step(TrackerState.from_bytes(data), dets, T0 + seq / FPS, seq, config)
            data = state.to_bytes()
        return data

    return run


def states_of(frames: list[Frame]) -> list[TrackerState]:
    """The state after every frame (for timing serialisation alone)."""
    states, state = [], TrackerState()
    for seq, f in enumerate(frames):
        state, _ = step(state, FrameDetections(f.xyxy, f.scores, f.class_ids), T0 + seq / FPS, seq)
        states.append(state)
    return states


def serde(states: list[TrackerState]) -> Callable[[], object]:
    def run() -> int:
        return sum(len(TrackerState.from_bytes(s.to_bytes())) for s in states)

    return run


RULES = CameraConfig.from_dict(
    {
        "camera_id": "bench",
        "zones": [{"zone_id": "z", "polygon": [[0.2, 0.2], [0.6, 0.2], [0.6, 0.8], [0.2, 0.8]]}],
        "lines": [{"line_id": "l", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
        "rules": [
            {"kind": "zone_intrusion", "rule_id": "in", "zone_id": "z", "min_dwell_s": 1},
            {"kind": "line_crossing", "rule_id": "cross", "line_id": "l"},
            {"kind": "loitering", "rule_id": "loiter", "zone_id": "z", "dwell_s": 5},
            {"kind": "crowding", "rule_id": "crowd", "zone_id": "z", "min_count": 5},
        ],
        "keyframe_interval_s": 5,
    }
)


def vsa_process(frames: list[Frame]) -> Callable[[], object]:
    messages = []
    for seq, f in enumerate(frames):
        ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id="bench", frame_seq=seq)
        boxes = [
            Detection(xyxy=tuple(b), class_id=0, class_name="person", score=float(s))
            for b, s in zip(f.xyxy.tolist(), f.scores, strict=True)
        ]
        messages.append(
            Detections(
                camera_id="bench",
                frame_seq=seq,
                frame=ref,
                capture_ts=T0 + seq / FPS,
                width=WIDTH,
                height=HEIGHT,
                model_id="bench",
                boxes=boxes,
            )
        )
    rules = compile_rules(RULES, ["person"])

    def run() -> bytes:
        data = CameraState().to_bytes()
        for message in messages:
            state, _ = process(CameraState.from_bytes(data), message, rules)
            data = state.to_bytes()
        return data

    return run


def supervision_bytetrack(frames: list[Frame]) -> Callable[[], object]:
    inputs = [
        sv.Detections(
            xyxy=f.xyxy.astype(np.float32),
            confidence=f.scores.astype(np.float32),
            class_id=f.class_ids.astype(int),
        )
        for f in frames
    ]

    def run() -> Any:
        with warnings.catch_warnings():  # deprecated since 0.28 for the `trackers` package
            warnings.simplefilter("ignore", FutureWarning)
            tracker: Any = sv.ByteTrack(frame_rate=FPS)
        for dets in inputs:
            tracker.update_with_detections(dets)
        return tracker

    return run


BASELINE = "supervision ByteTrack (baseline)"


def measure(objects: int, frames: int, repeat: int) -> tuple[dict[str, float], float]:
    """Median updates/s per row for one scene size, and the mean encoded state size (bytes)."""
    scene_frames = scene(objects, frames)
    states = states_of(scene_frames)
    runs = {
        BASELINE: supervision_bytetrack(scene_frames),
        "vsa step": vsa_step(scene_frames),
        "vsa step + state bytes": vsa_step_bytes(scene_frames),
        "state to_bytes + from_bytes": serde(states),
        "vsa process() (message → tracks, rules, keyframes)": vsa_process(scene_frames),
    }
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeat):
        for label, run in runs.items():
            samples[label].append(time_run(run, frames))
    mean_bytes = statistics.fmean(len(s.to_bytes()) for s in states)
    return {label: statistics.median(values) for label, values in samples.items()}, mean_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1500, help="Frames per scene.")
    parser.add_argument("--repeat", type=int, default=5, help="Timed passes per row (median).")
    parser.add_argument("--objects", type=int, nargs="+", default=[5, 20, 100])
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, supervision {sv.__version__}"
    )
    print(f"{platform.processor() or platform.machine()}, load average {load[0]:.2f} at start")
    print(f"{args.frames} frames per scene, median of {args.repeat}, per CPU second, one thread\n")
    print("| objects | tracker | updates/s | µs/update | vs baseline | state bytes |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for objects in args.objects:
        rates, mean_bytes = measure(objects, args.frames, args.repeat)
        base = rates[BASELINE]
        for label, rate in rates.items():
            size = f"{mean_bytes:.0f}" if label.startswith("state") else ""
            print(
                f"| {objects} | {label} | {rate:,.0f} | {1e6 / rate:.0f} | "
                f"{rate / base:.2f} | {size} |"
            )
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
