"""The topics of a vsa pipeline and how they are created (``vsa topics create``).

Auto topic creation is off on the broker: topics are created here, with partitions, replication
and retention from settings (replication from the cluster's size unless set). All keyed topics
share one partition count so a camera lands on the same partition number everywhere (the
tracker's table co-partitions with its input).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from vsa.runtime.settings import TopicNames, TopicSpec, VsaSettings

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SERVICES = ("ingest", "detector", "tracker", "captioner", "indexer", "notifier")


class TopicsSettings(VsaSettings):
    """Topic layout (env prefix ``VSA_TOPICS_``, e.g. ``VSA_TOPICS_PARTITIONS=32``)."""

    model_config = SettingsConfigDict(env_prefix="VSA_TOPICS_")

    names: TopicNames = Field(default_factory=TopicNames)
    partitions: int = Field(
        8,
        ge=1,
        le=10_000,
        description="Partitions of every keyed topic; the most consumers of one "
        "group that can work in parallel. Raise it before adding cameras' worth of pods.",
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Replicas of every partition. Unset: asked from Kafka when the topics are "
        "created, 3 on a cluster of 3 or more brokers (the production shape), else 1. Set it "
        "when brokers may be down while topics are created (only those answering are counted).",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Replicas that must hold a write before Kafka acknowledges it (producers use "
        "acks=all). Unset: 2 when the replication factor is 3 or more, else 1. Higher: more "
        "copies of each acknowledged message; writes stop once fewer replicas are in sync.",
    )
    frames_retention_ms: int = Field(
        HOUR_MS,
        ge=60_000,
        description="Frames are big: keep them only as long as captioning "
        "and search thumbnails may need to fetch them back.",
    )
    results_retention_ms: int = Field(
        DAY_MS, ge=60_000, description="detections, tracks, keyframes."
    )
    events_retention_ms: int = Field(
        7 * DAY_MS, ge=60_000, description="alerts, counts, captions, dlq.*."
    )
    dlq_partitions: int = Field(1, ge=1, le=1000, description="Partitions of each dlq.<service>.")

    def specs(self) -> dict[str, TopicSpec]:
        """Every topic of the pipeline with its spec, keyed by full topic name."""
        n = self.names

        def spec(
            retention_ms: int, partitions: int | None = None, compact: bool = False
        ) -> TopicSpec:
            return TopicSpec(
                partitions=partitions or self.partitions,
                replication_factor=self.replication_factor,
                min_insync_replicas=self.min_insync_replicas,
                retention_ms=-1 if compact else retention_ms,
                compact=compact,
            )

        result = {
            n.name("frames"): spec(self.frames_retention_ms),
            n.name("detections"): spec(self.results_retention_ms),
            n.name("tracks"): spec(self.results_retention_ms),
            n.name("keyframes"): spec(self.results_retention_ms),
            n.name("alerts"): spec(self.events_retention_ms),
            n.name("counts"): spec(self.events_retention_ms),
            n.name("captions"): spec(self.events_retention_ms),
            n.name("camera_config"): spec(0, compact=True),
        }
        for service in SERVICES:
            result[n.dlq(service)] = spec(self.events_retention_ms, self.dlq_partitions)
        return result
