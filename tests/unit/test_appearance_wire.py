"""Appearance vectors on the detections topic (issue 14 point 2a): float16 rows in base64, one
per box, checked against the boxes; the tracker takes them only with re-attachment on; the
detector's appearance option attaches the embedder's vectors of each frame's boxes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from pydantic import ValidationError

from vsa.runtime.settings import ConfigError, load_settings
from vsa.schemas import Detection, Detections, FrameMeta, FrameRef, SchemaError
from vsa.services.appearance.embedder import build_appearance_embedder
from vsa.services.appearance.settings import AppearanceSettings
from vsa.services.appearance.wire import decode_vectors, encode_vectors
from vsa.services.detector.appearance import AppearanceCore
from vsa.services.detector.config import DetectorSettings
from vsa.services.detector.core import FrameInput
from vsa.services.detector.jpeg import FrameError
from vsa.services.detector.quantize import clip_frames
from vsa.services.tracker.camera import CameraState, process
from vsa.services.tracker.core import TrackerConfig

T0 = 1_767_279_600.0
BOXES = [(383.0, 197.0, 394.0, 246.0), (571.0, 148.0, 583.0, 182.0), (521.0, 234.0, 532.0, 278.0)]


def message(seq: int, vectors: np.ndarray | None = None) -> Detections:
    ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id="cam", frame_seq=seq)
    boxes = [Detection(xyxy=b, class_id=0, class_name="person", score=0.9) for b in BOXES]
    return Detections(
        camera_id="cam",
        frame_seq=seq,
        frame=ref,
        capture_ts=T0 + seq / 10,
        width=768,
        height=576,
        model_id="test",
        boxes=boxes,
        appearance=None if vectors is None else encode_vectors(vectors, "test-embedder"),
    )


def unit_rows(count: int, dims: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dims)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_vectors_survive_the_wire_to_float16_precision() -> None:
    rows = unit_rows(3)
    again = decode_vectors(Detections.from_bytes(message(1, rows).to_bytes()))
    assert again is not None
    assert again.dtype == np.float32
    assert again.shape == (3, 16)
    assert (np.sum(again * rows, axis=1) > 0.9999).all()
    assert decode_vectors(message(1)) is None


def test_a_vector_count_other_than_the_boxes_is_refused() -> None:
    body = message(1, unit_rows(3)).model_dump(mode="json")
    body["appearance"]["float16_b64"] = base64.b64encode(bytes(2 * 16 * 2)).decode()
    with pytest.raises(ValidationError, match="not 3 boxes x 16 float16 components"):
        Detections.model_validate(body)
    body["appearance"]["float16_b64"] = "not base64!"
    with pytest.raises(SchemaError):
        Detections.from_dict(body)


def test_the_tracker_keeps_vectors_only_with_re_attachment_on() -> None:
    rows = unit_rows(3)
    off, _ = process(CameraState(), message(0, rows))
    assert off.tracker.appearance.shape == (3, 0)
    on, _ = process(
        CameraState(), message(0, rows), config=TrackerConfig(reattach_min_similarity=0.8)
    )
    np.testing.assert_allclose(on.tracker.appearance, rows, atol=1e-3)


def test_max_det_must_leave_room_for_the_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSA_DETECTOR_APPEARANCE_VECTORS", "true")
    monkeypatch.setenv("VSA_DETECTOR_MAX_DET", "300")
    with pytest.raises(ConfigError, match=r"max_det <= 200"):
        load_settings(DetectorSettings)


class FixedCore:
    """A detector core that finds BOXES on every good frame and refuses the one at seq 2."""

    model_id = "fixed"
    class_names = ("person",)

    def detect(self, frames: Sequence[FrameInput]) -> list[Detections | FrameError]:
        return [
            FrameError("corrupt") if f.meta.frame_seq == 2 else message(f.meta.frame_seq)
            for f in frames
        ]


def test_the_detector_option_attaches_each_frames_box_vectors(vtest: Path) -> None:
    embedder = build_appearance_embedder(AppearanceSettings(backend="onnxruntime", max_batch=4))
    pixels = clip_frames(vtest, 120, 1, 3)
    frames = [
        FrameInput(
            FrameMeta(
                camera_id="cam", frame_seq=seq, capture_ts=T0, width=768, height=576, source="t"
            ),
            FrameRef(topic="frames", partition=0, offset=seq, camera_id="cam", frame_seq=seq),
            bytes(simplejpeg.encode_jpeg(image, 95, colorspace="RGB")),
        )
        for seq, image in enumerate(pixels)
    ]
    results = AppearanceCore(FixedCore(), embedder).detect(frames)
    assert isinstance(results[2], FrameError)
    for seq in (0, 1):
        result = results[seq]
        assert isinstance(result, Detections)
        assert result.appearance is not None
        assert result.appearance.model == "mobilenetv2-imagenet@224x224"
        assert "appearance" in result.timings
        got = decode_vectors(Detections.from_bytes(result.to_bytes()))
        decoded = np.asarray(simplejpeg.decode_jpeg(frames[seq].jpeg, colorspace="RGB"))
        expected = embedder.embed(decoded, np.array(BOXES))
        assert got is not None
        assert (np.sum(got * expected, axis=1) > 0.999).all()
