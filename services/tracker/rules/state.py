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
from vsa.services.tracker.core.binary import F8, I8, Reader, Writer

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


def write_table(out: Writer, table: RuleTable) -> None:
    """Append a table: row count, then its ids, ints and floats as raw little-endian arrays."""
    out.pack(_U32, len(table))
    out.array(table.track_ids, I8)
    out.array(table.ints, I8)
    out.array(table.floats, F8)


def read_table(src: Reader) -> RuleTable:
    """Read a table written by :func:`write_table` (the shared columns only)."""
    (rows,) = src.unpack(_U32)
    track_ids = src.array_i8(rows, 1).reshape(rows)
    return RuleTable(track_ids, src.array_i8(rows, N_INT_COLS), src.array_f8(rows, N_FLOAT_COLS))


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
    def read(cls, src: Reader) -> RuleState:
        (count,) = src.unpack(_U32)
        tables = {}
        for _ in range(count):
            rule_id = src.text()
            tables[rule_id] = read_table(src)
        return cls(tables)
