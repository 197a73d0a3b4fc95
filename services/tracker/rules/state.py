"""Per-camera rule state: for each rule, one row per track it has seen (row 0 for zone-wide rules).

A row remembers what the rule needs from earlier frames: when the track entered the zone, on
which side of the line it last was (and where), whether it already alerted during this visit,
how many alerts it produced (the episode number in ``make_alert_id``) and when the cooldown
ends. Rows of removed tracks are dropped with the tracks, so the state stays as small as the
number of live tracks times rules.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from vsa.services.tracker.core.binary import F8, F64, I8, I64, Reader, Writer

# Columns of RuleTable.ints.
EPISODE: Final = 0  # alerts this rule fired for this track (or zone) so far
SIDE: Final = 1  # line rules: last side (-1, +1) beyond the dead band, 0 unknown
FIRED: Final = 2  # 1 while the current visit (crowd) has alerted already
N_INT_COLS: Final = 3

# Columns of RuleTable.floats.
ENTER_TS: Final = 0  # zone rules: capture_ts the track entered, -1 when outside
COOLDOWN_UNTIL: Final = 1  # no new alert before this capture_ts
PX: Final = 2  # line rules: normalised anchor point where the track was last seen on SIDE
PY: Final = 3
N_FLOAT_COLS: Final = 4

#: Track id of the single row of rules about a whole zone (crowding).
ZONE_ROW: Final = 0

_DEFAULT_FLOATS = np.array([-1.0, 0.0, 0.0, 0.0])
_U32 = struct.Struct("<I")


def _members(sorted_ids: I64, ids: I64) -> npt.NDArray[np.bool_]:
    """Which of ``ids`` are in ``sorted_ids`` (ascending): a searchsorted, not np.isin's sort."""
    if sorted_ids.size == 0:
        return np.zeros(ids.shape, bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    found: npt.NDArray[np.bool_] = sorted_ids[at] == ids
    return found


@dataclass(frozen=True, eq=False)
class RuleTable:
    """One rule's rows, by track id: ``track_ids (k,)``, ``ints (k, 3)``, ``floats (k, 4)``."""

    track_ids: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    ints: I64 = field(default_factory=lambda: np.zeros((0, N_INT_COLS), np.int64))
    floats: F64 = field(default_factory=lambda: np.zeros((0, N_FLOAT_COLS), np.float64))

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def keep(self, live_ids: I64) -> RuleTable:
        """The rows of tracks still alive (``live_ids`` ascending) and the zone row."""
        mask = _members(live_ids, self.track_ids) | (self.track_ids == ZONE_ROW)
        if mask.all():
            return self
        return RuleTable(self.track_ids[mask], self.ints[mask], self.floats[mask])

    def restarted(self) -> RuleTable:
        """The table of a camera starting over (see ``TrackerState.restarted``): only the zone
        row, its episode count and cooldown kept (alert ids stay unique, a cooldown still runs
        on capture time), its visit forgotten; the rows of the ended tracks dropped."""
        zone = self.track_ids == ZONE_ROW
        ints = np.zeros((int(zone.sum()), N_INT_COLS), np.int64)
        ints[:, EPISODE] = self.ints[zone, EPISODE]
        floats = np.tile(_DEFAULT_FLOATS, (ints.shape[0], 1))
        floats[:, COOLDOWN_UNTIL] = self.floats[zone, COOLDOWN_UNTIL]
        return RuleTable(self.track_ids[zone], ints, floats)

    def with_rows(self, ids: I64) -> tuple[RuleTable, npt.NDArray[np.intp]]:
        """A writable copy with a row for each of ``ids`` (ascending, unique; new rows get
        defaults), and the row index of each id."""
        missing = ids[~_members(self.track_ids, ids)]
        if missing.size == 0:
            table = RuleTable(self.track_ids, self.ints.copy(), self.floats.copy())
        else:
            all_ids = np.concatenate([self.track_ids, missing])
            order = np.argsort(all_ids, kind="stable")
            ints = np.concatenate([self.ints, np.zeros((missing.size, N_INT_COLS), np.int64)])
            floats = np.concatenate([self.floats, np.tile(_DEFAULT_FLOATS, (missing.size, 1))])
            table = RuleTable(all_ids[order], ints[order], floats[order])
        return table, np.searchsorted(table.track_ids, ids)

    def write(self, out: Writer) -> None:
        out.pack(_U32, len(self))
        out.array(self.track_ids, I8)
        out.array(self.ints, I8)
        out.array(self.floats, F8)

    @classmethod
    def read(cls, src: Reader) -> RuleTable:
        (rows,) = src.unpack(_U32)
        track_ids = src.array_i8(rows, 1).reshape(rows)
        return cls(track_ids, src.array_i8(rows, N_INT_COLS), src.array_f8(rows, N_FLOAT_COLS))


@dataclass(frozen=True, eq=False)
class RuleState:
    """The rule tables of one camera, by rule_id (a rule not in the config has no table)."""

    tables: dict[str, RuleTable] = field(default_factory=dict)

    def table(self, rule_id: str) -> RuleTable:
        """The rule's table, empty if it has none yet."""
        return self.tables.get(rule_id) or RuleTable()

    def restarted(self) -> RuleState:
        """Every table :meth:`RuleTable.restarted`."""
        return RuleState({rule_id: t.restarted() for rule_id, t in self.tables.items()})

    def write(self, out: Writer) -> None:
        out.pack(_U32, len(self.tables))
        for rule_id, table in self.tables.items():
            out.text(rule_id)
            table.write(out)

    @classmethod
    def read(cls, src: Reader) -> RuleState:
        (count,) = src.unpack(_U32)
        tables = {}
        for _ in range(count):
            rule_id = src.text()
            tables[rule_id] = RuleTable.read(src)
        return cls(tables)
