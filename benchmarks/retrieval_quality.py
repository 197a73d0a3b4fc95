"""Retrieval quality of semantic search on the sample clip: precision@5 of plain-language queries.

Corpus, built offline from the real clip (no Kafka):

1. vtest.avi decoded with PyAV; the real detector (yolov3-tiny ONNX, CPU, batches of 8) on every
   ``--every``-th frame. Detections are cached per frame under ``~/.cache/vsa/bench``.
2. The tracker core's ``process()`` over those frames in order, camera ``cam-0``, with the rules
   of examples/vtest-rules.yaml and periodic keyframes every ``--interval`` s (the rules say 5 s;
   2 s gives a corpus of ~150+ keyframes). Every keyframe the tracker emits is kept: alerts,
   newly confirmed tracks and periodic ones.
3. Each keyframe captioned by the scene describer from its decoded frame, as the captioner sees
   it: JPEG quality 85 (ingest), decoded at the largest scale ≤ 480 px (captioner).
4. The captions embedded with all-MiniLM-L6-v2 and bulk-indexed with the indexer's mapping into a
   fresh index on the local OpenSearch (``bench-retrieval-<hex>-captions``, lucene engine),
   deleted at the end unless ``--keep``.

Queries: examples/vtest-queries.yaml. Each has a relevance rule evaluated on the keyframe's
structured facts, never on its caption: per visible object its class, dominant colour (measured on
its pixels), motion and direction (from the track velocity), zones (its box centre inside the
zone polygons); per keyframe the kinds of the alerts behind it. See that file for the rule
language.

Metrics, per query, for the real ``Searcher`` (k-NN, and hybrid k-NN + BM25 fused by RRF), each
as it ranks keyframes one by one (raw) and with near-duplicates collapsed (the default of
``vsa search`` and the HTTP API; a collapsed hit is judged by the keyframe that stands for it):
precision@5 = relevant hits in the top 5 / min(5, relevant keyframes in the corpus); a query with
fewer than 5 relevant keyframes is flagged ``*``, one with none is reported ``n/a`` and left out
of the means. Baseline in the same run: a random ranking's expected precision@5
(5 x relevant / corpus, over the same denominator). Distinct scenes in the top 10: hits counted
best first, a hit counting as a new scene unless its time span is within ``SCENE_GAP_S`` (5 s)
of a counted hit's span (the clip is one camera) — time only, so the measure does not lean on
the captions or tracks that collapsing compares.

    python benchmarks/retrieval_quality.py [--every N] [--interval S] [--keep] [--hits]
        [--precision auto|fp32|bf16|int8]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import statistics
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import yaml

from vsa.runtime.settings import OpenSearchSettings
from vsa.schemas import CameraConfig, Caption, Detection, Detections, FrameRef, Keyframe
from vsa.services.captioner.describe import COLOUR_NAMES, ObjectView
from vsa.services.detector.models import COCO_CLASS_NAMES
from vsa.services.detector.records import DetectionArrays
from vsa.services.indexer.embedder import Embedder
from vsa.services.indexer.search import Searcher, SearchHit, SearchQuery
from vsa.services.indexer.settings import SearchSettings

ROOT: Final = Path(__file__).resolve().parents[1]
RULES_FILE: Final = ROOT / "examples" / "vtest-rules.yaml"
QUERIES_FILE: Final = ROOT / "examples" / "vtest-queries.yaml"
CACHE: Final = Path.home() / ".cache" / "vsa" / "bench"
CAMERA: Final = "cam-0"
#: Capture time of the clip's first frame: 2026-01-01 15:00 UTC (captions say "Afternoon").
T0: Final = 1_767_279_600.0
K: Final = 5
#: Hits looked at for distinct scenes.
SCENES_K: Final = 10
#: Hits of one camera this close in time (seconds between their time spans) show one scene.
SCENE_GAP_S: Final = 5.0
JPEG_QUALITY: Final = 85
DETECT_BATCH: Final = 8

U8 = npt.NDArray[np.uint8]
Rule = Mapping[str, Any]

# --------------------------------------------------------------------------------------------
# Relevance rules (pure)
# --------------------------------------------------------------------------------------------

#: Values an object pattern may ask for, per field (zones: the camera's zone_ids).
PATTERN_VALUES: Final[dict[str, frozenset[str]]] = {
    "class": frozenset(COCO_CLASS_NAMES),
    "colour": frozenset(COLOUR_NAMES),
    "motion": frozenset({"standing", "walking", "running", "parked", "moving", "still"}),
    "direction": frozenset({"left", "right", "up", "down"}),
    "zone": frozenset(),
}
RULE_KINDS: Final = ("object", "min_count", "max_count", "alert_kind", "all", "any", "not")
ALERT_KINDS: Final = frozenset({"zone_intrusion", "loitering", "line_crossing", "crowding"})


@dataclass(frozen=True)
class ObjectFacts:
    """What is known about one visible object of a keyframe (no caption involved)."""

    class_name: str
    colour: str | None = None
    motion: str = ""
    direction: str = ""
    zones: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyframeFacts:
    """The structured facts of a keyframe that relevance rules are evaluated on."""

    frame_seq: int
    objects: tuple[ObjectFacts, ...] = ()
    alert_kinds: frozenset[str] = frozenset()


def _values(wanted: str | Sequence[str]) -> frozenset[str]:
    return frozenset([wanted] if isinstance(wanted, str) else wanted)


def object_matches(obj: ObjectFacts, pattern: Mapping[str, Any]) -> bool:
    """Whether ``obj`` has every field of ``pattern`` (a value or a list of accepted values;
    ``zone`` matches when the object is in any of them; ``count`` is ignored here)."""
    have: dict[str, tuple[str | None, ...]] = {
        "class": (obj.class_name,),
        "colour": (obj.colour,),
        "motion": (obj.motion,),
        "direction": (obj.direction,),
        "zone": obj.zones,
    }
    return all(
        not _values(wanted).isdisjoint(have[key])
        for key, wanted in pattern.items()
        if key != "count"
    )


def count_matching(facts: KeyframeFacts, pattern: Mapping[str, Any]) -> int:
    """Visible objects of the keyframe that match ``pattern``."""
    return sum(object_matches(obj, pattern) for obj in facts.objects)


def is_relevant(rule: Rule, facts: KeyframeFacts) -> bool:
    """Evaluate a relevance rule (one key, see :data:`RULE_KINDS`) on a keyframe's facts."""
    ((kind, arg),) = rule.items()
    if kind == "object":
        return count_matching(facts, arg) >= 1
    if kind == "min_count":
        return count_matching(facts, arg) >= int(arg["count"])
    if kind == "max_count":
        return count_matching(facts, arg) <= int(arg["count"])
    if kind == "alert_kind":
        return bool(_values(arg) & facts.alert_kinds)
    if kind == "all":
        return all(is_relevant(sub, facts) for sub in arg)
    if kind == "any":
        return any(is_relevant(sub, facts) for sub in arg)
    if kind == "not":
        return not is_relevant(arg, facts)
    raise ValueError(f"unknown rule kind {kind!r}")


