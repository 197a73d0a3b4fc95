"""Detector backends behind one small interface, chosen by a config discriminated by ``type``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import BackendError, DetectorBackend
from .config import (
    AutoConfig,
    BackendConfig,
    OnnxRuntimeConfig,
    TensorRTConfig,
    TorchConfig,
)

if TYPE_CHECKING:
    from .ort_backend import OnnxRuntimeBackend

__all__ = [
    "AutoConfig",
    "BackendConfig",
    "BackendError",
    "DetectorBackend",
    "OnnxRuntimeBackend",
    "OnnxRuntimeConfig",
    "TensorRTConfig",
    "TorchConfig",
    "build_backend",
]


def __getattr__(name: str) -> Any:
    # ONNX Runtime loads only when a backend is used, so that reading the settings (every `vsa`
    # command builds its parser from them) stays light.
    if name == "OnnxRuntimeBackend":
        from .ort_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _auto_config(config: AutoConfig) -> OnnxRuntimeConfig:
    import onnxruntime as ort

    preferred = ("CUDAExecutionProvider", "CPUExecutionProvider")
    available = tuple(p for p in preferred if p in ort.get_available_providers())
    return OnnxRuntimeConfig(
        intra_op_num_threads=config.intra_op_num_threads,
        providers=available or ("CPUExecutionProvider",),
    )


def build_backend(config: BackendConfig, model_path: Path) -> DetectorBackend:
    """Load ``model_path`` with the configured backend and run one warm-up inference.

    Raises:
        BackendError: the model cannot be loaded, its layout is unknown, or the backend is
            not implemented (``torch``, ``tensorrt`` for now).
    """
    if isinstance(config, TorchConfig | TensorRTConfig):
        raise BackendError(
            f"backend type {config.type!r} is not implemented yet; use type 'onnxruntime' or 'auto'"
        )
    from .ort_backend import OnnxRuntimeBackend

    ort_config = _auto_config(config) if isinstance(config, AutoConfig) else config
    backend = OnnxRuntimeBackend(model_path, ort_config)
    backend.warmup()
    return backend
