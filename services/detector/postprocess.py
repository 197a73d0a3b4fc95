"""From raw model output to detections: decoding, confidence threshold, class-aware NMS, top-k.

Pure numpy. Both output layouts (see :mod:`vsa.services.detector.layout`) decode to the same
intermediate, ``boxes (n, A, 4)`` ``cx, cy, w, h`` in network-input pixels and ``class_scores
(n, A, C)`` in 0..1, which :func:`select_detections` turns into one record per image.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .layout import (
    DARKNET_BOX,
    DARKNET_FIRST_CLASS,
    DARKNET_OBJECTNESS,
    ULTRALYTICS_BOX,
    ULTRALYTICS_FIRST_CLASS,
    OutputLayout,
)
from .records import DetectionArrays

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SelectionParams:
    """How candidate boxes become detections.

    Attributes:
        conf_threshold: Keep boxes whose best class score is above this (0..1). Lower finds
            more objects and more false alarms.
        iou_threshold: NMS drops a box overlapping a better one of the same class by more
            than this IoU (0..1). Lower merges more aggressively (fewer duplicates, but
            people in a crowd may merge); higher keeps more overlapping boxes.
        max_det: Most detections kept per image, best scores first.
        classes: Class ids to keep; None keeps all.
        max_candidates: Most boxes per image entering NMS, best first; bounds NMS time when
            a low threshold lets thousands through.
    """

    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_det: int = 300
    classes: tuple[int, ...] | None = None
    max_candidates: int = 30_000

    def __post_init__(self) -> None:
        if not 0 <= self.conf_threshold <= 1 or not 0 <= self.iou_threshold <= 1:
            raise ValueError("conf_threshold and iou_threshold must be within 0..1")
        if self.max_det < 1 or self.max_candidates < 1:
            raise ValueError("max_det and max_candidates must be >= 1")


def decode_darknet(output: F32) -> tuple[F32, F32]:
    """Split a ``darknet`` layout output ``(n, A, 5 + C)`` into boxes and class scores.

    Returns:
        ``boxes (n, A, 4)`` cx, cy, w, h in network pixels and ``class_scores (n, A, C)``,
        objectness times the class probability, as Darknet scores detections.
    """
    if output.ndim != 3 or output.shape[2] <= DARKNET_FIRST_CLASS:
        raise ValueError(f"darknet output must be (n, boxes, 5 + classes), got {output.shape}")
    objectness = output[:, :, DARKNET_OBJECTNESS : DARKNET_OBJECTNESS + 1]
    return output[:, :, DARKNET_BOX], objectness * output[:, :, DARKNET_FIRST_CLASS:]


def decode_ultralytics(output: F32) -> tuple[F32, F32]:
    """Split an Ultralytics YOLOv8/YOLO11 output ``(n, 4 + C, A)`` into boxes and class scores.

    Returns:
        ``boxes (n, A, 4)`` cx, cy, w, h in network pixels and ``class_scores (n, A, C)``.
    """
    if output.ndim != 3 or output.shape[1] <= ULTRALYTICS_FIRST_CLASS:
        raise ValueError(f"ultralytics output must be (n, 4 + classes, A), got {output.shape}")
    channels_last = output.transpose(0, 2, 1)
    return channels_last[:, :, ULTRALYTICS_BOX], channels_last[:, :, ULTRALYTICS_FIRST_CLASS:]


def decode_output(output: F32, layout: OutputLayout, num_classes: int) -> tuple[F32, F32]:
    """Decode ``output`` of the given layout, checking it scores ``num_classes`` classes."""
    boxes, class_scores = (
        decode_darknet(output) if layout == "darknet" else decode_ultralytics(output)
    )
    if class_scores.shape[2] != num_classes:
        raise ValueError(
            f"{layout} output {output.shape} scores {class_scores.shape[2]} classes, "
            f"the model names {num_classes}"
        )
    return boxes, class_scores


def cxcywh_to_xyxy(boxes: F32) -> F32:
    """``(..., 4)`` centre/size boxes to corner boxes ``x1, y1, x2, y2``, same units."""
    half = boxes[..., 2:4] / 2
    return np.concatenate([boxes[..., 0:2] - half, boxes[..., 0:2] + half], axis=-1)


def box_iou(box: F64, boxes: F64) -> F64:
    """IoU of one ``(4,)`` xyxy box with each of ``(k, 4)`` boxes; 0 where both are empty."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    intersection = width * height
    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    union = area + areas - intersection
    iou: F64 = np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)
    return iou