def check_rule(rule: Any, zones: frozenset[str], where: str = "rule") -> None:
    """Raise ValueError naming ``where`` if ``rule`` is not a valid relevance rule (a typo
    would otherwise make a rule that silently never matches)."""
    if not isinstance(rule, Mapping) or len(rule) != 1:
        raise ValueError(f"{where}: expected a mapping with one of {', '.join(RULE_KINDS)}")
    ((kind, arg),) = rule.items()
    if kind in ("all", "any"):
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"{where}.{kind}: expected a non-empty list of rules")
        for i, sub in enumerate(arg):
            check_rule(sub, zones, f"{where}.{kind}[{i}]")
    elif kind == "not":
        check_rule(arg, zones, f"{where}.not")
    elif kind == "alert_kind":
        unknown = _values(arg) - ALERT_KINDS
        if unknown:
            raise ValueError(f"{where}.alert_kind: unknown {sorted(unknown)}")
    elif kind in ("object", "min_count", "max_count"):
        _check_pattern(arg, zones, f"{where}.{kind}", needs_count=kind != "object")
    else:
        raise ValueError(f"{where}: unknown rule kind {kind!r} (one of {', '.join(RULE_KINDS)})")


def _check_pattern(pattern: Any, zones: frozenset[str], where: str, needs_count: bool) -> None:
    if not isinstance(pattern, Mapping):
        raise ValueError(f"{where}: expected a mapping of object fields")
    if needs_count != ("count" in pattern):
        raise ValueError(f"{where}: 'count' is {'required' if needs_count else 'not allowed'}")
    if needs_count and (not isinstance(pattern["count"], int) or pattern["count"] < 0):
        raise ValueError(f"{where}.count: expected an integer >= 0")
    for key, wanted in pattern.items():
        if key == "count":
            continue
        if key not in PATTERN_VALUES:
            raise ValueError(f"{where}: unknown field {key!r} (one of {', '.join(PATTERN_VALUES)})")
        if not isinstance(wanted, (str, list)) or not all(isinstance(v, str) for v in wanted):
            raise ValueError(f"{where}.{key}: expected a name or a list of names")
        allowed = zones if key == "zone" else PATTERN_VALUES[key]
        unknown = _values(wanted) - allowed
        if unknown:
            known = sorted(allowed) if len(allowed) <= 12 else f"{len(allowed)} known names"
            raise ValueError(f"{where}.{key}: unknown {sorted(unknown)} ({known})")


