"""Captioner throughput.

``--scene`` (this machine, pinned to one core): scene descriptions per second for keyframes of
the sample clip with their real detections (the ONNX detector), colours measured on decoded
pixels; and the full per-keyframe cost (scaled JPEG decode + description + thumbnail). Baseline
in the same run: the same descriptions without colours (no pixels touched).

``--blip`` (the GPU machine): the captioner's BLIP backend (``BlipCaptioner``, as the service
runs it with ``backend: blip``: CPU preprocessing, FP16 on CUDA, one ``generate`` per batch) on a
BLIP-base-sized model (BlipConfig defaults: ViT-B/16 at 384 px, BERT-base text decoder; random
weights saved to a temporary folder, the speed is the architecture's), captions/s for each of
``--batches``, the first being the baseline of the ratios.

    python benchmarks/captioner.py --scene
    python benchmarks/captioner.py --blip --frames DIR [--batches 1,8,32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
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


#: Tokens generated per image in the BLIP runs (forced, so random weights do as much work as
#: trained ones would on a typical caption).
BLIP_TOKENS = 20


def blip_base_folder(folder: Path) -> Path:
    """A saved BLIP-base-sized captioning model with random weights in ``folder``: BlipConfig
    defaults (ViT-B/16 at 384 px, BERT-base text decoder), the base model's image processing, a
    made-up vocabulary of the decoder's size, and every caption forced to :data:`BLIP_TOKENS`."""
    import torch
    import transformers

    config: Any = transformers.BlipConfig()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = specials + [f"w{i}" for i in range(config.text_config.vocab_size - len(specials))]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizer(str(folder / "vocab.txt"))
    make_processor: Any = transformers.BlipProcessor  # untyped in transformers
    processor = make_processor(
        image_processor=transformers.BlipImageProcessor(), tokenizer=tokenizer
    )
    processor.save_pretrained(folder)
    torch.manual_seed(0)
    model: Any = transformers.BlipForConditionalGeneration(config)
    model.generation_config.min_new_tokens = BLIP_TOKENS
    model.save_pretrained(folder)
    return folder


def blip_benchmark(frames: Path, batches: list[int]) -> None:
    """The captioner's BLIP backend (:class:`BlipCaptioner`: CPU preprocessing, FP16 on CUDA,
    batched generate) on a BLIP-base-sized model, captions/s per batch size."""
    import tempfile

    import numpy as np
    import torch
    from PIL import Image

    from vsa.services.captioner.backends import BlipCaptioner
    from vsa.services.captioner.describe import DescribeOptions

    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(frames.glob("*.jpg"))]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        captioner = BlipCaptioner(
            blip_base_folder(Path(folder)), DescribeOptions(), "cuda", BLIP_TOKENS
        )
        ready = time.perf_counter() - started

    def group(size: int) -> list[Any]:
        return [images[i % len(images)] for i in range(size)]

    def captions(size: int) -> int:
        return len(captioner.generate(group(size)))  # strings on the host: the batch is done

    def preprocess_only(size: int) -> int:
        pixels = captioner.processor(images=group(size), return_tensors="pt")["pixel_values"]
        pixels.to("cuda", torch.float16)
        torch.cuda.synchronize()
        return size

    rates = {size: _rate(partial(captions, size), 6) for size in batches}
    base = rates[batches[0]]
    print(
        f"\nBLIP backend, BLIP-base-sized random weights, FP16 on {torch.cuda.get_device_name()}, "
        f"{BLIP_TOKENS} tokens per caption, model built and loaded in {ready:.0f} s"
    )
    print(f"| batch | captions/s | vs batch {batches[0]} |\n| ---: | ---: | ---: |")
    for size, rate in rates.items():
        print(f"| {size} | {rate:.1f} | {rate / base:.2f} |")
    largest = max(batches)
    prep = _rate(partial(preprocess_only, largest), 3)
    print(f"preprocessing alone (CPU, BlipImageProcessor), batch {largest}: {prep:.0f} images/s")
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", action="store_true")
    parser.add_argument("--blip", action="store_true")
    parser.add_argument("--frames", type=Path)
    parser.add_argument(
        "--batches", default="1,8,32", help="BLIP batch sizes, comma-separated; first: baseline."
    )
    args = parser.parse_args()
    if args.scene:
        scene_benchmark()
    if args.blip:
        if args.frames is None:
            parser.error("--blip needs --frames DIR of JPEGs")
        blip_benchmark(args.frames, [int(b) for b in args.batches.split(",") if b])


if __name__ == "__main__":
    main()
