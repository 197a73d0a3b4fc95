"""Appearance on the sample clip: re-attachment after occlusion and same-track retrieval.

Input: the detections of the whole sample clip as on the detections topic
(``vsa detect vtest.avi > dets.jsonl``) and the clip itself; every box's crop is embedded once
by the MobileNetV2 appearance embedder (ONNX Runtime, one thread; cached in ``--cache``).

The clip has no ground truth, and the MOTChallenge ground truth in motmetrics has no images, so
identities come from the clip itself: the **reference tracks** are the tracks vsa's tracker (its
defaults, no appearance) keeps for at least ``--min-track-s`` seconds on the untouched
detections, each frame's box being the detection the track matched (IoU >= 0.5 with the track's
box). Two measurements:

1. **Re-attachment after occlusion**: every detection of the clip, with every reference track
   hidden (its detections removed) for ``--gaps`` seconds once, at a seeded random time in the
   middle of its life: an occlusion longer than the tracker's ``max_lost_s`` (1 s), among the
   clip's other people. Each tracker configuration runs on the same inputs (``--seeds`` seeds
   per gap); py-motmetrics scores it against the reference tracks on the frames where they are
   visible (track boxes on objects outside the reference tracks are left out): IDF1, MOTA, ID
   switches, fragmentations, and ``ids/track`` (distinct tracker ids matched to one reference
   track; 1.0 is perfect). The baseline is the default tracker (no appearance, max_lost_s 1 s);
   the other rows add a longer ``max_lost_s`` and/or appearance re-attachment at each
   ``--similarity`` threshold, with the ratio of ID switches and fragmentations to the
   baseline's. On the untouched clip (all detections) the
   same configurations are run without ground truth, and ``ids``, ``< 1 s`` and ``fragments``
   (a confirmed track whose last match is followed within 1.5 s and 40 px by the first match of
   a track confirmed later, tracker_ids.py's criterion) are counted.
2. **Same-track retrieval precision@5**: every 5th crop of each reference track is a query
   against all crops of all reference tracks (the query excluded); relevant = crops of the same
   reference track. ``all``: the whole gallery; ``other times``: the query's own track within
   ``--exclude-s`` seconds of it left out of the gallery (near-duplicate neighbouring frames),
   so the same object must be found at another moment. Baselines in the same run: a random
   ranking (expected precision) and an RGB colour histogram of the crop (8 bins per channel,
   square-rooted, L2-normalised).

Usage::

    vsa detect $(vsa assets) > dets.jsonl
    python benchmarks/tracker_appearance.py dets.jsonl [--clip vtest.avi] [--seeds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import motmetrics as mm
import numpy as np
import numpy.typing as npt

from vsa.assets import fetch_vtest
from vsa.services.appearance.embedder import build_appearance_embedder, crops
from vsa.services.appearance.settings import AppearanceSettings
from vsa.services.tracker.core import FrameDetections, TrackerConfig, TrackerState, step
from vsa.services.tracker.core.matching import iou_matrix
from vsa.services.tracker.golden import read_detections

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Frame:
    """One frame of the clip's detections with each box's appearance vector."""

    seq: int
    ts: float
    xyxy: F64
    scores: F64
    class_ids: I64
    vectors: F32
    ref_ids: I64  # reference track of each box, 0 for none

    def select(self, keep: npt.NDArray[np.bool_]) -> Frame:
        return Frame(
            self.seq,
            self.ts,
            self.xyxy[keep],
            self.scores[keep],
            self.class_ids[keep],
            self.vectors[keep],
            self.ref_ids[keep],
        )

    def detections(self, with_vectors: bool) -> FrameDetections:
        vectors = self.vectors if with_vectors else None
        return FrameDetections(self.xyxy, self.scores, self.class_ids, vectors)


def load_frames(dets: Path, clip: Path, cache: Path) -> tuple[list[Frame], F32]:
    """The detections with every box's vector (embedded once, cached by the inputs' digest),
    and the RGB colour histograms of the crops (the retrieval baseline)."""
    messages = read_detections(dets)
    key = hashlib.sha256(dets.read_bytes() + b"mobilenetv2-appearance-v1").hexdigest()[:16]
    cached = cache / f"appearance-{key}.npz"
    if cached.exists():
        data = np.load(cached)
        vectors, histograms = data["vectors"], data["histograms"]
    else:
        vectors, histograms = _embed_clip(messages, clip)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cached, vectors=vectors, histograms=histograms)
    frames, start = [], 0
    for message in messages:
        n = len(message.boxes)
        frames.append(
            Frame(
                message.frame_seq,
                message.capture_ts,
                np.array([b.xyxy for b in message.boxes], np.float64).reshape(-1, 4),
                np.array([b.score for b in message.boxes], np.float64),
                np.array([b.class_id for b in message.boxes], np.int64),
                vectors[start : start + n].astype(np.float32),
                np.zeros(n, np.int64),
            )
        )
        start += n
    return frames, histograms


def _embed_clip(messages: list[Any], clip: Path) -> tuple[F32, F32]:
    import av

    embedder = build_appearance_embedder(AppearanceSettings(backend="onnxruntime", threads=1))
    by_seq = {m.frame_seq: m for m in messages}
    vectors, histograms = [], []
    started = time.perf_counter()
    with av.open(str(clip)) as container:
        for index, decoded in enumerate(container.decode(video=0)):
            message = by_seq.get(index)
            if message is None or not message.boxes:
                continue
            image = np.asarray(decoded.to_ndarray(format="rgb24"), np.uint8)
            xyxy = np.array([b.xyxy for b in message.boxes], np.float64)
            vectors.append(embedder.embed(image, xyxy))
            histograms.append(_histograms(image, xyxy))
    count = sum(len(v) for v in vectors)
    print(f"embedded {count} crops in {time.perf_counter() - started:.1f} s ({embedder.name})")
    return np.concatenate(vectors).astype(np.float16), np.concatenate(histograms)


def _histograms(image: npt.NDArray[np.uint8], xyxy: F64) -> F32:
    """8x8x8 RGB histograms of 32x16 crops, square-rooted and L2-normalised."""
    patches = crops(image, xyxy, (32, 16)).astype(np.int64) // 32  # (n, 3, 32, 16), 0..7
    bins = (patches[:, 0] * 64 + patches[:, 1] * 8 + patches[:, 2]).reshape(len(xyxy), -1)
    counts = np.stack([np.bincount(b, minlength=512) for b in bins]).astype(np.float32)
    roots = np.sqrt(counts)
    normalised: F32 = roots / np.linalg.norm(roots, axis=1, keepdims=True)
    return normalised


@dataclass(frozen=True)
class Variant:
    """One tracker configuration of the comparison."""

    label: str
    config: TrackerConfig
    appearance: bool


def variants(similarities: list[float]) -> list[Variant]:
    """The baseline, a longer max_lost_s alone, and appearance re-attachment at each
    similarity threshold with the default and the longer max_lost_s."""
    base = TrackerConfig()
    longer = base.model_copy(update={"max_lost_s": 3.0})
    out = [
        Variant("default, no appearance (baseline)", base, False),
        Variant("max_lost_s 3, no appearance", longer, False),
    ]
    for similarity in similarities:
        on = {"reattach_min_similarity": similarity}
        out.append(Variant(f"appearance >= {similarity:g}", base.model_copy(update=on), True))
        out.append(
            Variant(
                f"appearance >= {similarity:g}, max_lost_s 3",
                longer.model_copy(update=on),
                True,
            )
        )
    return out


def track(frames: list[Frame], variant: Variant) -> Iterator[tuple[Frame, Any]]:
    """The tracker's outputs frame by frame."""
    state = TrackerState()
    for frame in frames:
        state, out = step(
            state, frame.detections(variant.appearance), frame.ts, frame.seq, variant.config
        )
        assert out is not None
        yield frame, out