def precision_at_k(flags: Sequence[bool], relevant: int, k: int = K) -> float | None:
    """Relevant hits among the first ``k`` / min(k, relevant in corpus); None without any."""
    if relevant <= 0:
        return None
    return sum(flags[:k]) / min(k, relevant)


def distinct_scenes(spans: Sequence[tuple[str, float, float]], gap_s: float = SCENE_GAP_S) -> int:
    """Scenes among hits given best first as ``(camera, first ts, last ts)``: a hit is a new
    scene unless its span is within ``gap_s`` seconds of a counted one of the same camera."""
    counted: list[tuple[str, float, float]] = []
    for camera, first, last in spans:
        near = any(
            c == camera and first - gap_s <= b_last and b_first <= last + gap_s
            for c, b_first, b_last in counted
        )
        if not near:
            counted.append((camera, first, last))
    return len(counted)


def random_precision(relevant: int, corpus: int, k: int = K) -> float | None:
    """Expected :func:`precision_at_k` of a random ranking: k x relevant / corpus hits on
    average, over the same denominator."""
    if relevant <= 0 or corpus <= 0:
        return None
    return min(k, corpus) * relevant / corpus / min(k, relevant)


@dataclass(frozen=True)
class QuerySpec:
    """One benchmark query: what a user types and which keyframes should match."""

    text: str
    rule: Rule


def parse_queries(data: Any, zones: frozenset[str]) -> list[QuerySpec]:
    """Queries from the YAML document ``{queries: [{text, relevant, note?}, ...]}``, rules
    checked."""
    items = data.get("queries") if isinstance(data, Mapping) else None
    if not isinstance(items, list) or not items:
        raise ValueError("expected 'queries:' with a list of {text, relevant}")
    specs = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
            raise ValueError(f"queries[{i}]: expected a mapping with 'text' and 'relevant'")
        unknown = set(item) - {"text", "relevant", "note"}
        if unknown:
            raise ValueError(f"queries[{i}]: unknown keys {sorted(unknown)}")
        check_rule(item.get("relevant"), zones, f"queries[{i}].relevant")
        specs.append(QuerySpec(item["text"], item["relevant"]))
    return specs


def direction_word(direction: str) -> str:
    """The describer's direction ("up the frame") as a rule value ("up")."""
    return direction.split(" ")[0]


# --------------------------------------------------------------------------------------------
# Corpus: decode, detect (cached), track, caption
# --------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def decode(
    clip: Path, every: int, wanted: frozenset[int] | None = None
) -> Iterator[tuple[int, U8]]:
    """``(frame index, RGB frame)`` of every ``every``-th frame (only ``wanted`` ones if given)."""
    import av

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index % every == 0 and (wanted is None or index in wanted):
                yield index, np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


@dataclass(frozen=True)
class ClipDetections:
    """Detections of the sampled frames: per frame its index and boxes, scores, class ids."""

    indices: list[int]
    boxes: list[npt.NDArray[np.float32]]
    scores: list[npt.NDArray[np.float32]]
    class_ids: list[npt.NDArray[np.int32]]
    width: int
    height: int
    fps: float


#: Detector thresholds: the detector service's defaults.
CONF_THRESHOLD: Final = 0.25
IOU_THRESHOLD: Final = 0.45


