"""Bounded per-camera frame queues between the decoders and the Kafka publisher.

Back-pressure: when Kafka is slower than the cameras, a file camera's decoder waits for room
(nothing is lost: files can wait), while a live camera drops its *oldest* queued frame, so what
reaches Kafka stays close to real time. Drops are counted per camera.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _CameraQueue(Generic[T]):
    items: deque[T] = field(default_factory=deque)
    dropped: int = 0
    closed: bool = False


class CameraQueues(Generic[T]):
    """One bounded FIFO per camera and one condition the publisher waits on.

    ``get`` serves cameras round-robin, so one busy camera cannot starve the others.
    """

    def __init__(self, capacity: int, on_drop: Callable[[str, T], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._queues: dict[str, _CameraQueue[T]] = {}
        self._order: list[str] = []
        self._cursor = 0
        self._cond = threading.Condition()
        self._on_drop = on_drop

    def add_camera(self, camera_id: str) -> None:
        """Add a camera's queue, or open a closed one again (a camera restarted with new settings:
        frames its previous reader left in the queue are still served first)."""
        with self._cond:
            if camera_id not in self._queues:
                self._queues[camera_id] = _CameraQueue()
                self._order.append(camera_id)
            self._queues[camera_id].closed = False

    def put(
        self, camera_id: str, item: T, drop_oldest: bool, timeout_s: float | None = None
    ) -> bool:
        """Queue ``item``. When full: drop the oldest (live) or wait for room (files).

        Returns False if waiting timed out or the queue was closed (the item is not queued).
        """
        with self._cond:
            q = self._queues[camera_id]
            if drop_oldest and len(q.items) >= self.capacity:
                old = q.items.popleft()
                q.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(camera_id, old)
            ok = self._cond.wait_for(
                lambda: q.closed or len(q.items) < self.capacity, timeout=timeout_s
            )
            if not ok or q.closed:
                return False
            q.items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout_s: float) -> tuple[str, T] | None:
        """Next item from the next non-empty camera (round-robin), or None after ``timeout_s``."""
        with self._cond:
            found = self._cond.wait_for(self._any_ready, timeout=timeout_s)
            if not found:
                return None
            n = len(self._order)
            for step in range(n):
                camera_id = self._order[(self._cursor + step) % n]
                q = self._queues[camera_id]
                if q.items:
                    self._cursor = (self._cursor + step + 1) % n
                    item = q.items.popleft()
                    self._cond.notify_all()
                    return camera_id, item
            return None

    def _any_ready(self) -> bool:
        return any(q.items for q in self._queues.values())

    def close(self, camera_id: str) -> None:
        """Wake a producer blocked on ``camera_id`` and refuse further items."""
        with self._cond:
            self._queues[camera_id].closed = True
            self._cond.notify_all()

    def dropped(self, camera_id: str) -> int:
        with self._cond:
            return self._queues[camera_id].dropped

    def pending(self, camera_id: str) -> int:
        """Items queued for ``camera_id`` (0 for an unknown camera)."""
        with self._cond:
            q = self._queues.get(camera_id)
            return len(q.items) if q is not None else 0

    def depth(self) -> int:
        """Items queued over all cameras."""
        with self._cond:
            return sum(len(q.items) for q in self._queues.values())
