"""Health results and the wait loop that turns "started" into "answering"."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("vsa.devstack")

#: Seconds between two health probes while waiting.
POLL_INTERVAL_S = 1.0
#: Seconds between two "still waiting" log lines.
PROGRESS_EVERY_S = 10.0


@dataclass(frozen=True)
class Health:
    """Outcome of one probe: ``healthy`` and a short human ``detail`` (or the error)."""

    healthy: bool
    detail: str


class ProcessEndedError(Exception):
    """The process being waited for is gone; ``detail`` says how it ended."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def wait_healthy(
    what: str,
    probe: Callable[[], Health],
    timeout_s: float,
    still_running: Callable[[], str | None] | None = None,
) -> Health:
    """Probe every second until healthy or ``timeout_s`` seconds have passed.

    ``still_running`` returns None while the process lives, else a description of its end; then
    :class:`ProcessEndedError` is raised at once instead of waiting out the timeout. Returns the
    last probe result, healthy or not.
    """
    log.info("waiting for %s", what, extra={"timeout_s": timeout_s})
    started = time.monotonic()
    next_progress = started + PROGRESS_EVERY_S
    while True:
        if still_running is not None and (ended := still_running()) is not None:
            raise ProcessEndedError(ended)
        result = probe()
        now = time.monotonic()
        if result.healthy:
            log.info("%s is healthy", what, extra={"after_s": round(now - started, 1)})
            return result
        if now - started >= timeout_s:
            return result
        if now >= next_progress:
            log.info("still waiting for %s", what, extra={"last": result.detail})
            next_progress = now + PROGRESS_EVERY_S
        time.sleep(POLL_INTERVAL_S)
