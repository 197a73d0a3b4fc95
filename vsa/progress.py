"""A live table for long-running commands: redrawn in place on a terminal, printed otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Collection, Sequence
from typing import TextIO


def format_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    title: str = "",
    left: Collection[int] = (0,),
) -> list[str]:
    """Lines of a plain-text table: the title (if any), a header, a rule, one line per row.

    Columns are as wide as their widest cell; those whose index is in ``left`` (text) are
    left-aligned, the others (numbers) right-aligned. Cells beyond the last column are dropped.
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i in left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=False))
        ).rstrip()

    lines = [title] if title else []
    lines += [line(columns), "  ".join("-" * w for w in widths)]
    return lines + [line(row) for row in cells]


class LiveTable:
    """Draws ``rows`` under ``columns``; on a TTY each draw replaces the previous one.

    Off a terminal (CI logs, pipes) it prints the table at most every ``plain_every_s`` seconds,
    so logs stay readable.
    """

    def __init__(
        self,
        columns: Sequence[str],
        out: TextIO | None = None,
        plain_every_s: float = 5.0,
        title: str = "",
    ) -> None:
        self.columns = list(columns)
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.plain_every_s = plain_every_s
        self.title = title
        self._lines_drawn = 0
        self._last_plain = 0.0

    def render(self, rows: Sequence[Sequence[object]], footer: str = "") -> str:
        """The table as text: the title, a header, a rule, one line per row, then the footer."""
        parts = format_table(self.columns, rows, self.title)
        if footer:
            parts.append(footer)
        return "\n".join(parts)

    def draw(self, rows: Sequence[Sequence[object]], footer: str = "", final: bool = False) -> None:
        """Show the table now (TTY), or if enough time passed since the last print (plain)."""
        text = self.render(rows, footer)
        if self.tty:
            if self._lines_drawn:
                self.out.write(f"\x1b[{self._lines_drawn}F\x1b[J")
            self.out.write(text + "\n")
            self._lines_drawn = text.count("\n") + 1
        elif final or time.monotonic() - self._last_plain >= self.plain_every_s:
            self.out.write(text + "\n\n")
            self._last_plain = time.monotonic()
        self.out.flush()

    def message(self, text: str) -> None:
        """Print a line above the table (alerts, warnings) without breaking the redraw."""
        if self.tty and self._lines_drawn:
            self.out.write(f"\x1b[{self._lines_drawn}F\x1b[J")
            self._lines_drawn = 0
        self.out.write(text + "\n")
        self.out.flush()


class RateMeter:
    """Per-key rates (items/s) over the interval between two calls of :meth:`rates`."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, key: str, total: float) -> float:
        now = time.monotonic()
        prev = self._last.get(key)
        self._last[key] = (now, total)
        if prev is None or now <= prev[0]:
            return 0.0
        return (total - prev[1]) / (now - prev[0])
