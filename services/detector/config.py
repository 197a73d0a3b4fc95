"""Settings of the detector service (env prefix ``VSA_DETECTOR_``, or a YAML file, same keys).

Examples: ``VSA_DETECTOR_MODEL=yolov3-tiny-int8``, ``VSA_DETECTOR_CONF_THRESHOLD=0.3``,
``VSA_DETECTOR_CLASSES='["person","car"]'``, ``VSA_DETECTOR_INPUT_SIZE='[320,416]'``,
``VSA_DETECTOR_BACKEND='{"type":"onnxruntime","intra_op_num_threads":2}'``,
``VSA_DETECTOR_MAX_BATCH=8``. Validators only check values; the model file is opened (and the
class names checked against it) when the service starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from vsa.runtime.settings import ServiceSettings
from vsa.services.appearance.settings import AppearanceSettings

from .backends.config import AutoConfig, BackendConfig, TensorRTConfig
from .preprocess import STRIDE

#: Names of the bundled models (fetched and converted into the cache on first use).
BUNDLED_MODELS = ("yolov3-tiny", "yolov3-tiny-int8", "yolov8-fall")
#: A little more than 8K UHD (7680x4320 = 33.2 Mpx).
DEFAULT_MAX_FRAME_PIXELS = 36_000_000


#: Most boxes per frame with appearance_vectors on (1280 float16 each, in base64).
MAX_BOXES_WITH_VECTORS = 200


class DetectorSettings(ServiceSettings):
    """Detector service settings; Kafka, topics, group, batching and metrics come from
    :class:`~vsa.runtime.settings.ServiceSettings`."""

    model_config = SettingsConfigDict(env_prefix="VSA_DETECTOR_")

    model: str = Field(
        "yolov3-tiny",
        min_length=1,
        description="Path to an ONNX detection model (converted Darknet, or an Ultralytics "
        "YOLOv8/YOLO11 export), or a bundled model: 'yolov3-tiny' (COCO, FP32) or "
        "'yolov3-tiny-int8' (the same, statically quantised on vtest frames: ~2x faster on CPU, "
        "~98 % of the FP32 boxes) or 'yolov8-fall' (an Ultralytics YOLOv8 export, classes Normal "
        "and Fall, 640x640). Bundled models are fetched and converted into the cache on "
        "first use.",
    )
    backend: BackendConfig = Field(
        default_factory=AutoConfig,
        description="Inference backend, by 'type': auto, onnxruntime, torch, tensorrt.",
    )
    conf_threshold: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Keep boxes scoring above this (0..1). Lower: more objects found, more "
        "false alarms.",
    )
    iou_threshold: float = Field(
        0.45,
        ge=0.0,
        le=1.0,
        description="NMS drops a box overlapping a better one of its class by more IoU than "
        "this. Lower: fewer duplicates, but people in a crowd may merge.",
    )
    max_det: int = Field(
        100, ge=1, le=10_000, description="Most detections kept per frame, best first."
    )
    appearance_vectors: bool = Field(
        False,
        description="Send every box's crop embedding with the detections (MobileNetV2 "
        "ImageNet features, 1280 float16 per box, about 3.4 KB each), for the tracker's "
        "re-attachment by appearance (tracking.reattach_min_similarity). Off by default: on "
        "the sample clip it cut ID switches but not identity errors, and costs about one CPU "
        "thread per ~12 frames/s of 8 boxes (BENCHMARKS.md); on a GPU it runs there.",
    )
    appearance: AppearanceSettings = Field(
        default_factory=AppearanceSettings,
        description="The embedder of appearance_vectors.",
    )
    classes: tuple[str, ...] = Field(
        (),
        max_length=1000,
        description="Class names to keep (e.g. person, car); empty keeps every class. Checked "
        "against the model's names at start. In the environment: a JSON list.",
    )
    max_batch: int = Field(
        8,
        ge=1,
        le=4096,
        description="Most frames per inference. On the CPU batching gains little and memory "
        "grows with it (~20 MB per frame of batch at 416); GPU backends want 32-128.",
    )
    input_size: tuple[int, int] | None = Field(
        None,
        description="Network input (height, width), multiples of 32, or one number for a "
        "square. Bundled models are converted at this size (default 416x416); a model file "
        "must have it. Larger finds smaller objects at a cost about proportional to pixels.",
    )
    decode_downscale: bool = Field(
        True,
        description="Decode large JPEGs at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling) when "
        "that still covers the network input: same detail for the network, far less CPU.",
    )
    max_frame_pixels: int = Field(
        DEFAULT_MAX_FRAME_PIXELS,
        ge=1,
        le=16384 * 16384,
        description="Frames with more pixels are sent to the dead letters before decoding "
        "(guards memory against absurd headers or JPEGs).",
    )
    idle_exit_s: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Stop after this long without messages (tests, batch jobs); None: never.",
    )
    metrics_port: int = Field(
        9102, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz; 0: any."
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in value):
            raise ValueError("class names must not be empty")
        if len(set(value)) != len(value):
            raise ValueError(f"class names appear twice: {list(value)}")
        return value

    @field_validator("input_size", mode="before")
    @classmethod
    def _square_size(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        if isinstance(value, str) and "x" in value:
            height, _, width = value.partition("x")
            return (height.strip(), width.strip())
        return value

    @field_validator("input_size")
    @classmethod
    def _check_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is None:
            return value
        for side in value:
            if not STRIDE <= side <= 4096 or side % STRIDE:
                raise ValueError(f"sides must be multiples of {STRIDE} within 32..4096: {value}")
        return value

    @model_validator(mode="after")
    def _vectors_fit_a_message(self) -> DetectorSettings:
        if self.appearance_vectors and self.max_det > MAX_BOXES_WITH_VECTORS:
            raise ValueError(
                f"appearance_vectors needs max_det <= {MAX_BOXES_WITH_VECTORS} (got "
                f"{self.max_det}): the vectors of more boxes do not fit a 1 MiB message"
            )
        return self

    @model_validator(mode="after")
    def _tensorrt_fits(self) -> DetectorSettings:
        backend = self.backend
        if not isinstance(backend, TensorRTConfig):
            return self
        if backend.opt_batch is not None and backend.opt_batch > self.max_batch:
            raise ValueError(
                f"backend.opt_batch {backend.opt_batch} exceeds max_batch {self.max_batch}: "
                "the engine's batch profile ends at max_batch"
            )
        if self.model == BUNDLED_MODELS[1]:  # quantised for ONNX Runtime (uint8 Q/DQ)
            raise ValueError(
                "backend 'tensorrt' builds its own INT8 engine from the float model: use model "
                "'yolov3-tiny' with backend precision 'int8'"
            )
        return self

    @property
    def service_group(self) -> str:
        """The consumer group: ``group_id`` or ``vsa-detector``."""
        return self.group_id or "vsa-detector"
