"""Box overlap and optimal one-to-one assignment of tracks to detections."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Matrices at least this large are first checked for a trivial (one-to-one) matching.
_DIRECT_CHECK_SIZE = 1024


def iou_matrix(a_xyxy: F64, b_xyxy: F64) -> F64:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), shape (n, m), 0..1.

    Written as outer products of the coordinate columns: for the few dozen boxes of a frame
    the cost is the number of numpy calls, not the arithmetic.
    """
    a, b = a_xyxy.T, b_xyxy.T
    w = np.minimum.outer(a[2], b[2]) - np.maximum.outer(a[0], b[0])
    h = np.minimum.outer(a[3], b[3]) - np.maximum.outer(a[1], b[1])
    inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
    union = np.add.outer((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])) - inter
    iou: F64 = inter / np.maximum(union, 1e-12)
    return iou


def assign(benefit: F64) -> tuple[IntArray, IntArray]:
    """Optimal one-to-one matching of rows and columns that maximises the total benefit.

    ``benefit`` (n, m) is how much better matching a pair is than leaving both alone; pairs with
    benefit <= 0 never match. This is the Hungarian method with a reject option, as
    ``lap.lapjv(..., extend_cost=True, cost_limit=...)`` in ByteTrack: a pair is matched only
    where that pays, never just to match more pairs. On large matrices (crowded frames) where
    every row and column has at most one positive pair, as when objects are far apart, the
    matching is read off directly: the check costs less than the solver there.

    Returns the matched row and column indices.
    """
    if benefit.size == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty
    if benefit.shape[0] == 1 or benefit.shape[1] == 1:  # one track or one box: the best pair
        best = int(benefit.argmax())
        row, col = divmod(best, benefit.shape[1])
        if benefit[row, col] <= 0:
            empty = np.zeros(0, np.intp)
            return empty, empty
        return np.array([row], np.intp), np.array([col], np.intp)
    if benefit.size >= _DIRECT_CHECK_SIZE:
        usable = benefit > 0
        if usable.sum(axis=0).max() <= 1 and usable.sum(axis=1).max() <= 1:
            rows, cols = np.nonzero(usable)
            return rows, cols
    rows, cols = linear_sum_assignment(np.minimum(-benefit, 0.0))
    ok = benefit[rows, cols] > 0
    return rows[ok], cols[ok]
