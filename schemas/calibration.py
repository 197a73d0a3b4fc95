"""A camera's calibration: how distances on its image become metres on the ground.

Speed rules in m/s need one (``CameraConfig.calibration``). Either a scale, ``metres_per_pixel``
(good for a camera looking straight down, or along a road at a constant distance), or a
homography from four image points (normalised 0..1, as zones) to where they are on the ground
(metres, any flat x/y frame such as a site plan): the ground plane seen in perspective, so a
step far away and one close by both measure their true length. Speeds are measured at a track's
anchor point (bottom_center, the feet, is the point on the ground).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field, model_validator
from typing_extensions import Self

from .common import Finite, Point, VsaModel

#: A point on the ground plane (x, y), metres.
GroundPoint = tuple[Finite, Finite]


def _collinear_triple(points: Sequence[Sequence[float]]) -> tuple[int, int, int] | None:
    """Indices of three points on one line (within rounding), or None."""
    n = len(points)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                (ax, ay), (bx, by), (cx, cy) = points[i], points[j], points[k]
                cross = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
                scale = max(abs(bx - ax), abs(by - ay), abs(cx - ax), abs(cy - ay), 1e-300)
                if abs(cross) <= 1e-9 * scale * scale:
                    return i, j, k
    return None


class Calibration(VsaModel):
    """Image to ground: ``metres_per_pixel``, or ``image_points`` with ``ground_points``."""

    metres_per_pixel: float | None = Field(
        None,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="Metres on the ground per pixel of the frames as the detector reports them "
        "(the stream's resolution); one scale for the whole image.",
    )
    image_points: Annotated[list[Point], Field(min_length=4, max_length=4)] | None = Field(
        None,
        description="Four points of the image [x, y], normalised 0..1, no three on a line; "
        "with ground_points they define a homography.",
    )
    ground_points: Annotated[list[GroundPoint], Field(min_length=4, max_length=4)] | None = Field(
        None, description="Where the four image points are on the ground [x, y], metres."
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        pair = (self.image_points is None, self.ground_points is None)
        if pair[0] != pair[1]:
            raise ValueError("image_points and ground_points go together")
        if (self.metres_per_pixel is None) == (self.image_points is None):
            raise ValueError("set either metres_per_pixel or image_points with ground_points")
        for name, points in (
            ("image_points", self.image_points),
            ("ground_points", self.ground_points),
        ):
            triple = None if points is None else _collinear_triple(points)
            if triple is not None:
                raise ValueError(f"{name}: points {list(triple)} lie on one line")
        return self