def cache_path(clip: Path, model_path: Path, every: int) -> Path:
    """Cache file of one clip, model file, sampling and thresholds."""
    from vsa.services.detector.models import file_model_id

    key = f"{clip.name}:{clip.stat().st_size}:{file_model_id(model_path)}:{every}"
    key += f":{CONF_THRESHOLD}:{IOU_THRESHOLD}"
    return CACHE / f"retrieval-dets-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def detect_clip(clip: Path, model_path: Path, every: int) -> ClipDetections:
    """The detections of every ``every``-th frame: cached, or computed and cached."""
    path = cache_path(clip, model_path, every)
    if path.is_file():
        log(f"detections from cache {path}")
        return load_detections(path)
    result = run_detector(clip, model_path, every)
    save_detections(path, result)
    return result


def run_detector(clip: Path, model_path: Path, every: int) -> ClipDetections:
    """The real detector (ONNX Runtime, CPU) on every ``every``-th frame, in batches."""
    from vsa.services.detector.backends import OnnxRuntimeConfig, build_backend
    from vsa.services.detector.pipeline import detect_batch
    from vsa.services.detector.postprocess import SelectionParams

    backend = build_backend(OnnxRuntimeConfig(), model_path)
    params = SelectionParams(conf_threshold=CONF_THRESHOLD, iou_threshold=IOU_THRESHOLD)
    indices: list[int] = []
    found: list[DetectionArrays] = []
    frames = decode(clip, every)
    shape: tuple[int, ...] = (0, 0)
    while batch := list(itertools.islice(frames, DETECT_BATCH)):
        indices += [index for index, _ in batch]
        shape = batch[0][1].shape
        found += detect_batch(backend, [image for _, image in batch], params).detections
        if len(found) // 100 > (len(found) - len(batch)) // 100:
            log(f"  detected {len(found)} frames")
    return ClipDetections(
        indices,
        [d.xyxy for d in found],
        [d.scores for d in found],
        [d.class_ids for d in found],
        int(shape[1]),
        int(shape[0]),
        clip_fps(clip),
    )


def clip_fps(clip: Path) -> float:
    import av

    with av.open(str(clip)) as container:
        return float(container.streams.video[0].average_rate or 10)


def save_detections(path: Path, dets: ClipDetections) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        indices=np.array(dets.indices, np.int64),
        counts=np.array([len(b) for b in dets.boxes], np.int64),
        boxes=np.concatenate(dets.boxes).reshape(-1, 4),
        scores=np.concatenate(dets.scores),
        class_ids=np.concatenate(dets.class_ids),
        meta=np.array([dets.width, dets.height, dets.fps]),
    )
    tmp.replace(path)


def load_detections(path: Path) -> ClipDetections:
    with np.load(path) as data:
        splits = np.cumsum(data["counts"])[:-1]
        width, height, fps = data["meta"].tolist()
        return ClipDetections(
            data["indices"].tolist(),
            np.split(data["boxes"].astype(np.float32), splits),
            np.split(data["scores"].astype(np.float32), splits),
            np.split(data["class_ids"].astype(np.int32), splits),
            int(width),
            int(height),
            float(fps),
        )


def messages(
    dets: ClipDetections, class_names: Sequence[str], model_id: str
) -> Iterator[Detections]:
    """The detections topic's messages of the sampled frames, frame_seq = frame index."""
    for i, index in enumerate(dets.indices):
        boxes = [
            Detection(
                xyxy=tuple(float(v) for v in xyxy),
                class_id=int(c),
                class_name=class_names[int(c)],
                score=float(s),
            )
            for xyxy, s, c in zip(dets.boxes[i], dets.scores[i], dets.class_ids[i], strict=True)
        ]
        yield Detections(
            camera_id=CAMERA,
            frame_seq=index,
            frame=FrameRef(
                topic="frames", partition=0, offset=index, camera_id=CAMERA, frame_seq=index
            ),
            capture_ts=T0 + index / dets.fps,
            width=dets.width,
            height=dets.height,
            model_id=model_id,
            boxes=boxes,
        )


def track_keyframes(
    stream: Iterator[Detections], config: CameraConfig, interval_s: float
) -> list[Keyframe]:
    """Every keyframe the tracker emits over the frames, in order."""
    from vsa.services.tracker.camera import CameraState, process
    from vsa.services.tracker.rules import compile_rules

    rules = replace(compile_rules(config, COCO_CLASS_NAMES), keyframe_interval_s=interval_s)
    state, keyframes = CameraState(), list[Keyframe]()
    for message in stream:
        state, outputs = process(state, message, rules)
        if outputs is not None and outputs.keyframe is not None:
            keyframes.append(outputs.keyframe)
    return keyframes


