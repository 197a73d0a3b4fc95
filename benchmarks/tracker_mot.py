"""Tracking accuracy on MOTChallenge ground truth: vsa's tracker next to supervision's ByteTrack.

The ground truth is the MOTChallenge 2015 files shipped in the PyPI package ``motmetrics``
(``motmetrics/data/TUD-Campus/gt.txt`` and ``TUD-Stadtmitte/gt.txt``, 640×480 at 25 fps). The
ground-truth boxes are fed to both trackers as detections under seeded perturbations:

- ``clean``: the boxes as they are, scores uniform in [0.7, 1];
- ``jitter``: every coordinate moved by a normal error of 6 % of the box width or height;
- ``missed``: each box dropped with probability 0.25;
- ``false_pos``: 2 false boxes per frame on average (Poisson), sizes drawn from the sequence's
  boxes, placed uniformly, scores uniform in [0.1, 0.8];
- ``score_noise``: scores drawn from N(0.55, 0.25) clipped to [0, 1], so many true boxes fall in
  ByteTrack's low-score band and some below it;
- ``combined``: jitter 4 %, missed 0.15, 1 false box per frame and score noise together;
- ``low_fps``: every third frame only (8.3 fps) with jitter 4 %: the trackers see larger jumps.

Each setting runs ``--seeds`` seeds per sequence (``--seed-offset`` picks another set, e.g. to
check on seeds the defaults were not tuned on); MOTA, IDF1, ID switches, false positives and
misses are computed by py-motmetrics over all runs of a setting together (IoU >= 0.5 counts as a
match); ``ids`` counts the distinct track ids each tracker published over all runs, in any
track state (vsa before issue 14 published tentative tracks with ids too), and ``< 1 s`` those
of them matched over less than one second (first publication to last matched frame; lost tracks
coasting after it do not count): the ids a user sees (the ground truth's own counts are printed
for reference). Both trackers get the same detections;
each is used with one configuration for every setting (vsa: ``TrackerConfig()`` defaults;
supervision: ``ByteTrack(frame_rate=25)``, its defaults otherwise; for ``low_fps`` both are
told the real rate: vsa through capture times, supervision through ``frame_rate``). vsa reports
the Kalman-filtered boxes of confirmed tracks matched on the frame; supervision the detection
boxes it matched to tracks.

Usage::

    python benchmarks/tracker_mot.py [--seeds 10] [--seed-offset 0]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import motmetrics as mm
import numpy as np
import numpy.typing as npt
import supervision as sv

from vsa.services.tracker.core import FrameDetections, TrackerConfig, TrackerState, step

F64 = npt.NDArray[np.float64]
FPS = 25.0
IMAGE_W, IMAGE_H = 640, 480
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Setting:
    """One perturbation of the ground truth; all rates are per box or per frame."""

    name: str
    jitter: float = 0.0  # std of coordinate noise, fraction of box width/height
    miss_rate: float = 0.0  # probability a true box is dropped
    fp_per_frame: float = 0.0  # mean false boxes per frame (Poisson)
    score_noise: bool = False  # scores N(0.55, 0.25) instead of U(0.7, 1)
    frame_step: int = 1  # keep every n-th frame


SETTINGS = (
    Setting("clean"),
    Setting("jitter", jitter=0.06),
    Setting("missed", miss_rate=0.25),
    Setting("false_pos", fp_per_frame=2.0),
    Setting("score_noise", score_noise=True),
    Setting("combined", jitter=0.04, miss_rate=0.15, fp_per_frame=1.0, score_noise=True),
    Setting("low_fps", jitter=0.04, frame_step=3),
)


@dataclass(frozen=True)
class Frame:
    """One frame of ground truth or of detections."""

    index: int
    ids: npt.NDArray[np.int64]
    xyxy: F64
    scores: F64


def load_ground_truth(name: str) -> list[Frame]:
    """A MOT15 gt.txt from the motmetrics package: frame, id, left, top, width, height, ..."""
    path = Path(mm.__file__).parent / "data" / name / "gt.txt"
    rows = np.loadtxt(path, delimiter=",")
    frames = []
    for index in range(int(rows[:, 0].min()), int(rows[:, 0].max()) + 1):
        sel = rows[rows[:, 0] == index]
        xyxy = np.column_stack([sel[:, 2], sel[:, 3], sel[:, 2] + sel[:, 4], sel[:, 3] + sel[:, 5]])
        frames.append(Frame(index, sel[:, 1].astype(np.int64), xyxy, np.ones(len(sel))))
    return frames


def perturb(gt: list[Frame], setting: Setting, seed: int) -> list[Frame]:
    """The detections a detector might have produced for ``gt`` under ``setting``."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([f.xyxy[:, 2:] - f.xyxy[:, :2] for f in gt])
    out = []
    for frame in gt[:: setting.frame_step]:
        xyxy = frame.xyxy.copy()
        wh = np.tile(xyxy[:, 2:] - xyxy[:, :2], 2)
        xyxy += rng.normal(0.0, 1.0, xyxy.shape) * setting.jitter * wh
        if setting.score_noise:
            scores = np.clip(rng.normal(0.55, 0.25, len(xyxy)), 0.0, 1.0)
        else:
            scores = rng.uniform(0.7, 1.0, len(xyxy))
        keep = rng.random(len(xyxy)) >= setting.miss_rate
        fp_xyxy, fp_scores = _false_boxes(rng, sizes, setting.fp_per_frame)
        boxes = _fix_boxes(np.concatenate([xyxy[keep], fp_xyxy]))
        out.append(Frame(frame.index, frame.ids, boxes, np.concatenate([scores[keep], fp_scores])))
    return out


