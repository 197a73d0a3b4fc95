"""Builds the input files of the tracker's golden cases (``python -m vsa.services.tracker.golden
--record``). Deterministic: fixed seeds, fixed times.

``scene``
    A scripted 12 s street scene (640×360 at 10 fps, camera ``lab``) that exercises every rule:
    a person walks through a tripwire into a door zone, loiters, is occluded for 4 frames, and
    walks back out through the tripwire; two more people join (a crowd of three); a car drives
    through (its class flickers to 'truck' on some frames, and the zone ignores cars); a false
    positive flickers once; frames 80-84 never arrive and the clock jumps (0.9 s between frames
    79 and 85, within the 1 s lost-track buffer); frames 30 and 31 are delivered twice (a
    redelivery).
``street``
    A scripted 25 s scene (640×360 at 10 fps, camera ``street``) for the counting, speed and
    stationary kinds: a car drives into a parking lot and parks; the detector loses it from 12
    to 14 s, so its track ends and a new one starts on it (a stationary object, not a new
    arrival: no second lot entry, stationary or loitering alert); another car speeds across the
    far side of the street (a four-point homography gives its speed in m/s); four people cross a
    counted walkway line in both directions and one stands in the plaza for a while (line
    counts and plaza occupancy per 10 s period).
``tud-campus``
    The MOTChallenge TUD-Campus ground truth (in the PyPI package motmetrics; 640×480, 25 fps,
    71 frames) with seeded box jitter, missed boxes, false positives and score noise, with a
    zone, a line and crowding rules placed on the scene's walkway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsa.schemas import Detection, Detections, FrameRef

_SCENE_RULES = """\
# The scripted scene: a door zone on the right, a tripwire in the middle (x = 0.4).
camera_id: lab
zones:
  - zone_id: door
    name: Door area
    polygon: [[0.55, 0.2], [0.95, 0.2], [0.95, 0.9], [0.55, 0.9]]
    classes: [person]
lines:
  - line_id: gate
    name: Tripwire
    a: [0.4, 0.05]
    b: [0.4, 0.95]
rules:
  - {kind: zone_intrusion, rule_id: door-intrusion, zone_id: door, min_dwell_s: 0.5, cooldown_s: 5}
  - {kind: loitering, rule_id: door-loiter, zone_id: door, dwell_s: 3, cooldown_s: 30}
  - {kind: line_crossing, rule_id: gate-any, line_id: gate, classes: [person, car], cooldown_s: 2}
  - {kind: line_crossing, rule_id: gate-westward, line_id: gate, direction: a_to_b}
  - {kind: crowding, rule_id: door-crowd, zone_id: door, min_count: 3, cooldown_s: 10}
keyframe_interval_s: 2
"""

_TUD_RULES = """\
# TUD-Campus: a walkway zone, a tripwire across it, and a crowd of 4.
camera_id: tud-campus
zones:
  - zone_id: walkway
    polygon: [[0.3, 0.3], [0.7, 0.3], [0.7, 0.95], [0.3, 0.95]]
lines:
  - line_id: middle
    a: [0.5, 0.1]
    b: [0.5, 0.99]
rules:
  - {kind: zone_intrusion, rule_id: walkway-entry, zone_id: walkway, min_dwell_s: 0.4}
  - {kind: loitering, rule_id: walkway-loiter, zone_id: walkway, dwell_s: 1.5}
  - {kind: line_crossing, rule_id: middle-cross, line_id: middle, cooldown_s: 1}
  - {kind: crowding, rule_id: walkway-crowd, zone_id: walkway, min_count: 4, cooldown_s: 1}
keyframe_interval_s: 1
"""

_STREET_RULES = """\
# The scripted street: a parking lot on the right, a plaza on the left, a counted walkway line.
camera_id: street
zones:
  - {zone_id: lot, name: parking lot, polygon: [[0.6, 0.4], [1.0, 0.4], [1.0, 0.95], [0.6, 0.95]]}
  - {zone_id: plaza, name: plaza, polygon: [[0.1, 0.3], [0.5, 0.3], [0.5, 0.95], [0.1, 0.95]]}
