"""Detector backends behind one small interface, chosen by a config discriminated by ``type``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsa.runtime.logs import event

from .base import BackendError, DetectorBackend
from .config import (
    AutoConfig,
    BackendConfig,
    OnnxRuntimeConfig,
    TensorRTConfig,
    TorchConfig,
)

log = logging.getLogger("vsa.detector")

if TYPE_CHECKING:
    from .ort_backend import OnnxRuntimeBackend
    from .tensorrt_backend import TensorRTBackend

__all__ = [
    "AutoConfig",
    "BackendConfig",
    "BackendError",
    "DetectorBackend",
    "OnnxRuntimeBackend",
    "OnnxRuntimeConfig",
    "TensorRTBackend",
    "TensorRTConfig",
    "TorchConfig",
    "build_backend",
    "ort_config",
]


def __getattr__(name: str) -> Any:
    # ONNX Runtime loads only when a backend is used, so that reading the settings (every `vsa`
    # command builds its parser from them) stays light.
    if name == "OnnxRuntimeBackend":
        from .ort_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend
    if name == "TensorRTBackend":
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _auto_config(config: AutoConfig) -> OnnxRuntimeConfig:
    import onnxruntime as ort

    preferred = ("CUDAExecutionProvider", "CPUExecutionProvider")
    available = tuple(p for p in preferred if p in ort.get_available_providers())
    return OnnxRuntimeConfig(
        intra_op_num_threads=config.intra_op_num_threads,
        providers=available or ("CPUExecutionProvider",),
    )


def ort_config(config: BackendConfig) -> OnnxRuntimeConfig | None:
    """ONNX Runtime options ``config`` runs with (``auto`` resolved); None for other backends."""
    if isinstance(config, AutoConfig):
        return _auto_config(config)
    return config if isinstance(config, OnnxRuntimeConfig) else None


def _ort_backend(model_path: Path, options: OnnxRuntimeConfig, *, auto: bool) -> DetectorBackend:
    """The ONNX Runtime backend; ``auto`` goes on on the CPU, with a warning, when the CUDA
    provider is installed but cannot start (no GPU, no CUDA/cuDNN libraries)."""
    from .ort_backend import OnnxRuntimeBackend, ProviderNotStartedError

    try:
        return OnnxRuntimeBackend(model_path, options)
    except ProviderNotStartedError as exc:
        if not auto:
            raise
        event(log, "cuda_provider_not_started", logging.WARNING, reason=str(exc))
        cpu = options.model_copy(update={"providers": ("CPUExecutionProvider",)})
        return OnnxRuntimeBackend(model_path, cpu)


def build_backend(
    config: BackendConfig, model_path: Path, *, max_batch: int = 8
) -> DetectorBackend:
    """Load ``model_path`` with the configured backend and run one warm-up inference.

    Args:
        config: Which backend, and its options.
        model_path: The ONNX model.
        max_batch: Most frames per inference; TensorRT builds its engine's batch profile up to
            it (larger batches then take several engine calls). The others ignore it.

    Raises:
        BackendError: the model cannot be loaded, its layout is unknown, the backend's library
            or device is missing (``tensorrt``), or it is ``torch``, which runs only as the
            service's GPU core (:func:`~..loading.load_service_core`).
    """
    if isinstance(config, TorchConfig):
        raise BackendError(
            "backend 'torch' runs only as the service's GPU core (vsa detector), not as a "
            "standalone backend; use type 'onnxruntime', 'tensorrt' or 'auto' here"
        )
    backend: DetectorBackend
    if isinstance(config, TensorRTConfig):
        from .tensorrt_plan import import_tensorrt

        import_tensorrt()  # the clear error before torch and the rest load
        from .tensorrt_backend import TensorRTBackend

        backend = TensorRTBackend(model_path, config, max_batch)
    else:
        options = ort_config(config)
        assert options is not None  # neither torch nor tensorrt: auto or onnxruntime
        backend = _ort_backend(model_path, options, auto=isinstance(config, AutoConfig))
    backend.warmup()
    return backend
