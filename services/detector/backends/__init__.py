"""Detector backends behind one small interface, chosen by a config discriminated by ``type``."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from .base import BackendError, DetectorBackend
from .config import (
    AutoConfig,
    BackendConfig,
    OnnxRuntimeConfig,
    TensorRTConfig,
    TorchConfig,
)
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


def _auto_config(config: AutoConfig) -> OnnxRuntimeConfig:
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
    ort_config = _auto_config(config) if isinstance(config, AutoConfig) else config
    backend = OnnxRuntimeBackend(model_path, ort_config)
    backend.warmup()
    return backend
