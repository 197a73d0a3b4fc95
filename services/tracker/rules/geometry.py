"""The rules' plane geometry lives with the rule kinds (:mod:`vsa.schemas.rules.geometry`)."""

from vsa.schemas.rules.geometry import (
    Anchor,
    PolygonEdges,
    anchor_points,
    crosses_segment,
    points_in_polygon,
    polygon_edges,
    side_beyond_band,
)

__all__ = [
    "Anchor",
    "PolygonEdges",
    "anchor_points",
    "crosses_segment",
    "points_in_polygon",
    "polygon_edges",
    "side_beyond_band",
]
