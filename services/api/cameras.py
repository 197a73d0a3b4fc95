"""Cameras as the API shows them: the camera-config topic plus what the pipeline made of each
camera lately (frames, detections, objects, tracks, alerts per second and since start).

:class:`CameraWatch` follows camera-config (:class:`~vsa.runtime.camera_configs.CameraConfigs`)
and reads frames, detections and tracks as a bystander (:class:`~vsa.runtime.tail.TopicTail`:
partitions assigned from their end at start, no group, no commits), counting per camera with the
demo's :class:`~vsa.demo_cameras.CameraCounter`; alerts come from the live alert feed, so the
alerts topic is read once. Frames and tracks are counted by their key, never decoded;
detections are decoded for their boxes' classes. :func:`camera_statuses` (pure) turns the counts
into the response.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from vsa.demo_cameras import CameraCounter, Tally, detections_tally
from vsa.runtime.camera_configs import CameraConfigs
from vsa.runtime.logs import event
from vsa.runtime.redact import mask_url
from vsa.runtime.settings import KafkaSettings, TopicNames
from vsa.runtime.tail import TopicTail
from vsa.schemas import Alert, CameraConfig, Detections, SchemaError
from vsa.services.indexer.mapping import F_CAMERA, F_TIME

from .models import CameraCounts, CameraRates, CameraStatus

log = logging.getLogger("vsa.api.cameras")

#: Seconds between looks for topics that did not exist yet.
RETRY_S: Final = 5.0
#: What one record of these topics counts as (detections are decoded for their objects).
ONE_RECORD: Final = {"frames": Tally(frames=1), "tracks": Tally(tracks=1)}


def record_tally(logical_topic: str, key: bytes | None, value: bytes | None) -> tuple[str, Tally]:
    """The camera a record belongs to (its key) and what it adds to that camera's counts."""
    camera_id = (key or b"?").decode("utf-8", "replace")
    if logical_topic != "detections":
        return camera_id, ONE_RECORD[logical_topic]
    try:
        detections = Detections.from_bytes(value or b"")
    except SchemaError:
        return camera_id, Tally(detections=1)
    return detections.camera_id, detections_tally(box.class_name for box in detections.boxes)


@dataclass(frozen=True)
class CameraSnapshot:
    """Everything known about the cameras at one moment (the input of the response)."""

    configs: Mapping[str, CameraConfig]
    window: Mapping[str, Tally]
    span_s: float
    totals: Mapping[str, Tally]
    seen_ago_s: Mapping[str, float]
    last_alerts: Mapping[str, Alert]
    frames_counted: bool


def _rates(tally: Tally, span_s: float, frames_counted: bool) -> CameraRates:
    per_s = 1.0 / span_s
    return CameraRates(
        frames=round(tally.frames * per_s, 3) if frames_counted else None,
        detections=round(tally.detections * per_s, 3),
        objects=round(tally.objects * per_s, 3),
        tracks=round(tally.tracks * per_s, 3),
        alerts=round(tally.alerts * per_s, 3),
        classes={name: round(n * per_s, 3) for name, n in sorted(tally.classes.items())},
    )


def _counts(tally: Tally, frames_counted: bool) -> CameraCounts:
    return CameraCounts(
        frames=tally.frames if frames_counted else None,
        detections=tally.detections,
        objects=tally.objects,
        tracks=tally.tracks,
        alerts=tally.alerts,
    )


def shown_config(config: CameraConfig | None) -> CameraConfig | None:
    """A camera's config as the API shows it: credentials in its source URL masked."""
    if config is None or config.source_url is None:
        return config
    return config.model_copy(update={"source_url": mask_url(config.source_url)})


def camera_statuses(snap: CameraSnapshot, window_s: float) -> list[CameraStatus]:
    """One status per camera configured or seen, sorted by camera id (source URLs masked)."""
    cameras = sorted({*snap.configs, *snap.totals, *snap.last_alerts})
    statuses = []
    for camera_id in cameras:
        config = shown_config(snap.configs.get(camera_id))
        ago = snap.seen_ago_s.get(camera_id)
        statuses.append(
            CameraStatus(
                camera_id=camera_id,
                config=config,
                enabled=None if config is None else config.enabled,
                live=ago is not None and ago <= window_s,
                last_seen_s=None if ago is None else round(ago, 3),
                rates=_rates(snap.window.get(camera_id, Tally()), snap.span_s, snap.frames_counted),
                counts=_counts(snap.totals.get(camera_id, Tally()), snap.frames_counted),
                last_alert=snap.last_alerts.get(camera_id),
            )
        )
    return statuses


def newest_alerts(*sources: Mapping[str, Alert]) -> dict[str, Alert]:
    """Per camera, the newest alert (by capture time) of all ``sources``."""
    newest: dict[str, Alert] = {}
    for source in sources:
        for camera_id, alert in source.items():
            if camera_id not in newest or alert.ts > newest[camera_id].ts:
                newest[camera_id] = alert
    return newest


