"""What a search returns: :class:`SearchHit`, one keyframe, and :class:`DuplicateHit`, a
near-duplicate keyframe folded into it (see :mod:`.collapse`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from vsa.schemas import FrameRef


def iso_utc(ts: float) -> str:
    """UNIX seconds as ISO 8601 UTC with a ``Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class DuplicateHit:
    """A keyframe folded into a better-ranked near-duplicate: its id, score, frame and time."""

    doc_id: str
    score: float
    frame_seq: int
    capture_ts: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.doc_id,
            "score": self.score,
            "frame_seq": self.frame_seq,
            "capture_ts": self.capture_ts,
            "capture_time": iso_utc(self.capture_ts),
        }


@dataclass(frozen=True)
class SearchHit:
    """One matching keyframe. ``score``: the k-NN score (1 + cosine) / 2 in 0..1, or the RRF
    score for hybrid queries; ``similarity``: the cosine of query and caption (-1..1), when the
    hit came through k-NN. ``duplicates``: near-duplicate keyframes folded into this one when
    the search collapsed them (empty otherwise)."""

    doc_id: str
    score: float
    similarity: float | None
    camera_id: str
    frame_seq: int
    capture_ts: float
    caption: str
    captioner: str
    classes: tuple[str, ...]
    track_ids: tuple[int, ...]
    alert_kinds: tuple[str, ...]
    frame: FrameRef
    thumbnail_jpeg: bytes
    duplicates: tuple[DuplicateHit, ...] = ()

    @property
    def capture_time(self) -> datetime:
        """Capture time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.capture_ts, tz=timezone.utc)

    @property
    def count(self) -> int:
        """Keyframes this hit stands for: itself and its duplicates."""
        return 1 + len(self.duplicates)

    @property
    def time_range(self) -> tuple[float, float]:
        """First and last capture time (UNIX seconds) of this hit and its duplicates."""
        times = [self.capture_ts, *(d.capture_ts for d in self.duplicates)]
        return min(times), max(times)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; the thumbnail as base64 (``thumbnail_jpeg_b64``)."""
        first, last = self.time_range
        return {
            "id": self.doc_id,
            "score": self.score,
            "similarity": self.similarity,
            "camera_id": self.camera_id,
            "frame_seq": self.frame_seq,
            "capture_ts": self.capture_ts,
            "capture_time": iso_utc(self.capture_ts),
            "caption": self.caption,
            "captioner": self.captioner,
            "classes": list(self.classes),
            "track_ids": list(self.track_ids),
            "alert_kinds": list(self.alert_kinds),
            "frame": self.frame.model_dump(),
            "thumbnail_jpeg_b64": base64.b64encode(self.thumbnail_jpeg).decode("ascii"),
            "count": self.count,
            "first_capture_time": iso_utc(first),
            "last_capture_time": iso_utc(last),
            "duplicates": [d.to_json() for d in self.duplicates],
        }
