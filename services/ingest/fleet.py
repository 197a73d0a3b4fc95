"""Ingest following camera-config: start, stop and restart camera readers as configs change.

How replicas share the cameras: every replica reads camera-config in one consumer group
(``group_id``), so Kafka gives each replica some of its partitions, and a replica runs
the cameras of its partitions (camera-config is keyed by camera_id, so a camera lives in exactly
one partition). A partition is read from the beginning when assigned; when it is revoked, the
replica stops its cameras and waits until Kafka acknowledged their last frames *before* the
rebalance goes on, so the next owner reads their last frame_seq back and continues it, and a
camera is never read by two replicas at once. Limits: balance is by partition, not by camera
(more replicas than camera-config partitions leaves some idle; a few busy partitions load their
owners unevenly), and a replica cut off from Kafka keeps its cameras until its session times out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vsa.runtime.camera_configs import CameraConfigs
from vsa.runtime.logs import event
from vsa.schemas import CameraConfig
from vsa.services.ingest.camera import CameraWorker, FirstSeq
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.follow import desired_cameras, plan
from vsa.services.ingest.resume import last_frame_seqs

log = logging.getLogger("vsa.ingest.fleet")

#: Makes (does not start) the reader of a camera from its spec and first frame_seq (or lookup).
WorkerFactory = Callable[[CameraSpec, FirstSeq], CameraWorker]
#: Longest a revoked partition waits for its cameras to stop and their frames to be acknowledged.
HANDOFF_TIMEOUT_S = 60.0


class CameraFleet:
    """The camera readers of one replica, changed only by :meth:`apply` (one thread)."""

    def __init__(self, make_worker: WorkerFactory, resume: Callable[[str], int]) -> None:
        self.make_worker, self.resume = make_worker, resume
        self.active: dict[str, CameraWorker] = {}
        self.retiring: dict[str, CameraWorker] = {}

    def workers(self) -> list[CameraWorker]:
        return [*self.retiring.values(), *self.active.values()]

    def apply(self, desired: Mapping[str, CameraSpec]) -> None:
        """Move towards ``desired``. A restarted camera's new reader starts on a later call, once
        the old one has ended, and continues its frame_seq."""
        for camera_id, worker in list(self.retiring.items()):
            if camera_id not in desired and not worker.is_alive():
                del self.retiring[camera_id]
        todo = plan(desired, {c: w.spec for c, w in self.active.items()})
        for camera_id in todo.stop + todo.restart:
            self._retire(camera_id)
        for camera_id in todo.start:
            self._start(desired[camera_id])

    def _retire(self, camera_id: str) -> None:
        worker = self.active.pop(camera_id)
        worker.stop()
        self.retiring[camera_id] = worker
        event(log, "camera_stopping", camera_id=camera_id, frame_seq=worker.next_seq)

    def _start(self, spec: CameraSpec) -> None:
        old = self.retiring.get(spec.camera_id)
        if old is not None and old.is_alive():
            return
        camera_id = spec.camera_id
        first_seq: FirstSeq = old.next_seq if old is not None else lambda: self.resume(camera_id)
        self.retiring.pop(camera_id, None)
        worker = self.make_worker(spec, first_seq)
        self.active[camera_id] = worker
        worker.start()

    def stopped(self, camera_ids: set[str]) -> bool:
        """Whether no reader of these cameras is running any more."""
        return not any(
            w.is_alive()
            for c, w in (*self.active.items(), *self.retiring.items())
            if c in camera_ids
        )

    def forget(self, camera_ids: set[str]) -> None:
        """Drop what is known of these cameras (their frame_seq is looked up again if they come
        back: another replica may have continued them meanwhile)."""
        for camera_id in camera_ids:
            self.retiring.pop(camera_id, None)


@dataclass
class Handoff:
    """Cameras of revoked partitions that must stop before the rebalance goes on."""

    cameras: set[str]
    done: threading.Event = field(default_factory=threading.Event)


class CameraShare:
    """Keeps the replica's cameras equal to its share of camera-config.

    :meth:`tick` runs in the publisher's loop; the config reader's thread only waits there
    (:meth:`_on_revoke`) for revoked cameras to be stopped and flushed.
    ``flushed(cameras)`` must return False while frames of ``cameras`` are still queued, else
    wait until Kafka acknowledged every frame produced so far and return True.
    """

    def __init__(
        self,
        settings: IngestSettings,
        make_worker: WorkerFactory,
        flushed: Callable[[set[str]], bool],
    ) -> None:
        self.settings, self.flushed = settings, flushed
        self.frames_topic = settings.topics.name("frames")
        self.fleet = CameraFleet(make_worker, self._first_seq)
        self.configs = CameraConfigs(
            settings.kafka,
            settings.topics.name("camera_config"),
            "ingest",
            group_id=settings.group_id,
            on_revoke=self._on_revoke,
        )
        self._seen: dict[str, CameraConfig] = {}
        self._desired: dict[str, CameraSpec] = {}
        self._handoffs: list[Handoff] = []
        self._lock = threading.Lock()
        self.closing = False

    def start(self) -> None:
        self.configs.start()

    def tick(self) -> None:
        snapshot = self.configs.snapshot()
        if snapshot != self._seen:
            self._seen, self._desired = snapshot, desired_cameras(snapshot)
        self.fleet.apply(self._desired)
        with self._lock:
            ready = [h for h in self._handoffs if self._handed_off(h.cameras)]
            self._handoffs = [h for h in self._handoffs if h not in ready]
        for handoff in ready:
            self.fleet.forget(handoff.cameras)
            handoff.done.set()

    def _handed_off(self, cameras: set[str]) -> bool:
        return (
            not (cameras & self._desired.keys())
            and self.fleet.stopped(cameras)
            and (self.flushed(cameras))
        )

    def _first_seq(self, camera_id: str) -> int:
        found = last_frame_seqs(
            self.settings.kafka, self.frames_topic, [camera_id], self.settings.seq_recovery_scan
        )
        return found.get(camera_id, -1) + 1

    def _on_revoke(self, cameras: set[str]) -> None:
        if self.closing:
            return  # close() stops every camera and flushes before it leaves the group
        handoff = Handoff(cameras)
        with self._lock:
            self._handoffs.append(handoff)
        if not handoff.done.wait(HANDOFF_TIMEOUT_S):
            event(log, "handoff_timeout", logging.ERROR, cameras=sorted(cameras))

    def close(self) -> None:
        """Leave the group (after the caller stopped the cameras and flushed their frames)."""
        self.closing = True
        with self._lock:
            for handoff in self._handoffs:
                handoff.done.set()
            self._handoffs.clear()
        self.configs.stop()
