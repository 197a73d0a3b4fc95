"""The default captioner: a plain-language description of a keyframe from what the pipeline knows.

No captioning weights are needed: the text is built from the keyframe's tracked objects (class,
box, velocity), each object's dominant colour measured on its own pixels, the camera's zones,
the alerts that fired, and the time of day. Example::

    Afternoon. 2 people walking left in zone 'entrance'; a white car parked on the right.
    Alerts: a person in red has been in zone 'gate' for 45 s (loitering).

Pure: numpy only. Images are ``(h, w, 3)`` uint8 RGB; boxes ``x1, y1, x2, y2`` in pixels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from vsa.schemas import TrackedObject, Zone

U8 = npt.NDArray[np.uint8]

#: Classes that move on their own feet (speed judged in body heights per second).
WALKERS = frozenset({"person"})
#: Classes described as parked/moving.
VEHICLES = frozenset({"car", "truck", "bus", "motorbike", "motorcycle", "bicycle", "train", "boat"})
PLURALS = {
    "person": "people",
    "bus": "buses",
    "bicycle": "bicycles",
    "knife": "knives",
    "mouse": "mice",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
}
NUMBER_WORDS = ("no", "a", "2", "3", "4", "5", "6", "7", "8", "9")

# Speeds relative to the box height, per second. Below STILL an object is standing/parked;
# a walking adult covers roughly 0.7 body heights per second, running well over 1.5.
STILL_HEIGHTS_S = 0.15
RUNNING_HEIGHTS_S = 1.5
#: Side of the square the colour is measured on (pixels after subsampling the crop).
COLOUR_SAMPLES = 24
#: Share of the measured pixels the winning colour needs; below it no colour is named.
COLOUR_MIN_SHARE = 0.35


@dataclass(frozen=True)
class DescribeOptions:
    """Knobs of the scene describer.

    Attributes:
        timezone: IANA zone of cameras whose config names none, for the time of day ("UTC",
            "Europe/Paris"); None: this host's local time zone.
        max_objects_named: Objects described one by one (with colour); the rest are counted.
        with_colour: Measure colours (needs the image); off makes describing ~3× cheaper.
    """

    timezone: str | None = "UTC"
    max_objects_named: int = 6
    with_colour: bool = True


@dataclass
class ObjectView:
    """What the describer derived for one object."""

    obj: TrackedObject
    colour: str | None = None
    motion: str = ""
    direction: str = ""
    place: str = ""
    zones: list[str] = field(default_factory=list)


def _colour_window(
    shape: tuple[int, ...], xyxy: Sequence[float], class_name: str
) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` of the pixels whose colour names the object, or None if too small.

    People are measured on the torso (clothes), other objects on the box centre, to keep the
    background out.
    """
    height, width = shape[:2]
    x1, y1, x2, y2 = (round(v) for v in xyxy)
    x1, x2 = max(0, min(x1, width - 1)), max(1, min(x2, width))
    y1, y2 = max(0, min(y1, height - 1)), max(1, min(y2, height))
    bw, bh = x2 - x1, y2 - y1
    if bw < 2 or bh < 2:
        return None
    if class_name in WALKERS:  # below the head, above the legs
        window = (y1 + bh // 5, y1 + bh * 3 // 5, x1 + bw // 4, x2 - bw // 4)
    else:
        window = (y1 + bh // 5, y2 - bh // 5, x1 + bw // 5, x2 - bw // 5)
    return window if window[1] > window[0] and window[3] > window[2] else None


def dominant_colours(image: U8, boxes: Sequence[tuple[Sequence[float], str]]) -> list[str | None]:
    """Dominant colour name of each ``(xyxy, class_name)`` box, None where none dominates.

    Every box is subsampled to at most 24×24 pixels; all of them are classified in HSV in one
    vectorised pass (11 colour names) and each box's majority wins if it holds 35 % or more.
    """
    samples, lengths = [], []
    for xyxy, class_name in boxes:
        window = _colour_window(image.shape, xyxy, class_name)
        if window is None:
            lengths.append(0)
            continue
        y0, y1, x0, x1 = window
        step_y, step_x = max(1, (y1 - y0) // COLOUR_SAMPLES), max(1, (x1 - x0) // COLOUR_SAMPLES)
        crop = image[y0:y1:step_y, x0:x1:step_x].reshape(-1, 3)
        samples.append(crop)
        lengths.append(len(crop))
    if not samples:
        return [None] * len(boxes)
    codes = _colour_codes(np.concatenate(samples))
    result: list[str | None] = []
    start = 0
    for length in lengths:
        counts = np.bincount(codes[start : start + length], minlength=len(COLOUR_NAMES))
        start += length
        best = int(counts.argmax()) if length else 0
        result.append(
            COLOUR_NAMES[best] if length and counts[best] >= COLOUR_MIN_SHARE * length else None
        )
    return result


def dominant_colour(image: U8, xyxy: Sequence[float], class_name: str) -> str | None:
    """Dominant colour name inside one box (see :func:`dominant_colours`)."""
    return dominant_colours(image, [(xyxy, class_name)])[0]


COLOUR_NAMES = (
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "brown",
    "white",
    "grey",
    "black",
)
_RED, _ORANGE, _BROWN, _WHITE, _GREY, _BLACK = 0, 1, 7, 8, 9, 10
_HUE_CODES = np.array([0, 1, 2, 3, 4, 5, 6, 0], np.int64)  # red .. pink, red again past 340°
_HUE_EDGES = np.array([15, 40, 70, 165, 255, 290, 340, 361])  # degrees, upper bound per code


def _colour_codes(rgb: U8) -> npt.NDArray[np.int64]:
    """Index into COLOUR_NAMES of each ``(n, 3)`` RGB pixel."""
    pixels = rgb.astype(np.float32) / 255
    high, low = pixels.max(1), pixels.min(1)
    chroma = high - low
    saturation = np.where(high > 0, chroma / np.maximum(high, 1e-6), 0)
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = (
        np.where(
            high == r,
            ((g - b) / safe) % 6,
            np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4),
        )
        * 60
    )
    codes = _HUE_CODES[np.searchsorted(_HUE_EDGES, hue, side="right").clip(0, 7)]
    brown = (codes == _ORANGE) & (high < 0.6) | (codes == _RED) & (high < 0.45)
    codes = np.where(brown, _BROWN, codes)
    grey = np.where(high > 0.8, _WHITE, np.where(high < 0.22, _BLACK, _GREY))
    return np.where((saturation < 0.25) | (high < 0.15), grey, codes)


def motion_of(obj: TrackedObject) -> tuple[str, str]:
    """``(motion, direction)`` words from the track's velocity, e.g. ``("walking", "left")``."""
    vx, vy = obj.velocity_px_s
    height = max(obj.xyxy[3] - obj.xyxy[1], 1.0)
    relative = float(np.hypot(vx, vy)) / height
    if relative < STILL_HEIGHTS_S:
        if obj.class_name in WALKERS:
            return "standing", ""
        return ("parked" if obj.class_name in VEHICLES else "still"), ""
    if abs(vx) >= abs(vy):
        direction = "right" if vx > 0 else "left"
    else:
        direction = "down the frame" if vy > 0 else "up the frame"
    if obj.class_name in WALKERS:
        return ("running" if relative > RUNNING_HEIGHTS_S else "walking"), direction
    return "moving", direction


def place_of(xyxy: Sequence[float], width: int, height: int) -> str:
    """Where a box sits in the frame: "on the left", "at the top right", "in the centre"."""
    cx = (xyxy[0] + xyxy[2]) / 2 / max(width, 1)
    cy = (xyxy[1] + xyxy[3]) / 2 / max(height, 1)
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    vertical = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    if horizontal and vertical:
        return f"at the {vertical} {horizontal}"
    if horizontal:
        return f"on the {horizontal}"
    return f"at the {vertical}" if vertical else "in the centre"


def zones_of(obj: TrackedObject, zones: Sequence[Zone], width: int, height: int) -> list[str]:
    """Names of the zones containing the object's box centre — the point the tracker's rules
    test by default (``anchor: center``), so captions and alerts agree on who is in a zone."""
    x = (obj.xyxy[0] + obj.xyxy[2]) / 2 / max(width, 1)
    y = (obj.xyxy[1] + obj.xyxy[3]) / 2 / max(height, 1)
    return [zone.name or zone.zone_id for zone in zones if _inside(x, y, zone.polygon)]


def _inside(x: float, y: float, polygon: Sequence[Sequence[float]]) -> bool:
    """Even-odd ray casting; points on an edge may fall either way."""
    pts = np.asarray(polygon, dtype=np.float64)
    x1, y1 = pts[:, 0], pts[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return bool(np.count_nonzero(crosses & (x < at)) % 2)


def time_of_day(capture_ts: float, timezone: str | None) -> str:
    """ "Morning", "Afternoon", "Evening" or "Night" at the camera: in the IANA ``timezone``, or
    in this host's local time (the C library's: TZ, else /etc/localtime) when it is None."""
    zone = ZoneInfo(timezone) if timezone is not None else None
    hour = dt.datetime.fromtimestamp(capture_ts, zone).hour
    if 5 <= hour < 12:
        return "Morning"
    if 12 <= hour < 17:
        return "Afternoon"
    return "Evening" if 17 <= hour < 22 else "Night"
