"""The captioner runner: keyframes in, captions (text + thumbnail + frame reference) out.

Per batch (the batch loop's N keyframes or T ms, across cameras): parse the keyframes (broken
ones go to ``dlq.captioner``), apply the per-camera rate limit, read the frames back from the
frames topic by reference, decode them at a reduced JPEG scale, caption the whole batch in one
backend call, and publish one ``Caption`` per keyframe. A frame that can no longer be read (past
retention) or decoded is still captioned from its tracks, without colours or thumbnail.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Message

from vsa.runtime.camera_configs import CameraConfigs
from vsa.runtime.kafka import Output
from vsa.runtime.logs import event
from vsa.runtime.metrics import ServiceMetrics
from vsa.runtime.service import BatchLoop, BatchResult, LoopConfig, serve
from vsa.schemas import Caption, Keyframe, SchemaError

from .backends import Captioner, CaptionInput, build_captioner
from .config import CaptionerSettings
from .describe import DescribeOptions
from .frames import FrameFetcher, SmallFrame, decode_small, thumbnail
from .ratelimit import CameraRateLimit
from .scene import SceneDescription, named

log = logging.getLogger("vsa.captioner")
SERVICE = "captioner"


def keyframe_caption(
    keyframe: Keyframe, description: SceneDescription, captioner: str, thumbnail_jpeg: bytes
) -> Caption:
    """The captions message of a keyframe: its description, the frame reference, the confirmed
    tracks seen on it (never a lost or an unconfirmed one), the kinds of the alerts behind it and
    the thumbnail."""
    return Caption(
        camera_id=keyframe.camera_id,
        frame_seq=keyframe.frame_seq,
        frame=keyframe.frame,
        capture_ts=keyframe.capture_ts,
        text=description.text,
        objects=list(description.objects),
        track_ids=[o.track_id for o in keyframe.objects if named(o)],
        alert_kinds=sorted({a.kind for a in keyframe.alerts}),
        captioner=captioner,
        thumbnail_jpeg=thumbnail_jpeg,
    )


class CaptionerHandler:
    """The batch handler; Kafka I/O besides the frame read-back is the batch loop's."""

    def __init__(
        self,
        settings: CaptionerSettings,
        captioner: Captioner,
        fetcher: FrameFetcher,
        configs: CameraConfigs,
        metrics: ServiceMetrics,
    ) -> None:
        self.settings, self.captioner, self.fetcher = settings, captioner, fetcher
        self.configs, self.metrics = configs, metrics
        self.limit = CameraRateLimit(settings.captions_per_minute, settings.burst)
        self.out_topic = settings.topics.name("captions")
        self.captioned = 0

    def __call__(self, msgs: Sequence[Message]) -> BatchResult:
        result = BatchResult()
        keyframes: list[Keyframe] = []
        for msg in msgs:
            try:
                keyframes.append(Keyframe.from_bytes(msg.value() or b""))
            except SchemaError as exc:
                result.failures.append((msg, exc))
        chosen = [k for k in keyframes if self._allowed(k)]
        if chosen:
            items = self._inputs(chosen)
            for item, text in zip(items, self.captioner.caption(items), strict=True):
                result.outputs.append(self._output(item, text))
            self.captioned += len(chosen)
        return result

    def _allowed(self, keyframe: Keyframe) -> bool:
        if self.limit.allow(keyframe.camera_id, keyframe.capture_ts):
            return True
        if keyframe.reason == "alert" and self.settings.always_caption_alerts:
            return True
        self.metrics.frames_dropped.labels(SERVICE, keyframe.camera_id, "rate_limited").inc()
        return False

    def _inputs(self, keyframes: Sequence[Keyframe]) -> list[CaptionInput]:
        jpegs = self.fetcher.fetch([k.frame for k in keyframes])
        items = []
        for keyframe in keyframes:
            ref = keyframe.frame
            frame = self._decode(jpegs.get((ref.topic, ref.partition, ref.offset)), keyframe)
            items.append(
                CaptionInput(
                    keyframe,
                    frame.pixels if frame else None,
                    frame.original_size if frame else None,
                    self.configs.get(keyframe.camera_id),
                )
            )
        return items

    def _decode(self, jpeg: bytes | None, keyframe: Keyframe) -> SmallFrame | None:
        if jpeg is None:
            self.metrics.count_error("frame_missing")
            return None
        try:
            return decode_small(jpeg, self.settings.decode_max_width)
        except ValueError as exc:
            self.metrics.count_error("frame_undecodable")
            event(
                log,
                "frame_undecodable",
                logging.WARNING,
                camera_id=keyframe.camera_id,
                frame_seq=keyframe.frame_seq,
                error=str(exc),
            )
            return None

    def _output(self, item: CaptionInput, description: SceneDescription) -> Output:
        keyframe = item.keyframe
        thumb = (
            thumbnail(item.image, self.settings.thumbnail_width) if item.image is not None else b""
        )
        caption = keyframe_caption(keyframe, description, self.captioner.name, thumb)
        return Output(
            self.out_topic,
            keyframe.camera_id,
            caption.to_bytes(),
            timestamp_ms=int(keyframe.capture_ts * 1000),
        )


def build_loop(settings: CaptionerSettings) -> tuple[BatchLoop, CaptionerHandler]:
    """The captioner's batch loop (not started) and its handler."""
    options = DescribeOptions(timezone=settings.timezone)
    captioner = build_captioner(settings.backend, options, settings.blip_model_dir, settings.device)
    group = settings.group_id or f"vsa-{SERVICE}"
    fetcher = FrameFetcher(settings.kafka, f"{group}-frames", settings.fetch_timeout_s)
    configs = CameraConfigs(settings.kafka, settings.topics.name("camera_config"), group)
    metrics = ServiceMetrics(SERVICE)
    handler = CaptionerHandler(settings, captioner, fetcher, configs, metrics)
    config = LoopConfig(
        SERVICE,
        group,
        (settings.topics.name("keyframes"),),
        settings.topics.dlq(SERVICE),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        idle_exit_s=settings.idle_exit_s,
        topic_prefix=settings.topics.prefix,
        also_needs=(settings.topics.name("captions"), settings.topics.name("frames")),
    )
    loop = BatchLoop(config, settings.kafka, handler, metrics=metrics)
    return loop, handler


def run(settings: CaptionerSettings) -> int:
    """Run the captioner until SIGTERM/SIGINT (or ``idle_exit_s``)."""
    loop, handler = build_loop(settings)
    handler.configs.start_synced(settings.camera_config_sync_s)
    try:
        return serve(loop, settings.metrics_host, settings.metrics_port)
    finally:
        handler.configs.stop()
        handler.fetcher.close()
        event(log, "captioner_stopped", captioned=handler.captioned)
