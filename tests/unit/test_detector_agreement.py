"""Agreement between two detectors' boxes: one-to-one matching by class and IoU."""

from __future__ import annotations

import numpy as np

from vsa.services.detector.agreement import Agreement, compare
from vsa.services.detector.records import DetectionArrays


def arrays(*rows: tuple[float, float, float, float, float, int]) -> DetectionArrays:
    data = np.array(rows, np.float64).reshape(-1, 6)
    return DetectionArrays(data[:, :4], data[:, 4], data[:, 5])


def test_identical_boxes_agree_fully() -> None:
    boxes = arrays((0, 0, 10, 10, 0.9, 0), (20, 20, 40, 40, 0.8, 2))
    assert compare(boxes, boxes) == Agreement(reference=2, matched=2, extra=0)


def test_class_and_iou_must_both_match() -> None:
    reference = arrays((0, 0, 10, 10, 0.9, 0), (20, 20, 40, 40, 0.8, 2), (50, 50, 60, 60, 0.7, 1))
    candidate = arrays(
        (0, 0, 10, 11, 0.8, 0),  # same class, IoU 0.91: matched
        (20, 20, 40, 40, 0.8, 3),  # other class: extra
        (55, 55, 65, 65, 0.7, 1),  # IoU 0.14: extra
    )
    result = compare(reference, candidate)
    assert result == Agreement(reference=3, matched=1, extra=2)
    assert result.matched_fraction == 1 / 3
    assert result.extra_fraction == 2 / 3


def test_one_candidate_matches_one_reference_box_best_score_first() -> None:
    reference = arrays((0, 0, 10, 10, 0.5, 0), (0, 0, 10, 10, 0.9, 0))
    candidate = arrays((0, 0, 10, 10, 0.9, 0))
    assert compare(reference, candidate) == Agreement(reference=2, matched=1, extra=0)


def test_empty_frames_and_sums() -> None:
    empty = DetectionArrays.empty()
    one = arrays((0, 0, 10, 10, 0.9, 0))
    assert compare(empty, empty) == Agreement()
    assert compare(empty, one) == Agreement(reference=0, matched=0, extra=1)
    total = compare(one, one) + compare(one, empty) + compare(empty, one)
    assert total == Agreement(reference=2, matched=1, extra=1)
    assert Agreement().matched_fraction == 1.0
    assert total.extra_fraction == 0.5
