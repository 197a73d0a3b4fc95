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


def annotate(image: U8, detections: Detections) -> U8:
    """A copy of ``image`` (``(h, w, 3)`` uint8 RGB, the frame the detections are for) with
    every box drawn and labelled."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for box in detections.boxes:
        colour = PALETTE[box.class_id % len(PALETTE)]
        x1, y1, x2, y2 = box.xyxy
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=LINE_WIDTH)
        label = f"{box.class_name} {box.score:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), label)
        lift = bottom - top + 2
        draw.rectangle((left, top - lift, right + 2, bottom - lift), fill=colour)
        draw.text((x1 + 1, y1 - lift), label, fill=(0, 0, 0))
    return np.asarray(canvas, np.uint8)


def write_annotated(image: U8, detections: Detections, out_dir: Path) -> Path:
    """Write ``<out_dir>/<camera_id>-<frame_seq, 6 digits>.jpg``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{detections.camera_id}-{detections.frame_seq:06d}.jpg"
    data = simplejpeg.encode_jpeg(annotate(image, detections), quality=JPEG_QUALITY)
    path.write_bytes(data)
    return path
