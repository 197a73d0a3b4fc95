"""The demo's per-camera view: what each camera sent and what the pipeline found in it.

Pure core, no Kafka: :class:`Tally` counts messages of one camera, :class:`CameraCounter` keeps
tallies since start and over a sliding window, and :func:`render_live` / :func:`render_totals`
turn them into text lines. The runner that feeds it from the topics is in :mod:`vsa.demo`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vsa.progress import format_table

#: Classes named in the "top classes" column, most objects first.
TOP_CLASSES = 3


@dataclass(frozen=True)
class Tally:
    """Counts for one camera over some span of time.

    Attributes:
        frames: frames-topic records (one per frame ingest sent).
        detections: detections messages (one per frame the detector finished).
        objects: boxes in those detections messages.
        tracks: tracks messages (one per frame the tracker finished).
        alerts: alerts the tracker raised.
        classes: objects per class name (``{"person": 12, "car": 1}``); sums to ``objects``.
    """

    frames: int = 0
    detections: int = 0
    objects: int = 0
    tracks: int = 0
    alerts: int = 0
    classes: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Tally) -> Tally:
        classes = Counter(self.classes)
        classes.update(other.classes)
        return Tally(
            frames=self.frames + other.frames,
            detections=self.detections + other.detections,
            objects=self.objects + other.objects,
            tracks=self.tracks + other.tracks,
            alerts=self.alerts + other.alerts,
            classes=dict(classes),
        )


def detections_tally(class_names: Iterable[str]) -> Tally:
    """The tally of one detections message whose boxes have these class names."""
    classes = Counter(class_names)
    return Tally(detections=1, objects=sum(classes.values()), classes=dict(classes))


def sum_tallies(tallies: Iterable[tuple[str, Tally]]) -> dict[str, Tally]:
    """``(camera_id, tally)`` pairs summed per camera."""
    sums: dict[str, Tally] = {}
    for camera_id, tally in tallies:
        sums[camera_id] = sums.get(camera_id, Tally()) + tally
    return sums


class CameraCounter:
    """Tallies per camera since it was made (totals) and over the last ``window_s`` seconds.

    ``window_s`` is the span the rates average over: longer gives steadier numbers that follow a
    change more slowly; shorter follows faster but jumps with the detector's batches. Safe to
    :meth:`add` from one thread while another reads.
    """

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._totals: dict[str, Tally] = {}
        self._recent: deque[tuple[float, str, Tally]] = deque()

    def add(self, camera_id: str, tally: Tally) -> None:
        """Count ``tally`` for ``camera_id`` now."""
        now = self._clock()
        with self._lock:
            self._totals[camera_id] = self._totals.get(camera_id, Tally()) + tally
            self._recent.append((now, camera_id, tally))
            self._forget(now)

    def totals(self) -> dict[str, Tally]:
        """Each camera's tally since the counter was made."""
        with self._lock:
            return dict(self._totals)

    def window(self) -> tuple[dict[str, Tally], float]:
        """Each camera's tally over the window, and the window's length in seconds.

        The length is shorter than ``window_s`` during the first ``window_s`` seconds, so rates
        (tally / length) are right from the start; it is at least 1 s (or ``window_s`` if
        shorter), so the first messages do not show as a burst.
        """
        now = self._clock()
        with self._lock:
            self._forget(now)
            recent = [(camera_id, tally) for _, camera_id, tally in self._recent]
        span_s = min(self.window_s, max(now - self._started, 1.0))
        return sum_tallies(recent), span_s

    def elapsed_s(self) -> float:
        """Seconds since the counter was made."""
        return self._clock() - self._started

    def _forget(self, now: float) -> None:
        while self._recent and self._recent[0][0] <= now - self.window_s:
            self._recent.popleft()


def top_classes(classes: Mapping[str, int], span_s: float | None = None) -> str:
    """The most frequent classes: ``"person 4.2/s, car 0.3/s"`` when ``span_s`` (the seconds the
    counts cover, > 0) is given, counts (``"person 1234, car 12"``) otherwise; ``-`` when none.
    Ties go by name, so the text does not flicker between redraws."""
    ranked = sorted(classes.items(), key=lambda item: (-item[1], item[0]))[:TOP_CLASSES]
    if span_s is None:
        return ", ".join(f"{name} {count}" for name, count in ranked) or "-"
    return ", ".join(f"{name} {count / span_s:.1f}/s" for name, count in ranked) or "-"


def camera_order(cameras: Sequence[str], seen: Iterable[str]) -> list[str]:
    """The demo's cameras in their order, then any other camera seen in the topics, sorted."""
    return [*cameras, *sorted(set(seen) - set(cameras))]


LIVE_COLUMNS = (
    "camera",
    "frames/s",
    "detections/s",
    "objects/s",
    "tracks/s",
    "alerts",
    "top classes (objects/s)",
)
TOTAL_COLUMNS = ("camera", "frames", "detections", "objects", "tracks", "alerts", "top classes")


def render_live(
    cameras: Sequence[str], window: Mapping[str, Tally], span_s: float, totals: Mapping[str, Tally]
) -> list[str]:
    """The live per-camera table: rates over the last ``span_s`` seconds, alerts since start.

    ``cameras`` always get a row (zeros until their first message); cameras only in ``window``
    or ``totals`` are added after them.
    """
    if span_s <= 0:
        raise ValueError(f"span_s must be > 0, got {span_s}")
    per_s = 1 / span_s
    rows = []
    for camera_id in camera_order(cameras, [*window, *totals]):
        tally = window.get(camera_id, Tally())
        rows.append(
            (
                camera_id,
                f"{tally.frames * per_s:.1f}",
                f"{tally.detections * per_s:.1f}",
                f"{tally.objects * per_s:.1f}",
                f"{tally.tracks * per_s:.1f}",
                totals.get(camera_id, Tally()).alerts,
                top_classes(tally.classes, span_s),
            )
        )
    title = f"per camera (rates over the last {span_s:.0f} s; alerts since start)"
    return format_table(LIVE_COLUMNS, rows, title, left=(0, len(LIVE_COLUMNS) - 1))


def render_totals(
    cameras: Sequence[str], totals: Mapping[str, Tally], elapsed_s: float
) -> list[str]:
    """The end-of-run per-camera table: every count since start, objects per class included."""
    rows = []
    for camera_id in camera_order(cameras, totals):
        tally = totals.get(camera_id, Tally())
        rows.append(
            (
                camera_id,
                tally.frames,
                tally.detections,
                tally.objects,
                tally.tracks,
                tally.alerts,
                top_classes(tally.classes),
            )
        )
    title = f"per camera, whole run ({elapsed_s:.0f} s)"
    return format_table(TOTAL_COLUMNS, rows, title, left=(0, len(TOTAL_COLUMNS) - 1))