def _false_boxes(rng: np.random.Generator, sizes: F64, rate: float) -> tuple[F64, F64]:
    count = int(rng.poisson(rate)) if rate > 0 else 0
    wh = sizes[rng.integers(0, len(sizes), count)]
    x1 = rng.uniform(0, IMAGE_W - wh[:, 0].clip(max=IMAGE_W - 1))
    y1 = rng.uniform(0, IMAGE_H - wh[:, 1].clip(max=IMAGE_H - 1))
    return np.column_stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]]), rng.uniform(0.1, 0.8, count)


def _fix_boxes(xyxy: F64) -> F64:
    """Keep x1 <= x2 and y1 <= y2 after jitter (as a detector's output always has)."""
    lo = np.minimum(xyxy[:, :2], xyxy[:, 2:])
    hi = np.maximum(xyxy[:, :2], xyxy[:, 2:])
    return np.column_stack([lo, hi])


#: A tracker fed one frame: (ids of its tracks matched on the frame, their boxes, every id it
#: published for the frame, whatever the track's state).
Tracker = Callable[[Frame], tuple[npt.NDArray[np.int64], F64, npt.NDArray[np.int64]]]


def vsa_tracker(fps: float) -> Tracker:
    """vsa's step function with its default config; returns confirmed, matched tracks."""
    config = TrackerConfig()
    state = TrackerState()

    def update(frame: Frame) -> tuple[npt.NDArray[np.int64], F64, npt.NDArray[np.int64]]:
        nonlocal state
        dets = FrameDetections(frame.xyxy, frame.scores, np.zeros(len(frame.xyxy), np.int64))
        state, out = step(state, dets, frame.index / fps, frame.index, config)
        assert out is not None
        seen = out.observed()
        return out.track_ids[seen], out.xyxy[seen], out.track_ids

    return update


def supervision_tracker(fps: float) -> Tracker:
    """supervision's ByteTrack with its defaults at the sequence's frame rate."""
    with warnings.catch_warnings():  # deprecated since 0.28 for the `trackers` package
        warnings.simplefilter("ignore", FutureWarning)
        tracker: Any = sv.ByteTrack(frame_rate=fps)

    def update(frame: Frame) -> tuple[npt.NDArray[np.int64], F64, npt.NDArray[np.int64]]:
        dets = sv.Detections(
            xyxy=frame.xyxy.astype(np.float32),
            confidence=frame.scores.astype(np.float32),
            class_id=np.zeros(len(frame.xyxy), int),
        )
        tracked = tracker.update_with_detections(dets)
        ids = np.asarray(tracked.tracker_id, np.int64)
        return ids, np.asarray(tracked.xyxy, np.float64), ids

    return update


TRACKERS: dict[str, Callable[[float], Tracker]] = {
    "supervision ByteTrack (baseline)": supervision_tracker,
    "vsa tracker": vsa_tracker,
}


def iou(a: F64, b: F64) -> F64:
    """IoU matrix of boxes a (n, 4) and b (m, 4)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    result: F64 = inter / (area_a[:, None] + area_b[None, :] - inter)
    return result


@dataclass
class IdSpans:
    """Frame index of every id's first publication and of its last match, in one run."""

    first: dict[int, int]
    last: dict[int, int]

    def short(self) -> int:
        """Ids matched over less than one second, from first publication to last match
        (frame indices at FPS); an id never matched counts as 0 s."""
        return sum((self.last.get(i, f) - f) / FPS < 1.0 for i, f in self.first.items())