@dataclass(frozen=True)
class Captioned:
    """One keyframe of the corpus: the caption message and the facts rules are judged on."""

    caption: Caption
    facts: KeyframeFacts


def keyframe_facts(
    keyframe: Keyframe, views: Sequence[ObjectView], config: CameraConfig
) -> KeyframeFacts:
    """Facts from the describer's measurements of each visible object (zone names -> ids)."""
    zone_ids = {zone.name or zone.zone_id: zone.zone_id for zone in config.zones}
    objects = tuple(
        ObjectFacts(
            class_name=view.obj.class_name,
            colour=view.colour,
            motion=view.motion,
            direction=direction_word(view.direction),
            zones=tuple(zone_ids[name] for name in view.zones),
        )
        for view in views
    )
    kinds = frozenset(alert.kind for alert in keyframe.alerts)
    return KeyframeFacts(keyframe.frame_seq, objects, kinds)


def caption_one(keyframe: Keyframe, image: U8, config: CameraConfig) -> Captioned:
    """Caption a keyframe from its frame as the captioner would see it."""
    import simplejpeg

    from vsa.services.captioner.backends import SceneCaptioner
    from vsa.services.captioner.describe import DescribeOptions
    from vsa.services.captioner.frames import decode_small, thumbnail
    from vsa.services.captioner.scene import describe, view_objects
    from vsa.services.captioner.service import keyframe_caption

    small = decode_small(bytes(simplejpeg.encode_jpeg(image, JPEG_QUALITY, colorspace="RGB")))
    options = DescribeOptions()
    description = describe(keyframe, small.pixels, config, options, small.original_size)
    views = view_objects(keyframe, small.pixels, config, options, small.original_size)
    caption = keyframe_caption(keyframe, description, SceneCaptioner.name, thumbnail(small.pixels))
    return Captioned(caption, keyframe_facts(keyframe, views, config))


def caption_all(
    clip: Path, every: int, keyframes: Sequence[Keyframe], config: CameraConfig
) -> list[Captioned]:
    """Decode the clip again and caption each keyframe from its frame."""
    by_seq = {kf.frame_seq: kf for kf in keyframes}
    return [
        caption_one(by_seq[index], image, config)
        for index, image in decode(clip, every, frozenset(by_seq))
    ]


# --------------------------------------------------------------------------------------------
# Index and search
# --------------------------------------------------------------------------------------------


def index_corpus(
    corpus: Sequence[Captioned], embedder: Embedder, client: Any, prefix: str
) -> SearchSettings:
    """A fresh captions index with the indexer's template and mapping, filled and refreshed.
    Returns the search settings for it."""
    from vsa.services.indexer.mapping import caption_doc_id, caption_document
    from vsa.services.indexer.settings import IndexerSettings, IndexNames
    from vsa.services.indexer.store import bulk, ensure_indices

    names = IndexNames(prefix=prefix)
    settings = IndexerSettings(opensearch=OpenSearchSettings(), index=names, consume_alerts=False)
    assert settings.hnsw.engine == "lucene", "the local OpenSearch has only the lucene engine"
    ensure_indices(client, settings)
    index = names.captions_index
    vectors = embedder.encode([item.caption.text for item in corpus])
    actions = [
        (
            {
                "index": {
                    "_index": index,
                    "_id": caption_doc_id(c.caption.camera_id, c.caption.frame_seq),
                }
            },
            caption_document(c.caption, vector),
        )
        for c, vector in zip(corpus, vectors, strict=True)
    ]
    failed = [item for item in bulk(client, actions, 60) if item["index"].get("error")]
    if failed:
        raise RuntimeError(f"{len(failed)} documents rejected, first: {failed[0]}")
    client.indices.refresh(index=index)
    return SearchSettings(opensearch=settings.opensearch, index=names)


def drop_index(client: Any, prefix: str) -> None:
    """Delete the benchmark's index and its template."""
    client.indices.delete(index=f"{prefix}*", ignore_unavailable=True)
    client.indices.delete_index_template(name=f"{prefix}*", ignore=404)