def reference_tracks(frames: list[Frame], min_track_s: float) -> list[Frame]:
    """``frames`` with each box labelled by the default tracker's long track that matched it."""
    labelled: list[tuple[Frame, I64]] = []
    spans: dict[int, list[float]] = {}
    for frame, out in track(frames, variants([])[0]):
        labels = np.zeros(len(frame.scores), np.int64)
        seen = out.observed()
        if len(frame.scores) and seen.any():
            overlap = iou_matrix(out.xyxy[seen], frame.xyxy)
            best = overlap.argmax(axis=1)
            for row, (track_id, col) in enumerate(zip(out.track_ids[seen], best, strict=True)):
                if overlap[row, col] >= 0.5 and labels[col] == 0:
                    labels[col] = track_id
                    spans.setdefault(int(track_id), []).append(frame.ts)
        labelled.append((frame, labels))
    long = {t for t, ts in spans.items() if ts[-1] - ts[0] >= min_track_s}
    return [
        Frame(
            f.seq,
            f.ts,
            f.xyxy,
            f.scores,
            f.class_ids,
            f.vectors,
            np.where(np.isin(labels, list(long)), labels, 0),
        )
        for f, labels in labelled
    ]


def occluded(reference: list[Frame], gap_s: float, seed: int) -> list[Frame]:
    """Every detection of the clip, each reference track hidden for ``gap_s`` once, starting
    at a uniform time between 25 % and 75 % of its life less the gap."""
    rng = np.random.default_rng(seed)
    lives: dict[int, list[float]] = {}
    for frame in reference:
        for ref in frame.ref_ids[frame.ref_ids > 0].tolist():
            lives.setdefault(ref, []).append(frame.ts)
    hidden = {}
    for ref, ts in sorted(lives.items()):
        first, last = ts[0], ts[-1]
        latest = max(first + 0.25 * (last - first), last - 0.25 * (last - first) - gap_s)
        begin = rng.uniform(first + 0.25 * (last - first), latest)
        hidden[ref] = (begin, begin + gap_s)
    out = []
    for frame in reference:
        keep = np.ones(len(frame.ref_ids), bool)
        for row in np.nonzero(frame.ref_ids > 0)[0]:
            begin, end = hidden[int(frame.ref_ids[row])]
            keep[row] = not begin <= frame.ts < end
        out.append(frame.select(keep))
    return out


