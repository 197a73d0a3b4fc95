"""Detector on the CPU: vtest.avi JPEGs in, detections out, next to OpenCV's cv2.dnn running the
same Darknet weights, measured in the same run.

Paths (all at a 416 network input, same thresholds: confidence 0.25, NMS IoU 0.45):

- ``cv2.dnn``: ``cv2.imdecode`` + ``cv2.dnn.blobFromImages`` (stretch to 416x416) + ``forward``
  on the Darknet cfg/weights + score filter + ``cv2.dnn.NMSBoxes`` per image (the baseline);
- ``vsa fp32`` / ``vsa int8``: the service's own path, :class:`FrameDetector.detect` on
  :class:`FrameInput` records: simplejpeg decode (DCT-downscaled when that is lossless for the
  network), letterbox with the ONNX Runtime resize, one ONNX Runtime call per batch,
  decoding + class-aware NMS in numpy, boxes mapped back and :class:`Detections` messages built;
- labelled extra rows: ``int8 416x320``, the INT8 model converted for a 320x416 (HxW) input: the
  same 416-pixel scale of a 4:3 frame (768x576 -> 416x312), only less grey padding; and a
  ``1536x1152`` source (vtest upscaled 2x) where the DCT-downscaled decode pays.

Both libraries get the same threads (``--threads``, default 2). Paths take turns batch by batch,
so load from other processes hits them alike; the ratio to cv2.dnn in the same run is the number
to compare. Also measured: INT8 agreement with FP32 on frames not used for calibration,
and the peak RSS of a process running the real service loop over ``--rss-frames`` frames.

Usage::

    python benchmarks/detector_cpu.py [--batches 1 4 8] [--frames 64] [--rounds 3] [--threads 2]
                                      [--rss-frames 300] [--bootstrap host:port]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg

from vsa.assets import fetch_vtest

CONF, NMS_IOU, NET = 0.25, 0.45, 416
Run = Callable[[Sequence[bytes]], int]


def clip_jpegs(clip: Path, start: int, step: int, count: int, scale: int = 1) -> list[bytes]:
    """JPEGs (quality 85, like ingest) of frames ``start, start + step, ...`` of the clip."""
    from vsa.services.detector.quantize import clip_frames

    frames = clip_frames(clip, start, step, count)
    if scale > 1:
        frames = [np.repeat(np.repeat(f, scale, axis=0), scale, axis=1) for f in frames]
    return [simplejpeg.encode_jpeg(f, quality=85) for f in frames]


class Cv2Dnn:
    """The baseline: OpenCV's Darknet reader and its own pre/post-processing."""

    def __init__(self, threads: int) -> None:
        import cv2

        from vsa.services.detector.models import fetch_yolov3_tiny

        cv2.setNumThreads(threads)
        files = fetch_yolov3_tiny()
        self.cv2 = cv2
        self.net = cv2.dnn.readNetFromDarknet(str(files.cfg), str(files.weights))
        self.outputs = self.net.getUnconnectedOutLayersNames()

    def __call__(self, jpegs: Sequence[bytes]) -> int:
        cv2 = self.cv2
        images = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
        blob = cv2.dnn.blobFromImages(images, 1 / 255, (NET, NET), swapRB=True, crop=False)
        self.net.setInput(blob)
        heads = self.net.forward(self.outputs)
        rows = np.concatenate([head.reshape(len(images), -1, 85) for head in heads], axis=1)
        boxes = 0
        for image, found in zip(images, rows, strict=True):
            scores = found[:, 5:].max(axis=1)
            keep = found[scores > CONF]
            height, width = image.shape[:2]
            centre = keep[:, 0:2] * (width, height)
            size = keep[:, 2:4] * (width, height)
            xywh = np.concatenate([centre - size / 2, size], axis=1).tolist()
            kept = cv2.dnn.NMSBoxes(xywh, keep[:, 5:].max(axis=1).tolist(), CONF, NMS_IOU)
            boxes += len(kept)
        return boxes


def vsa_detector(model: str, threads: int, input_size: tuple[int, int] | None = None) -> Any:
    """The service's core (FrameDetector) for a model, as the service builds it."""
    from vsa.runtime.settings import load_settings
    from vsa.services.detector.config import DetectorSettings
    from vsa.services.detector.loading import load_detector

    settings = load_settings(
        DetectorSettings,
        None,
        model=model,
        input_size=input_size,
        backend={"type": "onnxruntime", "intra_op_num_threads": threads},
    )
    return load_detector(settings)


