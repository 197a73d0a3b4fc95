"""What the TensorRT backend decides before TensorRT runs; needs neither TensorRT nor a GPU.

- the model: input name and batch axis, output names, layout and class names (from the ONNX);
- the optimisation profile: batch ``min`` 1, ``opt`` and ``max`` from the settings (a model
  exported with a fixed batch gets that batch for all three), and how a larger batch is cut;
- the engine cache: a key over everything the engine depends on, and the file it names;
- INT8 calibration: which frames, their letterboxed batches, the calibration cache file;
- importing ``tensorrt`` and finding the CUDA device, with errors that say what is missing.

:mod:`.tensorrt_backend` does the building and running with these.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..layout import Dim, ModelInfo, ModelLayoutError, describe_onnx, read_onnx_io
from ..preprocess import letterbox
from .base import F32, BackendError
from .config import TensorRTConfig

U8 = npt.NDArray[np.uint8]

#: The TensorRT major version the backend is written for: 11 removed the FP16/INT8 builder
#: flags and the calibrator it uses.
TENSORRT_MAJOR = 10
#: Bump when the way engines are built changes, so cached engines are rebuilt.
ENGINE_RECIPE = "1"
#: Images per INT8 calibration batch (a model with a fixed batch uses its own).
CALIBRATION_BATCH = 8
#: Most JPEGs read from a calibration folder.
MAX_CALIBRATION_FRAMES = 512
PIP_HINT = "pip install 'tensorrt>=10,<11' (part of the vsa[gpu] extra)"


@dataclass(frozen=True)
class OnnxPlan:
    """The ONNX model as the backend needs it.

    Attributes:
        model: Layout, input size and class names.
        input_name: The image input ``[N, 3, H, W]``.
        fixed_batch: N when the model was exported with a fixed batch, else None.
        output_names: Every graph output (the engine needs a buffer for each); the first is
            the detections.
    """

    model: ModelInfo
    input_name: str
    fixed_batch: int | None
    output_names: tuple[str, ...]


def plan_onnx(path: Path) -> OnnxPlan:
    """Read ``path`` (without running it); BackendError if it is not a usable detector."""
    try:
        io = read_onnx_io(path)
    except OSError as exc:
        raise BackendError(str(exc)) from exc
    if len(io.inputs) != 1 or not io.outputs:
        raise BackendError(
            f"{path}: {len(io.inputs)} inputs and {len(io.outputs)} outputs, expected one "
            "image input and a detections output"
        )
    (input_name, input_shape), (_, output_shape) = io.inputs[0], io.outputs[0]
    try:
        model = describe_onnx(path, _dims(input_shape), _dims(output_shape), io.metadata)
    except ModelLayoutError as exc:
        raise BackendError(str(exc)) from exc
    batch = input_shape[0]
    fixed = batch if isinstance(batch, int) and batch > 0 else None
    return OnnxPlan(model, input_name, fixed, tuple(name for name, _ in io.outputs))


def _dims(shape: Sequence[Dim]) -> list[Dim]:
    # ONNX writes 0 for an unknown fixed dimension; describe_onnx treats non-ints as dynamic.
    return [dim if isinstance(dim, int) and dim > 0 else (dim or None) for dim in shape]


@dataclass(frozen=True)
class BatchProfile:
    """Batch sizes of the engine's optimisation profile: it accepts ``min_batch..max_batch``
    images per call and is fastest at ``opt_batch``."""

    min_batch: int
    opt_batch: int
    max_batch: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= min <= opt <= max batch, got {self}")

    @property
    def fixed(self) -> bool:
        """Whether the engine takes exactly one batch size."""
        return self.min_batch == self.max_batch

    def shapes(self, net_size: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
        """``(min, opt, max)`` input shapes ``(N, 3, H, W)`` for ``net_size`` ``(H, W)``."""
        return tuple(
            (batch, 3, *net_size) for batch in (self.min_batch, self.opt_batch, self.max_batch)
        )


def batch_profile(fixed_batch: int | None, opt_batch: int | None, max_batch: int) -> BatchProfile:
    """The profile for a model (``fixed_batch`` None when its batch axis is dynamic).

    ``opt_batch`` None means ``max_batch``. A fixed-batch model gets its batch for all three
    whatever the settings say (batches are then cut and padded to it).

    Raises:
        ValueError: ``opt_batch`` above ``max_batch``.
    """
    if fixed_batch is not None:
        return BatchProfile(fixed_batch, fixed_batch, fixed_batch)
    opt = max_batch if opt_batch is None else opt_batch
    if opt > max_batch:
        raise ValueError(f"opt_batch {opt} exceeds max_batch {max_batch}")
    return BatchProfile(1, opt, max_batch)


def batch_pieces(count: int, profile: BatchProfile) -> list[tuple[int, int, int]]:
    """How ``count`` images run: ``(start, stop, run_size)`` per engine call, at most
    ``max_batch`` images each; ``run_size`` exceeds ``stop - start`` only for a fixed-batch
    engine, whose last call is padded."""
    if count < 1:
        raise ValueError("batch is empty")
    step = profile.max_batch
    return [
        (start, min(start + step, count), step if profile.fixed else min(step, count - start))
        for start in range(0, count, step)
    ]


@dataclass(frozen=True)
class GpuInfo:
    """The device an engine is built for: engines do not move between GPU models."""

    name: str
    capability: tuple[int, int]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def engine_key(
    onnx_sha256: str,
    gpu: GpuInfo,
    tensorrt_version: str,
    precision: str,
    profile: BatchProfile,
    net_size: tuple[int, int],
    calibration: str = "",
) -> str:
    """SHA-256 (hex) of everything an engine depends on: the model's bytes, the GPU name and
    compute capability, the TensorRT version, the precision, the profile's shapes, the INT8
    calibration source and the build recipe. Any change gives another key, so another file."""
    parts = {
        "recipe": ENGINE_RECIPE,
        "onnx": onnx_sha256,
        "gpu": gpu.name,
        "capability": list(gpu.capability),
        "tensorrt": tensorrt_version,
        "precision": precision,
        "profile": [list(shape) for shape in profile.shapes(net_size)],
        "calibration": calibration,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def engine_cache_dir(config: TensorRTConfig) -> Path:
    """``engine_cache_dir``, else ``<vsa cache>/tensorrt``."""
    if config.engine_cache_dir is not None:
        return config.engine_cache_dir.expanduser()
    from vsa.assets import cache_dir

    return cache_dir() / "tensorrt"


def engine_file(cache_dir: Path, model_path: Path, precision: str, key: str) -> Path:
    """``<cache_dir>/<model stem>-<precision>-<key[:32]>.engine``."""
    return cache_dir / f"{model_path.stem}-{precision}-{key[:32]}.engine"


def calibration_source(config: TensorRTConfig) -> str:
    """What INT8 scales are computed from, for the engine key ('' unless int8)."""
    from ..quantize import CALIBRATION_COUNT, CALIBRATION_START, CALIBRATION_STEP

    if config.precision != "int8":
        return ""
    if config.calibration_frames is not None:
        return f"jpegs:{config.calibration_frames.expanduser().resolve()}"
    return f"vtest.avi[{CALIBRATION_START}::{CALIBRATION_STEP}][:{CALIBRATION_COUNT}]"


def calibration_cache_file(config: TensorRTConfig, cache_dir: Path, onnx_sha256: str) -> Path:
    """``calibration_cache``, else ``<cache_dir>/<ONNX digest[:16]>-<source digest[:8]>.calib``."""
    if config.calibration_cache is not None:
        return config.calibration_cache.expanduser()
    source = hashlib.sha256(calibration_source(config).encode()).hexdigest()
    return cache_dir / f"{onnx_sha256[:16]}-{source[:8]}.calib"


def calibration_batches(
    frames: Sequence[U8], net_size: tuple[int, int], batch_size: int
) -> list[F32]:
    """Letterboxed ``(batch_size, 3, H, W)`` batches of ``frames`` (RGB), as the service
    letterboxes them; the last batch is filled up with frames from the start, since
    TensorRT takes calibration batches of one size only."""
    if not frames:
        raise ValueError("no calibration frames")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = []
    for start in range(0, len(frames), batch_size):
        chosen = [frames[(start + i) % len(frames)] for i in range(batch_size)]
        batches.append(letterbox(chosen, net_size).pixels)
    return batches


class CalibrationFeed:
    """Calibration batches, one at a time, for TensorRT's calibrator.

    The frames are loaded on the first request only: when a calibration cache exists,
    TensorRT never asks, and no frames (nor the clip) are needed.
    """

    def __init__(
        self, load_frames: Callable[[], Sequence[U8]], net_size: tuple[int, int], batch_size: int
    ) -> None:
        self.batch_size = batch_size
        self._load_frames = load_frames
        self._net_size = net_size
        self._pending: list[F32] | None = None

    def next_batch(self) -> F32 | None:
        """The next ``(batch_size, 3, H, W)`` float32 batch, or None when all were given."""
        if self._pending is None:
            frames = self._load_frames()
            self._pending = calibration_batches(frames, self._net_size, self.batch_size)[::-1]
        return self._pending.pop() if self._pending else None


def read_jpeg_folder(folder: Path, limit: int = MAX_CALIBRATION_FRAMES) -> list[U8]:
    """RGB images of the ``*.jpg`` / ``*.jpeg`` files in ``folder``, sorted by name."""
    import simplejpeg

    if not folder.is_dir():
        raise BackendError(f"calibration_frames {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise BackendError(f"calibration_frames {folder}: no .jpg or .jpeg files")
    frames = []
    for file in files[:limit]:
        try:
            frames.append(np.asarray(simplejpeg.decode_jpeg(file.read_bytes()), np.uint8))
        except ValueError as exc:
            raise BackendError(f"calibration frame {file}: {exc}") from exc
    return frames


def load_calibration_frames(folder: Path | None) -> list[U8]:
    """The frames of ``folder``, or those of the sample clip the INT8 ONNX model uses."""
    if folder is not None:
        return read_jpeg_folder(folder.expanduser())
    from vsa.assets import AssetError, fetch_vtest

    from ..quantize import CALIBRATION_COUNT, CALIBRATION_START, CALIBRATION_STEP, clip_frames

    try:
        return clip_frames(fetch_vtest(), CALIBRATION_START, CALIBRATION_STEP, CALIBRATION_COUNT)
    except (ImportError, AssetError, OSError) as exc:
        raise BackendError(
            f"INT8 calibration on the sample clip failed ({exc}); set calibration_frames to a "
            "folder of JPEG frames, or calibration_cache to an existing cache"
        ) from exc


def read_calibration_cache(path: Path) -> bytes | None:
    """The cache's bytes, or None when it is missing or empty (TensorRT then calibrates)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return data or None


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename: readers see the old
    file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def check_tensorrt_version(version: str) -> None:
    """BackendError unless ``version`` is a TensorRT 10 release."""
    major = version.split(".", 1)[0]
    if major != str(TENSORRT_MAJOR):
        raise BackendError(
            f"backend 'tensorrt' is written for TensorRT {TENSORRT_MAJOR}, found {version}; "
            f"{PIP_HINT}"
        )


def import_tensorrt() -> Any:
    """The ``tensorrt`` module; BackendError naming the package when it does not import."""
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # OSError: its shared libraries fail to load
        raise BackendError(
            f"backend 'tensorrt' needs the tensorrt Python package, which does not import "
            f"here ({exc}); {PIP_HINT}, on a machine with an NVIDIA GPU"
        ) from exc
    check_tensorrt_version(str(tensorrt.__version__))
    return tensorrt


def cuda_device(device_id: int) -> str:
    """``cuda:<device_id>``; BackendError when torch sees no CUDA device, or not that one."""
    try:
        import torch
    except ImportError as exc:
        raise BackendError(f"backend 'tensorrt' needs torch with CUDA: {exc}") from exc
    if not torch.cuda.is_available():
        raise BackendError(
            f"backend 'tensorrt' needs a CUDA device; torch {torch.__version__} sees none "
            f"(its CUDA build: {torch.version.cuda or 'none, a CPU-only build'})"
        )
    count = torch.cuda.device_count()
    if device_id >= count:
        raise BackendError(
            f"backend 'tensorrt': device_id {device_id}, but torch sees {count} CUDA device(s)"
        )
    return f"cuda:{device_id}"
