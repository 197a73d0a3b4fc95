"""Why ingest could not continue a camera's frame_seq from its frames partition (pure part)."""

from __future__ import annotations

import pytest

from vsa.services.ingest.resume import unrecovered_reason


@pytest.mark.parametrize(
    ("low", "high", "scan", "reason"),
    [
        (0, 0, 500, None),  # a new topic: the camera's first frames
        (0, 120, 500, None),  # the whole partition was read: the camera never sent a frame
        (351, 351, 500, "expired"),  # retention deleted every frame of the partition
        (300, 351, 500, "expired"),  # the frames left are other cameras'
        (0, 900, 500, "beyond_scan"),  # its last frame may be further back than the scan
        (351, 2000, 500, "beyond_scan"),
    ],
)
def test_unrecovered_reason(low: int, high: int, scan: int, reason: str | None) -> None:
    assert unrecovered_reason(low, high, scan) == reason
