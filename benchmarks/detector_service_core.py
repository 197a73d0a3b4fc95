"""The detector service's core on real frames, without Kafka: what `vsa detector` runs per batch.

``--mode ref`` (any machine): the default core (ONNX Runtime on the CPU) on every JPEG of
``--frames``; its boxes are written to ``--ref`` as JSON.

``--mode gpu`` (the GPU machine): the service core with ``backend: {type: torch, device: cuda:0}``
(FP16, CUDA graphs, nvJPEG batch decode, GPU letterbox and NMS), built by the same
``load_service_core`` as the service. It prints how many of the reference boxes it finds (IoU
≥ 0.5, same class), whether a truncated frame in a batch comes back as a FrameError while its
neighbours are detected, and frames/s with p50/p99 latency per batch size (the whole
``detect()`` call: header checks, decode, network, NMS, messages built). Frames are 768×576
vtest JPEGs, spread over 8 cameras.

    python benchmarks/detector_service_core.py --mode ref --frames DIR --ref ref.json
    python benchmarks/detector_service_core.py --mode gpu --frames DIR --ref ref.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsa.runtime.settings import load_settings
from vsa.schemas import Detections, FrameMeta, FrameRef
from vsa.services.detector.config import DetectorSettings
from vsa.services.detector.core import FrameInput
from vsa.services.detector.jpeg import FrameError, jpeg_size
from vsa.services.detector.loading import load_service_core

Box = tuple[str, list[float]]


def frame_input(seq: int, jpeg: bytes) -> FrameInput:
    width, height = jpeg_size(jpeg) if len(jpeg) > 1000 else (768, 576)
    camera = f"cam-{seq % 8}"
    meta = FrameMeta(
        camera_id=camera,
        frame_seq=seq,
        capture_ts=1.7e9 + seq,
        width=width,
        height=height,
        source="file",
    )
    ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id=camera, frame_seq=seq)
    return FrameInput(meta, ref, jpeg)


def boxes(result: Detections | FrameError) -> list[Box]:
    if isinstance(result, FrameError):
        return []
    return [(b.class_name, [float(v) for v in b.xyxy]) for b in result.boxes]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agreement(got: list[list[Box]], want: list[list[Box]]) -> tuple[int, int, int]:
    """(reference boxes matched at IoU >= 0.5 with the same class, reference boxes, extra)."""
    matched = total = extra = 0
    for ours, theirs in zip(got, want, strict=True):
        used: set[int] = set()
        for cls, xyxy in theirs:
            total += 1
            for k, (our_cls, our_xyxy) in enumerate(ours):
                if k not in used and our_cls == cls and iou(our_xyxy, xyxy) >= 0.5:
                    used.add(k)
                    matched += 1
                    break
        extra += len(ours) - len(used)
    return matched, total, extra


def timings(core: Any, jpegs: list[bytes], seconds: float) -> None:
    print("| batch | frames/s | p50 ms | p99 ms |\n| ---: | ---: | ---: | ---: |")
    for size in (1, 8, 32, 64, 128):
        frames = [frame_input(i, jpegs[i % len(jpegs)]) for i in range(size)]
        for _ in range(3):
            core.detect(frames)
        spans: list[float] = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t = time.perf_counter()
            core.detect(frames)
            spans.append(time.perf_counter() - t)
        ms = np.array(spans) * 1000
        rate = size * len(ms) / (ms.sum() / 1000)
        p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
        print(f"| {size} | {rate:,.0f} | {p50:.1f} | {p99:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["ref", "gpu"], required=True)
    parser.add_argument("--frames", type=Path, required=True, help="Folder of JPEG frames.")
    parser.add_argument("--ref", type=Path, required=True, help="Reference boxes (JSON).")
    parser.add_argument("--seconds", type=float, default=3.0, help="Timing per batch size.")
    args = parser.parse_args()
    jpegs = [p.read_bytes() for p in sorted(args.frames.glob("*.jpg"))]
    inputs = [frame_input(i, j) for i, j in enumerate(jpegs)]
    if args.mode == "ref":
        core = load_service_core(load_settings(DetectorSettings, None))
        found = [boxes(r) for r in core.detect(inputs)]
        args.ref.write_text(json.dumps({"model": core.model_id, "frames": found}))
        print(f"{core.model_id}: {sum(map(len, found))} boxes on {len(jpegs)} frames")
        return
    import torch

    settings = load_settings(
        DetectorSettings, None, max_batch=128, backend={"type": "torch", "device": "cuda:0"}
    )
    started = time.perf_counter()
    core = load_service_core(settings)
    ready = time.perf_counter() - started
    print(f"{core.model_id} on {torch.cuda.get_device_name(0)}, ready in {ready:.1f} s")
    reference = json.loads(args.ref.read_text())
    want = [[(c, x) for c, x in frame] for frame in reference["frames"]]
    matched, total, extra = agreement([boxes(r) for r in core.detect(inputs)], want)
    print(
        f"agreement with {reference['model']} (ONNX Runtime, CPU): {matched}/{total} reference "
        f"boxes matched (IoU >= 0.5, same class), {extra} extra"
    )
    batch = [frame_input(0, jpegs[0]), frame_input(1, jpegs[1][:3000]), frame_input(2, jpegs[2])]
    kinds = [type(r).__name__ for r in core.detect(batch)]
    print(f"whole, truncated, whole frame in one batch: {kinds}")
    timings(core, jpegs, args.seconds)


if __name__ == "__main__":
    main()