def evaluate(gt: list[Frame], dets: list[Frame], tracker: Tracker) -> tuple[Any, IdSpans]:
    """Run the tracker on every detection frame and score it against the same frames' truth."""
    truth = {f.index: f for f in gt}
    acc = mm.MOTAccumulator(auto_id=True)
    spans = IdSpans({}, {})
    for frame in dets:
        ids, boxes, published = tracker(frame)
        for track_id in published.tolist():
            spans.first.setdefault(track_id, frame.index)
        spans.last.update(dict.fromkeys(ids.tolist(), frame.index))
        true = truth[frame.index]
        dist = 1.0 - iou(true.xyxy, boxes) if len(boxes) and len(true.xyxy) else None
        if dist is None:
            dist = np.zeros((len(true.xyxy), len(boxes)))
        dist[dist > 1.0 - MATCH_IOU] = np.nan
        acc.update(true.ids.tolist(), ids.tolist(), dist)
    return acc, spans


def runs(
    setting: Setting, seeds: int, offset: int = 0
) -> Iterator[tuple[list[Frame], list[Frame], float]]:
    """(ground truth, detections, fps) of every sequence and seed of a setting."""
    for s_index, name in enumerate(SEQUENCES):
        gt = load_ground_truth(name)
        for seed in range(offset, offset + seeds):
            yield gt, perturb(gt, setting, 1000 * s_index + seed), FPS / setting.frame_step


METRICS = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses"]


def measure(setting: Setting, seeds: int, offset: int) -> dict[str, dict[str, float]]:
    """Overall metrics of every tracker for one setting, with its id counts; the ground
    truth's own id counts under the key "truth"."""
    results: dict[str, dict[str, float]] = {}
    for label, make in TRACKERS.items():
        evaluated = [
            (*evaluate(gt, dets, make(fps)), fps) for gt, dets, fps in runs(setting, seeds, offset)
        ]
        accs = [acc for acc, _, _ in evaluated]
        summary = mm.metrics.create().compute_many(
            accs, metrics=METRICS, names=[str(i) for i in range(len(accs))], generate_overall=True
        )
        results[label] = {m: float(summary.loc["OVERALL", m]) for m in METRICS}
        results[label]["ids"] = sum(len(spans.first) for _, spans, _ in evaluated)
        results[label]["short"] = sum(spans.short() for _, spans, _ in evaluated)
    truth = [truth_spans(gt, setting) for gt, _, _ in runs(setting, seeds, offset)]
    results["truth"] = {
        "ids": sum(len(s.first) for s in truth),
        "short": sum(s.short() for s in truth),
    }
    return results


def truth_spans(gt: list[Frame], setting: Setting) -> IdSpans:
    """The ground truth's ids over the frames a setting keeps."""
    spans = IdSpans({}, {})
    for frame in gt[:: setting.frame_step]:
        for track_id in frame.ids.tolist():
            spans.first.setdefault(track_id, frame.index)
            spans.last[track_id] = frame.index
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="Seeds per sequence and setting.")
    parser.add_argument("--seed-offset", type=int, default=0, help="First seed.")
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"python {platform.python_version()}, supervision {sv.__version__}, "
        f"seeds {args.seed_offset}..{args.seed_offset + args.seeds - 1} per sequence"
    )
    print(f"sequences: {', '.join(SEQUENCES)} (motmetrics {mm.__version__} package data)\n")
    print("| setting | tracker | MOTA | IDF1 | ID sw | FP | FN | ids | < 1 s | vs baseline |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    met = 0
    for setting in SETTINGS:
        results = measure(setting, args.seeds, args.seed_offset)
        truth = results.pop("truth")
        print(
            f"| {setting.name} | ground truth | | | | | | {truth['ids']:.0f} | "
            f"{truth['short']:.0f} | |"
        )
        base = results["supervision ByteTrack (baseline)"]
        for label, r in results.items():
            verdict = ""
            if label != "supervision ByteTrack (baseline)":
                ok = r["mota"] >= base["mota"] and r["idf1"] >= base["idf1"]
                met += ok
                verdict = (
                    f"MOTA {r['mota'] - base['mota']:+.3f}, IDF1 {r['idf1'] - base['idf1']:+.3f}"
                )
                verdict += " ok" if ok else " BELOW"
            print(
                f"| {setting.name} | {label} | {r['mota']:.3f} | {r['idf1']:.3f} | "
                f"{r['num_switches']:.0f} | {r['num_false_positives']:.0f} | "
                f"{r['num_misses']:.0f} | {r['ids']:.0f} | {r['short']:.0f} | {verdict} |"
            )
    print(f"\ngoal (MOTA and IDF1 >= baseline) met in {met} of {len(SETTINGS)} settings")
    print(f"took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
