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

``--mode ort`` (the GPU machine, with onnxruntime-gpu): ONNX Runtime's CUDA provider checked
and timed. (1) Agreement: for the bundled ``yolov3-tiny`` (416×416) and ``yolov8-fall``
(640×640), the service core with ``backend: {type: onnxruntime}`` on the CPU provider and on
``providers: [CUDAExecutionProvider, CPUExecutionProvider]`` with ``cuda_tf32`` on and off,
on the vtest JPEGs and their 1080p versions: each CPU box matched to the CUDA box of the same
class with the highest IoU (counted at IoU ≥ 0.98), and the largest difference of the raw
network outputs. (2) Speed at 1080p, batch ``--batch``: whole ``detect()`` calls of the torch
core (the baseline of the ratios), the ONNX Runtime core on CUDA (CPU decode, CPU letterbox,
CUDA network, CPU NMS) and on the CPU; the ONNX Runtime CUDA session as the network of the torch
core's GPU path (nvJPEG, GPU letterbox and NMS; a wrapper in this script, not a service option);
each network alone; and the boxes of the GPU paths against the CPU-preprocessing cores
(:func:`preprocessing_check`).

    python benchmarks/detector_service_core.py --mode ref --frames DIR --ref ref.json
    python benchmarks/detector_service_core.py --mode gpu --frames DIR --ref ref.json
    python benchmarks/detector_service_core.py --mode ort --frames DIR [--batch 32] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg

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


@dataclass(frozen=True)
class BoxAgreement:
    """How the boxes of one core match a reference core's on the same frames."""

    total: int  # reference boxes
    matched: int  # paired with a box of the same class at IoU >= the threshold asked for
    unpaired: int  # with no box of the same class at IoU >= 0.5
    extra: int  # our boxes left over
    min_iou: float  # lowest IoU of a pair (1.0 when there is none)


def box_agreement(
    got: list[list[Box]], want: list[list[Box]], threshold: float = 0.5
) -> BoxAgreement:
    """Each reference box (in order) paired with the unused box of the same class and highest
    IoU, if that is >= 0.5; pairs at IoU >= ``threshold`` count as matched."""
    pairs: list[float] = []
    total = extra = 0
    for ours, theirs in zip(got, want, strict=True):
        used: set[int] = set()
        for cls, xyxy in theirs:
            total += 1
            scored = [
                (iou(our_xyxy, xyxy), k)
                for k, (our_cls, our_xyxy) in enumerate(ours)
                if k not in used and our_cls == cls
            ]
            best, k = max(scored, default=(0.0, -1))
            if best >= 0.5:
                used.add(k)
                pairs.append(best)
        extra += len(ours) - len(used)
    matched = sum(value >= threshold for value in pairs)
    return BoxAgreement(total, matched, total - len(pairs), extra, min(pairs, default=1.0))


def agreement(got: list[list[Box]], want: list[list[Box]]) -> tuple[int, int, int]:
    """(reference boxes matched at IoU >= 0.5 with the same class, reference boxes, extra)."""
    found = box_agreement(got, want)
    return found.matched, found.total, found.extra


def measure(run: Callable[[], object], items: int, seconds: float) -> dict[str, float]:
    """``run()`` (``items`` frames per call, complete when it returns) repeated for ``seconds``
    after 3 warm-up calls, at least 5 times: frames/s and p50/p99 latency per call, ms."""
    for _ in range(3):
        run()
    spans: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(spans) < 5:
        t = time.perf_counter()
        run()
        spans.append(time.perf_counter() - t)
    ms = np.array(spans) * 1000
    return {
        "fps": items * len(ms) / (ms.sum() / 1000),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "calls": len(ms),
    }


