"""The TensorRT backend's parts that run without TensorRT: configuration, batch profile, engine
cache key, INT8 calibration feeding, the errors when tensorrt or CUDA is missing, and the
rearranging of Ultralytics outputs for the GPU NMS. The engine itself is tested in
test_detector_tensorrt_engine.py, which runs only where tensorrt imports and CUDA is present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from pydantic import TypeAdapter, ValidationError

from vsa.runtime.settings import ConfigError, load_settings
from vsa.services.detector.backends import (
    AutoConfig,
    BackendConfig,
    BackendError,
    OnnxRuntimeBackend,
    TensorRTConfig,
    build_backend,
)
from vsa.services.detector.backends.tensorrt_plan import (
    BatchProfile,
    CalibrationFeed,
    GpuInfo,
    batch_pieces,
    batch_profile,
    calibration_batches,
    calibration_cache_file,
    calibration_source,
    check_tensorrt_version,
    cuda_device,
    engine_cache_dir,
    engine_file,
    engine_key,
    plan_onnx,
    read_calibration_cache,
    read_jpeg_folder,
    write_atomically,
)
from vsa.services.detector.config import DetectorSettings
from vsa.services.detector.loading import backend_model_id, load_service_core
from vsa.services.detector.preprocess import letterbox

from .test_detector_backend import _reshape_model

H100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
TENSORRT_MISSING = importlib.util.find_spec("tensorrt") is None


def _frame(height: int, width: int, value: int) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


# --- configuration ---------------------------------------------------------------------------


def test_config_defaults_and_union() -> None:
    config = TensorRTConfig()
    assert (config.precision, config.opt_batch, config.device_id) == ("fp16", None, 0)
    assert config.engine_cache_dir is None
    adapter: TypeAdapter[BackendConfig] = TypeAdapter(BackendConfig)
    parsed = adapter.validate_python(
        {"type": "tensorrt", "precision": "int8", "calibration_cache": "/data/yolo.calib"}
    )
    assert parsed == TensorRTConfig(precision="int8", calibration_cache=Path("/data/yolo.calib"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"precision": "fp32"}, "precision"),
        ({"workspace_mib": 0}, "workspace_mib"),
        ({"opt_batch": 0}, "opt_batch"),
        ({"fp16": True}, "fp16"),
        ({"calibration_cache": "/x.calib"}, "calibration_cache only apply with precision 'int8'"),
        ({"calibration_frames": "/frames"}, "calibration_frames only apply"),
    ],
    ids=["precision", "workspace", "opt-batch", "unknown-key", "cache-without-int8", "frames"],
)
def test_config_refuses(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TensorRTConfig.model_validate(fields)


def test_settings_refuse_an_opt_batch_above_max_batch() -> None:
    with pytest.raises(ConfigError, match="opt_batch 16 exceeds max_batch 8"):
        load_settings(
            DetectorSettings, None, max_batch=8, backend={"type": "tensorrt", "opt_batch": 16}
        )
    settings = load_settings(
        DetectorSettings, None, max_batch=32, backend={"type": "tensorrt", "opt_batch": 16}
    )
    assert isinstance(settings.backend, TensorRTConfig)


def test_settings_refuse_the_onnx_runtime_int8_model_with_tensorrt() -> None:
    with pytest.raises(ConfigError, match="builds its own INT8 engine"):
        load_settings(
            DetectorSettings, None, model="yolov3-tiny-int8", backend={"type": "tensorrt"}
        )


def test_model_id_names_the_engine_precision() -> None:
    int8 = load_settings(DetectorSettings, None, backend={"type": "tensorrt", "precision": "int8"})
    assert backend_model_id("yolov3-tiny@416x416", int8) == "yolov3-tiny@416x416:tensorrt-int8"
    assert backend_model_id("m", load_settings(DetectorSettings, None)) == "m"


# --- batch profile ---------------------------------------------------------------------------


def test_dynamic_batch_profile_runs_from_one_to_max_batch() -> None:
    assert batch_profile(None, None, 32) == BatchProfile(1, 32, 32)
    profile = batch_profile(None, 8, 32)
    assert profile == BatchProfile(1, 8, 32)
    assert not profile.fixed
    assert profile.shapes((416, 320)) == ((1, 3, 416, 320), (8, 3, 416, 320), (32, 3, 416, 320))
    with pytest.raises(ValueError, match="opt_batch 64 exceeds max_batch 32"):
        batch_profile(None, 64, 32)


def test_a_fixed_batch_model_keeps_its_batch() -> None:
    profile = batch_profile(1, 8, 32)
    assert profile == BatchProfile(1, 1, 1)
    assert profile.fixed
    with pytest.raises(ValueError, match="min <= opt <= max"):
        BatchProfile(1, 9, 8)


def test_batches_are_cut_at_max_batch_and_padded_for_fixed_engines() -> None:
    assert batch_pieces(20, BatchProfile(1, 8, 8)) == [(0, 8, 8), (8, 16, 8), (16, 20, 4)]
    assert batch_pieces(3, BatchProfile(1, 4, 32)) == [(0, 3, 3)]
    assert batch_pieces(6, BatchProfile(4, 4, 4)) == [(0, 4, 4), (4, 6, 4)]
    with pytest.raises(ValueError, match="empty"):
        batch_pieces(0, BatchProfile(1, 1, 1))


# --- engine cache ----------------------------------------------------------------------------


def test_engine_key_changes_with_everything_the_engine_depends_on() -> None:
    base = {
        "onnx_sha256": "a" * 64,
        "gpu": H100,
        "tensorrt_version": "10.7.0",
        "precision": "fp16",
        "profile": BatchProfile(1, 8, 32),
        "net_size": (416, 416),
        "calibration": "",
    }
    variants = [
        {},
        {"onnx_sha256": "b" * 64},
        {"gpu": GpuInfo("NVIDIA H200", (9, 0))},
        {"gpu": GpuInfo(H100.name, (8, 9))},
        {"tensorrt_version": "10.8.0"},
        {"precision": "int8"},
        {"profile": BatchProfile(1, 16, 32)},
        {"profile": BatchProfile(1, 8, 64)},
        {"net_size": (640, 640)},
        {"calibration": "jpegs:/frames"},
    ]
    keys = [engine_key(**{**base, **change}) for change in variants]  # type: ignore[arg-type]
    assert len(set(keys)) == len(variants)
    assert keys[0] == engine_key(**base)  # type: ignore[arg-type]
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in keys)


def test_engine_file_is_named_after_model_precision_and_key(tmp_path: Path) -> None:
    path = engine_file(tmp_path, Path("/models/yolov8n.onnx"), "fp16", "0123456789abcdef" * 4)
    assert path == tmp_path / "yolov8n-fp16-0123456789abcdef0123456789abcdef.engine"


def test_engine_cache_dir_defaults_to_the_vsa_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VSA_CACHE_DIR", str(tmp_path))
    assert engine_cache_dir(TensorRTConfig()) == tmp_path / "tensorrt"
    assert engine_cache_dir(TensorRTConfig(engine_cache_dir=Path("/var/e"))) == Path("/var/e")


# --- the model -------------------------------------------------------------------------------


@pytest.mark.parametrize(("batch_dim", "fixed"), [(1, 1), ("batch", None)])
def test_plan_reads_input_batch_axis_and_outputs(
    tmp_path: Path, batch_dim: int | str, fixed: int | None
) -> None:
    plan = plan_onnx(_reshape_model(tmp_path / "m.onnx", batch=batch_dim))
    assert (plan.input_name, plan.output_names, plan.fixed_batch) == ("images", ("output0",), fixed)
    assert plan.model.layout == "ultralytics"
    assert plan.model.input_size == (32, 32)
    assert plan.model.class_names == ("a", "b")


def test_plan_refuses_unusable_models_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="model file not found"):
        plan_onnx(tmp_path / "missing.onnx")
    with pytest.raises(BackendError, match="no 'names' metadata") as caught:
        plan_onnx(_reshape_model(tmp_path / "m.onnx", names=None))
    assert str(tmp_path / "m.onnx") in str(caught.value)


# --- INT8 calibration ------------------------------------------------------------------------


def test_calibration_batches_are_letterboxed_and_the_last_is_filled_from_the_start() -> None:
    frames = [_frame(48, 64, 10), _frame(64, 48, 200), _frame(32, 32, 90)]
    batches = calibration_batches(frames, (32, 32), 2)
    assert [b.shape for b in batches] == [(2, 3, 32, 32), (2, 3, 32, 32)]
    assert all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(batches[0], letterbox(frames[:2], (32, 32)).pixels)
    np.testing.assert_array_equal(batches[1], letterbox([frames[2], frames[0]], (32, 32)).pixels)
    with pytest.raises(ValueError, match="no calibration frames"):
        calibration_batches([], (32, 32), 2)


def test_calibration_feed_loads_frames_only_when_asked() -> None:
    loads: list[int] = []

    def load() -> list[np.ndarray]:
        loads.append(1)
        return [_frame(32, 32, v) for v in (0, 100, 200)]

    feed = CalibrationFeed(load, (32, 32), 2)
    assert loads == []  # a calibration cache makes TensorRT skip get_batch: no frames needed
    got = []
    while (batch := feed.next_batch()) is not None:
        got.append(batch)
    assert len(got) == 2
    assert loads == [1]
    assert feed.next_batch() is None


def test_calibration_frames_come_from_the_jpegs_of_a_folder(tmp_path: Path) -> None:
    for name, value in (("b.jpg", 200), ("a.JPEG", 20)):
        (tmp_path / name).write_bytes(simplejpeg.encode_jpeg(_frame(16, 24, value), 95))
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = read_jpeg_folder(tmp_path)
    assert [f.shape for f in frames] == [(16, 24, 3), (16, 24, 3)]
    assert abs(int(frames[0].mean()) - 20) <= 2  # sorted by name: a.JPEG first
    assert len(read_jpeg_folder(tmp_path, limit=1)) == 1


def test_calibration_folder_problems_are_backend_errors(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not a folder"):
        read_jpeg_folder(tmp_path / "nowhere")
    with pytest.raises(BackendError, match=r"no \.jpg or \.jpeg files"):
        read_jpeg_folder(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(BackendError, match=r"broken\.jpg"):
        read_jpeg_folder(tmp_path)


def test_calibration_cache_round_trip(tmp_path: Path) -> None:
    cache = tmp_path / "sub" / "model.calib"
    assert read_calibration_cache(cache) is None
    write_atomically(cache, b"TRT-100-EntropyCalibration2\nimages: 3c010a14\n")
    assert read_calibration_cache(cache) == b"TRT-100-EntropyCalibration2\nimages: 3c010a14\n"
    assert [p.name for p in cache.parent.iterdir()] == ["model.calib"]  # no partial file left
    cache.write_bytes(b"")
    assert read_calibration_cache(cache) is None  # empty: calibrate again


def test_calibration_source_and_cache_file(tmp_path: Path) -> None:
    assert calibration_source(TensorRTConfig()) == ""
    clip = TensorRTConfig(precision="int8")
    assert calibration_source(clip).startswith("vtest.avi[0::20]")
    folder = TensorRTConfig(precision="int8", calibration_frames=tmp_path)
    assert calibration_source(folder) == f"jpegs:{tmp_path.resolve()}"
    default = calibration_cache_file(clip, tmp_path, "f" * 64)
    assert default.parent == tmp_path
    assert default.name.startswith("f" * 16)
    assert default != calibration_cache_file(folder, tmp_path, "f" * 64)
    chosen = TensorRTConfig(precision="int8", calibration_cache=tmp_path / "mine.calib")
    assert calibration_cache_file(chosen, Path("/elsewhere"), "f" * 64) == tmp_path / "mine.calib"


# --- what is missing -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.6.1", "11.0.0", "1.0"])
def test_only_tensorrt_10_is_accepted(version: str) -> None:
    with pytest.raises(BackendError, match=f"written for TensorRT 10, found {version}"):
        check_tensorrt_version(version)
    check_tensorrt_version("10.7.0.post1")


@pytest.mark.skipif(not TENSORRT_MISSING, reason="tensorrt imports here")
def test_without_tensorrt_the_backend_names_the_missing_package(tmp_path: Path) -> None:
    model = _reshape_model(tmp_path / "m.onnx")
    with pytest.raises(BackendError, match="needs the tensorrt Python package") as caught:
        build_backend(TensorRTConfig(), model)
    assert "tensorrt>=10,<11" in str(caught.value)
    settings = load_settings(DetectorSettings, None, model=str(model), backend={"type": "tensorrt"})
    with pytest.raises(ConfigError, match="needs the tensorrt Python package"):
        load_service_core(settings)


def test_without_cuda_the_backend_says_so() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(BackendError, match="needs a CUDA device"):
        cuda_device(0)


def test_auto_picks_onnx_runtime_never_tensorrt(tmp_path: Path) -> None:
    backend = build_backend(AutoConfig(intra_op_num_threads=1), _reshape_model(tmp_path / "m.onnx"))
    assert isinstance(backend, OnnxRuntimeBackend)


# --- Ultralytics outputs through the GPU NMS -------------------------------------------------


def test_ultralytics_rows_give_the_gpu_nms_what_the_numpy_postprocess_finds() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from vsa.services.detector.gpu import GpuLetterbox, darknet_rows, select_gpu
    from vsa.services.detector.postprocess import SelectionParams, postprocess

    rng = np.random.default_rng(3)
    anchors, classes = 200, 3
    output = np.zeros((2, 4 + classes, anchors), np.float32)
    centres = rng.uniform(20, 300, (2, 2, anchors))
    output[:, 0:2] = centres
    output[:, 2:4] = rng.uniform(10, 60, (2, 2, anchors))
    output[:, 4:] = rng.uniform(0, 0.6, (2, classes, anchors))
    params = SelectionParams(conf_threshold=0.4, iou_threshold=0.5)
    expected = postprocess(output, "ultralytics", ("a", "b", "c"), params)

    rows = darknet_rows(torch.from_numpy(output), "ultralytics")
    assert tuple(rows.shape) == (2, anchors, 5 + classes)
    identity = GpuLetterbox(
        torch.zeros(2, 3, 320, 320),
        torch.ones(2, 2),
        torch.zeros(2, 2),
        torch.full((2, 2), 320.0),
    )
    got = select_gpu(rows, identity, params)
    for want, have in zip(expected, got, strict=True):
        assert len(want) > 0
        order_w, order_h = np.argsort(-want.scores), np.argsort(-have.scores)
        np.testing.assert_array_equal(want.class_ids[order_w], have.class_ids[order_h])
        np.testing.assert_allclose(
            np.clip(want.xyxy[order_w], 0, 320), have.xyxy[order_h], atol=1e-3
        )
        np.testing.assert_allclose(want.scores[order_w], have.scores[order_h], atol=1e-6)


def test_darknet_rows_leave_darknet_outputs_alone() -> None:
    torch = pytest.importorskip("torch")
    from vsa.services.detector.gpu import darknet_rows

    output = torch.rand(1, 10, 85)
    assert darknet_rows(output, "darknet") is output
