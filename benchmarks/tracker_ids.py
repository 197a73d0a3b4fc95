"""Track ids a user sees on a recorded clip: vsa's tracker next to supervision's ByteTrack.

Input: detections JSON lines as on the detections topic (``vsa detect CLIP > dets.jsonl``).
vsa runs them through the offline replay (``vsa track``: tracking, rules, keyframes, the state
through bytes between frames) with the given rules; supervision's ByteTrack (its defaults, the
clip's frame rate) gets the same boxes. Per tracker it prints:

- ids: distinct track ids anywhere in the tracks output;
- never confirmed: ids that only ever appear as tentative tracks (vsa before issue 14);
- confirmed: ids of tracks that were confirmed (supervision: every id it outputs);
- < 1 s: confirmed tracks matched over less than one second of capture time (first frame of
  the id to its last matched frame), the fragments users see as objects that flash by;
- < 10 frames: confirmed tracks matched on fewer than 10 frames;
- in alerts / in keyframes: distinct ids named by alerts and keyframes (vsa only), and how many
  of them were not confirmed when named;
- most on a frame: the largest number of confirmed, matched tracks on one frame.

Usage::

    vsa detect $(vsa assets) --max-frames 400 > dets.jsonl
    python benchmarks/tracker_ids.py dets.jsonl --rules examples/vtest-rules.yaml
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from vsa.schemas import Alert, Detections, Keyframe, Tracks
from vsa.services.tracker.golden import read_detections
from vsa.services.tracker.replay import replay
from vsa.services.tracker.rules import CameraRules, compile_rules, load_camera_configs


@dataclass
class IdStats:
    """Per-id first time, last matched time and matched frames; what alerts/keyframes named."""

    first_ts: dict[int, float] = field(default_factory=dict)
    last_seen_ts: dict[int, float] = field(default_factory=dict)
    seen_frames: dict[int, int] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)
    in_alerts: set[int] = field(default_factory=set)
    in_keyframes: set[int] = field(default_factory=set)
    unconfirmed_named: set[int] = field(default_factory=set)
    most_on_frame: int = 0

    def frame(self, ts: float, objects: Iterable[tuple[int, str]]) -> None:
        """One frame's tracks as ``(track_id, state)``."""
        matched = 0
        for track_id, state in objects:
            self.first_ts.setdefault(track_id, ts)
            if state == "confirmed":
                matched += 1
                self.confirmed.add(track_id)
                self.last_seen_ts[track_id] = ts
                self.seen_frames[track_id] = self.seen_frames.get(track_id, 0) + 1
        self.most_on_frame = max(self.most_on_frame, matched)

    def named(self, where: set[int], ids: Iterable[int]) -> None:
        for track_id in ids:
            where.add(track_id)
            if track_id not in self.confirmed:
                self.unconfirmed_named.add(track_id)

    def row(self, label: str, with_outputs: bool) -> str:
        spans = [self.last_seen_ts[i] - self.first_ts[i] for i in self.confirmed]
        short = sum(span < 1.0 for span in spans)
        few = sum(self.seen_frames[i] < 10 for i in self.confirmed)
        never = len(self.first_ts) - len(self.confirmed)
        alerts = f"{len(self.in_alerts)}" if with_outputs else "-"
        keyframes = f"{len(self.in_keyframes)}" if with_outputs else "-"
        unnamed = f"{len(self.unconfirmed_named)}" if with_outputs else "-"
        return (
            f"| {label} | {len(self.first_ts)} | {never} | {len(self.confirmed)} | {short} | "
            f"{few} | {alerts} | {keyframes} | {unnamed} | {self.most_on_frame} |"
        )


def vsa_stats(messages: list[Detections], rules: dict[str, CameraRules]) -> IdStats:
    """Replay through vsa's tracker (as ``vsa track``) and collect what users would see."""
    stats = IdStats()
    for _topic, value in replay(messages, rules):
        if isinstance(value, Tracks):
            stats.frame(value.capture_ts, ((o.track_id, o.state) for o in value.tracks))
        elif isinstance(value, Alert):
            stats.named(stats.in_alerts, value.track_ids)
        elif isinstance(value, Keyframe):
            ids = [*value.track_ids, *(o.track_id for o in value.objects)]
            stats.named(stats.in_keyframes, ids)
    return stats


def supervision_stats(messages: list[Detections], fps: float) -> IdStats:
    """supervision's ByteTrack (defaults, the clip's frame rate) on the same boxes."""
    with warnings.catch_warnings():  # deprecated since 0.28 for the `trackers` package
        warnings.simplefilter("ignore", FutureWarning)
        tracker: Any = sv.ByteTrack(frame_rate=round(fps))
    stats = IdStats()
    for message in messages:
        boxes = message.boxes
        dets = sv.Detections(
            xyxy=np.array([b.xyxy for b in boxes], np.float32).reshape(-1, 4),
            confidence=np.array([b.score for b in boxes], np.float32),
            class_id=np.array([b.class_id for b in boxes], int),
        )
        tracked = tracker.update_with_detections(dets)
        ids = np.asarray(tracked.tracker_id, np.int64).tolist()
        stats.frame(message.capture_ts, ((i, "confirmed") for i in ids))
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("detections", type=Path, help="Detections JSON lines.")
    parser.add_argument("--rules", type=Path, help="Camera config YAML applied to every camera.")
    args = parser.parse_args()
    messages = read_detections(args.detections)
    known = {box.class_name for message in messages for box in message.boxes}
    rules: dict[str, CameraRules] = {}
    if args.rules is not None:
        for config in load_camera_configs(args.rules):
            for camera_id in {m.camera_id for m in messages}:
                mine = config.model_copy(update={"camera_id": camera_id})
                rules[camera_id] = compile_rules(mine, known)
    span = messages[-1].capture_ts - messages[0].capture_ts
    fps = (len(messages) - 1) / span if span > 0 else 10.0
    print(f"{args.detections.name}: {len(messages)} frames, {span:.1f} s, {fps:.1f} fps\n")
    print(
        "| tracker | ids | never confirmed | confirmed | < 1 s | < 10 frames | in alerts "
        "| in keyframes | named unconfirmed | most on a frame |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(supervision_stats(messages, fps).row(f"supervision {sv.__version__} ByteTrack", False))
    print(vsa_stats(messages, rules).row("vsa tracker (vsa track)", True))


if __name__ == "__main__":
    main()