def timings(core: Any, jpegs: list[bytes], seconds: float) -> None:
    print("| batch | frames/s | p50 ms | p99 ms |\n| ---: | ---: | ---: | ---: |")
    for size in (1, 8, 32, 64, 128):
        frames = [frame_input(i, jpegs[i % len(jpegs)]) for i in range(size)]
        row = measure(partial(core.detect, frames), size, seconds)
        print(
            f"| {size} | {row['fps']:,.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |",
            flush=True,
        )


ORT_CPU: dict[str, Any] = {"type": "onnxruntime"}
ORT_CUDA: dict[str, Any] = {
    "type": "onnxruntime",
    "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}
TORCH_CUDA: dict[str, Any] = {"type": "torch", "device": "cuda:0"}
#: Boxes of the CUDA provider count as the CPU provider's when they overlap this much.
SAME_BOX_IOU = 0.98


def service_core(model: str, backend: dict[str, Any]) -> Any:
    """The core ``vsa detector`` builds for ``model`` on ``backend`` (max_batch 128)."""
    settings = load_settings(DetectorSettings, None, model=model, max_batch=128, backend=backend)
    return load_service_core(settings)


def detect_all(core: Any, inputs: list[FrameInput], batch: int = 32) -> list[list[Box]]:
    found: list[list[Box]] = []
    for start in range(0, len(inputs), batch):
        found += [boxes(r) for r in core.detect(inputs[start : start + batch])]
    return found


def raw_difference(cpu: Any, cuda: Any, jpegs: list[bytes]) -> tuple[float, float]:
    """Largest absolute and relative (L2) difference of the raw network outputs of the two
    backends on the first 8 frames, letterboxed."""
    from vsa.services.detector.preprocess import letterbox

    images = [simplejpeg.decode_jpeg(j) for j in jpegs[:8]]
    pixels = letterbox(images, cpu.input_size).pixels
    ref, out = cpu.infer(pixels), cuda.infer(pixels)
    return float(np.abs(out - ref).max()), float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def provider_agreement(
    models: Sequence[str], sources: dict[str, list[bytes]]
) -> list[dict[str, Any]]:
    """CPU and CUDA providers (TF32 on and off) on the same frames, for each of ``models``."""
    rows = []
    for model in models:
        cpu = service_core(model, ORT_CPU)
        for tf32 in (True, False):
            cuda = service_core(model, {**ORT_CUDA, "cuda_tf32": tf32})
            providers = cuda.backend.providers
            assert providers[0] == ORT_CUDA["providers"][0], f"{model} runs on {providers}"
            rows += [{"cuda_tf32": tf32, **row} for row in compare_cores(cpu, cuda, sources)]
    return rows


def compare_cores(cpu: Any, cuda: Any, sources: dict[str, list[bytes]]) -> list[dict[str, Any]]:
    """Boxes and raw outputs of two ONNX Runtime cores on each source's frames."""
    rows = []
    for source, jpegs in sources.items():
        inputs = [frame_input(i, j) for i, j in enumerate(jpegs)]
        found = box_agreement(detect_all(cuda, inputs), detect_all(cpu, inputs), SAME_BOX_IOU)
        max_abs, rel = raw_difference(cpu.backend, cuda.backend, jpegs)
        rows.append(
            {
                "model": cuda.model_id,
                "frames": f"{len(jpegs)} {source}",
                **asdict(found),
                "raw_max_abs": max_abs,
                "raw_rel_l2": rel,
            }
        )
        print(rows[-1], flush=True)
    return rows


def ort_gpu_path(model_path: Path, torch_core: Any) -> Any:
    """The torch core's GPU path (nvJPEG, GPU letterbox, GPU NMS) with the ONNX Runtime CUDA
    session as its network, fed and read on the device through an I/O binding (no copies)."""
    import torch

    from vsa.services.detector.backends.config import OnnxRuntimeConfig
    from vsa.services.detector.backends.ort_backend import open_session
    from vsa.services.detector.gpu import GpuDetector
    from vsa.services.detector.torch_core import TorchFrameDetector

    config = OnnxRuntimeConfig.model_validate(ORT_CUDA)
    session = open_session(model_path, config)
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
    outputs: dict[int, torch.Tensor] = {}

    class OrtNetwork(torch.nn.Module):
        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = pixels.float().contiguous()  # NCHW float32, as exported
            n = x.shape[0]
            if n not in outputs:
                probe = session.run([output_name], {input_name: x[:1].cpu().numpy()})[0]
                outputs[n] = torch.empty((n, *probe.shape[1:]), device=x.device)
            out = outputs[n]
            binding = session.io_binding()
            binding.bind_input(
                input_name, "cuda", x.device.index or 0, np.float32, tuple(x.shape), x.data_ptr()
            )
            binding.bind_output(
                output_name, "cuda", 0, np.float32, tuple(out.shape), out.data_ptr()
            )
            torch.cuda.current_stream().synchronize()  # x written by torch's stream
            session.run_with_iobinding(binding)  # synchronises its own stream at the end
            return out

    inner = torch_core.detector
    detector = GpuDetector(
        OrtNetwork(), inner.net_size, inner.params, half=False, cuda_graphs=False
    )
    return TorchFrameDetector(
        detector, torch_core.class_names, "yolov3-tiny:ort-cuda-gpu-path", inner.net_size
    )


def synchronised(step: Callable[[], object]) -> None:
    """``step()`` and wait until the GPU has finished it."""
    import torch

    step()
    torch.cuda.synchronize()


def stage_shares(core: Any, frames: list[FrameInput]) -> dict[str, float]:
    """ms per frame of each stage the messages report, summed over one batch."""
    shares: dict[str, float] = {}
    for result in core.detect(frames):
        for stage, ms in result.timings.items():
            shares[stage] = shares.get(stage, 0.0) + ms / len(frames)
    return shares


def preprocessing_check(
    sources: dict[str, list[bytes]], cores: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Boxes of the GPU paths against the CPU-preprocessing cores: the ORT session inside the
    GPU path against the ORT CUDA core on 768×576 frames (the same network; the GPU letterbox
    and the CPU one agree at this size), and the torch core against the ORT CPU core at 1080p
    (the GPU path resizes 1920×1080 to the network in one bilinear step, the CPU path decodes
    at 1/2 scale first)."""
    small = [frame_input(i, j) for i, j in enumerate(sources["768x576"])]
    large = [frame_input(i, j) for i, j in enumerate(sources["1080p"])]
    return {
        "ORT session in GPU path vs ORT CUDA core, 768x576": asdict(
            box_agreement(detect_all(cores["gpu_path"], small), detect_all(cores["cuda"], small))
        ),
        "torch core vs ORT CPU core, 1080p": asdict(
            box_agreement(detect_all(cores["torch"], large), detect_all(cores["cpu"], large))
        ),
    }


def ort_speed(sources: dict[str, list[bytes]], batch: int, seconds: float) -> dict[str, Any]:
    """1080p, one batch size: the cores and the networks alone (see the module docstring)."""
    import torch

    jpegs = sources["1080p"]
    frames = [frame_input(i, jpegs[i % len(jpegs)]) for i in range(batch)]
    torch_core = service_core("yolov3-tiny", TORCH_CUDA)
    ort_cuda = service_core("yolov3-tiny", ORT_CUDA)
    ort_cpu = service_core("yolov3-tiny", ORT_CPU)
    gpu_path = ort_gpu_path(ort_cuda.backend.model.path, torch_core)
    checked = {"torch": torch_core, "cuda": ort_cuda, "cpu": ort_cpu, "gpu_path": gpu_path}
    cores = {
        "torch core (nvJPEG, FP16 CUDA graphs, GPU NMS)": torch_core,
        "ORT CUDA core (CPU decode + letterbox, CUDA network, CPU NMS)": ort_cuda,
        "ORT CPU core (16 cores)": ort_cpu,
        "GPU path with the ORT CUDA session as network": gpu_path,
    }
    rows = {name: measure(partial(c.detect, frames), batch, seconds) for name, c in cores.items()}
    side = torch_core.detector.net_size
    lb = torch.rand((batch, 3, *side), device="cuda")
    host = lb.cpu().numpy()
    networks: dict[str, Callable[[], object]] = {
        "network alone: torch FP16, CUDA graph": lambda: torch_core.detector.infer(lb.half()),
        "network alone: ORT CUDA, numpy in/out": lambda: ort_cuda.backend.infer(host),
        "network alone: ORT CUDA, I/O binding on the device": lambda: gpu_path.detector.infer(lb),
    }
    for name, step in networks.items():
        rows[name] = measure(partial(synchronised, step), batch, seconds)
    return {
        "rows": rows,
        "ort_cuda_core_stages_ms_per_frame": stage_shares(ort_cuda, frames),
        "preprocessing_check": preprocessing_check(sources, checked),
    }


def print_ort(device: str, agreement_rows: list[dict[str, Any]], speed: dict[str, Any]) -> None:
    print(f"\nONNX Runtime CUDA provider on {device}: boxes against the CPU provider")
    print(
        f"| model | TF32 | frames | CPU boxes | matched IoU>={SAME_BOX_IOU} | unpaired | extra "
        "| min IoU | raw max abs diff | raw rel L2 |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in agreement_rows:
        print(
            f"| {r['model']} | {'on' if r['cuda_tf32'] else 'off'} | {r['frames']} "
            f"| {r['total']} | {r['matched']} | {r['unpaired']} "
            f"| {r['extra']} | {r['min_iou']:.4f} | {r['raw_max_abs']:.2e} "
            f"| {r['raw_rel_l2']:.2e} |"
        )
    if not speed:
        return
    rows = speed["rows"]
    base = next(iter(rows.values()))["fps"]
    print("\n| 1080p JPEGs, yolov3-tiny 416 | frames/s | p50 ms | p99 ms | vs torch core |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(
            f"| {name} | {row['fps']:,.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} "
            f"| {row['fps'] / base:.2f} |"
        )
    stages = speed["ort_cuda_core_stages_ms_per_frame"]
    print("ORT CUDA core, ms per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    for name, found in speed["preprocessing_check"].items():
        print(f"{name}: {found}")


def ort_mode(args: argparse.Namespace) -> None:
    import torch  # first: its CUDA and cuDNN libraries serve onnxruntime-gpu too

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from detector_gpu import make_sources

    sources = make_sources(args.frames)
    device = torch.cuda.get_device_name(0)
    models = [m for m in args.models.split(",") if m]
    agreement_rows = provider_agreement(models, sources)
    speed = ort_speed(sources, args.batch, args.seconds) if args.speed else {}
    print_ort(device, agreement_rows, speed)
    if args.out is not None:
        result = {"device": device, "batch": args.batch, "agreement": agreement_rows, **speed}
        args.out.write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["ref", "gpu", "ort"], required=True)
    parser.add_argument("--frames", type=Path, required=True, help="Folder of JPEG frames.")
    parser.add_argument("--ref", type=Path, help="Reference boxes (JSON); ref and gpu modes.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Timing per batch size.")
    parser.add_argument("--batch", type=int, default=32, help="ort mode: frames per batch.")
    parser.add_argument("--out", type=Path, help="ort mode: results as JSON.")
    parser.add_argument(
        "--models", default="yolov3-tiny,yolov8-fall", help="ort mode: bundled models to check."
    )
    parser.add_argument(
        "--no-speed", dest="speed", action="store_false", help="ort mode: agreement only."
    )
    args = parser.parse_args()
    if args.mode == "ort":
        ort_mode(args)
        return
    if args.ref is None:
        parser.error(f"--mode {args.mode} needs --ref")
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