def last_alerts_body(cameras: Sequence[str]) -> dict[str, Any]:
    """Alerts-index search body: the newest alert of each camera (a terms aggregation with one
    top hit each), no other hits."""
    return {
        "size": 0,
        "query": {"bool": {"filter": [{"terms": {F_CAMERA: list(cameras)}}]}},
        "aggs": {
            "cameras": {
                "terms": {"field": F_CAMERA, "size": max(1, len(cameras))},
                "aggs": {"last": {"top_hits": {"size": 1, "sort": [{F_TIME: {"order": "desc"}}]}}},
            }
        },
    }


def last_alert_sources(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``_source`` of each camera's newest alert in a :func:`last_alerts_body` response."""
    buckets = response.get("aggregations", {}).get("cameras", {}).get("buckets", [])
    return [hit["_source"] for bucket in buckets for hit in bucket["last"]["hits"]["hits"][:1]]


class CameraWatch:
    """Counts per camera from the topics, and follows camera-config (see the module docstring).

    Args:
        window_s: rates are averaged over this many seconds.
        count_frames: also read the frames topic (every JPEG) to count frames per camera.
    """

    def __init__(
        self, kafka: KafkaSettings, topics: TopicNames, window_s: float, count_frames: bool
    ) -> None:
        self.kafka, self.topics, self.window_s = kafka, topics, window_s
        self.count_frames = count_frames
        self.configs = CameraConfigs(kafka, topics.name("camera_config"), "api-cameras")
        self.counter = CameraCounter(window_s)
        self._seen: dict[str, float] = {}
        self._alerts: dict[str, Alert] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._missing: set[str] = set()
        self._thread: threading.Thread | None = None

    @property
    def logical_topics(self) -> tuple[str, ...]:
        return ("frames", "detections", "tracks") if self.count_frames else ("detections", "tracks")

    def start(self) -> None:
        self.configs.start()
        self._thread = threading.Thread(target=self._run, name="api-cameras", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.configs.stop()
        if self._thread is not None:
            self._thread.join(10)

    def problem(self) -> str | None:
        """Topics not followed yet (they do not exist), or None."""
        missing = sorted(self._missing)
        return f"topics not there yet: {', '.join(missing)}" if missing else None

    def add(self, camera_id: str, tally: Tally) -> None:
        with self._lock:
            self._seen[camera_id] = time.monotonic()
        self.counter.add(camera_id, tally)

    def add_alert(self, alert: Alert) -> None:
        """An alert from the live feed: counted, and kept as the camera's last."""
        self.add(alert.camera_id, Tally(alerts=1))
        with self._lock:
            known = self._alerts.get(alert.camera_id)
            if known is None or alert.ts >= known.ts:
                self._alerts[alert.camera_id] = alert

    def snapshot(self, last_alerts: Mapping[str, Alert] | None = None) -> CameraSnapshot:
        """The counts now; ``last_alerts`` (e.g. from the alert history) merged with the feed's."""
        window, span_s = self.counter.window()
        now = time.monotonic()
        with self._lock:
            seen = {camera: now - at for camera, at in self._seen.items()}
            alerts = newest_alerts(self._alerts, last_alerts or {})
        return CameraSnapshot(
            configs=self.configs.snapshot(),
            window=window,
            span_s=span_s,
            totals=self.counter.totals(),
            seen_ago_s=seen,
            last_alerts=alerts,
            frames_counted=self.count_frames,
        )

    def _run(self) -> None:
        tails: dict[str, TopicTail] = {}
        self._missing = set(self.logical_topics)
        retry_at = 0.0
        try:
            while not self._stop.is_set():
                if self._missing and time.monotonic() >= retry_at:
                    self._open_missing(tails)
                    retry_at = time.monotonic() + RETRY_S
                if not tails:
                    self._stop.wait(2.0)
                    continue
                for logical, tail in tails.items():
                    for record in tail.poll(0.1):
                        self.add(*record_tally(logical, record.key, record.value))
        except Exception:  # the API keeps serving; counts stop, readiness says why
            self._missing = set(self.logical_topics) - set(tails)
            log.exception("api_cameras_reader_failed")
        finally:
            for tail in tails.values():
                tail.close()

    def _open_missing(self, tails: dict[str, TopicTail]) -> None:
        for logical in sorted(self._missing):
            tail = TopicTail(self.kafka, self.topics.name(logical), f"api-cameras-{logical}")
            try:
                tail.start(timeout_s=5.0)
            except Exception:  # missing topic or Kafka not answering: next look
                tail.close()
                continue
            tails[logical] = tail
            self._missing.discard(logical)
            event(log, "api_cameras_following", topic=self.topics.name(logical))