METRICS = ["idf1", "mota", "num_switches", "num_fragmentations"]


def score(inputs: list[Frame], variant: Variant) -> dict[str, float]:
    """MOT metrics against the reference ids on their visible boxes, and ids per reference.
    A track box that overlaps an object outside the reference tracks more than any reference
    box is left out (that object has no ground truth)."""
    acc = mm.MOTAccumulator(auto_id=True)
    matched: dict[int, set[int]] = {}
    for frame, out in track(inputs, variant):
        seen = out.observed()
        boxes, ids = out.xyxy[seen], out.track_ids[seen]
        overlap = iou_matrix(frame.xyxy, boxes)
        ref = frame.ref_ids > 0
        if len(frame.xyxy) and len(boxes):
            other = overlap[~ref].max(axis=0, initial=0.0)
            mine = overlap[ref].max(axis=0, initial=0.0)
            scored = ~((other >= 0.5) & (other > mine))
            boxes, ids, overlap = boxes[scored], ids[scored], overlap[:, scored]
        dist = 1.0 - overlap[ref]
        dist[dist > 0.5] = np.nan
        acc.update(frame.ref_ids[ref].tolist(), ids.tolist(), dist)
        for row, col in zip(*np.nonzero(~np.isnan(dist)), strict=True):
            matched.setdefault(int(frame.ref_ids[ref][row]), set()).add(int(ids[col]))
    summary = mm.metrics.create().compute(acc, metrics=METRICS, name="run")
    result = {m: float(summary.loc["run", m]) for m in METRICS}
    result["ids_per_track"] = float(np.mean([len(v) for v in matched.values()]))
    return result


def natural(frames: list[Frame], variant: Variant) -> dict[str, int]:
    """Ids, short tracks and fragment pairs on the untouched clip (no ground truth)."""
    first: dict[int, tuple[float, F64]] = {}
    last: dict[int, tuple[float, F64]] = {}
    for frame, out in track(frames, variant):
        seen = out.observed()
        centres = (out.xyxy[:, :2] + out.xyxy[:, 2:]) / 2
        for row, track_id in enumerate(out.track_ids.tolist()):
            first.setdefault(track_id, (frame.ts, centres[row]))
            if seen[row]:
                last[track_id] = (frame.ts, centres[row])
    short = sum(last.get(t, f)[0] - f[0] < 1.0 for t, f in first.items())
    fragments = 0
    for ended, (end_ts, end_xy) in last.items():
        fragments += any(
            later > ended and 0 <= ts - end_ts <= 1.5 and np.hypot(*(xy - end_xy)) <= 40
            for later, (ts, xy) in first.items()
        )
    return {"ids": len(first), "short": int(short), "fragments": fragments}


