"""Darknet cfg/weights to ONNX: parsing, weights layout, and agreement with OpenCV's reader.

OpenCV's Darknet importer (cv2.dnn.readNetFromDarknet) is the reference. Its [yolo] layer output,
per box ``[cx, cy, w, h, objectness, scores...]``: box fractions of the network input, and the
scores are objectness x class probability, zeroed where that product is <= 0.2 (the layer's
``thresh``). Rows are ordered grid row, grid column, anchor, as the converter orders them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort
import pytest

from vsa.services.detector.darknet import (
    Conv,
    DarknetError,
    MaxPool,
    Route,
    convert_darknet,
    parse_network,
)
from vsa.services.detector.layout import ModelInfo
from vsa.services.detector.models import COCO_CLASS_NAMES, fetch_yolov3_tiny, yolov3_tiny_onnx
from vsa.services.detector.postprocess import SelectionParams, select_detections
from vsa.services.detector.preprocess import letterbox
from vsa.services.detector.records import DetectionArrays

#: OpenCV zeroes class scores at or below this (the region layer's ``thresh``).
CV2_SCORE_FLOOR = 0.2
FRAME_COUNT = 20
VTEST_FRAMES = 795

# A small network that exercises what YOLOv3-tiny does not: route groups, scale_x_y, a route of
# two layers, and the size=2 stride=1 maxpool in the middle of the graph.
SYNTHETIC_CFG = """
[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=8
size=1
stride=1
pad=1
activation=linear

[route]
layers=-1,-3

[maxpool]
size=2
stride=1

[maxpool]
size=2
stride=2

[convolutional]
filters=24
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=3,4,5
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=3
num=6
scale_x_y=1.05

[route]
layers=7

[upsample]
stride=2

[route]
layers=-1,6

[convolutional]
batch_normalize=1
filters=24
size=3
stride=1
pad=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=3
num=6
"""


def _synthetic_weights(cfg: str, rng: np.random.Generator, major: int = 0, minor: int = 2) -> bytes:
    """Random but well-conditioned weights for every convolution of ``cfg``."""
    network = parse_network(cfg, "synthetic.cfg")
    seen = struct.pack("<q", 12345) if major * 10 + minor >= 2 else struct.pack("<i", 12345)
    chunks = [struct.pack("<3i", major, minor, 0), seen]
    for index, layer in enumerate(network.layers):
        if not isinstance(layer, Conv):
            continue
        prev = network.shapes[index - 1] if index else network.input_shape
        filters = layer.filters
        fan_in = prev.channels // layer.groups * layer.size**2
        params = [rng.normal(0, 0.1, filters)]
        if layer.batch_normalize:
            params += [rng.uniform(0.5, 1.5, filters), rng.normal(0, 0.1, filters)]
            params += [rng.uniform(0.5, 1.5, filters)]
        params.append(rng.normal(0, 1 / np.sqrt(fan_in), filters * fan_in))
        chunks += [np.concatenate(params).astype("<f4").tobytes()]
    return b"".join(chunks)


def _cv2_output(net: cv2.dnn.Net, blob: np.ndarray) -> np.ndarray:
    """OpenCV's yolo layer outputs for ``blob``, concatenated to ``(n, boxes, 5 + C)``."""
    net.setInput(blob)
    outputs = net.forward(net.getUnconnectedOutLayersNames())
    if blob.shape[0] == 1:  # OpenCV drops the batch axis for a single image
        outputs = [out[None] for out in outputs]
    return np.concatenate(outputs, axis=1)


def _ort_output(path: Path, blob: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"images": blob})[0])


def _assert_like_cv2(ours: np.ndarray, reference: np.ndarray, net_size: tuple[int, int]) -> None:
    """Compare our decoded output with OpenCV's, converting ours to OpenCV's conventions."""
    assert ours.shape == reference.shape
    height, width = net_size
    boxes = ours[..., :4] / np.array([width, height, width, height], np.float32)
    np.testing.assert_allclose(boxes, reference[..., :4], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours[..., 4], reference[..., 4], atol=2e-5)
    scores = ours[..., 4:5] * ours[..., 5:]
    kept = reference[..., 5:] > 0
    np.testing.assert_allclose(scores[kept], reference[..., 5:][kept], atol=2e-5)
    assert scores[~kept].max(initial=0) <= CV2_SCORE_FLOOR + 2e-5


