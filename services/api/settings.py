"""Settings of the HTTP API (env prefix ``VSA_API_``): who may call it, and the Kafka side (the
live alert stream, cameras, frames).

The address and port stay in :class:`~vsa.services.indexer.settings.SearchSettings`
(``VSA_SEARCH_API_HOST``, ``VSA_SEARCH_API_PORT``), where ``vsa search-api`` has always read
them, as do the search settings themselves (index, model, collapse).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from typing_extensions import Self

from vsa.runtime.settings import KafkaSettings, TopicNames, VsaSettings

AuthMode = Literal["none", "api_key", "basic"]


class AuthSettings(BaseModel):
    """Who may call the API. ``/healthz``, ``/readyz`` and ``/metrics`` are always open (probes
    and Prometheus); every other path needs the credentials when a mode is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: AuthMode = Field(
        "none",
        description="none; api_key: the key in an X-API-Key header (or Authorization: Bearer); "
        "basic: HTTP basic auth (what a browser asks for, also on the live stream).",
    )
    api_key: SecretStr | None = Field(
        None, min_length=16, max_length=256, description="The key for mode api_key (masked)."
    )
    username: str | None = Field(
        None, min_length=1, max_length=128, description="User name for mode basic."
    )
    password: SecretStr | None = Field(
        None, min_length=8, max_length=256, description="Password for mode basic (masked)."
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.mode == "api_key" and self.api_key is None:
            raise ValueError("mode api_key needs api_key")
        if self.mode == "basic" and (self.username is None or self.password is None):
            raise ValueError("mode basic needs username and password")
        return self


class ApiSettings(VsaSettings):
    """The HTTP API (env prefix ``VSA_API_``; nested keys with ``__``, e.g.
    ``VSA_API_AUTH__MODE=basic``)."""

    model_config = SettingsConfigDict(env_prefix="VSA_API_")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicNames = Field(default_factory=TopicNames)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    allow_open_exposure: bool = Field(
        False,
        description="Serve on an address other than loopback without credentials (behind a "
        "proxy that authenticates). Off: such a start is refused.",
    )
    kafka_features: bool = Field(
        True,
        description="Run the Kafka readers: live alerts, cameras, frames. Off: search and the "
        "alert history only (those paths answer 503).",
    )
    camera_window_s: float = Field(
        10.0,
        ge=1,
        le=3600,
        description="Rates per camera are averaged over this many seconds. Longer: steadier "
        "numbers that follow a change more slowly.",
    )
    count_frames: bool = Field(
        True,
        description="Count frames per camera by reading the frames topic (every JPEG crosses "
        "the network once more). Off: frames/s is left out and nothing is read from frames but "
        "the frames asked for.",
    )
    stream_max_clients: int = Field(
        100, ge=1, le=10_000, description="Live alert streams open at once; more get 503."
    )
    stream_queue: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Alerts buffered per stream client. A client slower than the alerts loses "
        "the newest ones past this (counted in vsa_api_stream_dropped).",
    )
    stream_recent: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Latest alerts kept for a reconnecting client (Last-Event-ID): it gets "
        "those after the one it saw last.",
    )
    frame_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Longest wait for one record from Kafka, seconds."
    )
    tracks_scan: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="Most tracks-topic records read to find a frame's tracked boxes. Higher: "
        "boxes found for frames the tracker handled long after capture, slower misses.",
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds to this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, settings: ApiSettings) -> str | None:
    """Why serving on ``host`` with these settings is refused, or None."""
    if is_loopback(host) or settings.auth.mode != "none" or settings.allow_open_exposure:
        return None
    return (
        f"refusing to serve on {host} without credentials: set VSA_API_AUTH__MODE (api_key or "
        "basic) with its secret, bind 127.0.0.1, or set VSA_API_ALLOW_OPEN_EXPOSURE=true "
        "behind a proxy that authenticates"
    )
