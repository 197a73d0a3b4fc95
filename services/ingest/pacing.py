"""Pure helpers of the ingest service: frame sampling, output size, reconnect back-off."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class FpsSampler:
    """Keeps frames evenly to reach ``target_fps`` from a source of any rate.

    Decisions use the frames' presentation times, so a 25 fps file sampled at 10 fps keeps
    frames 0.1 s apart in media time, whatever the decode speed. ``target_fps=None`` keeps all.
    Timestamps that jump backwards (a looped file, a reconnected stream) restart the schedule.
    """

    target_fps: float | None
    _next_s: float | None = field(default=None, init=False)
    _last_s: float | None = field(default=None, init=False)

    def keep(self, pts_s: float) -> bool:
        """True if the frame at media time ``pts_s`` (seconds) should be kept."""
        if self.target_fps is None:
            return True
        period = 1.0 / self.target_fps
        if self._last_s is not None and pts_s < self._last_s:
            self._next_s = None
        self._last_s = pts_s
        if self._next_s is None or pts_s >= self._next_s - 1e-6:
            base = pts_s if self._next_s is None else self._next_s
            # Skip whole periods when the source itself jumped ahead (gaps, slow source).
            periods = max(1, math.floor((pts_s - base) / period) + 1)
            self._next_s = base + periods * period
            return True
        return False


def fit_size(
    width: int, height: int, max_width: int | None, max_height: int | None
) -> tuple[int, int]:
    """Output size keeping the aspect ratio within the bounds, rounded down to even pixels (4:2:0).

    Never upscales. Returns ``(width, height)`` in pixels.
    """
    scale = 1.0
    if max_width is not None and width > max_width:
        scale = min(scale, max_width / width)
    if max_height is not None and height > max_height:
        scale = min(scale, max_height / height)
    out_w = max(2, int(width * scale + 1e-6) // 2 * 2)
    out_h = max(2, int(height * scale + 1e-6) // 2 * 2)
    return out_w, out_h


@dataclass
class Backoff:
    """Exponential back-off with full jitter for reconnects: ``min_s``, doubling up to ``max_s``."""

    min_s: float
    max_s: float
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt."""
        ceiling = min(self.max_s, self.min_s * (2**self.attempt))
        self.attempt += 1
        return float(self.min_s + self.rng.random() * max(0.0, ceiling - self.min_s))

    def reset(self) -> None:
        """Call after a successful connection."""
        self.attempt = 0
