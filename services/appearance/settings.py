"""Settings of the appearance embedder (pydantic only: imported by settings classes that must
load fast, such as ``vsa search``'s)."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Channels of the embedding (MobileNetV2's last layer, averaged over the crop).
EMBEDDING_DIMS: Final = 1280

Backend = Literal["auto", "onnxruntime", "torch"]


class AppearanceSettings(BaseModel):
    """How crops are embedded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Backend = Field(
        "auto",
        description="auto: torch on CUDA when a GPU is there, else ONNX Runtime on the CPU; "
        "onnxruntime; torch (CUDA if available, else CPU).",
    )
    threads: int = Field(
        1,
        ge=0,
        le=256,
        description="CPU threads of ONNX Runtime (0: one per core). More threads embed a "
        "batch faster and take cores from the other services of the host.",
    )
    max_batch: int = Field(
        32,
        ge=1,
        le=1024,
        description="Most crops per network run. Larger batches use a GPU better and take "
        "more memory.",
    )
    input_height: int = Field(
        224, ge=32, le=512, description="Crop height fed to the network, pixels."
    )
    input_width: int = Field(224, ge=32, le=512, description="Crop width fed to the network.")
