"""Columnar detection arrays (boxes, scores, class ids), shared by the detector and tracker."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray


def detection_columns(
    xyxy: ArrayLike, scores: ArrayLike, class_ids: ArrayLike, real: DTypeLike, integer: DTypeLike
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """``xyxy`` (n, 4) and ``scores`` as ``real``, ``class_ids`` as ``integer``, checked to
    describe the same n boxes.

    Raises:
        ValueError: ``xyxy`` is not (n, 4), or the other columns are not (n,).
    """
    boxes = np.asarray(xyxy, dtype=real)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"xyxy must have shape (n, 4), got {boxes.shape}")
    score_col = np.asarray(scores, dtype=real)
    class_col = np.asarray(class_ids, dtype=integer)
    count = boxes.shape[0]
    if score_col.shape != (count,) or class_col.shape != (count,):
        raise ValueError(
            f"scores {score_col.shape} and class_ids {class_col.shape} must have shape "
            f"({count},) like xyxy {boxes.shape}"
        )
    return boxes, score_col, class_col


def set_detection_columns(record: Any, real: DTypeLike, integer: DTypeLike) -> None:
    """In a frozen dataclass's ``__post_init__``: replace its ``xyxy``, ``scores`` and
    ``class_ids`` fields by the checked arrays of :func:`detection_columns`."""
    columns = detection_columns(record.xyxy, record.scores, record.class_ids, real, integer)
    for name, column in zip(("xyxy", "scores", "class_ids"), columns, strict=True):
        object.__setattr__(record, name, column)
