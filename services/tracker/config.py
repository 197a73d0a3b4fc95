"""Settings of the tracker service (env prefix ``VSA_TRACKER_``, or a YAML file, same keys).

Examples: ``VSA_TRACKER_DATADIR=/var/lib/vsa/tracker``, ``VSA_TRACKER_RULES_FILE=rules.yaml``,
``VSA_TRACKER_TRACKING__MATCH_IOU=0.3`` (a :class:`~vsa.services.tracker.core.TrackerConfig`
knob), ``VSA_TRACKER_KEYFRAME_INTERVAL_S=5``, ``VSA_TRACKER_SESSION_TIMEOUT_S=10``,
``VSA_TRACKER_KNOWN_CLASSES='["person","car"]'``. Validators only check values; the rules file
is read and the topics are looked up when the service starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from typing_extensions import Self

from vsa.runtime.settings import ServiceSettings

from .core import TrackerConfig

SERVICE = "tracker"


def _coco_names() -> tuple[str, ...]:
    from vsa.services.detector.models import COCO_CLASS_NAMES

    return tuple(COCO_CLASS_NAMES)


class TrackerSettings(ServiceSettings):
    """Tracker service settings; Kafka, topics, group, batching and metrics come from
    :class:`~vsa.runtime.settings.ServiceSettings`.

    ``group_id`` (default ``vsa-tracker``) is also the Faust app id: it names the consumer group
    and the state changelog topic ``<group_id>-camera-state-changelog``. Workers with the same
    id share the cameras; change it and the state starts empty.
    """

    model_config = SettingsConfigDict(env_prefix="VSA_TRACKER_")

    datadir: Path = Field(
        Path("tracker-data"),
        description="Folder of the local state store (RocksDB, one database per partition). "
        "Losing it costs only a replay of the changelog topic at start; keep it on a "
        "persistent volume so a restart does not have to.",
    )
    store: Literal["rocksdb", "memory"] = Field(
        "rocksdb",
        description="Local store of the state table: 'rocksdb' (production) or 'memory' "
        "(tests, tiny deployments: every start rebuilds the state from the changelog).",
    )
    rocksdb_block_cache_mib: int = Field(
        64,
        ge=1,
        le=65_536,
        description="RocksDB block cache per state partition the worker holds, MiB (Faust's "
        "default is 2 GiB). The state is a few KB per camera, so a small cache holds it all.",
    )
    rocksdb_write_buffer_mib: int = Field(
        16,
        ge=1,
        le=4096,
        description="RocksDB memtable size per state partition, MiB; up to two per partition "
        "(Faust's default: three of 64 MiB). Worst-case memory of the store is about "
        "partitions held x (cache + 2 x write buffer): size the pod's memory limit with it.",
    )
    rules_file: Path | None = Field(
        None,
        description="YAML camera configs (one mapping with camera_id, or 'cameras: [...]'). "
        "A config for the same camera on the camera-config topic replaces it while it is "
        "there; a tombstone there brings the file's config back.",
    )
    follow_camera_config: bool = Field(
        True,
        description="Read the compacted camera-config topic from the start and follow it "
        "(changes apply to the next frame). Off: only rules_file applies.",
    )
    camera_config_sync_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="At start, wait up to this long until the camera-config topic has been "
        "read to its end before tracking, so the first frames already see their rules. "
        "0: do not wait (the first frames may be tracked without rules).",
    )
    tracking: TrackerConfig = Field(
        default_factory=TrackerConfig,
        description="Knobs of the tracking core (thresholds, track buffers, Kalman noise).",
    )
    keyframe_interval_s: float | None = Field(
        None,
        ge=0,
        le=86_400,
        description="Seconds between periodic keyframes for every camera, overriding the "
        "cameras' own keyframe_interval_s; 0 turns periodic keyframes off; None: per camera.",
    )
    anchor: Literal["center", "bottom_center"] = Field(
        "center",
        description="Point of a box tested against zones and lines: the box centre, or the "
        "middle of its bottom edge (the feet of a person on an oblique camera).",
    )
    known_classes: tuple[str, ...] = Field(
        default_factory=_coco_names,
        max_length=10_000,
        description="Class names the detector can produce (default: the 80 COCO names); a "
        "rule naming another class is refused. Empty: do not check. Env: a JSON list.",
    )
    session_timeout_s: float = Field(
        30.0,
        ge=1,
        le=600,
        description="Kafka group session timeout: a worker that stops heart-beating for this "
        "long (killed, frozen) loses its cameras to the others. Lower: faster fail-over after "
        "a crash; too low: needless rebalances on a busy machine.",
    )
    heartbeat_interval_s: float = Field(
        3.0,
        gt=0,
        le=60,
        description="Seconds between group heartbeats; keep it under a third of session_timeout_s.",
    )
    rebalance_timeout_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="How long a rebalance may take; members that have not rejoined by then "
        "are dropped.",
    )
    commit_interval_s: float = Field(
        2.8,
        gt=0,
        le=600,
        description="Seconds between offset commits. Lower: fewer frames to re-read after a "
        "crash (they are skipped as already applied, but read again); higher: less overhead.",
    )
    standby_replicas: int = Field(
        1,
        ge=0,
        le=10,
        description="Other workers keep a warm copy of each camera's state (from the "
        "changelog), so a fail-over does not wait for a full replay. 0 saves their CPU.",
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Replicas of the state changelog topic. Unset: asked from Kafka at start, "
        "3 on a cluster of 3 or more brokers, else 1 (as for the pipeline's topics).",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=16,
        description="min.insync.replicas of the changelog topic. Unset: 2 when its replication "
        "factor is 3 or more, else 1.",
    )
    max_batch: int = Field(
        256,
        ge=1,
        le=4096,
        description="Most detections messages handled together: their outputs are produced "
        "and acknowledged together before the states are written. Higher: fewer waits for "
        "Kafka's acknowledgement (throughput); lower: less work redone after a crash.",
    )
    max_wait_ms: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Longest wait to fill a batch once a message is there; the latency an "
        "idle stream adds to a frame.",
    )
    produce_timeout_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Outputs of a batch unacknowledged this long make the worker not ready "
        "(/readyz 503, blocker kafka_produce). It keeps waiting however long Kafka is away; "
        "after SIGTERM it waits 10 s at most, then exits 0 without committing the batch.",
    )
    producer_linger_ms: int = Field(
        1,
        ge=0,
        le=1000,
        description="The producer waits this long to fill a request. Higher: bigger requests "
        "under load, more latency.",
    )
    framework_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING",
        description="Log level of Faust, mode and aiokafka (rebalance and recovery chatter "
        "at INFO).",
    )
    metrics_port: int = Field(
        9103, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz; 0: any."
    )

    @field_validator("known_classes", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> Self:
        if self.heartbeat_interval_s * 3 > self.session_timeout_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s}) must be at most a third "
                f"of session_timeout_s ({self.session_timeout_s})"
            )
        return self

    @property
    def service_group(self) -> str:
        """The Faust app id and consumer group: ``group_id`` or ``vsa-tracker``."""
        return self.group_id or "vsa-tracker"
