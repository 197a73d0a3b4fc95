"""The interface every detector backend implements, and its errors."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..layout import ModelInfo

F32 = npt.NDArray[np.float32]


class BackendError(Exception):
    """A backend cannot be built or run; the message names the model file and the cause."""


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