# ---------------------------------------------------------------- parsing, no model needed


def test_maxpool_size2_stride1_keeps_size_and_pads_bottom_right(tmp_path: Path) -> None:
    network = parse_network(SYNTHETIC_CFG, "synthetic.cfg")
    pool = network.layers[6]
    assert pool == MaxPool(size=2, stride=1, padding=1)
    assert network.shapes[6] == network.shapes[5]  # 24 x 32 x 32 in, same out


def test_route_groups_take_one_channel_group() -> None:
    network = parse_network(SYNTHETIC_CFG, "synthetic.cfg")
    assert network.layers[3] == Route(layers=(2,), groups=2, group_id=1)
    assert network.shapes[3].channels == 8
    assert network.shapes[5].channels == 8 + 16


def test_input_size_override_changes_grids() -> None:
    network = parse_network(SYNTHETIC_CFG, "synthetic.cfg", input_size=(128, 96))
    grids = [(network.shapes[i].height, network.shapes[i].width) for i, _ in network.heads]
    assert grids == [(32, 24), (64, 48)]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[upsample]", "[shortcut]"), r"\[shortcut\].*not supported"),
        (("activation=leaky", "activation=mish"), "activation 'mish'"),
        (("layers=7", "layers=40"), "must name earlier layers"),
        (("classes=3\nnum=6\nscale", "classes=4\nnum=6\nscale"), "channels"),
        (("size=2\nstride=1", "size=2\nstride=1\nstride_x=2"), "stride_x=2 is not supported"),
    ],
)
def test_unsupported_or_broken_cfg_is_refused_with_location(
    edit: tuple[str, str], message: str
) -> None:
    cfg = SYNTHETIC_CFG.replace(*edit, 1)
    with pytest.raises(DarknetError, match=message) as caught:
        parse_network(cfg, "bad.cfg")
    assert "bad.cfg:" in str(caught.value)


def test_cfg_must_start_with_net() -> None:
    with pytest.raises(DarknetError, match=r"starts with a \[net\]"):
        parse_network("[convolutional]\nfilters=1\n", "x.cfg")


@pytest.mark.parametrize("change", [-4, 4])
def test_weights_of_the_wrong_size_are_refused(tmp_path: Path, change: int) -> None:
    cfg = tmp_path / "net.cfg"
    cfg.write_text(SYNTHETIC_CFG)
    weights = _synthetic_weights(SYNTHETIC_CFG, np.random.default_rng(0))
    (tmp_path / "net.weights").write_bytes(
        weights[:change] if change < 0 else weights + bytes(change)
    )
    with pytest.raises(DarknetError, match="do not belong to this cfg"):
        convert_darknet(cfg, tmp_path / "net.weights", tmp_path / "x.onnx", ["a", "b", "c"])


def test_class_names_must_match_classes(tmp_path: Path) -> None:
    cfg = tmp_path / "net.cfg"
    cfg.write_text(SYNTHETIC_CFG)
    (tmp_path / "net.weights").write_bytes(b"")
    with pytest.raises(DarknetError, match="3 classes but 2 class names"):
        convert_darknet(cfg, tmp_path / "net.weights", tmp_path / "x.onnx", ["a", "b"])


# ------------------------------------------------------ synthetic network against OpenCV


@pytest.mark.parametrize(("major", "minor"), [(0, 2), (0, 1)], ids=["seen64", "seen32"])
def test_synthetic_network_matches_cv2(tmp_path: Path, major: int, minor: int) -> None:
    rng = np.random.default_rng(7)
    cfg, weights = tmp_path / "net.cfg", tmp_path / "net.weights"
    cfg.write_text(SYNTHETIC_CFG)
    weights.write_bytes(_synthetic_weights(SYNTHETIC_CFG, rng, major, minor))
    info = convert_darknet(cfg, weights, tmp_path / "net.onnx", ["a", "b", "c"])
    assert info.input_size == (64, 64)
    blob = rng.random((3, 3, 64, 64), dtype=np.float32)
    ours = _ort_output(info.path, blob)
    assert ours.shape == (3, 16 * 16 * 3 + 32 * 32 * 3, 8)
    reference = _cv2_output(cv2.dnn.readNetFromDarknet(str(cfg), str(weights)), blob)
    _assert_like_cv2(ours, reference, (64, 64))