def precision_at_5(
    reference: list[Frame], histograms: F32, exclude_s: float
) -> dict[str, dict[str, float]]:
    """Same-track precision@5 of the appearance vectors and the colour histograms, with the
    random ranking's expected precision; ``all`` and ``other times`` galleries."""
    offsets = np.cumsum([0] + [len(f.scores) for f in reference])
    rows = [
        (offsets[i] + j, int(f.ref_ids[j]), f.ts)
        for i, f in enumerate(reference)
        for j in np.nonzero(f.ref_ids > 0)[0]
    ]
    index = np.array([r[0] for r in rows])
    labels = np.array([r[1] for r in rows])
    times = np.array([r[2] for r in rows])
    vectors = np.concatenate([f.vectors for f in reference])[index].astype(np.float32)
    spaces = {"MobileNetV2 appearance": vectors, "RGB colour histogram": histograms[index]}
    queries = np.concatenate([np.nonzero(labels == t)[0][::5] for t in np.unique(labels)])
    results: dict[str, dict[str, float]] = {}
    for gallery in ("all", "other times"):
        allowed = np.ones((len(queries), len(labels)), bool)
        allowed[np.arange(len(queries)), queries] = False
        if gallery == "other times":
            near = np.abs(times[queries][:, None] - times[None, :]) <= exclude_s
            allowed &= ~(near & (labels[queries][:, None] == labels[None, :]))
        relevant = labels[queries][:, None] == labels[None, :]
        chance = (relevant & allowed).sum(axis=1) / allowed.sum(axis=1)
        results.setdefault("random ranking (baseline)", {})[gallery] = float(chance.mean())
        for name, space in spaces.items():
            similarity = np.where(allowed, space[queries] @ space.T, -np.inf)
            top = np.argsort(-similarity, axis=1, kind="stable")[:, :5]
            hits = np.take_along_axis(relevant, top, axis=1).mean(axis=1)
            results.setdefault(name, {})[gallery] = float(hits.mean())
    results["queries"] = {"all": float(len(queries)), "other times": float(len(queries))}
    results["gallery"] = {"all": float(len(labels)), "other times": float(len(labels))}
    results["tracks"] = {"all": float(len(np.unique(labels))), "other times": 0.0}
    return results


