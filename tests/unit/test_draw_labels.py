"""Issue 15 point 9: ``detect --draw`` labels never overlap each other or leave the frame."""

from __future__ import annotations

import random

from vsa.services.detector.drawing import place_labels


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_crowded_boxes_get_separate_labels_inside_the_frame() -> None:
    rng = random.Random(7)
    width, height = 768, 576
    boxes = []
    for _ in range(25):  # a crowd: boxes near each other and at the edges
        x1, y1 = rng.uniform(-10, 740), rng.uniform(-5, 560)
        boxes.append((x1, y1, x1 + rng.uniform(10, 60), y1 + rng.uniform(20, 80)))
    boxes += [(0.0, 0.0, 30.0, 40.0), (1.0, 1.0, 31.0, 41.0), (750.0, 560.0, 768.0, 576.0)]
    sizes = [(70, 14)] * len(boxes)
    rects = place_labels(boxes, sizes, (width, height))
    for i, rect in enumerate(rects):
        assert rect[0] >= 0, rect
        assert rect[2] <= width, rect
        assert rect[1] >= 0, rect
        assert rect[3] <= height, rect
        for other in rects[i + 1 :]:
            assert not _overlap(rect, other), (rect, other)


def test_a_lone_label_sits_just_above_its_box() -> None:
    assert place_labels([(100.0, 100.0, 150.0, 200.0)], [(40, 12)], (640, 480)) == [
        (100, 88, 140, 100)
    ]
