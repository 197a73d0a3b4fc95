"""Captioner throughput.

``--scene`` (this machine, pinned to one core): scene descriptions per second for keyframes of
the sample clip with their real detections (the ONNX detector), colours measured on decoded
pixels; and the full per-keyframe cost (scaled JPEG decode + description + thumbnail). Baseline
in the same run: the same descriptions without colours (no pixels touched).

``--blip`` (the GPU machine): a BLIP-base-sized model (BlipConfig defaults: ViT-B/16 at 384 px,
BERT-base text decoder; random weights, the speed is the architecture's) captioning batches of
frames in FP16 against the same model per image in FP32, in the same run.

    python benchmarks/captioner.py --scene
    python benchmarks/captioner.py --blip --frames DIR
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rate(work: Callable[[], int], seconds: float = 3.0) -> float:
    """Items per second of ``work`` (returns items done), median of 3 timed runs."""
    work()
    rates = []
    for _ in range(3):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            done += work()
        rates.append(done / (time.perf_counter() - started))
    return statistics.median(rates)


def scene_benchmark() -> None:
    import av
    import numpy as np
    import simplejpeg

    from vsa.assets import fetch_vtest
    from vsa.schemas import FrameRef, Keyframe, TrackedObject
    from vsa.services.captioner.describe import DescribeOptions
    from vsa.services.captioner.frames import decode_small, thumbnail
    from vsa.services.captioner.scene import describe
    from vsa.services.detector.backends import build_backend
    from vsa.services.detector.backends.config import OnnxRuntimeConfig
    from vsa.services.detector.models import yolov3_tiny_onnx
    from vsa.services.detector.pipeline import detect_batch
    from vsa.services.detector.postprocess import SelectionParams

    with av.open(str(fetch_vtest())) as container:
        images = [
            np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for i, f in enumerate(container.decode(video=0))
            if i % 25 == 0
        ]
    backend = build_backend(OnnxRuntimeConfig(), yolov3_tiny_onnx().path)
    found = detect_batch(backend, images, SelectionParams(conf_threshold=0.3)).detections
    os.sched_setaffinity(0, {0})  # one core from here on
    jpegs = [bytes(simplejpeg.encode_jpeg(im, 85)) for im in images]
    keyframes = []
    for i, dets in enumerate(found):
        objects = [
            TrackedObject(
                track_id=k + 1,
                xyxy=tuple(float(v) for v in b),
                class_id=int(c),
                class_name=backend.model.class_names[int(c)],
                score=float(s),
                velocity_px_s=(-50.0 + 10 * k, 5.0),
                age_frames=3,
                state="confirmed",
            )
            for k, (b, s, c) in enumerate(zip(dets.xyxy, dets.scores, dets.class_ids, strict=True))
        ]
        ref = FrameRef(topic="frames", partition=0, offset=i, camera_id="c", frame_seq=i)
        keyframes.append(
            Keyframe(
                camera_id="c",
                frame_seq=i,
                frame=ref,
                capture_ts=1.8e9 + i,
                reason="periodic",
                objects=objects,
            )
        )
    small = [decode_small(j) for j in jpegs]
    colour, plain = DescribeOptions(), DescribeOptions(with_colour=False)
    n = len(keyframes)

    def with_colours() -> int:
        for k, s in zip(keyframes, small, strict=True):
            describe(k, s.pixels, None, colour, s.original_size)
        return n

    def without_colours() -> int:
        for k in keyframes:
            describe(k, None, None, plain, (768, 576))
        return n

    def full() -> int:
        for k, j in zip(keyframes, jpegs, strict=True):
            s = decode_small(j)
            describe(k, s.pixels, None, colour, s.original_size)
            thumbnail(s.pixels)
        return n

    per_frame = statistics.mean(len(k.objects) for k in keyframes)
    base = _rate(without_colours)
    print(
        f"\ncaptioner scene benchmark, 1 core, {n} keyframes of vtest.avi, "
        f"{per_frame:.1f} objects per keyframe on average"
    )
    print(f"{'path':<58}{'keyframes/s':>12}{'vs baseline':>13}")
    for label, rate in (
        ("descriptions without colours (baseline)", base),
        ("descriptions with colours from pixels", _rate(with_colours)),
        ("full: scaled JPEG decode + description + thumbnail", _rate(full)),
    ):
        print(f"{label:<58}{rate:>12.0f}{rate / base:>13.2f}")
    print(
        "example:",
        describe(keyframes[3], small[3].pixels, None, colour, small[3].original_size).text,
    )


def blip_benchmark(frames: Path, batch: int) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    device = "cuda"
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(frames.glob("*.jpg"))]
    processor = BlipImageProcessor()  # 384×384, the base model's preprocessing
    torch.manual_seed(0)
    fp32: Any = BlipForConditionalGeneration(BlipConfig())
    fp32 = fp32.to(device).eval()
    fp16: Any = BlipForConditionalGeneration(BlipConfig())
    fp16 = fp16.to(device, torch.float16).eval()
    tokens = 20

    def caption(model: Any, dtype: torch.dtype, group: list[np.ndarray]) -> int:
        pixels = processor(images=group, return_tensors="pt")["pixel_values"].to(device, dtype)
        with torch.inference_mode():
            model.generate(pixel_values=pixels, max_new_tokens=tokens, min_new_tokens=tokens)
        torch.cuda.synchronize()
        return len(group)

    def per_image() -> int:
        return sum(caption(fp32, torch.float32, [im]) for im in images[:8])

    def batched() -> int:
        return caption(fp16, torch.float16, [images[i % len(images)] for i in range(batch)])

    def preprocess_only() -> int:
        group = [images[i % len(images)] for i in range(batch)]
        processor(images=group, return_tensors="pt")["pixel_values"].to(device, torch.float16)
        return batch

    base = _rate(per_image, 6)
    fast = _rate(batched, 6)
    prep = _rate(preprocess_only, 3)
    print(f"\nBLIP-base (random weights) on {torch.cuda.get_device_name()}, {tokens} tokens each")
    print(f"{'path':<40}{'images/s':>10}{'vs baseline':>13}")
    print(f"{'per image, FP32 (baseline)':<40}{base:>10.1f}{1.0:>13.2f}")
    print(f"{f'batch {batch}, FP16':<40}{fast:>10.1f}{fast / base:>13.2f}")
    print(f"{'preprocessing alone (CPU, BlipImageProcessor)':<40}{prep:>10.1f}")
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", action="store_true")
    parser.add_argument("--blip", action="store_true")
    parser.add_argument("--frames", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if args.scene:
        scene_benchmark()
    if args.blip:
        if args.frames is None:
            parser.error("--blip needs --frames DIR of JPEGs")
        blip_benchmark(args.frames, args.batch)


if __name__ == "__main__":
    main()
