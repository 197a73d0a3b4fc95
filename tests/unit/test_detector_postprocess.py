"""Decoding, thresholds and NMS against brute-force references, from literal arrays."""

from __future__ import annotations

import numpy as np
import pytest

from vsa.services.detector.layout import ModelLayoutError, format_class_names, parse_class_names
from vsa.services.detector.postprocess import (
    SelectionParams,
    batched_nms,
    decode_darknet,
    decode_output,
    decode_ultralytics,
    nms,
    postprocess,
    select_detections,
)
from vsa.services.detector.records import DetectionArrays


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return float(width * height / union) if union > 0 else 0.0


def _brute_force_nms(
    xyxy: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float
) -> list[int]:
    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if all(groups[i] != groups[j] or _iou(xyxy[i], xyxy[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


def _clustered_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    """Boxes around a few centres, so that many overlap."""
    centres = rng.uniform(50, 350, (6, 2))[rng.integers(0, 6, count)]
    centres += rng.normal(0, 8, (count, 2))
    sizes = rng.uniform(20, 60, (count, 2))
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(seed: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    boxes = _clustered_boxes(rng, 150)
    scores = rng.uniform(0, 1, 150).astype(np.float32)
    kept = nms(boxes.astype(np.float64), scores, threshold)
    assert kept.tolist() == _brute_force_nms(boxes, scores, np.zeros(150), threshold)


@pytest.mark.parametrize("seed", range(8))
def test_batched_nms_matches_brute_force_per_group(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    boxes = _clustered_boxes(rng, 300)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    groups = rng.integers(0, 2 * 80, 300)  # two images x 80 classes
    kept = batched_nms(boxes, scores, groups, 0.45)
    assert kept.tolist() == _brute_force_nms(boxes, scores, groups, 0.45)


def test_batched_nms_of_nothing() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert batched_nms(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).size == 0


def _candidates(rows: list[tuple[float, float, float, float, int, float]], classes: int = 3):
    """``(n=1, A, 4)`` cxcywh boxes and ``(1, A, C)`` scores from (cx, cy, w, h, class, score)."""
    boxes = np.array([row[:4] for row in rows], np.float32)[None]
    scores = np.zeros((1, len(rows), classes), np.float32)
    for anchor, row in enumerate(rows):
        scores[0, anchor, row[4]] = row[5]
    return boxes, scores


def test_select_is_class_aware_thresholded_and_sorted() -> None:
    boxes, scores = _candidates(
        [
            (100, 100, 50, 50, 0, 0.8),
            (102, 101, 50, 50, 0, 0.9),  # duplicate of the first, better: wins
            (100, 100, 50, 50, 1, 0.7),  # same place, other class: kept
            (300, 300, 40, 40, 2, 0.2),  # below the threshold
        ]
    )
    (found,) = select_detections(boxes, scores, SelectionParams(conf_threshold=0.25))
    assert found.class_ids.tolist() == [0, 1]
    np.testing.assert_allclose(found.scores, [0.9, 0.7])
    np.testing.assert_allclose(found.xyxy[0], [77, 76, 127, 126])


def test_select_keeps_images_apart() -> None:
    boxes, scores = _candidates([(100, 100, 50, 50, 0, 0.9), (101, 100, 50, 50, 0, 0.8)])
    second_boxes, second_scores = _candidates([(101, 100, 50, 50, 0, 0.6)] * 2)
    batch = select_detections(
        np.concatenate([boxes, second_boxes, boxes * 0]),
        np.concatenate([scores, second_scores, scores * 0]),
        SelectionParams(),
    )
    assert [len(found) for found in batch] == [1, 1, 0]
    np.testing.assert_allclose(batch[1].scores, [0.6])


def test_batch_equals_images_one_by_one() -> None:
    rng = np.random.default_rng(3)
    boxes = rng.uniform(20, 400, (4, 500, 4)).astype(np.float32)
    scores = rng.uniform(0, 0.5, (4, 500, 80)).astype(np.float32)
    params = SelectionParams(conf_threshold=0.45, max_det=20)
    batch = select_detections(boxes, scores, params)
    for index, found in enumerate(batch):
        (alone,) = select_detections(boxes[index : index + 1], scores[index : index + 1], params)
        np.testing.assert_array_equal(found.xyxy, alone.xyxy)
        np.testing.assert_array_equal(found.class_ids, alone.class_ids)


def test_max_det_keeps_the_best() -> None:
    rows = [(50.0 * i + 25, 25, 20, 20, i % 3, 0.3 + 0.05 * i) for i in range(10)]
    (found,) = select_detections(*_candidates(rows), SelectionParams(max_det=3))
    np.testing.assert_allclose(found.scores, [0.75, 0.7, 0.65])


def test_class_filter() -> None:
    rows = [(50.0 * i + 25, 25, 20, 20, i % 3, 0.9) for i in range(9)]
    (found,) = select_detections(*_candidates(rows), SelectionParams(classes=(0, 2)))
    assert sorted(found.class_ids.tolist()) == [0, 0, 0, 2, 2, 2]


def test_decode_darknet_scores_are_objectness_times_class() -> None:
    output = np.zeros((1, 2, 5 + 3), np.float32)
    output[0, 0] = [10, 20, 4, 6, 0.5, 0.2, 0.9, 0.1]
    boxes, scores = decode_darknet(output)
    np.testing.assert_allclose(boxes[0, 0], [10, 20, 4, 6])
    np.testing.assert_allclose(scores[0, 0], [0.1, 0.45, 0.05])


def _ultralytics_output(anchors: int = 8400, classes: int = 80) -> np.ndarray:
    """A synthetic YOLOv8 output ``(1, 4 + C, anchors)`` with up to three objects."""
    output = np.zeros((1, 4 + classes, anchors), np.float32)
    output[0, :4, :] = 100  # background boxes, all scores 0
    objects = {17: (320, 240, 40, 120, 0, 0.91), 4000: (100, 500, 60, 30, 2, 0.55)}
    objects[4001] = (101, 500, 60, 30, 2, 0.50)  # duplicate, suppressed
    for anchor, (cx, cy, w, h, class_id, score) in objects.items():
        if anchor >= anchors:
            continue
        output[0, :4, anchor] = (cx, cy, w, h)
        output[0, 4 + class_id, anchor] = score
    return output


def test_ultralytics_output_decodes_to_boxes_in_input_pixels() -> None:
    names = [f"class{i}" for i in range(80)]
    (found,) = postprocess(_ultralytics_output(), "ultralytics", names, SelectionParams())
    assert found.class_ids.tolist() == [0, 2]
    np.testing.assert_allclose(found.scores, [0.91, 0.55])
    np.testing.assert_allclose(found.xyxy, [[300, 180, 340, 300], [70, 485, 130, 515]])


def test_ultralytics_decode_is_a_transpose() -> None:
    output = _ultralytics_output(anchors=50, classes=3)
    boxes, scores = decode_ultralytics(output)
    assert boxes.shape == (1, 50, 4)
    assert scores.shape == (1, 50, 3)
    np.testing.assert_array_equal(boxes[0, 17], [320, 240, 40, 120])


def test_class_count_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="scores 80 classes, the model names 3"):
        decode_output(_ultralytics_output(anchors=20), "ultralytics", 3)


def test_names_metadata_round_trip() -> None:
    names = ("person", "bicycle", "traffic light")
    text = format_class_names(names)
    assert text == "{0: 'person', 1: 'bicycle', 2: 'traffic light'}"
    assert parse_class_names(text) == names


@pytest.mark.parametrize(
    "text",
    ["['person']", "{1: 'a'}", "{0: 'a', 'b': 'c'}", "{0: ''}", "{0: 'a'", "__import__('os')"],
)
def test_bad_names_metadata_is_refused(text: str) -> None:
    with pytest.raises(ModelLayoutError):
        parse_class_names(text)


def test_detection_arrays_check_shapes_once() -> None:
    record = DetectionArrays(np.zeros((2, 4)), np.zeros(2), np.zeros(2))
    assert record.xyxy.dtype == np.float32
    assert record.class_ids.dtype == np.int32
    assert len(record) == 2
    assert len(DetectionArrays.empty()) == 0
    with pytest.raises(ValueError, match=r"xyxy must have shape \(n, 4\)"):
        DetectionArrays(np.zeros((2, 5)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="must have shape"):
        DetectionArrays(np.zeros((2, 4)), np.zeros(3), np.zeros(2))


@pytest.mark.parametrize(
    "kwargs", [{"conf_threshold": 1.5}, {"iou_threshold": -0.1}, {"max_det": 0}]
)
def test_selection_params_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        SelectionParams(**kwargs)  # type: ignore[arg-type]
