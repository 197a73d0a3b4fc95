"""Per-camera rule state: each rule's :class:`~vsa.schemas.rules.RuleTable` by rule_id, and its
encoding into the camera's state bytes.

A table remembers what its rule needs from earlier frames (see ``vsa.schemas.rules.table``):
when a track entered the zone, on which side of the line it last was, whether it already
alerted during this visit, how many alerts it produced (the episode number in
``make_alert_id``) and when the cooldown ends, plus any columns its kind adds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vsa.schemas.rules.table import (
    COOLDOWN_UNTIL,
    ENTER_TS,
    EPISODE,
    FIRED,
    N_FLOAT_COLS,
    N_INT_COLS,
    PX,
    PY,
    SIDE,
    ZONE_ROW,
    RuleTable,
)
from vsa.services.tracker.core.binary import F8, I8, Reader, StateFormatError, Writer

__all__ = [
    "COOLDOWN_UNTIL",
    "ENTER_TS",
    "EPISODE",
    "FIRED",
    "N_FLOAT_COLS",
    "N_INT_COLS",
    "PX",
    "PY",
    "SIDE",
    "ZONE_ROW",
    "RuleState",
    "RuleTable",
    "read_table",
    "write_table",
]

_U32 = struct.Struct("<I")


_WIDTHS = struct.Struct("<HH")  # int and float columns of a table (format version 2)


def write_table(out: Writer, table: RuleTable) -> None:
    """Append a table: row count, its column counts, then its ids, ints and floats as raw
    little-endian arrays."""
    out.pack(_U32, len(table))
    out.pack(_WIDTHS, table.ints.shape[1], table.floats.shape[1])
    out.array(table.track_ids, I8)
    out.array(table.ints, I8)
    out.array(table.floats, F8)


def read_table(src: Reader, version: int = 2) -> RuleTable:
    """Read a table written by :func:`write_table`; ``version`` 1 tables (before kinds had
    columns of their own) have the shared columns only and no column counts."""
    (rows,) = src.unpack(_U32)
    n_int, n_float = src.unpack(_WIDTHS) if version >= 2 else (N_INT_COLS, N_FLOAT_COLS)
    if n_int < N_INT_COLS or n_float < N_FLOAT_COLS:
        raise StateFormatError(f"rule table with {n_int}/{n_float} columns, fewer than shared")
    track_ids = src.array_i8(rows, 1).reshape(rows)
    return RuleTable(track_ids, src.array_i8(rows, n_int), src.array_f8(rows, n_float))


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
            write_table(out, table)

    @classmethod
    def read(cls, src: Reader, version: int = 2) -> RuleState:
        """Read what :meth:`write` wrote (``version``: of the camera state, see read_table)."""
        (count,) = src.unpack(_U32)
        tables = {}
        for _ in range(count):
            rule_id = src.text()
            tables[rule_id] = read_table(src, version)
        return cls(tables)