def test_conversion_is_cached_and_redone_when_inputs_change(tmp_path: Path) -> None:
    cfg, weights, out = tmp_path / "net.cfg", tmp_path / "net.weights", tmp_path / "net.onnx"
    cfg.write_text(SYNTHETIC_CFG)
    weights.write_bytes(_synthetic_weights(SYNTHETIC_CFG, np.random.default_rng(1)))
    convert_darknet(cfg, weights, out, ["a", "b", "c"])
    first = out.stat().st_mtime_ns
    convert_darknet(cfg, weights, out, ["a", "b", "c"])
    assert out.stat().st_mtime_ns == first
    convert_darknet(cfg, weights, out, ["a", "b", "cat"])
    assert out.stat().st_mtime_ns != first


# ------------------------------------------------------------- YOLOv3-tiny on vtest.avi


@pytest.fixture(scope="module")
def tiny() -> ModelInfo:
    return yolov3_tiny_onnx()


@pytest.fixture(scope="module")
def tiny_cv2() -> cv2.dnn.Net:
    files = fetch_yolov3_tiny()
    return cv2.dnn.readNetFromDarknet(str(files.cfg), str(files.weights))


def _spread_frames(clip: Path, count: int) -> Iterator[np.ndarray]:
    """``count`` RGB frames spread evenly through vtest.avi."""
    wanted = {round(i * (VTEST_FRAMES - 1) / (count - 1)) for i in range(count)}
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                yield frame.to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def vtest_blob(vtest: Path) -> np.ndarray:
    frames = list(_spread_frames(vtest, FRAME_COUNT))
    assert len(frames) == FRAME_COUNT
    return letterbox(frames, (416, 416)).pixels


def test_fetched_names_are_the_coco_constant() -> None:
    assert fetch_yolov3_tiny().names == COCO_CLASS_NAMES


@pytest.mark.slow
def test_yolov3_tiny_raw_output_matches_cv2(
    tiny: ModelInfo, tiny_cv2: cv2.dnn.Net, vtest_blob: np.ndarray
) -> None:
    ours = _ort_output(tiny.path, vtest_blob)
    assert ours.shape == (FRAME_COUNT, 13 * 13 * 3 + 26 * 26 * 3, 85)
    _assert_like_cv2(ours, _cv2_output(tiny_cv2, vtest_blob), tiny.input_size)


def _matches(reference: DetectionArrays, ours: DetectionArrays, min_iou: float) -> int:
    """Reference boxes matched one-to-one by a box of ours of the same class."""
    taken = np.zeros(len(ours), bool)
    matched = 0
    for box, class_id in zip(reference.xyxy, reference.class_ids, strict=True):
        low = np.maximum(box[:2], ours.xyxy[:, :2])
        high = np.minimum(box[2:], ours.xyxy[:, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        areas = np.prod(ours.xyxy[:, 2:] - ours.xyxy[:, :2], axis=1)
        iou = inter / (np.prod(box[2:] - box[:2]) + areas - inter)
        iou[taken | (ours.class_ids != class_id)] = 0
        if iou.size and iou.max() >= min_iou:
            taken[int(iou.argmax())] = True
            matched += 1
    return matched


@pytest.mark.slow
def test_yolov3_tiny_detections_match_cv2(
    tiny: ModelInfo, tiny_cv2: cv2.dnn.Net, vtest_blob: np.ndarray
) -> None:
    # Above OpenCV's 0.2 score floor, so both sides see the same candidates.
    params = SelectionParams(conf_threshold=0.25, iou_threshold=0.45)
    ours_raw = _ort_output(tiny.path, vtest_blob)
    reference_raw = _cv2_output(tiny_cv2, vtest_blob)
    ours = select_detections(ours_raw[..., :4], ours_raw[..., 4:5] * ours_raw[..., 5:], params)
    scale = np.float32(416)
    reference = select_detections(reference_raw[..., :4] * scale, reference_raw[..., 5:], params)
    total = sum(len(found) for found in reference)
    matched = sum(_matches(r, o, 0.9) for r, o in zip(reference, ours, strict=True))
    extra = sum(len(found) for found in ours) - matched
    assert total >= 5 * FRAME_COUNT  # vtest is busy: the comparison is not vacuous
    assert matched >= 0.98 * total
    assert extra <= 0.02 * total
