"""The ingest runner: camera threads → JPEG encoder pool → bounded queues → one Kafka publisher.

Frames go to the frames topic keyed by camera_id (one camera stays ordered in one partition),
with the JPEG as the value and :class:`~vsa.schemas.FrameMeta` in the headers.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from vsa.runtime.kafka import Output, Producer
from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.producer_health import ProducerHealth
from vsa.runtime.service import StopFlag
from vsa.runtime.topic_check import TopicWait, admin_client
from vsa.schemas import FrameMeta
from vsa.services.ingest.camera import CameraStatus, CameraWorker, FirstSeq, PendingFrame
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.fleet import CameraShare
from vsa.services.ingest.queues import CameraQueues
from vsa.services.ingest.resume import last_frame_seqs

log = logging.getLogger("vsa.ingest")

SERVICE = "ingest"
#: After SIGTERM, the longest wait for Kafka to acknowledge the frames published, seconds.
STOP_FLUSH_S = 10.0


@dataclass
class IngestTotals:
    """Totals since start, for progress displays and benchmarks."""

    published: int = 0
    bytes_published: int = 0
    acked: int = 0
    delivery_errors: int = 0
    encode_errors: int = 0


class IngestService:
    """Reads every configured camera and publishes their frames until stopped or done.

    With ``from_camera_config`` the cameras are this replica's share of the camera-config topic
    instead, started, restarted and stopped as it changes (see :mod:`~vsa.services.ingest.fleet`),
    and the service runs until stopped.
    """

    def __init__(
        self,
        settings: IngestSettings,
        metrics: ServiceMetrics | None = None,
        health: Health | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ServiceMetrics(SERVICE)
        self.health = health or Health()
        self.stop = stop or StopFlag()
        self.topic = settings.topics.name("frames")
        self.totals = IngestTotals()
        self.queues: CameraQueues[PendingFrame] = CameraQueues(
            settings.queue_frames, on_drop=self._on_drop
        )
        self.encoders = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="jpeg"
        )
        self.kafka_health = ProducerHealth(self.health)
        # message.timeout.ms 0: a frame is never given up in a broker outage; back-pressure
        # (live cameras drop their oldest frame, files wait) bounds what waits meanwhile.
        self.producer = Producer(
            settings.kafka,
            SERVICE,
            **{
                "compression.type": "none",
                "message.timeout.ms": 0,
                "error_cb": self.kafka_health.on_error,
            },
        )
        self.workers: list[CameraWorker] = []
        self._kinds = {c.camera_id: c.kind for c in settings.cameras}
        self.published: Counter[str] = Counter()
        self.follower = (
            CameraShare(settings, self._make_worker, self._flushed)
            if settings.from_camera_config
            else None
        )

    def _on_drop(self, camera_id: str, frame: PendingFrame) -> None:
        frame.jpeg.cancel()
        self.metrics.frames_dropped.labels(SERVICE, camera_id, "backpressure").inc()

    def camera_status(self) -> dict[str, CameraStatus]:
        """Per-camera counters (state, decoded, queued, reconnects...)."""
        return {w.spec.camera_id: w.status for w in self._all_workers()}

    def _all_workers(self) -> list[CameraWorker]:
        return self.workers + (self.follower.fleet.workers() if self.follower else [])

    def dropped(self, camera_id: str) -> int:
        """Frames of a live camera dropped because Kafka was behind."""
        return self.queues.dropped(camera_id)

    def start(self) -> bool:
        """Wait until the topics exist, recover frame_seq per camera from Kafka, then start the
        camera threads (or start following camera-config). False when stopped while waiting."""
        if not self._wait_for_topics():
            return False
        if self.follower is not None:
            self.follower.start()
            self.health.ready = True
            return True
        cameras = self.settings.cameras
        first = last_frame_seqs(
            self.settings.kafka,
            self.topic,
            [c.camera_id for c in cameras],
            self.settings.seq_recovery_scan,
        )
        self.workers = [
            self._make_worker(spec, first.get(spec.camera_id, -1) + 1) for spec in cameras
        ]
        for worker in self.workers:
            worker.start()
        self.health.ready = True
        return True

    def _wait_for_topics(self) -> bool:
        """Not ready, with one ``topics_missing`` line, until the frames topic (and camera-config
        when following it) exists; a camera's frames would otherwise wait in librdkafka's queue
        and camera-config would be followed silently."""
        names = self.settings.topics
        needed = [self.topic]
        if self.follower is not None:
            needed.append(names.name("camera_config"))
        wait = TopicWait(needed, names.prefix, self.health)
        return wait.wait(admin_client(self.settings.kafka), self.stop.is_set)

    def _make_worker(self, spec: CameraSpec, first_seq: FirstSeq) -> CameraWorker:
        """A camera's reader (not started). Cameras from camera-config keep retrying a source
        that fails, files included: an operator fixes the source or the config, not the pod."""
        self._kinds[spec.camera_id] = spec.kind
        worker = CameraWorker(
            spec,
            self.settings,
            self.queues,
            self.encoders,
            self.metrics,
            first_seq,
            keep_trying=self.follower is not None,
        )
        event(
            log,
            "camera_added",
            camera_id=spec.camera_id,
            url=spec.display_url,
            kind=spec.kind,
            frame_seq=first_seq if isinstance(first_seq, int) else "from_kafka",
        )
        return worker

    def run(self, on_tick: Callable[[IngestService], None] | None = None) -> IngestTotals:
        """Publish until every camera is done, ``max_frames`` is reached or a stop is requested."""
        if not self.workers and not self.health.ready:
            self.start()
        last_tick = time.monotonic()
        try:
            while not self.stop.is_set() and not self._limit_reached():
                self.health.beat()
                got = self.queues.get(timeout_s=0.2)
                if got is not None:
                    self._publish(*got)
                elif self._all_done():
                    break
                self.producer.poll(0)
                self.kafka_health.check(self.producer.pending())
                if self.follower is not None:
                    self.follower.tick()
                if on_tick is not None and time.monotonic() - last_tick >= 0.5:
                    on_tick(self)
                    last_tick = time.monotonic()
        finally:
            self.close()
        if on_tick is not None:
            on_tick(self)
        return self.totals

    def _limit_reached(self) -> bool:
        limit = self.settings.max_frames
        return limit is not None and self.totals.published >= limit

    def _all_done(self) -> bool:
        if self.follower is not None:
            return False
        return all(not w.is_alive() for w in self.workers) and self.queues.depth() == 0

    def _publish(self, camera_id: str, frame: PendingFrame) -> None:
        try:
            jpeg, width, height = frame.jpeg.result()
        except Exception as exc:
            self.totals.encode_errors += 1
            self.metrics.count_error("encode")
            event(
                log,
                "encode_failed",
                logging.WARNING,
                camera_id=camera_id,
                frame_seq=frame.frame_seq,
                error=str(exc),
            )
            return
        meta = FrameMeta(
            camera_id=camera_id,
            frame_seq=frame.frame_seq,
            capture_ts=frame.capture_ts,
            width=width,
            height=height,
            pts_s=frame.pts_s,
            source=self._kinds[camera_id],
        )
        out = Output(self.topic, camera_id, jpeg, meta.to_headers(), int(frame.capture_ts * 1000))
        self.producer.produce(out, on_delivery=self._on_delivery)
        self.totals.published += 1
        self.published[camera_id] += 1
        self.totals.bytes_published += len(jpeg)
        self.metrics.count_out(self.topic)

    def _flushed(self, camera_ids: set[str]) -> bool:
        """False while frames of these cameras wait to be published; else wait until Kafka
        acknowledged everything produced (a camera moving to another replica)."""
        if any(self.queues.pending(c) for c in camera_ids):
            return False
        return self.producer.raw.flush(30) == 0

    def _on_delivery(self, err: object, msg: object) -> None:
        if err is None:
            self.totals.acked += 1
            self.kafka_health.acked()
            return
        self.totals.delivery_errors += 1
        self.metrics.count_error("delivery")
        event(log, "delivery_failed", logging.ERROR, error=str(err))

    def close(self) -> None:
        """Stop the cameras, then wait until Kafka acknowledged everything published."""
        workers = self._all_workers()
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(timeout=10)
        self.encoders.shutdown(wait=True, cancel_futures=True)
        # SIGTERM in an outage: wait STOP_FLUSH_S at most (the grace period is short); at the
        # end of the sources, as long as a minute.
        remaining = self.producer.wait_acked(STOP_FLUSH_S if self.stop.is_set() else 60.0)
        if remaining:
            event(log, "unacknowledged_frames", logging.ERROR, count=remaining)
        if self.follower is not None:
            self.follower.close()
        event(
            log,
            "stopped",
            published=self.totals.published,
            acked=self.totals.acked,
            delivery_errors=self.totals.delivery_errors,
        )
