"""One wait for a batch's acknowledgements, as the batch loop and the tracker both run it.

The wait itself polls the producer (the batch loop directly, the tracker from an executor); this
class keeps what the wait means for the service: not ready once outputs wait longer than
``stall_s`` (blocker ``kafka_produce``, one ``outputs_unacknowledged`` line, and
``outputs_acknowledged`` when they come), and, after a stop was requested, the end of the wait
``stop_flush_s`` later (``batch_abandoned``): the batch is then neither committed nor, in the
tracker, written to its state; whoever owns the partition next handles it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from vsa.runtime.logs import event
from vsa.runtime.metrics import Health

log = logging.getLogger("vsa.service")

BLOCKER = "kafka_produce"


class AckWait:
    """Readiness and the stop bound of one wait for acknowledgements.

    Args:
        health: the service's readiness.
        stall_s: outputs unacknowledged this long make the service not ready.
        stop_flush_s: after a stop was requested, the longest the wait goes on.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        health: Health,
        stall_s: float,
        stop_flush_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health, self.stall_s, self.stop_flush_s, self.clock = (
            health,
            stall_s,
            stop_flush_s,
            clock,
        )
        self.started = clock()
        self._stop_seen: float | None = None

    def waiting(self, unacked: int, stopping: bool) -> bool:
        """After a poll that left ``unacked`` outputs: update readiness; True when the wait
        must end now (a stop was requested ``stop_flush_s`` ago)."""
        now = self.clock()
        waited = now - self.started
        self.health.beat()  # waiting on Kafka, not stuck
        if waited >= self.stall_s:
            if BLOCKER not in self.health.blockers:
                event(
                    log,
                    "outputs_unacknowledged",
                    logging.WARNING,
                    unacked=unacked,
                    waited_s=round(waited, 1),
                )
            self.health.block(BLOCKER, f"{unacked} outputs unacknowledged for {waited:.0f} s")
        if not stopping:
            return False
        self._stop_seen = now if self._stop_seen is None else self._stop_seen
        if now - self._stop_seen < self.stop_flush_s:
            return False
        event(log, "batch_abandoned", logging.WARNING, reason="stopping", unacked=unacked)
        return True

    def acknowledged(self) -> None:
        """Every output was acknowledged: ready again if the wait had made it not ready."""
        if BLOCKER in self.health.blockers:
            event(log, "outputs_acknowledged", waited_s=round(self.clock() - self.started, 1))
            self.health.unblock(BLOCKER)
