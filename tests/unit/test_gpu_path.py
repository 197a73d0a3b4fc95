"""The PyTorch detector path, run on the CPU here (the same code runs on CUDA on the GPU
machine): the torch network equals the converted ONNX model, and the whole-batch torch pipeline
(JPEG decode, letterbox, threshold, NMS, mapping back) finds what the numpy pipeline finds."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg

torch = pytest.importorskip("torch")

from vsa.services.detector.backends import build_backend  # noqa: E402
from vsa.services.detector.backends.config import OnnxRuntimeConfig  # noqa: E402
from vsa.services.detector.darknet import parse_network, read_weights  # noqa: E402
from vsa.services.detector.gpu import DarknetTorch, GpuDetector  # noqa: E402
from vsa.services.detector.models import fetch_yolov3_tiny, yolov3_tiny_onnx  # noqa: E402
from vsa.services.detector.pipeline import detect_batch  # noqa: E402
from vsa.services.detector.postprocess import SelectionParams  # noqa: E402
from vsa.services.detector.preprocess import letterbox  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def frames(vtest: Path) -> list[np.ndarray]:
    with av.open(str(vtest)) as container:
        decoded = [
            f.to_ndarray(format="rgb24")
            for i, f in enumerate(container.decode(video=0))
            if i in (0, 150, 400, 700)
        ]
    return decoded


@pytest.fixture(scope="module")
def torch_model() -> DarknetTorch:
    files = fetch_yolov3_tiny()
    network = parse_network(files.cfg.read_text(), str(files.cfg), (416, 416))
    params = read_weights(files.weights.read_bytes(), network, str(files.weights))
    return DarknetTorch(network, params).eval()


def test_torch_network_equals_the_onnx_model(
    torch_model: DarknetTorch, frames: list[np.ndarray]
) -> None:
    info = yolov3_tiny_onnx()
    backend = build_backend(OnnxRuntimeConfig(), info.path)
    batch = letterbox(frames, (416, 416)).pixels
    expected = backend.infer(batch)
    with torch.inference_mode():
        got = torch_model(torch.from_numpy(batch)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got[..., :4], expected[..., :4], atol=2e-3)  # pixels
    np.testing.assert_allclose(got[..., 4:], expected[..., 4:], atol=2e-5)  # probabilities


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_torch_pipeline_matches_the_numpy_pipeline(
    torch_model: DarknetTorch, frames: list[np.ndarray]
) -> None:
    params = SelectionParams(conf_threshold=0.3)
    jpegs = [simplejpeg.encode_jpeg(f, 95) for f in frames]
    reference = detect_batch(
        build_backend(OnnxRuntimeConfig(), yolov3_tiny_onnx().path),
        [simplejpeg.decode_jpeg(j) for j in jpegs],
        params,
    ).detections
    detector = GpuDetector(
        torch_model, (416, 416), params, device="cpu", half=False, cuda_graphs=False
    )
    got = detector.detect_jpegs(jpegs)
    matched = total = extra = 0
    for ref, ours in zip(reference, got, strict=True):
        total += len(ref.scores)
        if len(ref.scores) and len(ours.scores):
            iou = _iou(ref.xyxy, ours.xyxy)
            same = ref.class_ids[:, None] == ours.class_ids[None, :]
            matched += int(((iou >= 0.9) & same).any(1).sum())
            extra += int((~((iou >= 0.9) & same).any(0)).sum())
        else:
            extra += len(ours.scores)
    assert total >= 10  # people are there to be found
    assert matched >= 0.95 * total
    assert extra <= 0.05 * total + 1
    for ours, frame in zip(got, frames, strict=True):
        height, width = frame.shape[:2]
        assert (ours.xyxy[:, [0, 2]] <= width).all()
        assert (ours.xyxy[:, [1, 3]] <= height).all()
