"""ONNX Runtime backend (CPU by default; CUDA when onnxruntime-gpu is installed and asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..layout import ModelInfo, ModelLayoutError, describe_onnx
from .base import F32, BackendError, check_batch
from .config import OnnxRuntimeConfig


def _session_options(config: OnnxRuntimeConfig) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_num_threads
    options.inter_op_num_threads = config.inter_op_num_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not config.allow_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


#: Providers that need CUDA and cuDNN libraries loaded before their session starts.
CUDA_PROVIDERS = frozenset({"CUDAExecutionProvider"})


class ProviderNotStartedError(BackendError):
    """A session started without a provider it was asked for (ONNX Runtime fell back)."""


def check_active_providers(path: Path, requested: Sequence[str], active: Sequence[str]) -> None:
    """:class:`ProviderNotStartedError` when a session left out a provider it was asked for.

    ONNX Runtime does not fail when the CUDA provider cannot load its libraries (CUDA, cuDNN): it
    logs a warning and runs on the CPU, tens of times slower. A detector asked for a GPU must
    stop at start instead.
    """
    dropped = [name for name in requested if name not in active]
    if dropped:
        raise ProviderNotStartedError(
            f"{path}: ONNX Runtime {ort.__version__} could not start {dropped} and would run on "
            f"{list(active)}; the CUDA provider needs the CUDA 13 and cuDNN 9 libraries "
            "(the nvidia-* pip packages, e.g. those of torch cu130, or the system's)"
        )


def _preload_cuda_libraries(providers: Sequence[str]) -> None:
    # onnxruntime-gpu links CUDA and cuDNN by soname without a search path into the nvidia-* pip
    # packages; preload_dlls() loads them from there (or keeps those torch already loaded).
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None and CUDA_PROVIDERS.intersection(providers):
        preload()


def provider_list(config: OnnxRuntimeConfig) -> list[str | tuple[str, dict[str, str]]]:
    """``config.providers`` as ONNX Runtime takes them, the CUDA provider with its options."""
    cuda_options = {"use_tf32": "1" if config.cuda_tf32 else "0"}
    return [
        (name, cuda_options) if name == "CUDAExecutionProvider" else name
        for name in config.providers
    ]


def open_session(path: Path, config: OnnxRuntimeConfig) -> ort.InferenceSession:
    """An inference session for ``path``; every failure becomes a :class:`BackendError`, a
    provider that was asked for but did not start included."""
    if not path.is_file():
        raise BackendError(f"{path}: model file not found")
    missing = [p for p in config.providers if p not in ort.get_available_providers()]
    if missing:
        raise BackendError(
            f"{path}: ONNX Runtime {ort.__version__} lacks providers {missing}; "
            f"available: {ort.get_available_providers()}"
        )
    try:
        _preload_cuda_libraries(config.providers)
        session = ort.InferenceSession(
            str(path), sess_options=_session_options(config), providers=provider_list(config)
        )
    except Exception as exc:  # ORT raises its own pybind exception types
        raise BackendError(f"{path}: ONNX Runtime cannot load the model: {exc}") from exc
    check_active_providers(path, config.providers, session.get_providers())
    return session


def _dims(node: Any) -> list[int | str | None]:
    return [dim if isinstance(dim, int) else (dim or None) for dim in node.shape]


class OnnxRuntimeBackend:
    """Runs a detection ONNX model (``darknet`` or ``ultralytics`` layout) with ONNX Runtime.

    Models exported with a fixed batch size (Ultralytics' default is 1) get batches cut into
    pieces of that size, the last one padded; dynamic-batch models run each batch whole.
    """

    def __init__(self, path: Path, config: OnnxRuntimeConfig) -> None:
        self._session = open_session(path, config)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise BackendError(f"{path}: {len(inputs)} inputs, expected one image input")
        metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        try:
            self._model = describe_onnx(path, _dims(inputs[0]), _dims(outputs[0]), metadata)
        except ModelLayoutError as exc:
            raise BackendError(str(exc)) from exc
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        batch_dim = _dims(inputs[0])[0]
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self._providers = tuple(self._session.get_providers())

    @property
    def name(self) -> str:
        return "onnxruntime"

    @property
    def model(self) -> ModelInfo:
        return self._model

    @property
    def input_size(self) -> tuple[int, int]:
        return self._model.input_size

    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers the session uses, best first."""
        return self._providers

    def _run(self, batch: F32) -> F32:
        result = self._session.run([self._output_name], {self._input_name: batch})[0]
        return np.asarray(result, dtype=np.float32)

    def infer(self, batch: F32) -> F32:
        """Raw model output for ``batch`` ``(n, 3, H, W)`` float32 RGB 0..1."""
        check_batch(batch, self.input_size, self._model.path)
        size = self._fixed_batch
        if size is None or batch.shape[0] == size:
            return self._run(np.ascontiguousarray(batch))
        pieces = []
        for start in range(0, batch.shape[0], size):
            piece = batch[start : start + size]
            padded = np.zeros((size, *piece.shape[1:]), np.float32)
            padded[: piece.shape[0]] = piece
            pieces.append(self._run(padded)[: piece.shape[0]])
        return np.concatenate(pieces, axis=0)

    def warmup(self) -> None:
        """One inference on a grey batch of the model's batch size (1 when dynamic)."""
        height, width = self.input_size
        self.infer(np.full((self._fixed_batch or 1, 3, height, width), 0.5, np.float32))
