"""Letterboxing a batch and mapping boxes back: sizes, placement, exact inverse, clipping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vsa.services.detector.preprocess import (
    PAD_VALUE,
    boxes_to_image,
    boxes_to_network,
    detections_to_images,
    letterbox,
    resize_bilinear,
)
from vsa.services.detector.records import DetectionArrays

NET = (416, 416)


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _random_boxes(rng: np.random.Generator, width: int, height: int, count: int) -> np.ndarray:
    corners = rng.uniform(0, 1, (count, 2, 2)) * np.array([width, height])
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    ("size", "fitted", "pad"),
    [
        ((576, 768), (312, 416), (0, 52)),  # vtest.avi, landscape
        ((1920, 1080), (416, 234), (91, 0)),  # portrait phone video
        ((2160, 3840), (234, 416), (0, 91)),  # 4K UHD
        ((333, 517), (268, 416), (0, 74)),  # odd sizes: 333 * 416 / 517 = 267.9
        ((416, 416), (416, 416), (0, 0)),  # already the net size
        ((100, 50), (416, 208), (104, 0)),  # small images are scaled up
    ],
)
def test_letterbox_size_and_offset(
    size: tuple[int, int], fitted: tuple[int, int], pad: tuple[int, int]
) -> None:
    batch = letterbox([_image(*size)], NET)
    assert batch.pixels.shape == (1, 3, *NET)
    assert batch.pixels.dtype == np.float32
    assert tuple(batch.pads[0]) == pad
    np.testing.assert_allclose(batch.scales[0], (fitted[1] / size[1], fitted[0] / size[0]))
    np.testing.assert_array_equal(batch.image_sizes[0], (size[1], size[0]))
    left, top = pad
    border = np.ones(batch.pixels.shape[1:], bool)
    border[:, top : top + fitted[0], left : left + fitted[1]] = False
    assert np.all(batch.pixels[0][border] == np.float32(PAD_VALUE / 255))


def test_image_of_net_size_passes_through_exactly() -> None:
    image = _image(*NET)
    batch = letterbox([image], NET)
    np.testing.assert_array_equal(
        batch.pixels[0], image.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
    )


def test_known_box_lands_where_the_mapping_says() -> None:
    image = np.zeros((333, 517, 3), np.uint8)
    image[100:200, 150:300] = 255  # a white box x 150..300, y 100..200
    batch = letterbox([image], NET)
    x1, y1, x2, y2 = boxes_to_network(np.array([[150, 100, 300, 200]], np.float32), batch, 0)[0]
    white = np.argwhere(batch.pixels[0, 0] > 0.5)
    (top, left), (bottom, right) = white.min(axis=0), white.max(axis=0) + 1
    assert abs(left - x1) <= 1
    assert abs(right - x2) <= 1
    assert abs(top - y1) <= 1
    assert abs(bottom - y2) <= 1


@pytest.mark.parametrize("size", [(576, 768), (1920, 1080), (2160, 3840), (333, 517), (7, 1001)])
def test_inverse_mapping_is_exact(size: tuple[int, int]) -> None:
    height, width = size
    batch = letterbox([_image(*size)], NET)
    boxes = _random_boxes(np.random.default_rng(1), width, height, 200)
    back = boxes_to_image(boxes_to_network(boxes, batch, 0), batch, 0)
    np.testing.assert_allclose(back, boxes, rtol=1e-6, atol=1e-3)


def test_batch_of_mixed_sizes_maps_each_image_with_its_own_transform() -> None:
    sizes = [(576, 768), (1920, 1080), (333, 517)]
    batch = letterbox([_image(*s, seed=i) for i, s in enumerate(sizes)], NET)
    assert batch.pixels.shape == (3, 3, *NET)
    rng = np.random.default_rng(2)
    records = []
    expected = []
    for index, (height, width) in enumerate(sizes):
        boxes = _random_boxes(rng, width, height, 10)
        expected.append(boxes)
        network = boxes_to_network(boxes, batch, index)
        records.append(DetectionArrays(network, np.ones(10), np.zeros(10)))
    for found, boxes in zip(detections_to_images(records, batch), expected, strict=True):
        np.testing.assert_allclose(found.xyxy, boxes, rtol=1e-6, atol=1e-3)


def test_boxes_in_the_padding_are_clipped_to_the_image() -> None:
    batch = letterbox([_image(576, 768)], NET)  # 52 px of padding above and below
    network = np.array([[-10, 0, 500, 60], [100, 350, 200, 416]], np.float32)
    mapped = boxes_to_image(network, batch, 0)
    assert mapped.min() >= 0
    assert mapped[:, [0, 2]].max() <= 768
    assert mapped[:, [1, 3]].max() <= 576
    np.testing.assert_allclose(mapped[0], [0, 0, 768, (60 - 52) * 768 / 416], rtol=1e-5)
    assert mapped[1, 3] == 576


def test_stride_mode_shrinks_the_canvas_to_multiples_of_32() -> None:
    batch = letterbox([_image(576, 768), _image(300, 400)], NET, stride=32)
    assert batch.pixels.shape == (2, 3, 320, 416)  # 312 rounded up to 320
    assert tuple(batch.pads[0]) == (0, 4)


def test_resize_agrees_with_opencv_linear() -> None:
    image = _image(333, 517)
    for height, width in [(268, 416), (700, 900), (333, 517)]:
        ours = resize_bilinear(image, height, width)
        reference = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        # OpenCV interpolates uint8 in fixed point and rounds; we stay in float.
        assert np.abs(ours - reference).max() <= 1.0


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_bad_images_are_refused(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image 0"):
        letterbox([image], NET)


def test_input_is_not_modified() -> None:
    image = _image(576, 768)
    copy = image.copy()
    letterbox([image], NET)
    np.testing.assert_array_equal(image, copy)
