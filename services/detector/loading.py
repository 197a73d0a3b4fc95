"""Building the detector from its settings: resolve the model, load it, check it, warm it up.

Everything that can go wrong with the model (fetch, conversion, quantisation, a missing or
broken file, an unknown layout, an input size or class name the model does not have) becomes
a :class:`~vsa.runtime.settings.ConfigError` naming the model, so ``vsa detector`` stops at
start with exit status 2 and one clear line, before it joins the consumer group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import simplejpeg

from vsa.runtime.int8_cpu import CpuInt8, saturation_risk
from vsa.runtime.logs import event
from vsa.runtime.settings import ConfigError
from vsa.schemas import FrameMeta, FrameRef

from .backends import BackendError, DetectorBackend, build_backend, ort_config
from .backends.config import TensorRTConfig, TorchConfig
from .config import BUNDLED_MODELS, DetectorSettings
from .core import DetectorCore, FrameDetector, FrameInput
from .darknet import DarknetError
from .jpeg import FrameError
from .models import (
    DEFAULT_INPUT_SIZE,
    DEFAULT_MODEL,
    INT8_MODEL,
    ModelFetchError,
    bundled_model,
    fetch_yolov3_tiny,
    file_model_id,
)
from .postprocess import SelectionParams
from .quantize import QuantizationError
from .resize import OrtResizer
from .torch_core import load_torch_detector, tensorrt_frame_detector

log = logging.getLogger("vsa.detector")

#: Side of the synthetic frame the whole pipeline is warmed up with, pixels.
WARMUP_SIDE = 64


def resolve_model(model: str, input_size: tuple[int, int] | None) -> tuple[Path, str]:
    """The ONNX file and model id for a ``model`` setting (bundled name or path)."""
    if model in BUNDLED_MODELS:
        try:
            info, model_id = bundled_model(model, input_size)
        except (ModelFetchError, DarknetError, QuantizationError, OSError, ValueError) as exc:
            raise ConfigError(f"bundled model {model!r} cannot be prepared: {exc}") from exc
        return info.path, model_id
    path = Path(model).expanduser()
    return path, file_model_id(path)


def faithful_model(
    settings: DetectorSettings, path: Path, model_id: str, cpu: CpuInt8 | None = None
) -> tuple[Path, str]:
    """``(path, model_id)``, or the FP32 model's when the bundled INT8 model would lose boxes on
    this CPU (see :mod:`vsa.runtime.int8_cpu`); a user's INT8 file that would is loaded with a
    warning.

    Only ONNX Runtime on the CPU is concerned (other backends run their own kernels).
    """
    options = ort_config(settings.backend)
    if options is None or options.providers[0] != "CPUExecutionProvider":
        return path, model_id
    try:
        reason = saturation_risk(path, cpu)
    except Exception:  # an unreadable file: loading it says what is wrong, with its name
        return path, model_id
    if reason is None:
        return path, model_id
    if settings.model == INT8_MODEL:
        event(log, "int8_falls_back_to_fp32", logging.WARNING, model=model_id, reason=reason)
        return resolve_model(DEFAULT_MODEL, settings.input_size)
    event(log, "int8_model_loses_boxes_here", logging.WARNING, path=str(path), reason=reason)
    return path, model_id


def class_ids(wanted: Sequence[str], names: Sequence[str], model: Path) -> tuple[int, ...] | None:
    """Class ids of the ``wanted`` names (None when empty: keep all); ConfigError if unknown."""
    if not wanted:
        return None
    unknown = [name for name in wanted if name not in names]
    if unknown:
        known = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise ConfigError(f"classes {unknown} are not classes of {model} (it has: {known})")
    return tuple(names.index(name) for name in wanted)


def _load_backend(settings: DetectorSettings, path: Path) -> DetectorBackend:
    try:
        backend = build_backend(settings.backend, path, max_batch=settings.max_batch)
    except BackendError as exc:
        text = str(exc)
        raise ConfigError(text if str(path) in text else f"{path}: {text}") from exc
    if settings.input_size is not None and backend.input_size != settings.input_size:
        raise ConfigError(
            f"{path}: the model's input is {backend.input_size[0]}x{backend.input_size[1]}, "
            f"input_size asks for {settings.input_size[0]}x{settings.input_size[1]}"
        )
    return backend


def selection_params(
    settings: DetectorSettings, names: Sequence[str], model: Path
) -> SelectionParams:
    """Thresholds, top-k and the class filter of ``settings`` for a model with ``names``."""
    return SelectionParams(
        conf_threshold=settings.conf_threshold,
        iou_threshold=settings.iou_threshold,
        max_det=settings.max_det,
        classes=class_ids(settings.classes, names, model),
    )


def backend_model_id(model_id: str, settings: DetectorSettings) -> str:
    """The model id messages carry: TensorRT engines add ``:tensorrt-<precision>``."""
    if isinstance(settings.backend, TensorRTConfig):
        return f"{model_id}:tensorrt-{settings.backend.precision}"
    return model_id


def warm_up(core: DetectorCore) -> None:
    """Run one synthetic JPEG through decode, resize, inference and postprocessing."""
    grey = np.full((WARMUP_SIDE, WARMUP_SIDE, 3), 114, np.uint8)
    meta = FrameMeta(
        camera_id="warmup",
        frame_seq=0,
        capture_ts=0.0,
        width=WARMUP_SIDE,
        height=WARMUP_SIDE,
        source="warmup",
    )
    frame = FrameInput(meta, meta.frame_ref("warmup", 0, 0), simplejpeg.encode_jpeg(grey))
    (outcome,) = core.detect([frame])
    if isinstance(outcome, FrameError):
        raise ConfigError(f"warm-up of {core.model_id} failed: {outcome}")


def load_detector(settings: DetectorSettings) -> FrameDetector:
    """The detector core for ``settings``, loaded, checked and warmed up.

    Raises:
        ConfigError: naming the model file (or bundled model) and what is wrong.
    """
    path, model_id = faithful_model(settings, *resolve_model(settings.model, settings.input_size))
    backend = _load_backend(settings, path)
    core = FrameDetector(
        backend,
        selection_params(settings, backend.model.class_names, path),
        backend_model_id(model_id, settings),
        decode_downscale=settings.decode_downscale,
        max_frame_pixels=settings.max_frame_pixels,
        resize=OrtResizer(threads=1),
    )
    warm_up(core)
    event(
        log,
        "model_loaded",
        model=core.model_id,
        path=str(path),
        layout=backend.model.layout,
        input_size=f"{backend.input_size[0]}x{backend.input_size[1]}",
        classes=len(backend.model.class_names),
        backend=backend.name,
    )
    return core


def pseudo_ref(camera_id: str, frame_seq: int) -> FrameRef:
    """A frame reference for frames that do not come from Kafka (``vsa detect``): topic
    ``file``, partition 0, offset = frame_seq."""
    return FrameRef(
        topic="file", partition=0, offset=frame_seq, camera_id=camera_id, frame_seq=frame_seq
    )


def load_service_core(settings: DetectorSettings) -> DetectorCore:
    """The core the service runs: :func:`load_detector`, or the GPU path (nvJPEG decode, GPU
    letterbox, GPU NMS) for ``type: torch`` and ``type: tensorrt``.

    The torch backend runs Darknet models: the bundled ``yolov3-tiny`` (FP32 weights; the INT8
    variant and ONNX files are for ONNX Runtime). TensorRT runs ONNX models: the bundled
    ``yolov3-tiny`` or a file; it builds INT8 itself (``precision: int8``).
    """
    if isinstance(settings.backend, TensorRTConfig):
        return _load_tensorrt_core(settings)
    if not isinstance(settings.backend, TorchConfig):
        return load_detector(settings)
    if settings.model != DEFAULT_MODEL:
        raise ConfigError(
            f"backend 'torch' runs the bundled Darknet model {DEFAULT_MODEL!r}; for "
            f"{settings.model!r} use backend 'onnxruntime' (with CUDAExecutionProvider on a GPU)"
        )
    size = settings.input_size or DEFAULT_INPUT_SIZE
    try:
        files = fetch_yolov3_tiny()
        params = selection_params(settings, files.names, files.cfg)
        core = load_torch_detector(
            files.cfg,
            files.weights,
            files.names,
            f"{DEFAULT_MODEL}@{size[0]}x{size[1]}:torch",
            size,
            params,
            settings.backend,
            settings.max_frame_pixels,
        )
    except (ModelFetchError, DarknetError, OSError, ImportError, RuntimeError) as exc:
        raise ConfigError(f"backend 'torch' cannot load {DEFAULT_MODEL}: {exc}") from exc
    warm_up(core)
    event(
        log,
        "model_loaded",
        model=core.model_id,
        backend="torch",
        device=settings.backend.device,
        input_size=f"{size[0]}x{size[1]}",
        classes=len(files.names),
    )
    return core


def _load_tensorrt_core(settings: DetectorSettings) -> DetectorCore:
    """The engine (built or loaded from its cache, warmed up) inside the GPU path."""
    from .backends.tensorrt_backend import TensorRTBackend

    path, model_id = resolve_model(settings.model, settings.input_size)
    backend = _load_backend(settings, path)
    assert isinstance(backend, TensorRTBackend)  # what build_backend makes of TensorRTConfig
    try:
        core = tensorrt_frame_detector(
            backend.engine,
            selection_params(settings, backend.model.class_names, path),
            backend_model_id(model_id, settings),
            settings.max_frame_pixels,
        )
        warm_up(core)
    except (ImportError, RuntimeError) as exc:  # torchvision's nvJPEG, or the engine failing
        raise ConfigError(f"backend 'tensorrt' cannot run {path}: {exc}") from exc
    engine = backend.engine
    event(
        log,
        "model_loaded",
        model=core.model_id,
        path=str(path),
        backend="tensorrt",
        device=str(engine.device),
        engine=str(engine.engine_path),
        engine_from_cache=engine.from_cache,
        engine_ready_s=round(engine.ready_s, 1),
        batch_profile=f"{engine.profile.min_batch}/{engine.profile.opt_batch}/"
        f"{engine.profile.max_batch}",
        input_size=f"{backend.input_size[0]}x{backend.input_size[1]}",
        classes=len(backend.model.class_names),
    )
    return core