#: How a query is run: (hybrid, collapse), named for the report.
MODES: Final = {
    "knn": (False, False),
    "knn collapsed": (False, True),
    "hybrid": (True, False),
    "hybrid collapsed": (True, True),
}


@dataclass(frozen=True)
class Ranking:
    """One way of running a query: its top-5 hits judged, the scenes its top 10 show and the
    keyframes those 10 hits stand for (more than 10 when near-duplicates were folded in)."""

    judged: list[tuple[SearchHit, bool]]
    scenes: int
    keyframes: int


@dataclass(frozen=True)
class QueryResult:
    """One query's numbers and hits, per mode of :data:`MODES`."""

    spec: QuerySpec
    relevant: int
    rankings: dict[str, Ranking]

    @property
    def knn(self) -> list[tuple[SearchHit, bool]]:
        return self.rankings["knn"].judged

    @property
    def hybrid(self) -> list[tuple[SearchHit, bool]]:
        return self.rankings["hybrid"].judged


def hit_spans(hits: Sequence[SearchHit]) -> list[tuple[str, float, float]]:
    return [(hit.camera_id, *hit.time_range) for hit in hits]


def run_queries(
    searcher: Searcher, specs: Sequence[QuerySpec], corpus: Sequence[Captioned]
) -> list[QueryResult]:
    """Search every query every way of :data:`MODES` and judge each hit by the query's rule
    (a collapsed hit by the keyframe that stands for it)."""
    facts = {c.caption.frame_seq: c.facts for c in corpus}
    results = []
    for spec in specs:
        relevant = sum(is_relevant(spec.rule, f) for f in facts.values())
        rankings = {}
        for mode, (hybrid, collapse) in MODES.items():
            query = SearchQuery(text=spec.text, k=K, hybrid=hybrid, collapse=collapse)
            hits = searcher.search(query)
            top10 = searcher.search(query.model_copy(update={"k": SCENES_K}))
            judged = [(hit, is_relevant(spec.rule, facts[hit.frame_seq])) for hit in hits]
            keyframes = sum(hit.count for hit in top10)
            rankings[mode] = Ranking(judged, distinct_scenes(hit_spans(top10)), keyframes)
        results.append(QueryResult(spec, relevant, rankings))
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def report(results: Sequence[QueryResult], corpus_size: int) -> list[str]:
    """The table: query | relevant in corpus | P@5 per mode | P@5 random, and means; then
    distinct scenes in the top 10 per mode."""
    width = max(len(r.spec.text) for r in results) + 2
    names = list(MODES)
    lines = [
        f"{'query':<{width}}{'relevant':>10}"
        + "".join(f"{'P@5 ' + n:>22}" for n in names)
        + f"{'P@5 random':>12}"
    ]
    columns: list[list[float]] = [[] for _ in range(len(names) + 1)]
    for r in results:
        values = [precision_at_k([ok for _, ok in r.rankings[n].judged], r.relevant) for n in names]
        values.append(random_precision(r.relevant, corpus_size))
        for column, value in zip(columns, values, strict=True):
            if value is not None:
                column.append(value)
        flag = "*" if 0 < r.relevant < K else " "
        lines.append(
            f"{r.spec.text:<{width}}{r.relevant:>9}{flag}"
            + "".join(f"{_fmt(v):>22}" for v in values[:-1])
            + f"{_fmt(values[-1]):>12}"
        )
    means = [statistics.mean(c) if c else None for c in columns]
    lines.append(
        f"{f'mean over {len(columns[0])} queries':<{width}}{'':>10}"
        + "".join(f"{_fmt(v):>22}" for v in means[:-1])
        + f"{_fmt(means[-1]):>12}"
    )
    lines.append(f"* fewer than {K} relevant keyframes: precision over min({K}, relevant)")
    return [*lines, "", *scene_lines(results, width)]


def scene_lines(results: Sequence[QueryResult], width: int) -> list[str]:
    """Distinct scenes (see the module docstring) in each mode's top 10, and their means."""
    names = list(MODES)
    lines = [f"{'distinct scenes in the top 10':<{width}}" + "".join(f"{n:>18}" for n in names)]
    for r in results:
        lines.append(
            f"{r.spec.text:<{width}}" + "".join(f"{r.rankings[n].scenes:>18}" for n in names)
        )
    means = [statistics.mean(r.rankings[n].scenes for r in results) for n in names]
    lines.append(f"{'mean':<{width}}" + "".join(f"{m:>18.1f}" for m in means))
    behind = [statistics.mean(r.rankings[n].keyframes for r in results) for n in names]
    lines.append(
        f"{'keyframes behind the top 10, mean':<{width}}" + "".join(f"{m:>18.1f}" for m in behind)
    )
    return lines


