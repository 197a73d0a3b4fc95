"""Notices that the whole process was frozen, so a consumer does not write for partitions its
group may have given away meanwhile (issue 11: the zombie consumer).

A process stopped with SIGSTOP (or a paused VM, a host deep in swap) sends no group heartbeats.
Past the session timeout the group coordinator gives its partitions to another member, which
starts again from the last committed offset. When the process continues, its code carries on
where it was: it would produce the outputs of the batch it was handling, and write state, for
partitions that are no longer its own, interleaved with the new owner's writes. Its Kafka
client only learns of the loss at its next heartbeat, and that runs in another thread.

:class:`FreezeWatch` ticks in a daemon thread. Every thread of a frozen process stops, so the
watch sees one gap between two ticks as long as the freeze. A gap of ``threshold_s`` or more
is a freeze; the service then confirms with the group coordinator that it still owns the
partitions before it writes anything for them (:meth:`OffsetCommitter.confirm_ownership
<vsa.runtime.commits.OffsetCommitter.confirm_ownership>`, and the tracker's own check).
A busy machine can also starve the watch thread for a moment; the cost of such a false alarm
is one extra round trip to the coordinator.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter

from vsa.runtime.logs import event

log = logging.getLogger("vsa.freeze")


def freeze_threshold_s(session_timeout_s: float) -> float:
    """The gap that counts as a freeze for a group with this session timeout: a third of it
    (at least 1 s). A freeze shorter than that cannot have cost the membership."""
    return max(1.0, session_timeout_s / 3)


class FreezeWatch:
    """Counts the times the process was frozen for ``threshold_s`` or more.

    Args:
        threshold_s: shortest gap between two ticks that counts as a freeze, seconds.
        tick_s: seconds between ticks; lower notices a freeze sooner after it ends.
        clock: monotonic seconds (tests pass a fake and call :meth:`tick` themselves).
        start: start the ticking thread (tests: False).
    """

    def __init__(
        self,
        threshold_s: float,
        tick_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        start: bool = True,
    ) -> None:
        self.threshold_s, self.tick_s, self.clock = threshold_s, tick_s, clock
        self.freezes = 0
        self.longest_s = 0.0
        self._confirmed = 0
        self._last_tick = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if start:
            threading.Thread(target=self._run, name="vsa-freeze-watch", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.tick()

    def tick(self) -> None:
        """Record a tick; counts the gap since the last one if it was a freeze."""
        with self._lock:
            now = self.clock()
            gap = now - self._last_tick
            self._last_tick = now
            if gap < self.threshold_s:
                return
            self.freezes += 1
            self.longest_s = max(self.longest_s, gap)
        event(log, "process_frozen", logging.WARNING, frozen_s=round(gap, 1), count=self.freezes)

    def suspect(self) -> bool:
        """A freeze happened since the last :meth:`confirmed`, or one is ending right now (the
        watch thread has not ticked since the process was continued)."""
        self.tick()
        return self.freezes > self._confirmed

    def mark(self) -> int:
        """The freezes counted so far: pass it to :meth:`confirmed` once ownership is
        confirmed (a freeze during the confirmation is then still suspect)."""
        self.tick()
        return self.freezes

    def confirmed(self, mark: int) -> None:
        """Ownership was confirmed after the freezes up to ``mark``."""
        self._confirmed = max(self._confirmed, mark)

    def stale(self, counter: Counter, service: str, outcome: str, first: str) -> None:
        """Count and log a batch dropped because its ownership was not confirmed after a
        freeze (``vsa_stale_batches_total``, ``stale_batch_dropped``); ``first``: where the batch
        began, per partition."""
        counter.labels(service, outcome).inc()
        event(
            log,
            "stale_batch_dropped",
            logging.WARNING,
            outcome=outcome,
            frozen_s=round(self.longest_s, 1),
            first=first,
        )

    def stop(self) -> None:
        self._stop.set()
