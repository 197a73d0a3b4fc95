"""The tracker's own Prometheus metrics, in the service registry next to the runtime's
(``vsa_messages_in``/``out``, ``vsa_dead_letters``, ``vsa_processing_seconds`` per batch)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from vsa.runtime.metrics import ServiceMetrics

_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_AGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_STATE_BUCKETS = (256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304)


class TrackerMetrics:
    """Counters and histograms of the tracker, labelled with the service name."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.base = metrics
        self.service = metrics.service
        self._counters(metrics.registry)
        self._histograms(metrics.registry)
        self._frame_age = self.frame_age.labels(self.service)  # once per frame: keep the child

    def _counters(self, registry: CollectorRegistry) -> None:
        self.frames = Counter(
            "vsa_tracker_frames",
            "Detections messages by outcome: applied, already_applied (redelivered, skipped), "
            "restarted (applied to a camera whose frame_seq restarted: it started over), "
            "disabled (camera config enabled: false), failed (sent to the dead letters).",
            ["service", "outcome"],
            registry=registry,
        )
        self.alerts = Counter(
            "vsa_tracker_alerts",
            "Alerts produced, by rule kind.",
            ["service", "kind"],
            registry=registry,
        )
        self.offset_gaps = Counter(
            "vsa_tracker_offset_gaps",
            "Detections offsets the stream skipped: outcome sought (the partition was sought back "
            "to the missing offset) or given_up (no record came at that offset after every seek; "
            "the worker went on without it). See offsets.py.",
            ["service", "outcome"],
            registry=registry,
        )
        self.config_invalid = Counter(
            "vsa_tracker_camera_config_invalid",
            "Camera configs refused (bad schema or unknown class); the previous rules stay.",
            ["service"],
            registry=registry,
        )
        self.cameras = Gauge(
            "vsa_tracker_cameras_with_rules",
            "Cameras with rules in force.",
            ["service"],
            registry=registry,
        )

    def _histograms(self, registry: CollectorRegistry) -> None:
        self.stage_seconds = Histogram(
            "vsa_tracker_stage_seconds",
            "Time of one batch in each stage (process: decode + track + rules + encode; "
            "produce: until Kafka acknowledged the outputs; state: table writes), seconds.",
            ["service", "stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.frame_age = Histogram(
            "vsa_tracker_frame_age_seconds",
            "Capture-to-output time of applied frames (wall clock now minus capture_ts), seconds.",
            ["service"],
            buckets=_AGE_BUCKETS,
            registry=registry,
        )
        self.state_bytes = Histogram(
            "vsa_tracker_state_bytes",
            "Size of each camera state written to the table (and its changelog), bytes.",
            ["service"],
            buckets=_STATE_BUCKETS,
            registry=registry,
        )

    def observe_frame_age(self, seconds: float) -> None:
        """One applied frame's capture-to-output time, seconds."""
        self._frame_age.observe(seconds)

    def count_frames(self, outcome: str, n: int = 1) -> None:
        if n:
            self.frames.labels(self.service, outcome).inc(n)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(self.service, stage).observe(seconds)
