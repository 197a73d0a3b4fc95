"""Count periods of the counting kinds: fixed intervals of capture time, aligned to multiples of
the interval since the UNIX epoch (every camera's 15-minute periods start at :00, :15, ...).

A period is closed, and its numbers sent, by the first frame at or after its end; a camera that
sends no frame for a whole period has no message for it.
"""

from __future__ import annotations

import math

from pydantic import Field

#: Seconds of a count period, with its bounds (the ``interval_s`` field of counting rules).
IntervalField = Field(
    60.0,
    ge=1,
    le=86_400,
    allow_inf_nan=False,
    description="Seconds per count period (periods start at multiples of it since the UNIX "
    "epoch, e.g. 3600: on the hour). One counts message per period.",
)


def period_start(ts: float, interval_s: float) -> float:
    """Start of the period holding capture time ``ts``, UNIX seconds."""
    return math.floor(ts / interval_s) * interval_s
