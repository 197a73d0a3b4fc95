"""One camera's reader thread: open, decode, sample, hand frames to the JPEG encoders, reconnect."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Literal

from vsa.runtime.logs import event
from vsa.runtime.metrics import ServiceMetrics
from vsa.runtime.redact import mask_secrets
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.pacing import Backoff, FpsSampler
from vsa.services.ingest.queues import CameraQueues
from vsa.services.ingest.resume import ResumeError
from vsa.services.ingest.sources import (
    Decoded,
    SourceDamagedError,
    SourceError,
    encode_jpeg,
    pace,
    read_images,
    read_video,
)

log = logging.getLogger("vsa.ingest.camera")

CameraState = Literal["starting", "running", "reconnecting", "finished", "failed"]
EncodeResult = tuple[bytes, int, int]
#: A camera's first frame_seq, or a function that looks it up.
FirstSeq = int | Callable[[], int]


@dataclass
class PendingFrame:
    """A sampled frame on its way to Kafka; the JPEG may still be encoding."""

    frame_seq: int
    capture_ts: float
    pts_s: float | None
    jpeg: Future[EncodeResult]


@dataclass
class CameraStatus:
    """Counters shown in the progress display and exported as metrics."""

    state: CameraState = "starting"
    decoded: int = 0
    queued: int = 0
    reconnects: int = 0
    passes: int = 0
    last_error: str | None = None
    errors: list[str] = field(default_factory=list)


def _done(result: EncodeResult) -> Future[EncodeResult]:
    future: Future[EncodeResult] = Future()
    future.set_result(result)
    return future


class CameraWorker(threading.Thread):
    """Reads one camera until stopped; see :mod:`vsa.services.ingest.queues` for back-pressure.

    Files: played once (or looped), waiting for room in the queue; a file that cannot be opened
    fails the camera (unless ``keep_trying``: then it is retried like a live stream), a damaged
    file is reported and playback keeps what decoded. Live streams: reconnect with exponential
    back-off after any loss, dropping the oldest frames when behind.

    ``first_seq`` is the first frame_seq, or a function that looks it up (in Kafka: see
    :mod:`~vsa.services.ingest.resume`), called in the camera's thread before reading, retried
    with back-off while it raises :class:`ResumeError`.
    """

    def __init__(
        self,
        spec: CameraSpec,
        settings: IngestSettings,
        queues: CameraQueues[PendingFrame],
        encoders: Executor,
        metrics: ServiceMetrics,
        first_seq: FirstSeq = 0,
        keep_trying: bool = False,
    ) -> None:
        super().__init__(name=f"camera-{spec.camera_id}", daemon=True)
        self.spec = spec
        self.settings = settings
        self.queues = queues
        self.encoders = encoders
        self.metrics = metrics
        self.next_seq = first_seq if isinstance(first_seq, int) else 0
        self._resume = None if isinstance(first_seq, int) else first_seq
        self.keep_trying = keep_trying
        self.status = CameraStatus()
        self.stop_event = threading.Event()
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        queues.add_camera(spec.camera_id)

    def stop(self) -> None:
        self.stop_event.set()
        self.queues.close(self.spec.camera_id)

    def run(self) -> None:
        try:
            if not self._resumed():
                return
            while not self.stop_event.is_set() and self._one_pass():
                pass
        finally:
            self.queues.close(self.spec.camera_id)
            if self.status.state not in ("failed",):
                self.status.state = "finished"

    def _resumed(self) -> bool:
        """Look up the first frame_seq if asked to; False if stopped before it was found."""
        while self._resume is not None and not self.stop_event.is_set():
            try:
                self.next_seq, self._resume = self._resume(), None
            except ResumeError as exc:
                self._report(str(exc), "resume_failed")
                if not self._wait_reconnect():
                    return False
        return not self.stop_event.is_set()

    def _one_pass(self) -> bool:
        """Read the source once; True if another pass should follow (loop or reconnect)."""
        live = self.spec.kind == "live"
        try:
            self._publish_frames(self._open())
        except SourceDamagedError as exc:
            self._report(str(exc), "source_damaged")
            return self.spec.loop
        except SourceError as exc:
            self._report(str(exc), "source_error")
            if not (live or self.keep_trying):
                self.status.state = "failed"
                return False
            return self._wait_reconnect()
        if self.stop_event.is_set():
            return False
        if live:
            self._report(f"{self.spec.display_url}: stream ended", "stream_ended")
            return self._wait_reconnect()
        return self.spec.loop

    def _open(self) -> Iterator[Decoded]:
        if self.spec.kind == "images":
            return read_images(self.spec)
        return read_video(self.spec, self.settings.open_timeout_s, self.settings.decode_threads)

    def _publish_frames(self, frames: Iterator[Decoded]) -> None:
        sampler = FpsSampler(self.spec.fps)
        started, first_pts = time.monotonic(), None
        self.status.passes += 1
        for decoded in frames:
            if self.stop_event.is_set():
                return
            if self.status.state != "running":
                self.status.state = "running"
                self._backoff.reset()
                event(
                    log, "camera_running", camera_id=self.spec.camera_id, url=self.spec.display_url
                )
            self.status.decoded += 1
            pts = decoded.pts_s if decoded.pts_s is not None else self.status.decoded / 25.0
            if not sampler.keep(pts):
                self.metrics.frames_dropped.labels("ingest", self.spec.camera_id, "sampling").inc()
                continue
            if self.spec.realtime and self.spec.kind != "live":
                first_pts = pts if first_pts is None else first_pts
                pace(started, first_pts, pts)
            self._enqueue(decoded)

    def _enqueue(self, decoded: Decoded) -> None:
        if decoded.jpeg is not None:
            jpeg = _done((decoded.jpeg, decoded.width, decoded.height))
        elif decoded.frame is not None:
            jpeg = self.encoders.submit(encode_jpeg, decoded.frame, self.spec)
        else:
            raise ValueError("a decoded frame carries neither pixels nor JPEG bytes")
        item = PendingFrame(self.next_seq, time.time(), decoded.pts_s, jpeg)
        live = self.spec.kind == "live"
        while not self.stop_event.is_set():
            if self.queues.put(self.spec.camera_id, item, drop_oldest=live, timeout_s=0.5):
                # counted only once queued: a reader stopped while waiting leaves no gap for
                # the reader that continues the camera's frame_seq
                self.next_seq += 1
                self.status.queued += 1
                return

    def _wait_reconnect(self) -> bool:
        self.status.state = "reconnecting"
        self.status.reconnects += 1
        delay = self._backoff.next_delay()
        event(
            log,
            "camera_reconnecting",
            logging.WARNING,
            camera_id=self.spec.camera_id,
            delay_s=round(delay, 2),
            attempt=self._backoff.attempt,
        )
        return not self.stop_event.wait(delay)

    def _report(self, message: str, kind: str) -> None:
        message = mask_secrets(message)  # shown in the live table and /healthz, not only logs
        self.status.last_error = message
        self.status.errors = [*self.status.errors[-9:], message]
        self.metrics.count_error(kind)
        event(
            log,
            kind,
            logging.WARNING,
            camera_id=self.spec.camera_id,
            frame_seq=self.next_seq,
            error=message,
        )