def similarity_spread(reference: list[Frame], sample: int = 1500) -> dict[str, F64]:
    """Percentiles 5, 25, 50, 75, 95 of the cosine between crops of one reference track 1-4 s
    apart, of two different tracks, and of two different tracks within 100 px (``sample``
    crops drawn with seed 0)."""
    boxes = [(f, row) for f in reference for row in np.nonzero(f.ref_ids > 0)[0]]
    pick = np.random.default_rng(0).choice(len(boxes), min(sample, len(boxes)), replace=False)
    chosen = [boxes[i] for i in pick]
    vectors = np.stack([f.vectors[row] for f, row in chosen]).astype(np.float32)
    labels = np.array([f.ref_ids[row] for f, row in chosen])
    times = np.array([f.ts for f, _ in chosen])
    centres = np.stack([(f.xyxy[row, :2] + f.xyxy[row, 2:]) / 2 for f, row in chosen])
    upper = np.triu_indices(len(chosen), 1)
    cosine = (vectors @ vectors.T)[upper]
    same = (labels[:, None] == labels[None, :])[upper]
    apart = np.abs(times[:, None] - times[None, :])[upper]
    distance = np.linalg.norm(centres[:, None] - centres[None, :], axis=2)[upper]
    groups = {
        "same track, 1-4 s apart": same & (apart > 1) & (apart < 4),
        "different tracks": ~same,
        "different tracks within 100 px": ~same & (distance < 100),
    }
    return {name: np.percentile(cosine[mask], [5, 25, 50, 75, 95]) for name, mask in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("detections", type=Path, help="vsa detect output of the clip (JSONL).")
    parser.add_argument("--clip", type=Path, default=None, help="The clip (default: vtest.avi).")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/vsa-bench-appearance"))
    parser.add_argument("--seeds", type=int, default=5, help="Occlusion draws per gap.")
    parser.add_argument("--gaps", default="1.5,3", help="Occlusion lengths, seconds.")
    parser.add_argument(
        "--similarity",
        default="0.8,0.85,0.9",
        help="reattach_min_similarity values of the appearance rows, comma-separated.",
    )
    parser.add_argument("--min-track-s", type=float, default=3.0)
    parser.add_argument("--exclude-s", type=float, default=2.0)
    args = parser.parse_args()
    started = time.perf_counter()
    frames, histograms = load_frames(args.detections, args.clip or fetch_vtest(), args.cache)
    reference = reference_tracks(frames, args.min_track_s)
    tracks = len({int(i) for f in reference for i in f.ref_ids if i})
    print(
        f"python {platform.python_version()}, motmetrics {mm.__version__}; "
        f"{len(frames)} frames, {sum(len(f.scores) for f in frames)} boxes, "
        f"{tracks} reference tracks of >= {args.min_track_s:g} s\n"
    )
    similarities = [float(x) for x in args.similarity.split(",")]
    _print_occlusion(reference, args, similarities)
    _print_natural(frames, similarities)
    _print_retrieval(reference, histograms, args.exclude_s)
    print("\n| cosine of MobileNetV2 vectors | p5 | p25 | median | p75 | p95 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values in similarity_spread(reference).items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    print(f"\ntook {time.perf_counter() - started:.1f} s")


def _print_occlusion(
    reference: list[Frame], args: argparse.Namespace, similarities: list[float]
) -> None:
    print("| gap | tracker | IDF1 | MOTA | ID sw | frag | ids/track | ID sw, frag vs baseline |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for gap in [float(g) for g in args.gaps.split(",")]:
        runs = [occluded(reference, gap, seed) for seed in range(args.seeds)]
        base: dict[str, float] = {}
        for variant in variants(similarities):
            scores = [score(inputs, variant) for inputs in runs]
            r = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
            base = base or r
            ratio = (
                f"{r['num_switches'] / max(base['num_switches'], 1e-9):.2f}, "
                f"{r['num_fragmentations'] / max(base['num_fragmentations'], 1e-9):.2f}"
            )
            print(
                f"| {gap:g} s | {variant.label} | {r['idf1']:.3f} | {r['mota']:.3f} | "
                f"{r['num_switches']:.1f} | {r['num_fragmentations']:.1f} | "
                f"{r['ids_per_track']:.2f} | {ratio} |"
            )
    print(f"(means over {args.seeds} seeds per gap)\n")


def _print_natural(frames: list[Frame], similarities: list[float]) -> None:
    print("| untouched clip | ids | < 1 s | fragments | ids vs baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base = 0
    for variant in variants(similarities):
        r = natural(frames, variant)
        base = base or r["ids"]
        print(
            f"| {variant.label} | {r['ids']} | {r['short']} | {r['fragments']} | "
            f"{r['ids'] / base:.2f} |"
        )
    print()


def _print_retrieval(reference: list[Frame], histograms: F32, exclude_s: float) -> None:
    results = precision_at_5(reference, histograms, exclude_s)
    sizes = results.pop("queries"), results.pop("gallery"), results.pop("tracks")
    print(
        f"precision@5: {sizes[0]['all']:.0f} queries, gallery {sizes[1]['all']:.0f} crops of "
        f"{sizes[2]['all']:.0f} tracks; 'other times' leaves out the query's track within "
        f"{exclude_s:g} s"
    )
    print("| embedding | p@5 all | vs random | p@5 other times | vs random |")
    print("| --- | ---: | ---: | ---: | ---: |")
    chance = results["random ranking (baseline)"]
    for name, r in results.items():
        print(
            f"| {name} | {r['all']:.3f} | {r['all'] / chance['all']:.1f} | "
            f"{r['other times']:.3f} | {r['other times'] / chance['other times']:.1f} |"
        )


if __name__ == "__main__":
    main()
