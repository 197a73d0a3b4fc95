"""Backend configuration: a union discriminated by ``type``.

``onnxruntime`` is implemented; ``torch`` and ``tensorrt`` are accepted by the configuration so
that files can name them, but building them raises :class:`~.base.BackendError` until they are
written. ``auto`` picks the best implemented backend on the machine (today: ONNX Runtime with
CUDA when onnxruntime-gpu provides it, else on the CPU).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _BackendConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OnnxRuntimeConfig(_BackendConfig):
    """ONNX Runtime, on the CPU by default."""

    type: Literal["onnxruntime"] = "onnxruntime"
    intra_op_num_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="Threads inside one operator (the convolutions); 0 lets ONNX Runtime use "
        "one per physical core. Lower it when several detectors share one machine.",
    )
    inter_op_num_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="Threads running independent operators in parallel; YOLO graphs are "
        "mostly sequential, so 1 avoids oversubscribing the cores.",
    )
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        min_length=1,
        description="ONNX Runtime execution providers in order of preference, e.g. "
        "('CUDAExecutionProvider', 'CPUExecutionProvider').",
    )


class TorchConfig(_BackendConfig):
    """PyTorch on the GPU: nvJPEG decode, letterbox, FP16 network with CUDA graphs and NMS all on
    the device (the detector service's GPU path; Darknet models only). ``device: cpu`` runs the
    same code on the CPU, for tests."""

    type: Literal["torch"] = "torch"
    device: str = Field("cuda:0", min_length=1, description="torch device, e.g. 'cuda:0'.")
    half: bool = Field(True, description="Run in float16 on the GPU.")


class TensorRTConfig(_BackendConfig):
    """TensorRT (not implemented yet: building it raises BackendError)."""

    type: Literal["tensorrt"] = "tensorrt"
    device_id: int = Field(0, ge=0, le=64, description="CUDA device index.")
    fp16: bool = Field(True, description="Allow float16 kernels when building the engine.")


class AutoConfig(_BackendConfig):
    """The best implemented backend available here (see the module docstring)."""

    type: Literal["auto"] = "auto"
    intra_op_num_threads: int = Field(
        0, ge=0, le=1024, description="CPU threads per operator when it runs on the CPU; 0: auto."
    )


BackendConfig = Annotated[
    OnnxRuntimeConfig | TorchConfig | TensorRTConfig | AutoConfig, Field(discriminator="type")
]
