"""What one API process serves from (:class:`ApiParts`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from vsa.services.indexer.alert_history import AlertHistory
from vsa.services.indexer.like import ObjectSearcher
from vsa.services.indexer.search import Searcher

from .cameras import CameraWatch
from .frames import FrameSource
from .live import AlertFeed

T = TypeVar("T")


class PartMissingError(Exception):
    """A path whose part (alert history, live alerts, cameras, frames) is not configured."""


def need(part: T | None, name: str) -> T:
    """``part``, or :class:`PartMissingError` (503) naming what is missing."""
    if part is None:
        raise PartMissingError(f"{name} is not configured in this API process")
    return part


@dataclass
class ApiParts:
    """What the API serves from. Only search is required; a missing part makes its paths 503.

    ``camera_window_s``: the span the cameras' rates average over (for the response)."""

    searcher: Searcher
    history: AlertHistory | None = None
    feed: AlertFeed | None = None
    cameras: CameraWatch | None = None
    frames: FrameSource | None = None
    objects: ObjectSearcher | None = None  # None: one on the searcher's client and settings
    camera_window_s: float = 10.0
