"""Settings of the ingest service and of each camera it reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from vsa.runtime.redact import mask_url
from vsa.runtime.settings import (
    ConfigError,
    KafkaSettings,
    TopicNames,
    VsaSettings,
    read_yaml,
)

CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
LIVE_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "tcp://",
    "srt://",
)

SourceKind = Literal["file", "live", "images"]


class CameraSpec(BaseModel):
    """One camera: where its frames come from and how they are sampled and encoded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN, description="Kafka key of the camera.")
    url: str = Field(
        min_length=1, description="Video file, image folder, rtsp://, http(s):// (HLS)."
    )
    loop: bool = Field(False, description="Files: start again at the end (a simulated camera).")
    realtime: bool = Field(
        False,
        description="Files: pace frames at the file's own rate instead of as fast as possible.",
    )
    fps: float | None = Field(
        None,
        gt=0,
        le=240,
        description="Target frames/s; frames are dropped evenly to reach it. "
        "None keeps every frame. Lower it to save detector work.",
    )
    max_width: int | None = Field(None, ge=16, le=16384, description="Downscale wider frames (px).")
    max_height: int | None = Field(
        None, ge=16, le=16384, description="Downscale taller frames (px)."
    )
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality; higher: bigger frames.")

    @property
    def display_url(self) -> str:
        """The URL as logs and errors show it: user:password and secret query values masked."""
        return mask_url(self.url)

    @property
    def kind(self) -> SourceKind:
        """``live`` for network streams, ``images`` for a folder, else ``file``."""
        if self.url.lower().startswith(LIVE_SCHEMES):
            return "live"
        if Path(self.url).is_dir():
            return "images"
        return "file"


class IngestSettings(VsaSettings):
    """Ingest service settings (env prefix ``VSA_INGEST_``, or a YAML file with the same keys)."""

    model_config = SettingsConfigDict(env_prefix="VSA_INGEST_")

    cameras: tuple[CameraSpec, ...] = Field((), description="Cameras read by this process.")
    from_camera_config: bool = Field(
        False,
        description="Run the cameras of the camera-config topic instead of ``cameras``: those "
        "enabled with a source_url, sampled at fps_target, started, restarted and stopped as the "
        "topic changes. Replicas in one group_id share them by camera-config partition.",
    )
    group_id: str = Field(
        "vsa-ingest",
        min_length=1,
        max_length=200,
        description="With from_camera_config: the consumer group of the replicas that share "
        "camera-config's cameras; replicas in different groups each run every camera.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicNames = Field(default_factory=TopicNames)
    queue_frames: int = Field(
        8,
        ge=1,
        le=1024,
        description="Encoded frames buffered per camera between decode and Kafka. "
        "Higher absorbs Kafka hiccups at the cost of memory and latency.",
    )
    decode_threads: int = Field(
        0, ge=0, le=64, description="FFmpeg decoder threads per camera; 0 lets FFmpeg choose."
    )
    reconnect_min_s: float = Field(0.5, gt=0, le=60, description="First live-source retry delay.")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="Longest retry delay.")
    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Live source open/read timeout.")
    seq_recovery_scan: int = Field(
        500,
        ge=0,
        le=100_000,
        description="Frames read back per camera partition at start to "
        "continue frame_seq after a restart; 0 starts every camera at frame_seq 0.",
    )
    max_frames: int | None = Field(
        None, ge=1, description="Stop after publishing this many frames in total (tools, tests)."
    )
    metrics_host: str = Field("0.0.0.0", description="Address of the metrics/health server.")  # noqa: S104
    metrics_port: int = Field(
        9101, ge=0, le=65535, description="Port of /metrics, /healthz; 0: any."
    )

    @model_validator(mode="after")
    def _unique_cameras(self) -> IngestSettings:
        seen: set[str] = set()
        for cam in self.cameras:
            if cam.camera_id in seen:
                raise ValueError(f"camera_id {cam.camera_id!r} appears twice")
            seen.add(cam.camera_id)
        if self.from_camera_config and self.cameras:
            raise ValueError("from_camera_config takes cameras from camera-config: give no cameras")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class CamerasFile(BaseModel):
    """A YAML list of cameras: ``cameras: [{camera_id: ..., url: ...}, ...]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cameras: tuple[CameraSpec, ...]

    @field_validator("cameras")
    @classmethod
    def _not_empty(cls, value: tuple[CameraSpec, ...]) -> tuple[CameraSpec, ...]:
        if not value:
            raise ValueError("at least one camera is needed")
        return value


def load_cameras_file(path: Path) -> tuple[CameraSpec, ...]:
    """Read cameras from YAML, with errors that name the file, the camera and the field."""
    data = read_yaml(path)
    try:
        return CamerasFile.model_validate(data).cameras
    except ValueError as exc:
        raise ConfigError(f"{path}: {_describe(exc, data)}") from exc


def _describe(exc: ValueError, data: object) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            cams = data.get("cameras") if isinstance(data, dict) else None
            if isinstance(cams, list) and loc[1] < len(cams) and isinstance(cams[loc[1]], dict):
                where = f"camera {cams[loc[1]].get('camera_id', loc[1])!s}: " + ".".join(
                    str(p) for p in loc[2:]
                )
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def camera_from_flag(flag: str, index: int) -> CameraSpec:
    """Parse ``--camera`` values: ``URL`` or ``ID=URL`` with optional ``,key=value`` options.

    Example: ``cam1=rtsp://host/stream,fps=5,max_width=1280``.
    """
    head, *opts = flag.split(",")
    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._:-]*)=(.+)$", head)
    if match and "://" not in match.group(1):
        camera_id, url = match.group(1), match.group(2)
    else:
        camera_id, url = f"cam{index}", head
    fields: dict[str, object] = {"camera_id": camera_id, "url": url}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            raise ConfigError(f"--camera {mask_url(flag)!r}: option {opt!r} is not key=value")
        fields[key.strip()] = value.strip()
    try:
        return CameraSpec.model_validate(fields)
    except ValueError as exc:
        raise ConfigError(f"--camera {mask_url(flag)!r}: {_describe(exc, {})}") from exc