def nms(xyxy: F64, scores: F32, iou_threshold: float) -> I64:
    """Greedy non-maximum suppression over all boxes as one group.

    Returns:
        Indices of the kept boxes, best score first (ties keep the input order).
    """
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        order = rest[box_iou(xyxy[best], xyxy[rest]) <= iou_threshold]
    return np.array(kept, dtype=np.int64)


def batched_nms(xyxy: F32, scores: F32, groups: I64, iou_threshold: float) -> I64:
    """NMS within each group (e.g. image and class) in one pass.

    Boxes are shifted by ``group * span`` (``span`` exceeds every box's extent) so boxes of
    different groups never overlap; the shift is done in float64 so it costs no precision.

    Args:
        xyxy: ``(k, 4)`` boxes.
        scores: ``(k,)`` scores.
        groups: ``(k,)`` non-negative group ids.
        iou_threshold: See :class:`SelectionParams`.

    Returns:
        Indices of the kept boxes, best score first.
    """
    if xyxy.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = xyxy.astype(np.float64)
    lowest = boxes.min()
    span = boxes.max() - lowest + 1.0
    shifted = boxes - lowest + groups.astype(np.float64)[:, None] * span
    return nms(shifted, scores, iou_threshold)


def top_per_image(image_ids: I64, scores: F32, limit: int) -> I64:
    """Indices of at most ``limit`` best-scoring entries per image, by image then score."""
    order = np.lexsort((-scores, image_ids))
    sorted_ids = image_ids[order]
    rank = np.arange(order.size) - np.searchsorted(sorted_ids, sorted_ids, side="left")
    return order[rank < limit]


def _split_by_image(
    image_ids: I64, xyxy: F32, scores: F32, class_ids: I32, count: int
) -> list[DetectionArrays]:
    """One record per image from candidates sorted by image id."""
    bounds = np.searchsorted(image_ids, np.arange(count + 1), side="left")
    return [
        DetectionArrays(xyxy[start:end], scores[start:end], class_ids[start:end])
        for start, end in itertools.pairwise(bounds)
    ]


def select_detections(
    boxes: F32, class_scores: F32, params: SelectionParams
) -> list[DetectionArrays]:
    """Threshold, class filter, class-aware NMS and top-k for a whole batch at once.

    Each box takes its best class. NMS runs per image and class (see :func:`batched_nms`).

    Args:
        boxes: ``(n, A, 4)`` cx, cy, w, h in network pixels.
        class_scores: ``(n, A, C)`` scores in 0..1.
        params: Thresholds and limits.

    Returns:
        ``n`` records, boxes xyxy in network pixels, best score first.
    """
    count, _, num_classes = class_scores.shape
    class_ids = class_scores.argmax(axis=2)
    best = np.take_along_axis(class_scores, class_ids[:, :, None], axis=2)[:, :, 0]
    mask = best > params.conf_threshold
    if params.classes is not None:
        mask &= np.isin(class_ids, params.classes)
    image_ids, anchor_ids = np.nonzero(mask)
    scores = best[image_ids, anchor_ids]
    chosen = top_per_image(image_ids, scores, params.max_candidates)
    image_ids, anchor_ids, scores = image_ids[chosen], anchor_ids[chosen], scores[chosen]
    labels = class_ids[image_ids, anchor_ids].astype(np.int32)
    xyxy = cxcywh_to_xyxy(boxes[image_ids, anchor_ids])
    kept = batched_nms(xyxy, scores, image_ids * num_classes + labels, params.iou_threshold)
    kept = kept[top_per_image(image_ids[kept], scores[kept], params.max_det)]
    return _split_by_image(image_ids[kept], xyxy[kept], scores[kept], labels[kept], count)


def postprocess(
    output: F32, layout: OutputLayout, class_names: Sequence[str], params: SelectionParams
) -> list[DetectionArrays]:
    """Raw model output to one record per image (network pixels); see :func:`select_detections`."""
    boxes, class_scores = decode_output(output, layout, len(class_names))
    return select_detections(boxes, class_scores, params)
