"""Which consumed offsets the tracker may apply, per partition: a guard against skipped records.

A partition's records can reach the agent with one missing. On this machine it happened right
after a restart, around the seek to the committed offsets that Faust makes when the table
recovery completes, while records were already flowing (seen with ``Stream.take_events`` in
about one kill -9 restart in three; not seen since the agent has its own queue, but nothing in
Faust rules it out). The missing record is never acknowledged, so its offset is never committed,
yet the live worker would go on without it: that camera would miss a frame, and the frames after
it would be tracked from a different state than the offline replay's.

:class:`OffsetGuard` remembers, per partition, the offset that must come next. A record past it
is a gap: the runner drops it (does not apply or acknowledge it) and seeks the partition back to
the missing offset, again every ``retry_s`` until the missing record arrives. A topic may have
offsets without records (transaction markers): after ``max_seeks`` attempts the guard gives up on
the missing offset and moves on to the lowest offset it dropped, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

Verdict = Literal["next", "seen", "gap"]
K = TypeVar("K", bound=Hashable)


@dataclass
class Gap:
    """A partition waiting for a missing offset."""

    expected: int
    lowest_dropped: int
    seeks: int = 0
    last_seek: float = float("-inf")


class OffsetGuard(Generic[K]):
    """Per partition (any hashable key), the next offset to apply.

    Args:
        retry_s: seconds between seeks back to a missing offset.
        max_seeks: seeks before a missing offset is given up (treated as a hole in the log).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        retry_s: float = 1.0,
        max_seeks: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_s, self.max_seeks, self.clock = retry_s, max_seeks, clock
        self._next: dict[K, int] = {}
        self.gaps: dict[K, Gap] = {}

    def check(self, key: K, offset: int) -> Verdict:
        """``next``: apply it; ``seen``: a redelivery of an applied offset (apply it, the state
        skips it); ``gap``: an earlier offset is missing, drop this record."""
        expected = self._next.get(key)
        if expected is None or offset == expected:
            self._next[key] = offset + 1
            self.gaps.pop(key, None)
            return "next"
        if offset < expected:
            return "seen"
        gap = self.gaps.get(key)
        if gap is None:
            self.gaps[key] = Gap(expected, offset)
        else:
            gap.lowest_dropped = min(gap.lowest_dropped, offset)
        return "gap"

    def due_seeks(self) -> list[tuple[K, int, bool]]:
        """``(key, offset, gave_up)`` of the partitions to seek now; marks them as sought.

        ``gave_up``: the missing offset was sought ``max_seeks`` times in vain; the guard now
        expects (and the runner seeks to) the lowest dropped offset instead.
        """
        now = self.clock()
        due = []
        for key, gap in self.gaps.items():
            if now - gap.last_seek < self.retry_s:
                continue
            gave_up = gap.seeks >= self.max_seeks
            if gave_up:
                gap.expected, gap.seeks = gap.lowest_dropped, 0
                self._next[key] = gap.expected
            gap.seeks += 1
            gap.last_seek = now
            due.append((key, gap.expected, gave_up))
        return due

    def forget(self) -> None:
        """Forget every partition (after a rebalance Faust seeks to the committed offsets)."""
        self._next.clear()
        self.gaps.clear()
