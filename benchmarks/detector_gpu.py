"""GPU detector throughput: JPEG bytes in, detections out, on one CUDA device.

For 1080p and 768×576 JPEG sources and batch sizes 1–128 it measures frames/s, p50/p99 batch
latency and peak GPU memory of the whole-batch GPU path (nvJPEG decode, GPU letterbox, FP16
YOLOv3-tiny replayed from CUDA graphs, GPU NMS, boxes back to the host). In the same run it
measures the naive path this replaces (per frame: OpenCV decode and numpy letterbox on the CPU,
FP32, batch 1, numpy NMS) and, to say what bounds the result, each stage alone at batch 64.

Inputs: a folder with the Darknet cfg/weights/names and a folder of JPEG frames of the sample
clip (``--frames``); 1080p frames are made from them (scaled with OpenCV, quality 90).

    python benchmarks/detector_gpu.py --model DIR --frames DIR [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing (the GPU machine)

import torch  # noqa: E402

from vsa.services.detector.darknet import parse_network, read_weights  # noqa: E402
from vsa.services.detector.gpu import DarknetTorch, GpuDetector, letterbox_gpu  # noqa: E402
from vsa.services.detector.postprocess import SelectionParams, postprocess  # noqa: E402
from vsa.services.detector.preprocess import detections_to_images, letterbox  # noqa: E402

NET = (416, 416)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)


def load_model(model_dir: Path) -> tuple[DarknetTorch, tuple[str, ...]]:
    cfg = model_dir / "yolov3-tiny.cfg"
    network = parse_network(cfg.read_text(), str(cfg), NET)
    weights = (model_dir / "yolov3-tiny.weights").read_bytes()
    names = tuple(n for n in (model_dir / "coco.names").read_text().splitlines() if n.strip())
    return DarknetTorch(network, read_weights(weights, network, "weights")).eval(), names


def make_sources(frames_dir: Path) -> dict[str, list[bytes]]:
    """The clip's JPEGs as they are (768×576) and scaled to 1920×1080 (re-encoded, q=90)."""
    import cv2

    small = [p.read_bytes() for p in sorted(frames_dir.glob("*.jpg"))]
    large = []
    for data in small:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        image = cv2.resize(image, (1920, 1080), interpolation=cv2.INTER_LINEAR)
        large.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    return {"1080p": large, "768x576": small}


def timed(
    run: Callable[[list[bytes]], object], jpegs: list[bytes], batch: int, seconds: float
) -> dict[str, float]:
    """Run batches cycling through ``jpegs`` for ``seconds``; latency per batch in ms."""
    for i in range(3):
        run(_batch(jpegs, i, batch))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    latencies: list[float] = []
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds or len(latencies) < 5:
        t0 = time.perf_counter()
        run(_batch(jpegs, i, batch))  # returns host arrays: the batch is complete
        latencies.append((time.perf_counter() - t0) * 1000)
        i += 1
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "batch": batch,
        "fps": len(latencies) * batch / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "gpu_mem_mb": torch.cuda.max_memory_allocated() / 2**20,
    }


def timed_overlapped(
    detector: GpuDetector, jpegs: list[bytes], batch: int, seconds: float
) -> dict[str, float]:
    """Throughput with decode of the next batch overlapped (detect_many); latency not kept."""
    count = max(8, int(seconds * 4000 / batch))
    list(detector.detect_many(_batch(jpegs, i, batch) for i in range(4)))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    results = list(detector.detect_many(_batch(jpegs, i, batch) for i in range(count)))
    elapsed = time.perf_counter() - started
    assert len(results) == count
    direct = detector.detect_jpegs(_batch(jpegs, 0, batch))
    for ours, ref in zip(results[0], direct, strict=True):  # same boxes as the serial path
        np.testing.assert_allclose(ours.xyxy, ref.xyxy, atol=1e-3)
    return {
        "batch": batch,
        "fps": count * batch / elapsed,
        "gpu_mem_mb": torch.cuda.max_memory_allocated() / 2**20,
    }