lines:
  - {line_id: walk, name: walkway, a: [0.4, 0.3], b: [0.4, 1.0]}
calibration:  # the street seen in perspective: 20 m wide, 30 m deep
  image_points: [[0.3, 0.2], [0.7, 0.2], [1.0, 1.0], [0.0, 1.0]]
  ground_points: [[0, 30], [20, 30], [20, 0], [0, 0]]
rules:
  - {kind: stationary, rule_id: parked, classes: [car], still_s: 5}
  - {kind: zone_intrusion, rule_id: lot-entry, zone_id: lot, classes: [car], min_dwell_s: 1}
  - {kind: loitering, rule_id: lot-loiter, zone_id: lot, dwell_s: 8, cooldown_s: 5}
  - {kind: speed, rule_id: too-fast, classes: [car], min_speed: 8, unit: m_s}
  - {kind: line_count, rule_id: walk-count, line_id: walk, classes: [person], interval_s: 10}
  - {kind: occupancy, rule_id: plaza-people, zone_id: plaza, classes: [person], interval_s: 10}
keyframe_interval_s: 5
"""

START_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Actor:
    """A scripted object: class, box size (px) and a path of (t s, cx px, cy px) waypoints."""

    class_id: int
    class_name: str
    size: tuple[float, float]
    path: tuple[tuple[float, float, float], ...]
    hidden: tuple[tuple[float, float], ...] = ()  # time spans without detections

    def centre(self, t: float) -> tuple[float, float] | None:
        times = [p[0] for p in self.path]
        if t < times[0] or t > times[-1] or any(a <= t < b for a, b in self.hidden):
            return None
        return float(np.interp(t, times, [p[1] for p in self.path])), float(
            np.interp(t, times, [p[2] for p in self.path])
        )


ACTORS = (
    Actor(
        0,
        "person",
        (40, 100),
        ((0.0, 40, 200), (4.5, 440, 200), (9.0, 470, 210), (12.0, 120, 200)),
        ((6.0, 6.4),),
    ),
    Actor(0, "person", (36, 90), ((2.0, 500, 120), (8.0, 540, 150), (9.5, 640, 150))),
    Actor(0, "person", (38, 96), ((5.0, 400, 280), (8.5, 420, 270))),
    Actor(2, "car", (120, 60), ((1.0, 700, 300), (7.0, -60, 300))),
)


STREET_ACTORS = (
    Actor(
        2, "car", (110, 60), ((0.0, 700, 250), (3.0, 520, 250), (25.0, 520, 250)), ((12.0, 14.0),)
    ),
    Actor(2, "car", (100, 50), ((5.0, -60, 80), (9.0, 740, 80))),
    Actor(0, "person", (30, 80), ((1.0, 100, 300), (9.0, 400, 300))),
    Actor(0, "person", (30, 80), ((4.0, 450, 200), (12.0, 120, 220))),
    Actor(0, "person", (30, 80), ((13.0, 90, 260), (22.0, 380, 320))),
    Actor(
        0,
        "person",
        (30, 80),
        ((15.0, 300, 150), (17.0, 200, 160), (21.0, 200, 160), (24.0, 100, 200)),
    ),
)


def street_messages() -> list[Detections]:
    """The scripted street, 25 s at 10 fps."""
    rng = np.random.default_rng(14)
    messages = []
    for seq in range(250):
        t = seq / 10
        boxes = []
        for actor in STREET_ACTORS:
            centre = actor.centre(t)
            if centre is None:
                continue
            cx, cy = centre[0] + rng.normal(0, 1.5), centre[1] + rng.normal(0, 1.5)
            score = rng.uniform(0.6, 0.95)
            boxes.append(_box(cx, cy, *actor.size, actor.class_id, actor.class_name, score))
        messages.append(_frame_message("street", seq, START_TS + t, (640, 360), boxes))
    return messages


def _frame_message(
    camera_id: str, seq: int, ts: float, size: tuple[int, int], boxes: list[Detection]
) -> Detections:
    return Detections(
        camera_id=camera_id,
        frame_seq=seq,
        frame=FrameRef(
            topic="frames", partition=0, offset=1000 + seq, camera_id=camera_id, frame_seq=seq
        ),
        capture_ts=ts,
        width=size[0],
        height=size[1],
        model_id="golden-script",
        boxes=boxes,
    )


def _box(
    cx: float, cy: float, w: float, h: float, class_id: int, name: str, score: float
) -> Detection:
    return Detection(
        xyxy=(
            round(cx - w / 2, 2),
            round(cy - h / 2, 2),
            round(cx + w / 2, 2),
            round(cy + h / 2, 2),
        ),
        class_id=class_id,
        class_name=name,
        score=round(score, 3),
    )


def scene_messages() -> list[Detections]:
    """The scripted scene, in delivery order (with the gap and the redelivery)."""
    rng = np.random.default_rng(7)
    messages = []
    for seq in range(120):
        t = seq / 10 + (0.3 if seq >= 85 else 0.0)
        boxes = []
        for index, actor in enumerate(ACTORS):
            centre = actor.centre(t)
            if centre is None:
                continue
            cx, cy = centre[0] + rng.normal(0, 1.5), centre[1] + rng.normal(0, 1.5)
            class_id, name = actor.class_id, actor.class_name
            if name == "car" and seq % 4 == 0:
                class_id, name = 7, "truck"
            score = 0.25 if (index == 1 and seq % 9 == 0) else rng.uniform(0.6, 0.95)
            boxes.append(_box(cx, cy, *actor.size, class_id, name, score))
        if seq == 40:
            boxes.append(_box(150, 80, 30, 70, 0, "person", 0.5))
        messages.append(_frame_message("lab", seq, START_TS + t, (640, 360), boxes))
    kept = [m for m in messages if not 80 <= m.frame_seq < 85]
    index = next(i for i, m in enumerate(kept) if m.frame_seq == 32)
    return [*kept[:index], messages[30], messages[31], *kept[index:]]


def tud_campus_messages() -> list[Detections]:
    """TUD-Campus ground truth as perturbed detections (seeded)."""
    import motmetrics

    rows = np.loadtxt(
        Path(motmetrics.__file__).parent / "data" / "TUD-Campus" / "gt.txt", delimiter=","
    )
    rng = np.random.default_rng(2026)
    messages = []
    for seq in range(int(rows[:, 0].max())):
        sel = rows[rows[:, 0] == seq + 1]
        boxes = []
        for left, top, w, h in sel[:, 2:6]:
            if rng.random() < 0.1:
                continue
            cx = left + w / 2 + rng.normal(0, 0.03 * w)
            cy = top + h / 2 + rng.normal(0, 0.03 * h)
            boxes.append(
                _box(cx, cy, w, h, 0, "person", float(np.clip(rng.normal(0.6, 0.2), 0.05, 1)))
            )
        if rng.random() < 0.3:
            boxes.append(
                _box(
                    rng.uniform(60, 580),
                    rng.uniform(100, 380),
                    60,
                    150,
                    0,
                    "person",
                    rng.uniform(0.1, 0.7),
                )
            )
        messages.append(_frame_message("tud-campus", seq, START_TS + seq / 25, (640, 480), boxes))
    return messages


def record_all(directory: Path) -> list[Path]:
    """Write every case's detections and rules files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, messages, rules in (
        ("scene", scene_messages(), _SCENE_RULES),
        ("street", street_messages(), _STREET_RULES),
        ("tud-campus", tud_campus_messages(), _TUD_RULES),
    ):
        path = directory / f"{name}.detections.jsonl"
        path.write_bytes(b"".join(m.to_bytes() + b"\n" for m in messages))
        (directory / f"{name}.rules.yaml").write_text(rules, encoding="utf-8")
        written += [path, directory / f"{name}.rules.yaml"]
    return written
