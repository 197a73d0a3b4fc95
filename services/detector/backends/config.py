"""Backend configuration: a union discriminated by ``type``.

``onnxruntime`` runs ONNX models on the CPU (or CUDA with onnxruntime-gpu); ``torch`` is the GPU
service path for Darknet models; ``tensorrt`` builds a TensorRT engine from an ONNX model.

``auto`` picks ONNX Runtime with the CUDA provider when onnxruntime-gpu offers it, else ONNX
Runtime on the CPU. It never picks ``torch`` or ``tensorrt``, even where they import and a CUDA
device is present: both are opted into by name, because TensorRT's first start builds an engine
(minutes) and neither has been verified as a service on a GPU yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    allow_spinning: bool = Field(
        True,
        description="Let the intra-op threads spin (busy-wait) between operators, as ONNX "
        "Runtime does by default: a little lower latency on cores of their own; on a machine "
        "shared with other services the spinning burns CPU they need. Only matters with more "
        "than one intra-op thread.",
    )
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        min_length=1,
        description="ONNX Runtime execution providers in order of preference, e.g. "
        "('CUDAExecutionProvider', 'CPUExecutionProvider').",
    )
    cuda_tf32: bool = Field(
        True,
        description="CUDA provider: TensorFloat-32 matrix math in convolutions (ONNX Runtime's "
        "default). On an H100 it runs YOLOv3-tiny's network 1.8x faster, and a few boxes near "
        "the thresholds differ from the CPU provider's; False computes in full float32 and "
        "gives the CPU's boxes (IoU >= 0.999).",
    )


class TorchConfig(_BackendConfig):
    """PyTorch on the GPU: nvJPEG decode, letterbox, FP16 network with CUDA graphs and NMS all on
    the device (the detector service's GPU path; Darknet models only). ``device: cpu`` runs the
    same code on the CPU, for tests."""

    type: Literal["torch"] = "torch"
    device: str = Field("cuda:0", min_length=1, description="torch device, e.g. 'cuda:0'.")
    half: bool = Field(True, description="Run in float16 on the GPU.")


class TensorRTConfig(_BackendConfig):
    """TensorRT 10: an engine built from the ONNX model (FP16, or INT8 calibrated on frames),
    with a dynamic batch profile, cached on disk; the service runs it inside the GPU path
    (nvJPEG decode, GPU letterbox, GPU NMS)."""

    type: Literal["tensorrt"] = "tensorrt"
    device_id: int = Field(0, ge=0, le=64, description="CUDA device index.")
    precision: Literal["fp16", "int8"] = Field(
        "fp16",
        description="fp16: float16 kernels where TensorRT finds them faster (boxes agree with "
        "float32 to rounding). int8: also int8 kernels, scales calibrated on frames (faster "
        "again, a few boxes lost or moved).",
    )
    opt_batch: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Batch size TensorRT tunes its kernels for (the profile's 'opt'; 'min' is 1, "
        "'max' the service's max_batch). None: max_batch. Set it to the batch the service "
        "usually fills when traffic is light.",
    )
    workspace_mib: int = Field(
        2048,
        ge=16,
        le=1 << 20,
        description="GPU scratch memory the builder may give one layer, MiB. More lets it try "
        "faster kernels; less keeps memory for other processes on the GPU.",
    )
    engine_cache_dir: Path | None = Field(
        None,
        description="Folder of built engines, one file per key (ONNX digest, GPU name and "
        "compute capability, TensorRT version, precision, batch profile); None: "
        "<vsa cache>/tensorrt. Must be writable or every start rebuilds (minutes).",
    )
    calibration_frames: Path | None = Field(
        None,
        description="int8: folder of JPEG frames to calibrate on (sorted by name, 512 at most); "
        "None: the frames of the sample clip the INT8 ONNX model is calibrated on.",
    )
    calibration_cache: Path | None = Field(
        None,
        description="int8: calibration scales file, read when it exists (no frames needed) and "
        "written after calibrating; None: next to the engines, named after the ONNX digest.",
    )

    @model_validator(mode="after")
    def _int8_fields_need_int8(self) -> TensorRTConfig:
        named = [
            name
            for name in ("calibration_frames", "calibration_cache")
            if getattr(self, name) is not None
        ]
        if named and self.precision != "int8":
            raise ValueError(f"{', '.join(named)} only apply with precision 'int8'")
        return self


class AutoConfig(_BackendConfig):
    """ONNX Runtime with CUDA where onnxruntime-gpu offers it, else on the CPU (see the module
    docstring: never torch or tensorrt)."""

    type: Literal["auto"] = "auto"
    intra_op_num_threads: int = Field(
        0, ge=0, le=1024, description="CPU threads per operator when it runs on the CPU; 0: auto."
    )


BackendConfig = Annotated[
    OnnxRuntimeConfig | TorchConfig | TensorRTConfig | AutoConfig, Field(discriminator="type")
]