def _batch(jpegs: list[bytes], i: int, size: int) -> list[bytes]:
    start = (i * size) % len(jpegs)
    return [jpegs[(start + k) % len(jpegs)] for k in range(size)]


def naive(
    model: DarknetTorch, names: Sequence[str], params: SelectionParams
) -> Callable[..., object]:
    """The seed-style path: one frame at a time, CPU decode + letterbox, FP32 network."""
    import cv2

    fp32 = model.float().cuda().eval()

    def run(jpegs: list[bytes]) -> object:
        out = []
        for data in jpegs:
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert bgr is not None
            batch = letterbox([np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.uint8)], NET)
            with torch.inference_mode():
                raw = fp32(torch.from_numpy(batch.pixels).cuda()).cpu().numpy()
            found = postprocess(raw, "darknet", names, params)
            out.extend(detections_to_images(found, batch))
        return out

    return run


def stages(detector: GpuDetector, jpegs: list[bytes], batch: int) -> dict[str, float]:
    """Each stage alone at one batch size, frames/s: what bounds the whole."""
    data = _batch(jpegs, 0, batch)
    images = detector.decode(data)
    lb = letterbox_gpu(images, NET, detector.dtype)
    out: dict[str, float] = {}
    steps: dict[str, Callable[[], object]] = {
        "nvjpeg_decode": lambda: detector.decode(data),
        "letterbox": lambda: letterbox_gpu(images, NET, detector.dtype),
        "network_fp16_graph": lambda: detector.infer(lb.pixels),
    }
    for name, step in steps.items():
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        n = 20
        for _ in range(n):
            step()
        torch.cuda.synchronize()
        out[name] = n * batch / (time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    model, names = load_model(args.model)
    params = SelectionParams()
    sources = make_sources(args.frames)
    results: dict[str, object] = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
    }
    baseline = naive(model, names, params)
    detector = GpuDetector(load_model(args.model)[0], NET, params)
    for source, jpegs in sources.items():
        rows = [timed(detector.detect_jpegs, jpegs, b, args.seconds) for b in BATCHES]
        base = timed(baseline, jpegs, 1, args.seconds)
        overlapped = [timed_overlapped(detector, jpegs, b, args.seconds) for b in (32, 64, 128)]
        results[source] = {
            "gpu": rows,
            "naive": base,
            "overlapped": overlapped,
            "stages_b64": stages(detector, jpegs, 64),
        }
    print_table(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def print_table(results: dict[str, object]) -> None:
    print(f"\ndetector GPU benchmark on {results['device']} (torch {results['torch']})")
    for source in ("1080p", "768x576"):
        data = results[source]
        assert isinstance(data, dict)
        base = data["naive"]
        print(f"\n{source} JPEGs  | batch | frames/s | p50 ms | p99 ms | GPU MB | vs naive")
        print(
            f"naive (CPU decode+letterbox, FP32, b=1) | 1 | {base['fps']:.0f} | "
            f"{base['p50_ms']:.2f} | {base['p99_ms']:.2f} | {base['gpu_mem_mb']:.0f} | 1.0"
        )
        for row in data["gpu"]:
            print(
                f"GPU path (nvJPEG, FP16, CUDA graphs) | {row['batch']} | {row['fps']:.0f} | "
                f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['gpu_mem_mb']:.0f} | "
                f"{row['fps'] / base['fps']:.1f}"
            )
        for row in data["overlapped"]:
            print(
                f"GPU path, decode overlapped (2 streams) | {row['batch']} | {row['fps']:.0f} | "
                f"- | - | {row['gpu_mem_mb']:.0f} | {row['fps'] / base['fps']:.1f}"
            )
        stage = data["stages_b64"]
        print(
            "stages alone at batch 64, frames/s: "
            + ", ".join(f"{k} {v:.0f}" for k, v in stage.items())
        )


if __name__ == "__main__":
    main()