def as_inputs(jpegs: Sequence[bytes]) -> list[Any]:
    """FrameInput records for JPEGs, as the service builds them from Kafka records."""
    from vsa.schemas import FrameMeta
    from vsa.services.detector.core import FrameInput
    from vsa.services.detector.jpeg import jpeg_size

    inputs = []
    for seq, data in enumerate(jpegs):
        width, height = jpeg_size(data)
        meta = FrameMeta(
            camera_id="bench", frame_seq=seq, capture_ts=0.0, width=width, height=height,
            source="file",
        )  # fmt: skip
        inputs.append(FrameInput(meta, meta.frame_ref("frames", 0, seq), data))
    return inputs


def vsa_run(core: Any) -> Run:
    def run(jpegs: Sequence[bytes]) -> int:
        results = core.detect(as_inputs(jpegs))
        return sum(len(r.boxes) for r in results)

    return run


@dataclass
class Timing:
    """Batch latencies (seconds) of one path at one batch size."""

    label: str
    batch: int
    source: str
    seconds: list[float] = field(default_factory=list)
    frames: int = 0

    def row(self, baseline: Timing | None) -> str:
        fps = self.frames / sum(self.seconds)
        ms = sorted(1000 * s for s in self.seconds)
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        ratio = fps / (baseline.frames / sum(baseline.seconds)) if baseline else 1.0
        return (
            f"| {self.label} | {self.source} | {self.batch} | {fps:.1f} | "
            f"{statistics.median(ms):.1f} | {p99:.1f} | {1000 / fps:.1f} | {ratio:.2f} |"
        )


def measure(
    paths: dict[str, Run], jpegs: list[bytes], batch: int, rounds: int
) -> dict[str, list[float]]:
    """Run every path over all ``jpegs`` in batches, ``rounds`` times.

    The paths take turns batch by batch (in a rotating order), so a burst of load from other
    processes falls on all of them alike instead of on whichever path was running.
    """
    batches = [jpegs[i : i + batch] for i in range(0, len(jpegs) - batch + 1, batch)]
    for run in paths.values():
        run(batches[0])  # warm-up at this batch size
    names = list(paths)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        for chunk in batches:
            turn += 1
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                started = time.perf_counter()
                paths[name](chunk)
                seconds[name].append(time.perf_counter() - started)
    return seconds


