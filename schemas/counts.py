"""The counts topic: one message per counting rule and period (line counts, zone occupancy).

The tracker sends a period's message when the camera's first frame at or after the period's end
arrives (see ``vsa.schemas.rules.periods``). Its id is deterministic, :func:`make_count_id`
(camera, rule, period start), so a redelivered frame overwrites the same message downstream (the
indexer writes it under that id).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, model_validator
from typing_extensions import Self

from .codec import JsonMessage
from .common import CameraId, Finite, FrameSeq, Identifier, UnixTs
from .rules import CountKind

#: Hex digits of a count id: BLAKE2b with a 16-byte digest (128 bits).
COUNT_ID_HEX_DIGITS = 32

CountId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{32}$"),
    Field(description="Deterministic id, 32 lowercase hex digits (see make_count_id)."),
]
ValueName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
CountValue = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | Finite


def make_count_id(camera_id: str, rule_id: str, period_start_ts: float) -> str:
    """Deterministic id of one period of one counting rule: 32 lowercase hex digits.

    The BLAKE2b-128 hex digest of the UTF-8 bytes of the compact JSON array
    ``[camera_id, rule_id, period_start_ms]`` (the period start in whole milliseconds, so the
    float's last bits cannot change it), e.g. ``["cam-1","door-count",1767225600000]``.
    """
    start_ms = round(period_start_ts * 1000)
    canonical = json.dumps([camera_id, rule_id, start_ms], separators=(",", ":"))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).hexdigest()


class Counts(JsonMessage):
    """A counting rule's numbers for one period of capture time."""

    LOGICAL_TOPIC: ClassVar[str] = "counts"

    count_id: CountId
    camera_id: CameraId
    rule_id: Identifier = Field(description="Id of the rule in the camera's config.")
    kind: CountKind = Field(description="Which kind of counting rule: line_count or occupancy.")
    target_id: Identifier = Field(description="The line (line_count) or zone (occupancy).")
    period_start_ts: UnixTs = Field(description="Start of the period, UNIX seconds (included).")
    period_end_ts: UnixTs = Field(description="End of the period, UNIX seconds (excluded).")
    frame_seq: FrameSeq = Field(description="The frame that closed the period.")
    values: dict[ValueName, CountValue] = Field(
        max_length=32,
        description="The kind's numbers: line_count a_to_b, b_to_a, total (crossings); "
        "occupancy min, max, mean (objects), frames, observed_s (seconds watched).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.period_end_ts <= self.period_start_ts:
            raise ValueError(
                f"period_end_ts {self.period_end_ts} is not after period_start_ts "
                f"{self.period_start_ts}"
            )
        return self
