"""The interface every detector backend implements, and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..layout import ModelInfo

F32 = npt.NDArray[np.float32]


class BackendError(Exception):
    """A backend cannot be built or run; the message names the model file and the cause."""


def check_batch(batch: F32, input_size: tuple[int, int], model_path: Path) -> None:
    """ValueError unless ``batch`` is a non-empty float32 ``(n, 3, H, W)`` at ``input_size``."""
    expected = (3, *input_size)
    if batch.dtype != np.float32 or batch.ndim != 4 or batch.shape[1:] != expected:
        raise ValueError(
            f"{model_path}: batch must be float32 (n, {', '.join(map(str, expected))})"
            f", got {batch.dtype} {batch.shape}"
        )
    if batch.shape[0] < 1:
        raise ValueError("batch is empty")


class DetectorBackend(Protocol):
    """Runs one detection model on batches of letterboxed images.

    Implementations convert nothing: ``infer`` returns the model's raw output, whose layout
    ``model.layout`` names (see :mod:`vsa.services.detector.layout`); decoding happens in
    :mod:`vsa.services.detector.postprocess`.
    """

    @property
    def name(self) -> str:
        """Backend name as configured, e.g. ``onnxruntime``."""
        ...

    @property
    def model(self) -> ModelInfo:
        """The loaded model: path, output layout, input size, class names."""
        ...

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input ``(height, width)`` in pixels."""
        ...

    def infer(self, batch: F32) -> F32:
        """Raw output for ``batch`` ``(n, 3, H, W)`` float32 RGB 0..1; first axis ``n``."""
        ...

    def warmup(self) -> None:
        """Run one inference so that the first real batch does not pay for initialisation."""
        ...