def throughput_rows(args: argparse.Namespace, clip: Path) -> list[str]:
    """Table rows for every batch size: cv2.dnn first, then the vsa paths with their ratio."""
    jpegs = clip_jpegs(clip, 5, max(1, 795 // args.frames), args.frames)
    paths: dict[str, Run] = {
        "cv2.dnn FP32 (baseline)": Cv2Dnn(args.threads),
        "vsa fp32 (ONNX Runtime)": vsa_run(vsa_detector("yolov3-tiny", args.threads)),
        "vsa int8 (ONNX Runtime QDQ)": vsa_run(vsa_detector("yolov3-tiny-int8", args.threads)),
        "vsa int8, 416x320 canvas [less padding]": vsa_run(
            vsa_detector("yolov3-tiny-int8", args.threads, (320, 416))
        ),
    }
    rows = []
    for batch in args.batches:
        seconds = measure(paths, jpegs, batch, args.rounds)
        timings = [Timing(n, batch, "768x576", s, len(s) * batch) for n, s in seconds.items()]
        rows += [t.row(timings[0] if i else None) for i, t in enumerate(timings)]
    big = clip_jpegs(clip, 5, max(1, 795 // 16), 16, scale=2)
    subset = {k: paths[k] for k in ("cv2.dnn FP32 (baseline)", "vsa int8 (ONNX Runtime QDQ)")}
    seconds = measure(subset, big, 4, args.rounds)
    timings = [Timing(n, 4, "1536x1152 [vtest x2]", s, len(s) * 4) for n, s in seconds.items()]
    rows += [t.row(timings[0] if i else None) for i, t in enumerate(timings)]
    return rows


def agreement_rows(clip: Path, threads: int) -> list[str]:
    """INT8 (and the 416x320 canvas) against FP32 on held-out frames, service path."""
    from vsa.services.detector.agreement import Agreement, compare
    from vsa.services.detector.quantize import CALIBRATION_STEP
    from vsa.services.detector.records import DetectionArrays

    jpegs = clip_jpegs(clip, CALIBRATION_STEP // 2, CALIBRATION_STEP, 40)  # 10, 30, ... 790

    def arrays(core: Any) -> list[DetectionArrays]:
        found = [r for i in range(0, 40, 8) for r in core.detect(as_inputs(jpegs[i : i + 8]))]
        return [
            DetectionArrays(
                np.array([b.xyxy for b in d.boxes], np.float32).reshape(-1, 4),
                np.array([b.score for b in d.boxes], np.float32),
                np.array([b.class_id for b in d.boxes], np.int32),
            )
            for d in found
        ]

    reference = arrays(vsa_detector("yolov3-tiny", threads))
    rows = []
    for label, core in (
        ("int8 vs fp32", vsa_detector("yolov3-tiny-int8", threads)),
        ("fp32 416x320 canvas vs fp32 416x416", vsa_detector("yolov3-tiny", threads, (320, 416))),
        (
            "int8 416x320 canvas vs fp32 416x416",
            vsa_detector("yolov3-tiny-int8", threads, (320, 416)),
        ),
    ):
        total = sum(
            (compare(r, c) for r, c in zip(reference, arrays(core), strict=True)), Agreement()
        )
        rows.append(
            f"| {label} | 40 | {total.reference} | {total.matched_fraction:.3f} | "
            f"{total.extra_fraction:.3f} |"
        )
    return rows


def service_rss(model: str, bootstrap: str, frames: int, threads: int) -> dict[str, float]:
    """Peak RSS of a fresh process running the detector service loop over ``frames`` frames."""
    from vsa.runtime.kafka import delete_topics, ensure_topics
    from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
    from vsa.runtime.topics import TopicsSettings
    from vsa.services.ingest.config import CameraSpec, IngestSettings
    from vsa.services.ingest.service import IngestService

    kafka = load_settings(KafkaSettings, None, bootstrap_servers=bootstrap)
    names = TopicNames(prefix=f"bench-det-{uuid.uuid4().hex[:8]}.")
    ensure_topics(kafka, load_settings(TopicsSettings, None, names=names, partitions=4).specs())
    cams = tuple(CameraSpec(camera_id=f"cam-{i}", url=str(fetch_vtest()), fps=5) for i in range(4))
    ingest = load_settings(
        IngestSettings, None, kafka=kafka, topics=names, cameras=cams, max_frames=frames,
        metrics_port=0, seq_recovery_scan=0,
    )  # fmt: skip
    IngestService(ingest).run()
    cmd = [sys.executable, __file__, "--rss-child", model, "--bootstrap", bootstrap]
    cmd += ["--prefix", names.prefix, "--threads", str(threads)]
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    finally:
        delete_topics(kafka, list(load_settings(TopicsSettings, None, names=names).specs()))
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _rss_child(args: argparse.Namespace) -> None:
    from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
    from vsa.services.detector.config import DetectorSettings
    from vsa.services.detector.service import DetectorHandler, build_loop

    settings = load_settings(
        DetectorSettings,
        None,
        model=args.rss_child,
        kafka=load_settings(KafkaSettings, None, bootstrap_servers=args.bootstrap),
        topics=TopicNames(prefix=args.prefix),
        idle_exit_s=5.0,
        metrics_port=0,
        max_batch=8,
        backend={"type": "onnxruntime", "intra_op_num_threads": args.threads},
    )
    loop = build_loop(settings)
    started = time.perf_counter()
    loop.run()
    assert isinstance(loop.handler, DetectorHandler)
    frames = loop.handler.totals["frames"]
    seconds = time.perf_counter() - started
    print(json.dumps({"frames": frames, "seconds": seconds, "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM, which (unlike ru_maxrss on Linux) does not carry
    over the parent's peak through fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--frames", type=int, default=64, help="vtest frames, spread over it.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-frames", type=int, default=300, help="0: skip the RSS run.")
    parser.add_argument("--bootstrap", default="", help="Kafka; default: the devstack's.")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args)
        return
    clip = fetch_vtest()
    print(
        f"detector CPU benchmark  {platform.node()}  cores={os.cpu_count()}  threads={args.threads}"
    )
    print(f"start: {load()}")
    print("\n| path | source | batch | frames/s | p50 ms/batch | p99 ms/batch | ms/frame", end="")
    print(" | vs cv2.dnn |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in throughput_rows(args, clip):
        print(row, flush=True)
    print(f"after throughput: {load()}")
    print("\n| agreement (conf 0.25, IoU >= 0.5, same class) | frames | reference boxes", end="")
    print(" | matched | extra |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in agreement_rows(clip, args.threads):
        print(row, flush=True)
    if args.rss_frames:
        bootstrap = args.bootstrap or "127.0.0.1:19092"
        print("\n| service loop (fresh process) | frames | peak RSS MB |")
        print("| --- | ---: | ---: |")
        for model in ("yolov3-tiny", "yolov3-tiny-int8"):
            r = service_rss(model, bootstrap, args.rss_frames, args.threads)
            label = f"{model}, Kafka in/out, max_batch 8"
            print(f"| {label} | {r['frames']:.0f} | {r['rss_mb']:.0f} |", flush=True)
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
