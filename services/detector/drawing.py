"""Annotated images for ``vsa detect --draw``: boxes and ``class score`` labels (Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import simplejpeg

from vsa.schemas import Detections

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


def annotate(image: U8, detections: Detections) -> U8:
    """A copy of ``image`` (``(h, w, 3)`` uint8 RGB, the frame the detections are for) with
    every box drawn and labelled; labels stay inside the frame and off each other."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    labels = [f"{box.class_name} {box.score:.2f}" for box in detections.boxes]
    sizes = []
    for label in labels:
        left, top, right, bottom = draw.textbbox((0, 0), label)
        sizes.append((int(right - left) + 3, int(bottom - top) + 3))
    boxes = [(box.xyxy[0], box.xyxy[1], box.xyxy[2], box.xyxy[3]) for box in detections.boxes]
    rects = place_labels(boxes, sizes, canvas.size)
    for box in detections.boxes:  # boxes first, so no box line crosses a label
        colour = PALETTE[box.class_id % len(PALETTE)]
        draw.rectangle(tuple(box.xyxy), outline=colour, width=LINE_WIDTH)
    for box, label, rect in zip(detections.boxes, labels, rects, strict=True):
        colour = PALETTE[box.class_id % len(PALETTE)]
        draw.rectangle(rect, fill=colour)
        draw.text((rect[0] + 1, rect[1] + 1), label, fill=(0, 0, 0))
    return np.asarray(canvas, np.uint8)


def write_annotated(image: U8, detections: Detections, out_dir: Path) -> Path:
    """Write ``<out_dir>/<camera_id>-<frame_seq, 6 digits>.jpg``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{detections.camera_id}-{detections.frame_seq:06d}.jpg"
    data = simplejpeg.encode_jpeg(annotate(image, detections), quality=JPEG_QUALITY)
    path.write_bytes(data)
    return path
