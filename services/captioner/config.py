"""Settings of the captioner service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from vsa.runtime.settings import ServiceSettings
from vsa.schemas.timezone import check_time_zone


class CaptionerSettings(ServiceSettings):
    """Captioner settings (env prefix ``VSA_CAPTIONER_``, or a YAML file with the same keys)."""

    model_config = SettingsConfigDict(env_prefix="VSA_CAPTIONER_")

    metrics_port: int = Field(9104, ge=0, le=65535, description="Port of /metrics, /healthz.")
    backend: Literal["scene", "blip"] = Field(
        "scene",
        description="'scene': describe from detections, tracks, colours and zones (no "
        "weights); 'blip': BLIP image captioning from blip_model_dir, combined with the scene.",
    )
    blip_model_dir: Path | None = Field(
        None,
        description="Local folder of a BlipForConditionalGeneration model and processor "
        "(config, weights, tokenizer). Nothing is downloaded.",
    )
    device: str = Field("auto", description="'auto' (CUDA when available), 'cpu' or 'cuda:N'.")
    captions_per_minute: float = Field(
        12.0,
        ge=0,
        le=6000,
        description="Per-camera limit; 0 disables it. Higher: more captions "
        "to index and more captioning work; keyframes over the limit are skipped, not queued.",
    )
    burst: int = Field(3, ge=1, le=1000, description="Captions a camera may have in a burst.")
    always_caption_alerts: bool = Field(
        True, description="Alert keyframes are captioned even over the rate limit."
    )
    camera_config_sync_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="At start, wait up to this long until the camera-config topic has been "
        "read to its end before captioning, so the first captions already name their zones. "
        "0: do not wait (the first captions may miss them).",
    )
    timezone: str | None = Field(
        None,
        max_length=64,
        description="IANA time zone (Europe/Paris) of the cameras whose camera-config names "
        "none, for the time of day in captions ('Morning', 'Evening'). null: this host's time "
        "zone (TZ, else /etc/localtime; containers are often UTC, so set it or the cameras' "
        "timezone there).",
    )
    decode_max_width: int = Field(
        480,
        ge=64,
        le=4096,
        description="Frames are decoded at the largest JPEG scale no wider "
        "than this (px) for colours and thumbnails; lower is faster.",
    )
    thumbnail_width: int = Field(320, ge=32, le=1024, description="Thumbnail width bound, px.")
    fetch_timeout_s: float = Field(5.0, gt=0, le=120, description="Frame read-back timeout.")
    idle_exit_s: float | None = Field(None, gt=0, description="Stop after this long idle (tools).")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)
