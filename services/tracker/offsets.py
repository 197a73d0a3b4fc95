"""Which consumed offsets the tracker may apply, per partition: a guard against skipped records.

A partition's records can reach the agent with one missing. It was seen right after a restart,
around the seek to the committed offsets that Faust makes when the table recovery completes,
while records were already flowing (with ``Stream.take_events`` in about one kill -9 restart in
three), and Faust has more ways to skip a record (its fetch loop drops a record whose offset is
below the highest one it delivered for the partition; its stream drops, and acknowledges, an
event that arrives while flow control is suspended). The missing record is never acknowledged,
so its offset is never committed, yet the live worker would go on without it: that camera would
miss a frame, and the frames after it would be tracked from a different state than the offline
replay's.

:class:`OffsetGuard` remembers, per partition, the offset that must come next. A record past it
is a gap: the runner drops it (does not apply or acknowledge it), pauses the partition and seeks
it back to the missing offset until the missing record arrives (``service.py`` says why the
partition must be paused during the seek: without that, the seek was undone by the batch Faust
was delivering, and every retry failed the same way). A topic may have offsets without records
(transaction markers): after ``max_seeks`` seeks proven vain (the partition came back past the
missing offset without it; time alone proves nothing) the guard gives up on the missing offset
and moves on to the lowest offset it dropped, and says so (an error log ``offset_gap_given_up``
and ``vsa_tracker_offset_gaps_total{outcome="given_up"}``). vsa's producers are not
transactional, so a give-up there is a bug; the integration tests assert none.

A partition just assigned is told where it starts (:meth:`OffsetGuard.expect`, its committed
offset), so records skipped before the first one that arrives are a gap too: after a kill -9 and
a restart with an empty data folder, the new worker's first record of a partition was offset 55
although nothing had been committed there (Faust drops records that arrive while its flow
control is suspended or that carry an older generation), and a camera's first 55 frames were
never tracked.
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
    """A partition waiting for a missing offset.

    ``misses``: seeks proven vain: after the seek the partition was delivered again past the
    missing offset (an offset already dropped came back) without the missing one.
    ``pending``: a seek was made and nothing has proven it vain yet.
    """

    expected: int
    lowest_dropped: int
    highest_dropped: int
    misses: int = 0
    pending: bool = False
    last_seek: float = float("-inf")


class OffsetGuard(Generic[K]):
    """Per partition (any hashable key), the next offset to apply.

    Args:
        retry_s: seconds after which a seek that brought nothing back yet is made again (a
            seek proven vain is made again at once).
        max_seeks: seeks proven vain before a missing offset is given up (treated as a hole in
            the log). Only evidence counts, never time: a slow refetch on a loaded machine is
            sought again, never given up.
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
            self.gaps[key] = Gap(expected, offset, offset)
            return "gap"
        if offset <= gap.highest_dropped and gap.pending:
            # Records queued before the seek come in rising order above every dropped offset;
            # one at or below them was fetched again after the seek: the seek was in vain.
            gap.misses += 1
            gap.pending = False
        gap.lowest_dropped = min(gap.lowest_dropped, offset)
        gap.highest_dropped = max(gap.highest_dropped, offset)
        return "gap"

    def due_seeks(self) -> list[tuple[K, int, bool]]:
        """``(key, offset, gave_up)`` of the partitions to seek now; marks them as sought.

        ``gave_up``: the missing offset was sought ``max_seeks`` times in vain; the guard now
        expects (and the runner seeks to) the lowest dropped offset instead.
        """
        now = self.clock()
        due = []
        for key, gap in self.gaps.items():
            if gap.pending and now - gap.last_seek < self.retry_s:
                continue
            gave_up = gap.misses >= self.max_seeks
            if gave_up:
                gap.expected, gap.misses = gap.lowest_dropped, 0
                self._next[key] = gap.expected
            gap.pending = True
            gap.last_seek = now
            due.append((key, gap.expected, gave_up))
        return due

    def knows(self, key: K) -> bool:
        """Whether an offset is expected next on ``key`` (it saw a record or was told)."""
        return key in self._next

    def expect(self, key: K, offset: int) -> None:
        """Expect ``offset`` first on a partition just assigned (its committed offset): a record
        past it is a gap, so records skipped before the first one that arrives are sought back
        too."""
        self._next.setdefault(key, offset)

    def rewind(self, key: K, offset: int) -> None:
        """Expect ``offset`` next on ``key`` again: records from it on were taken but not
        applied (a batch dropped after a freeze), so the next later record is a gap and the
        partition is sought back to ``offset``."""
        if key in self._next:
            self._next[key] = min(self._next[key], offset)
        self.gaps.pop(key, None)

    def forget(self) -> None:
        """Forget every partition (after a rebalance Faust seeks to the committed offsets)."""
        self._next.clear()
        self.gaps.clear()
