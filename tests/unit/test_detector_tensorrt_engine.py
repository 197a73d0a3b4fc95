"""The TensorRT backend on a real GPU: the engine builds, is cached and reused, a broken cache
file is rebuilt, INT8 calibrates once and then reads its cache, and the detections agree with
ONNX Runtime's on vtest frames, through ``vsa detect``'s backend and through the service core.

Runs only where tensorrt (10) imports and torch sees a CUDA device. Neither the dev machine nor
the team's GPU machine has TensorRT, so these tests have not run anywhere yet.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

pytest.importorskip("tensorrt")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from vsa.runtime.settings import load_settings  # noqa: E402
from vsa.schemas import Detections  # noqa: E402
from vsa.services.detector.agreement import Agreement, compare  # noqa: E402
from vsa.services.detector.backends import (  # noqa: E402
    DetectorBackend,
    OnnxRuntimeConfig,
    TensorRTBackend,
    TensorRTConfig,
    build_backend,
)
from vsa.services.detector.backends.tensorrt_plan import BatchProfile  # noqa: E402
from vsa.services.detector.config import DetectorSettings  # noqa: E402
from vsa.services.detector.core import FrameInput  # noqa: E402
from vsa.services.detector.jpeg import FrameError  # noqa: E402
from vsa.services.detector.loading import load_detector, load_service_core  # noqa: E402
from vsa.services.detector.models import yolov3_tiny_onnx  # noqa: E402
from vsa.services.detector.pipeline import detect_batch  # noqa: E402
from vsa.services.detector.postprocess import SelectionParams  # noqa: E402
from vsa.services.detector.preprocess import letterbox  # noqa: E402
from vsa.services.detector.records import DetectionArrays  # noqa: E402

from .test_detector_backend import _vtest_frames  # noqa: E402
from .test_detector_core import frame_input  # noqa: E402

pytestmark = pytest.mark.slow

#: vtest frames 10, 50, 90, ...: none is an INT8 calibration frame (those are 0, 20, 40, ...).
AGREEMENT_FRAMES = set(range(10, 795, 40))
MAX_BATCH = 8
FP16 = {"opt_batch": 4}


@pytest.fixture(scope="module")
def frames(vtest: Path) -> list[np.ndarray]:
    return _vtest_frames(vtest, AGREEMENT_FRAMES)


@pytest.fixture(scope="module")
def model_path() -> Path:
    return yolov3_tiny_onnx().path


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def fp16(model_path: Path, engine_dir: Path) -> TensorRTBackend:
    config = TensorRTConfig(engine_cache_dir=engine_dir, **FP16)
    backend = build_backend(config, model_path, max_batch=MAX_BATCH)
    assert isinstance(backend, TensorRTBackend)
    return backend


def _agreement(
    reference: list[DetectionArrays], candidate: list[DetectionArrays], iou: float
) -> Agreement:
    total = Agreement()
    for ref, got in zip(reference, candidate, strict=True):
        total += compare(ref, got, iou_threshold=iou)
    return total


def _detections(backend: DetectorBackend, frames: list[np.ndarray]) -> list[DetectionArrays]:
    found: list[DetectionArrays] = []
    for start in range(0, len(frames), MAX_BATCH):
        found += detect_batch(
            backend, frames[start : start + MAX_BATCH], SelectionParams()
        ).detections
    return found


@pytest.mark.timeout(900)  # the module's engine is built here
def test_the_engine_is_built_and_written_to_the_cache(
    fp16: TensorRTBackend, engine_dir: Path
) -> None:
    engine = fp16.engine
    assert not engine.from_cache
    assert engine.engine_path.parent == engine_dir
    assert engine.engine_path.stat().st_size > 1_000_000
    assert engine.profile == BatchProfile(1, 4, MAX_BATCH)
    assert fp16.name == "tensorrt"
    assert fp16.input_size == (416, 416)


def test_a_second_build_loads_the_cached_engine(
    fp16: TensorRTBackend, model_path: Path, engine_dir: Path, frames: list[np.ndarray]
) -> None:
    again = TensorRTBackend(model_path, TensorRTConfig(engine_cache_dir=engine_dir, **FP16), 8)
    assert again.engine.from_cache
    assert again.engine.engine_path == fp16.engine.engine_path
    assert again.engine.ready_s < fp16.engine.ready_s / 2
    batch = letterbox(frames[:2], (416, 416)).pixels
    np.testing.assert_allclose(again.infer(batch), fp16.infer(batch), rtol=0, atol=1e-3)


@pytest.mark.timeout(900)
def test_a_cached_engine_that_does_not_load_is_rebuilt(
    fp16: TensorRTBackend, model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / fp16.engine.engine_path.name
    broken.write_bytes(fp16.engine.engine_path.read_bytes()[:4096])
    with caplog.at_level(logging.WARNING, logger="vsa.detector.tensorrt"):
        rebuilt = TensorRTBackend(model_path, TensorRTConfig(engine_cache_dir=tmp_path, **FP16), 8)
    assert not rebuilt.engine.from_cache
    assert rebuilt.engine.engine_path == broken
    assert broken.stat().st_size > 1_000_000
    assert "tensorrt_engine_rebuild" in [r.getMessage() for r in caplog.records]


def test_detections_agree_with_onnx_runtime(
    fp16: TensorRTBackend, model_path: Path, frames: list[np.ndarray]
) -> None:
    reference = _detections(build_backend(OnnxRuntimeConfig(), model_path), frames)
    total = _agreement(reference, _detections(fp16, frames), iou=0.9)
    assert total.reference >= 100  # vtest's pedestrians are there to be found
    assert total.matched_fraction >= 0.98
    assert total.extra_fraction <= 0.02


def test_a_batch_above_max_batch_takes_several_engine_calls(
    fp16: TensorRTBackend, frames: list[np.ndarray]
) -> None:
    chosen = frames[: MAX_BATCH + 3]
    together = detect_batch(fp16, chosen, SelectionParams()).detections
    alone = [detect_batch(fp16, [f], SelectionParams()).detections[0] for f in chosen]
    total = _agreement(alone, together, iou=0.9)
    assert total.matched_fraction >= 0.98
    assert total.extra_fraction <= 0.02


def _message_arrays(message: Detections) -> DetectionArrays:
    return DetectionArrays(
        np.array([b.xyxy for b in message.boxes], np.float32).reshape(-1, 4),
        np.array([b.score for b in message.boxes], np.float32),
        np.array([b.class_id for b in message.boxes], np.int32),
    )


def test_the_service_core_runs_the_engine_in_the_gpu_path(
    fp16: TensorRTBackend, engine_dir: Path, frames: list[np.ndarray]
) -> None:
    backend = {"type": "tensorrt", "engine_cache_dir": str(engine_dir), **FP16}
    core = load_service_core(
        load_settings(DetectorSettings, None, backend=backend, max_batch=MAX_BATCH)
    )
    reference = load_detector(load_settings(DetectorSettings, None, max_batch=MAX_BATCH))
    inputs = [frame_input(frame, seq) for seq, frame in enumerate(frames[:MAX_BATCH])]
    truncated = inputs[3]
    inputs[3] = FrameInput(truncated.meta, truncated.ref, truncated.jpeg[:500])
    got = core.detect(inputs)
    want = reference.detect(inputs)
    assert isinstance(got[3], FrameError)
    assert core.model_id == "yolov3-tiny@416x416:tensorrt-fp16"
    pairs = [
        (_message_arrays(w), _message_arrays(g))
        for w, g in zip(want, got, strict=True)
        if isinstance(w, Detections) and isinstance(g, Detections)
    ]
    assert len(pairs) == MAX_BATCH - 1
    total = _agreement([w for w, _ in pairs], [g for _, g in pairs], iou=0.9)
    # The GPU letterbox resamples a little differently from the CPU one: the torch GPU path's
    # bar (tests/unit/test_gpu_path.py).
    assert total.reference >= 30
    assert total.matched_fraction >= 0.95
    assert total.extra_fraction <= 0.05


@pytest.mark.timeout(1200)
def test_int8_calibrates_once_then_builds_from_its_calibration_cache(
    model_path: Path, tmp_path: Path, vtest: Path, frames: list[np.ndarray]
) -> None:
    folder = tmp_path / "calibration"
    folder.mkdir()
    for index, frame in enumerate(_vtest_frames(vtest, set(range(0, 795, 20)))):
        (folder / f"{index:03d}.jpg").write_bytes(simplejpeg.encode_jpeg(frame, 90))
    config = TensorRTConfig(
        precision="int8",
        engine_cache_dir=tmp_path / "engines",
        calibration_frames=folder,
        calibration_cache=tmp_path / "yolov3-tiny.calib",
        **FP16,
    )
    first = TensorRTBackend(model_path, config, MAX_BATCH)
    assert not first.engine.from_cache
    assert config.calibration_cache is not None
    assert config.calibration_cache.stat().st_size > 0
    reference = _detections(build_backend(OnnxRuntimeConfig(), model_path), frames)
    total = _agreement(reference, _detections(first, frames), iou=0.5)
    assert total.matched_fraction >= 0.9  # INT8: a few boxes lost or moved

    # Without the frames and the engine, a new build can only succeed from the cached scales.
    for path in [*folder.iterdir(), *(tmp_path / "engines").iterdir()]:
        path.unlink()
    folder.rmdir()
    second = TensorRTBackend(model_path, config, MAX_BATCH)
    assert not second.engine.from_cache
    batch = letterbox(frames[:2], (416, 416)).pixels
    assert second.infer(batch).shape == first.infer(batch).shape