def hit_lines(results: Sequence[QueryResult]) -> list[str]:
    """Each query's top hits per mode, marked relevant (+) or not (-), with folded counts."""
    lines = []
    for r in results:
        lines.append(f'\n"{r.spec.text}"  rule: {dict(r.spec.rule)}')
        for mode, ranking in r.rankings.items():
            for hit, ok in ranking.judged:
                folded = f" x{hit.count}" if hit.count > 1 else ""
                lines.append(
                    f"  {mode:<16} {'+' if ok else '-'} #{hit.frame_seq:<4}{folded} {hit.caption}"
                )
    return lines


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def build_corpus(every: int, interval_s: float, config: CameraConfig) -> list[Captioned]:
    """Decode, detect, track and caption the sample clip (see the module docstring)."""
    from vsa.assets import fetch_vtest
    from vsa.services.detector.models import yolov3_tiny_onnx

    clip = fetch_vtest()
    model = yolov3_tiny_onnx()
    log(f"detecting on every {every}. frame of {clip.name} with {model.path.name}")
    dets = detect_clip(clip, model.path, every)
    log(f"{len(dets.indices)} frames, {sum(len(b) for b in dets.boxes)} boxes")
    stream = messages(
        dets, model.class_names, f"yolov3-tiny@{model.input_size[0]}x{model.input_size[1]}"
    )
    keyframes = track_keyframes(stream, config, interval_s)
    reasons = {
        r: sum(kf.reason == r for kf in keyframes) for r in ("alert", "new_track", "periodic")
    }
    log(f"{len(keyframes)} keyframes from the tracker: {reasons}")
    corpus = caption_all(clip, every, keyframes, config)
    log(f"{len(corpus)} captions, e.g. {corpus[len(corpus) // 2].caption.text!r}")
    return corpus


def load_config_and_queries(path: Path) -> tuple[CameraConfig, list[QuerySpec]]:
    """The example camera config (as camera ``cam-0``) and the checked queries."""
    from vsa.services.tracker.rules import load_camera_configs

    (config,) = load_camera_configs(RULES_FILE)
    zones = frozenset(zone.zone_id for zone in config.zones)
    specs = parse_queries(yaml.safe_load(path.read_text(encoding="utf-8")), zones)
    return config.model_copy(update={"camera_id": CAMERA}), specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="Detect every N-th frame (10 fps).")
    parser.add_argument("--interval", type=float, default=2.0, help="Periodic keyframes, s.")
    parser.add_argument("--queries", type=Path, default=QUERIES_FILE, help="Queries YAML.")
    parser.add_argument("--keep", action="store_true", help="Keep the index afterwards.")
    parser.add_argument("--hits", action="store_true", help="Print every query's top hits.")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "int8"],
        help="embedding.precision for the captions and the queries (default auto).",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    config, specs = load_config_and_queries(args.queries)
    corpus = build_corpus(args.every, args.interval, config)
    from vsa.services.indexer.embedder import make_embedder, resolve_precision
    from vsa.services.indexer.settings import EmbeddingSettings
    from vsa.services.indexer.store import make_client

    embedding = EmbeddingSettings.model_validate({"precision": args.precision})
    embedder = make_embedder(embedding)
    log(f"embedding precision {resolve_precision(embedding)}")
    prefix = f"bench-retrieval-{uuid.uuid4().hex[:8]}-"
    client = make_client(OpenSearchSettings(), 60)
    try:
        settings = index_corpus(corpus, embedder, client, prefix)
        log(f"indexed {len(corpus)} captions into {settings.index.captions_index}")
        results = run_queries(Searcher(client, embedder, settings), specs, corpus)
    finally:
        if args.keep:
            log(f"kept the index {prefix}captions")
        else:
            drop_index(client, prefix)
    if args.hits:
        print("\n".join(hit_lines(results)))
    print(f"\nretrieval quality, vtest.avi, corpus {len(corpus)} keyframes, top {K}\n")
    print("\n".join(report(results, len(corpus))))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
