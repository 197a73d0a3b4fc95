"""A rule's memory between frames: one row per track it has seen, plus rows about the whole zone
or line (track id 0 and below), as two small matrices.

Every kind shares the first columns (:data:`BASE`): the episode counter behind deterministic
alert ids, the visit flag, the cooldown end, a zone entry time and a line side with its point. A
kind that needs more declares extra columns (:class:`Layout`) after those. Rows of tracks that
ended are dropped with the tracks, so a table stays as small as the live tracks times rules.
The tracker stores tables in its per-camera state (``vsa.services.tracker.rules.state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Columns of RuleTable.ints every kind has.
EPISODE: Final = 0  # alerts this rule fired for this track (or zone) so far
SIDE: Final = 1  # line rules: last side (-1, +1) beyond the dead band, 0 unknown
FIRED: Final = 2  # 1 while the current visit (crowd, episode) has alerted already
N_INT_COLS: Final = 3

# Columns of RuleTable.floats every kind has.
ENTER_TS: Final = 0  # zone rules: capture_ts the track entered, -1 when outside
COOLDOWN_UNTIL: Final = 1  # no new alert before this capture_ts
PX: Final = 2  # line rules: normalised anchor point where the track was last seen on SIDE
PY: Final = 3
N_FLOAT_COLS: Final = 4

#: Track id of the single row of rules about a whole zone or line (crowding, counts).
ZONE_ROW: Final = 0


@dataclass(frozen=True)
class Layout:
    """The columns of a kind's table: the shared ones, then its own, with new rows' values."""

    int_defaults: tuple[int, ...] = (0, 0, 0)
    float_defaults: tuple[float, ...] = (-1.0, 0.0, 0.0, 0.0)

    @property
    def widths(self) -> tuple[int, int]:
        """(int columns, float columns)."""
        return len(self.int_defaults), len(self.float_defaults)

    def extended(self, ints: tuple[int, ...] = (), floats: tuple[float, ...] = ()) -> Layout:
        """This layout with more columns, after the existing ones."""
        return Layout(self.int_defaults + ints, self.float_defaults + floats)


#: The columns every kind has (and all a kind without its own has).
BASE: Final = Layout()


def _members(sorted_ids: I64, ids: I64) -> Bools:
    """Which of ``ids`` are in ``sorted_ids`` (ascending): a searchsorted, not np.isin's sort."""
    if sorted_ids.size == 0:
        return np.zeros(ids.shape, bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    found: Bools = sorted_ids[at] == ids
    return found


@dataclass(frozen=True, eq=False)
class RuleTable:
    """One rule's rows, by ascending id: ``track_ids (k,)``, ``ints (k, i)``, ``floats (k, f)``
    with the widths of the kind's :class:`Layout` (at least the :data:`BASE` columns)."""

    track_ids: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    ints: I64 = field(default_factory=lambda: np.zeros((0, N_INT_COLS), np.int64))
    floats: F64 = field(default_factory=lambda: np.zeros((0, N_FLOAT_COLS), np.float64))

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    @classmethod
    def empty(cls, layout: Layout = BASE) -> RuleTable:
        n_int, n_float = layout.widths
        return cls(np.zeros(0, np.int64), np.zeros((0, n_int), np.int64), np.zeros((0, n_float)))

    def fit(self, layout: Layout) -> RuleTable:
        """This table with the columns of ``layout``: extra columns cut, missing ones added
        with their defaults (the shared columns, episodes and cooldowns, are kept). A rule
        whose kind changed in the config keeps counting its episodes."""
        n_int, n_float = layout.widths
        if self.ints.shape[1] == n_int and self.floats.shape[1] == n_float:
            return self
        rows = len(self)
        ints = np.tile(np.array(layout.int_defaults, np.int64), (rows, 1))
        floats = np.tile(np.array(layout.float_defaults, np.float64), (rows, 1))
        shared_i, shared_f = min(n_int, self.ints.shape[1]), min(n_float, self.floats.shape[1])
        ints[:, :shared_i] = self.ints[:, :shared_i]
        floats[:, :shared_f] = self.floats[:, :shared_f]
        return RuleTable(self.track_ids, ints, floats)

    def keep(self, live_ids: I64) -> RuleTable:
        """The rows of tracks still alive (``live_ids`` ascending) and the zone rows (<= 0)."""
        mask = _members(live_ids, self.track_ids) | (self.track_ids <= ZONE_ROW)
        if mask.all():
            return self
        return self.select(mask)

    def select(self, mask: Bools) -> RuleTable:
        """The rows where ``mask`` is true."""
        return RuleTable(self.track_ids[mask], self.ints[mask], self.floats[mask])

    def restarted(self) -> RuleTable:
        """The table of a camera starting over (see ``TrackerState.restarted``): only the zone
        rows, with their episode count and cooldown (alert ids stay unique, a cooldown still
        runs on capture time) and their kind's own columns (an open count period goes on), the
        rest of the shared columns back to defaults; the rows of the ended tracks dropped."""
        zone = self.track_ids <= ZONE_ROW
        ints = self.ints[zone].copy()
        floats = self.floats[zone].copy()
        ints[:, :N_INT_COLS] = BASE.int_defaults
        floats[:, :N_FLOAT_COLS] = BASE.float_defaults
        ints[:, EPISODE] = self.ints[zone, EPISODE]
        floats[:, COOLDOWN_UNTIL] = self.floats[zone, COOLDOWN_UNTIL]
        return RuleTable(self.track_ids[zone], ints, floats)

    def contains(self, ids: I64) -> Bools:
        """Which of ``ids`` have a row."""
        return _members(self.track_ids, ids)

    def with_rows(self, ids: I64, layout: Layout = BASE) -> tuple[RuleTable, npt.NDArray[np.intp]]:
        """A writable copy with a row for each of ``ids`` (ascending, unique; new rows get the
        defaults of ``layout``), and the row index of each id."""
        missing = ids[~_members(self.track_ids, ids)]
        if missing.size == 0:
            table = RuleTable(self.track_ids, self.ints.copy(), self.floats.copy())
        else:
            all_ids = np.concatenate([self.track_ids, missing])
            order = np.argsort(all_ids, kind="stable")
            new_ints = np.tile(np.array(layout.int_defaults, np.int64), (missing.size, 1))
            new_floats = np.tile(np.array(layout.float_defaults, np.float64), (missing.size, 1))
            ints = np.concatenate([self.ints, new_ints])
            floats = np.concatenate([self.floats, new_floats])
            table = RuleTable(all_ids[order], ints[order], floats[order])
        return table, np.searchsorted(table.track_ids, ids)
