"""Annotated images: boxes and labels drawn with Pillow, for ``vsa detect --draw`` (detections,
``class score``) and the HTTP API's frames (tracked objects, ``#track_id class``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import simplejpeg

from vsa.schemas import Detections, Tracks

U8 = npt.NDArray[np.uint8]

#: Box colours (RGB), picked by class id; distinct enough on video stills.
PALETTE = (
    (255, 56, 56),
    (72, 249, 10),
    (0, 194, 255),
    (255, 157, 151),
    (255, 178, 29),
    (146, 204, 23),
    (61, 219, 134),
    (132, 56, 255),
    (255, 55, 199),
    (26, 147, 52),
)
LINE_WIDTH = 2
JPEG_QUALITY = 90


Rect = tuple[int, int, int, int]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    boxes: list[tuple[float, float, float, float]],
    sizes: list[tuple[int, int]],
    frame_size: tuple[int, int],
) -> list[Rect]:
    """Label rectangles ``(x1, y1, x2, y2)`` inside the frame ``(width, height)``, none
    overlapping another: above the box, else inside its top, below it, inside its bottom,
    else the first of those moved down until free."""
    width, height = frame_size
    placed: list[Rect] = []
    for (x1, y1, _x2, y2), (w, h) in zip(boxes, sizes, strict=True):
        left = int(min(max(x1, 0), max(width - w, 0)))
        tops = [y1 - h, y1, y2, y2 - h]
        candidates = [(left, int(min(max(t, 0), max(height - h, 0)))) for t in tops]
        rects = [(x, y, x + w, y + h) for x, y in candidates]
        free = [r for r in rects if not any(_overlaps(r, q) for q in placed)]
        if free:
            placed.append(free[0])
            continue
        x, y = candidates[0]
        rect = (x, y, x + w, y + h)
        while any(_overlaps(rect, q) for q in placed) and y + h < height:
            y += 1
            rect = (x, y, x + w, y + h)
        placed.append(rect)
    return placed


@dataclass(frozen=True)
class LabelledBox:
    """One box to draw: ``xyxy`` in pixels of the image, the label written on it, and the id
    that picks its colour (a class id, so one class keeps one colour)."""

    xyxy: tuple[float, float, float, float]
    label: str
    colour_id: int


def draw_boxes(image: U8, boxes: Sequence[LabelledBox]) -> U8:
    """A copy of ``image`` (``(h, w, 3)`` uint8 RGB) with every box drawn and labelled; labels
    stay inside the frame and off each other."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    sizes = []
    for box in boxes:
        left, top, right, bottom = draw.textbbox((0, 0), box.label)
        sizes.append((int(right - left) + 3, int(bottom - top) + 3))
    rects = place_labels([box.xyxy for box in boxes], sizes, canvas.size)
    for box in boxes:  # boxes first, so no box line crosses a label
        draw.rectangle(box.xyxy, outline=PALETTE[box.colour_id % len(PALETTE)], width=LINE_WIDTH)
    for box, rect in zip(boxes, rects, strict=True):
        draw.rectangle(rect, fill=PALETTE[box.colour_id % len(PALETTE)])
        draw.text((rect[0] + 1, rect[1] + 1), box.label, fill=(0, 0, 0))
    return np.asarray(canvas, np.uint8)


def annotate(image: U8, detections: Detections) -> U8:
    """A copy of ``image`` (the frame the detections are for) with every detection drawn and
    labelled ``class score``."""
    return draw_boxes(
        image,
        [
            LabelledBox(box.xyxy, f"{box.class_name} {box.score:.2f}", box.class_id)
            for box in detections.boxes
        ],
    )


def annotate_tracks(image: U8, tracks: Tracks) -> U8:
    """A copy of ``image`` (the frame the tracks message is for) with every tracked object drawn
    and labelled ``#track_id class``; lost tracks (predicted, not seen) are left out."""
    return draw_boxes(
        image,
        [
            LabelledBox(obj.xyxy, f"#{obj.track_id} {obj.class_name}", obj.class_id)
            for obj in tracks.tracks
            if obj.state != "lost"
        ],
    )


def write_annotated(image: U8, detections: Detections, out_dir: Path) -> Path:
    """Write ``<out_dir>/<camera_id>-<frame_seq, 6 digits>.jpg``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{detections.camera_id}-{detections.frame_seq:06d}.jpg"
    data = simplejpeg.encode_jpeg(annotate(image, detections), quality=JPEG_QUALITY)
    path.write_bytes(data)
    return path
