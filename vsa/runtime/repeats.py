"""One log line per kind of repeated client error, not one per reconnect attempt.

While Kafka is unreachable its clients retry many times a second and log every failure:
aiokafka (in the tracker) wrote about 80 lines a second in a broker outage, librdkafka about 20
per consumer ("Connect to ... failed: Connection refused"), and an operator's log became that.
:class:`RepeatFilter` lets the first line of a kind through, then at most one per ``every_s``
with ``repeated=<lines dropped since>``. A kind is the logger, the level and the message with
its digits blanked (ports, node ids, times and counts differ from line to line).

:func:`client_logger` is the logger librdkafka clients are given (``logger`` in their
configuration), so their lines go through the same filter and the service's log format.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

_DIGITS = re.compile(r"\d+")
#: Seconds between two lines of one kind.
EVERY_S = 30.0
#: Name of the logger librdkafka clients log to.
CLIENT_LOGGER = "vsa.kafka.client"


class RepeatFilter(logging.Filter):
    """Drops a record whose kind was let through less than ``every_s`` ago.

    Args:
        every_s: seconds between two records of one kind; higher: quieter logs.
        prefixes: only records of loggers whose name starts with one of these are filtered
            (None: all). vsa's own events are never given to it: one event name is one kind.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        every_s: float = EVERY_S,
        prefixes: tuple[str, ...] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.every_s, self.prefixes, self.clock = every_s, prefixes, clock
        self._last: dict[tuple[str, int, str], float] = {}
        self._dropped: dict[tuple[str, int, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.prefixes is not None and not record.name.startswith(self.prefixes):
            return True
        kind = (record.name, record.levelno, _DIGITS.sub("#", record.getMessage())[:200])
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.every_s:
                self._dropped[kind] = self._dropped.get(kind, 0) + 1
                return False
            self._last[kind] = now
            dropped = self._dropped.pop(kind, 0)
        if dropped:
            record.repeated = dropped
        return True


def quiet_repeats(prefixes: tuple[str, ...], every_s: float = EVERY_S) -> RepeatFilter:
    """Filter repeated records of the loggers named ``prefixes`` (and their children) at every
    handler of the root logger (a logger's own filters do not see its children's records)."""
    repeat = RepeatFilter(every_s, prefixes)
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeat)
    return repeat


_client_logger: logging.Logger | None = None


def client_logger() -> logging.Logger:
    """The logger for librdkafka clients: their lines as events of the service's log format,
    repeated ones filtered (created once per process)."""
    global _client_logger
    if _client_logger is None:
        _client_logger = logging.getLogger(CLIENT_LOGGER)
        _client_logger.addFilter(RepeatFilter())
    return _client_logger
