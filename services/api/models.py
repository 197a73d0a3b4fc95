"""Request and response bodies of the HTTP API, as pydantic models (the OpenAPI schema comes
from these). Topic models are reused as they are: an alert is the alerts topic's ``Alert``, a
camera's config the camera-config topic's ``CameraConfig``, a frame reference ``FrameRef``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vsa.schemas import Alert, CameraConfig, FrameRef
from vsa.services.indexer.alert_history import AlertQuery
from vsa.services.indexer.like import LikeQuery
from vsa.services.indexer.search import SearchQuery


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorBody(_Out):
    """Every error: one line for people."""

    error: str = Field(description="What went wrong and, where it helps, what to do.")


class Duplicate(_Out):
    """A near-duplicate keyframe folded into a hit."""

    id: str
    score: float
    frame_seq: int
    capture_ts: float = Field(description="Capture time, UNIX seconds.")
    capture_time: str = Field(description="Capture time, ISO 8601 UTC.")


class Hit(_Out):
    """One matching keyframe (with its folded near-duplicates when the search collapsed)."""

    id: str = Field(description="Keyframe id, <camera_id>:<frame_seq>; for /search/similar.")
    score: float = Field(description="k-NN score (1 + cosine) / 2, or the RRF score (hybrid).")
    similarity: float | None = Field(description="Cosine of query and caption, when via k-NN.")
    camera_id: str
    frame_seq: int
    capture_ts: float = Field(description="Capture time, UNIX seconds.")
    capture_time: str = Field(description="Capture time, ISO 8601 UTC.")
    caption: str
    captioner: str
    classes: list[str]
    track_ids: list[int]
    alert_kinds: list[str]
    frame: FrameRef = Field(description="The frame in Kafka: GET /frames/{topic}/{partition}/...")
    thumbnail_jpeg_b64: str = Field(description="JPEG thumbnail, base64 (may be empty).")
    count: int = Field(description="Keyframes this hit stands for (1 + duplicates).")
    first_capture_time: str = Field(description="Earliest capture time of the group, ISO UTC.")
    last_capture_time: str = Field(description="Latest capture time of the group, ISO UTC.")
    duplicates: list[Duplicate]


class SearchResponse(_Out):
    """Hits, best first."""

    query: SearchQuery
    like: str | None = Field(None, description="The keyframe a 'more like this' started from.")
    took_ms: float
    hits: list[Hit]


class ObjectHit(_Out):
    """One object that looks like the query (an object of a keyframe)."""

    doc_id: str = Field(description="<camera_id>:<frame_seq>:<track_id>.")
    similarity: float = Field(description="Cosine of the two appearance vectors, -1..1.")
    camera_id: str
    frame_seq: int
    capture_time: str = Field(description="Capture time, ISO 8601 UTC.")
    track_id: int
    class_name: str
    xyxy: list[float] = Field(description="The object's box, pixels: x1, y1, x2, y2.")
    frame: FrameRef = Field(description="The frame in Kafka: GET /frames/{topic}/{partition}/...")


class ObjectsResponse(_Out):
    """Objects that look like the query object or image, most alike first."""

    query: LikeQuery
    like: str = Field(description="The object <camera>/<frame_seq>/<track_id>, or 'image'.")
    took_ms: float
    hits: list[ObjectHit]


class AlertsResponse(_Out):
    """Alerts from the alert history, newest first."""

    query: AlertQuery
    took_ms: float
    alerts: list[Alert]


class CameraRates(_Out):
    """Per second, over the last ``window_s`` seconds."""

    frames: float | None = Field(description="Frames ingested (null when not counted).")
    detections: float = Field(description="Frames the detector finished.")
    objects: float = Field(description="Boxes in those frames.")
    tracks: float = Field(description="Frames the tracker finished.")
    alerts: float
    classes: dict[str, float] = Field(description="Objects per class name.")


class CameraCounts(_Out):
    """Since the API started counting (a window before it started included)."""

    frames: int | None
    detections: int
    objects: int
    tracks: int
    alerts: int


class CameraStatus(_Out):
    """One camera: its config (when it has one) and what the pipeline made of it lately."""

    camera_id: str
    config: CameraConfig | None = Field(description="From the camera-config topic.")
    enabled: bool | None = Field(description="The config's enabled flag.")
    live: bool = Field(description="Messages of this camera within the window.")
    last_seen_s: float | None = Field(description="Seconds since its last message seen.")
    rates: CameraRates
    counts: CameraCounts
    last_alert: Alert | None = Field(description="Its newest alert in the alert history.")


class CamerasResponse(_Out):
    """Every camera configured or seen."""

    window_s: float
    cameras: list[CameraStatus]
    warnings: list[str] = Field(description="Parts that could not be read (e.g. OpenSearch).")


class HealthBody(BaseModel):
    """``/healthz`` and ``/readyz``: ok, and for readiness what blocks it."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    blocked: dict[str, str] | None = None


def hit_model(body: dict[str, Any]) -> Hit:
    """A :class:`Hit` from ``SearchHit.to_json()``."""
    return Hit.model_validate(body)
