"""Vectorised plane geometry for the rules: points in polygons, sides of lines, crossings.

Everything works in normalised image coordinates (x / width, y / height, as zones and lines are
configured). Scaling the axes by positive factors changes neither which side of a line a point
is on nor whether it is inside a polygon, so no pixel conversion of the zones is needed. Only
distances to a line (:func:`side_beyond_band`) are measured in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]

Anchor = Literal["center", "bottom_center"]


def anchor_points(xyxy: F64, width: int, height: int, anchor: Anchor) -> F64:
    """``(m, 2)`` normalised reference point of each box (m, 4): its centre or bottom centre."""
    x = (xyxy[:, 0] + xyxy[:, 2]) / (2.0 * width)
    bottom = xyxy[:, 3] / height
    y = (xyxy[:, 1] / height + bottom) / 2.0 if anchor == "center" else bottom
    return np.column_stack([x, y])


@dataclass(frozen=True, eq=False)
class PolygonEdges:
    """A polygon's edges prepared for fast point tests: one entry per edge (k,).

    ``slope`` is dx/dy of the edge (0 for horizontal edges, which no horizontal ray crosses).
    """

    x1: F64
    y1: F64
    y2: F64
    slope: F64


def polygon_edges(polygon: F64) -> PolygonEdges:
    """Edges of the implicitly closed polygon ``(k, 2)``, computed once per config."""
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    dy = y2 - y1
    slope = np.divide(x2 - x1, dy, out=np.zeros_like(dy), where=dy != 0)
    return PolygonEdges(x1.copy(), y1.copy(), y2, slope)


def points_in_polygon(points: F64, edges: PolygonEdges) -> Bools:
    """Which of ``points`` (m, 2) lie inside the simple polygon (even-odd rule).

    A point exactly on an edge may fall either way; tracks do not stay on edges.
    """
    if points.shape[0] == 0:
        return np.zeros(0, bool)
    x, y = points[:, 0:1], points[:, 1:2]
    straddles = (edges.y1 > y) != (edges.y2 > y)
    x_cross = edges.x1 + (y - edges.y1) * edges.slope
    inside: Bools = (np.count_nonzero(straddles & (x < x_cross), axis=1) % 2) == 1
    return inside


def side_beyond_band(points: F64, a: F64, b: F64, width: int, height: int, band_px: F64) -> I64:
    """``(m,)`` the side of the line a->b of each point (m, 2) that lies farther than its
    ``band_px`` (m,) from the line, in pixels of a width x height frame: +1 right of a->b as
    seen on the image (y down), -1 left, 0 within the band (the convention of
    ``vsa.schemas.Line.side_of``). A band of 0 gives 0 only for points on the line.
    """
    scale = np.array([width, height], np.float64)
    here, a_px = points * scale, a * scale
    along = b * scale - a_px
    cross = along[0] * (here[:, 1] - a_px[1]) - along[1] * (here[:, 0] - a_px[0])
    distance_px = cross / np.hypot(along[0], along[1])
    side: I64 = (distance_px > band_px).astype(np.int64) - (distance_px < -band_px).astype(np.int64)
    return side


def crosses_segment(start: F64, end: F64, a: F64, b: F64) -> Bools:
    """Whether each move start->end (m, 2 each) passes through the segment a-b.

    Assumes start and end lie on opposite sides of the line through a and b (checked by the
    caller); then the move crosses the segment itself exactly when a and b are not strictly on
    the same side of the move.
    """
    move = end - start
    side_a = move[:, 0] * (a[1] - start[:, 1]) - move[:, 1] * (a[0] - start[:, 0])
    side_b = move[:, 0] * (b[1] - start[:, 1]) - move[:, 1] * (b[0] - start[:, 0])
    hit: Bools = side_a * side_b <= 0
    return hit


def homography(image: F64, ground: F64) -> F64:
    """The ``(3, 3)`` projective map taking each of four image points ``(4, 2)`` to its ground
    point ``(4, 2)`` (the direct linear transform with h33 = 1). The points must be in general
    position (no three on a line), which the camera config checks."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(image.tolist(), ground.tolist(), strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows), np.array(rhs))
    matrix: F64 = np.append(h, 1.0).reshape(3, 3)
    return matrix


def apply_homography(matrix: F64, points: F64) -> F64:
    """``(m, 2)`` points mapped by a ``(3, 3)`` homography."""
    mapped = np.column_stack([points, np.ones(points.shape[0])]) @ matrix.T
    result: F64 = mapped[:, :2] / mapped[:, 2:3]
    return result
