"""The ONNX Runtime backend: model checks, batching, and YOLOv3-tiny on a real vtest frame."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from pydantic import TypeAdapter, ValidationError

from vsa.services.detector.backends import (
    AutoConfig,
    BackendConfig,
    BackendError,
    OnnxRuntimeBackend,
    OnnxRuntimeConfig,
    TorchConfig,
    build_backend,
)
from vsa.services.detector.backends.ort_backend import (
    ProviderNotStartedError,
    check_active_providers,
    provider_list,
)
from vsa.services.detector.layout import format_class_names
from vsa.services.detector.models import yolov3_tiny_onnx
from vsa.services.detector.pipeline import detect_batch
from vsa.services.detector.postprocess import SelectionParams

PERSON = 0
CONFIG = OnnxRuntimeConfig(intra_op_num_threads=2)


def _reshape_model(
    path: Path,
    batch: int | str = 1,
    side: int | str = 32,
    rows: int = 6,
    names: tuple[str, ...] | None = ("a", "b"),
) -> Path:
    """A stand-in Ultralytics export: ``images (batch, 3, 32, 32)`` reshaped to ``(batch, rows,
    3072 / rows)``, so each output row is a slice of its own input and batching is checkable."""
    anchors = 3 * 32 * 32 // rows
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [-1, rows, anchors])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["output0"])],
        "stand_in",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, side, side])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, rows, anchors])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if names is not None:
        helper.set_model_props(model, {"names": format_class_names(names)})
    onnx.save_model(model, str(path))
    return path


@pytest.mark.parametrize("batch_dim", [1, "batch"], ids=["fixed-batch-1", "dynamic-batch"])
def test_any_batch_size_runs_on_fixed_and_dynamic_batch_models(
    tmp_path: Path, batch_dim: int | str
) -> None:
    backend = OnnxRuntimeBackend(_reshape_model(tmp_path / "m.onnx", batch=batch_dim), CONFIG)
    assert backend.model.layout == "ultralytics"
    assert backend.model.class_names == ("a", "b")
    assert backend.input_size == (32, 32)
    images = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    output = backend.infer(images)
    np.testing.assert_array_equal(output, images.reshape(3, 6, 512))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p, "model file not found"),
        (lambda p: (p.write_bytes(b"not onnx"), p)[1], "ONNX Runtime cannot load the model"),
        (lambda p: _reshape_model(p, names=None), "no 'names' metadata"),
        (lambda p: _reshape_model(p, rows=8), r"output shape \[1, 8, 384\] is not a known"),
        (lambda p: _reshape_model(p, side="size"), "dynamic height or width"),
    ],
    ids=["missing", "garbage", "no-names", "wrong-output", "dynamic-size"],
)
def test_unusable_models_are_refused_naming_the_file(
    tmp_path: Path, build: Callable[[Path], Path], message: str
) -> None:
    path = build(tmp_path / "model.onnx")
    with pytest.raises(BackendError, match=message) as caught:
        OnnxRuntimeBackend(path, CONFIG)
    assert str(tmp_path / "model.onnx") in str(caught.value)


def test_wrong_input_is_refused(tmp_path: Path) -> None:
    backend = OnnxRuntimeBackend(_reshape_model(tmp_path / "m.onnx"), CONFIG)
    with pytest.raises(ValueError, match=r"float32 \(n, 3, 32, 32\)"):
        backend.infer(np.zeros((1, 3, 32, 32), np.float64))  # type: ignore[arg-type]


def test_config_union_is_discriminated_by_type() -> None:
    adapter: TypeAdapter[BackendConfig] = TypeAdapter(BackendConfig)
    parsed = adapter.validate_python({"type": "onnxruntime", "intra_op_num_threads": 2})
    assert parsed == OnnxRuntimeConfig(intra_op_num_threads=2)
    assert isinstance(adapter.validate_python({"type": "auto"}), AutoConfig)
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "onnxruntime", "threads": 2})
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "openvino"})


def test_spinning_is_onnxruntimes_default_and_can_be_turned_off(tmp_path: Path) -> None:
    from vsa.services.detector.backends.ort_backend import _session_options

    spinning = _session_options(OnnxRuntimeConfig(intra_op_num_threads=2))
    with pytest.raises(RuntimeError, match="does not have configuration"):  # the default
        spinning.get_session_config_entry("session.intra_op.allow_spinning")
    quiet = _session_options(OnnxRuntimeConfig(intra_op_num_threads=2, allow_spinning=False))
    assert quiet.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    model = _reshape_model(tmp_path / "m.onnx")
    backend = OnnxRuntimeBackend(model, OnnxRuntimeConfig(allow_spinning=False))
    assert backend.infer(np.zeros((1, 3, 32, 32), np.float32)).shape[0] == 1


def test_torch_is_not_a_standalone_backend(tmp_path: Path) -> None:
    # torch runs only as the service's GPU core (loading.load_service_core); TensorRT's own
    # tests are in test_detector_tensorrt.py.
    with pytest.raises(BackendError, match="runs only as the service's GPU core"):
        build_backend(TorchConfig(), _reshape_model(tmp_path / "m.onnx"))


def test_missing_provider_is_refused(tmp_path: Path) -> None:
    config = OnnxRuntimeConfig(providers=("NoSuchExecutionProvider",))
    with pytest.raises(BackendError, match="lacks providers"):
        OnnxRuntimeBackend(_reshape_model(tmp_path / "m.onnx"), config)


def test_a_provider_that_did_not_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    check_active_providers(path, ("CPUExecutionProvider",), ("CPUExecutionProvider",))
    with pytest.raises(
        ProviderNotStartedError, match=re.escape("could not start ['CUDAExecutionProvider']")
    ):
        check_active_providers(
            path, ("CUDAExecutionProvider", "CPUExecutionProvider"), ("CPUExecutionProvider",)
        )


def test_cuda_provider_gets_its_tf32_option() -> None:
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert provider_list(OnnxRuntimeConfig(providers=providers)) == [
        ("CUDAExecutionProvider", {"use_tf32": "1"}),
        "CPUExecutionProvider",
    ]
    strict = OnnxRuntimeConfig(providers=providers, cuda_tf32=False)
    assert provider_list(strict)[0] == ("CUDAExecutionProvider", {"use_tf32": "0"})
    assert provider_list(OnnxRuntimeConfig()) == ["CPUExecutionProvider"]


@pytest.fixture
def cuda_listed_but_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime-gpu on a machine where its CUDA provider cannot start: the provider is listed
    as available, and ONNX Runtime (here the CPU build) runs the session on the CPU instead."""
    listed = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)


@pytest.mark.usefixtures("cuda_listed_but_absent")
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_onnxruntime_asked_for_cuda_stops_instead_of_running_on_the_cpu(tmp_path: Path) -> None:
    config = OnnxRuntimeConfig(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    with pytest.raises(ProviderNotStartedError, match="CUDAExecutionProvider"):
        build_backend(config, _reshape_model(tmp_path / "m.onnx"))


@pytest.mark.usefixtures("cuda_listed_but_absent")
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_auto_goes_on_on_the_cpu_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = build_backend(AutoConfig(intra_op_num_threads=1), _reshape_model(tmp_path / "m.onnx"))
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.providers == ("CPUExecutionProvider",)
    assert "cuda_provider_not_started" in caplog.text


def _vtest_frames(clip: Path, indices: set[int]) -> list[np.ndarray]:
    """RGB frames of vtest.avi at ``indices``, in order."""
    frames = []
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in indices:
                frames.append(frame.to_ndarray(format="rgb24"))
            if index >= max(indices):
                break
    return frames


@pytest.fixture(scope="module")
def tiny_backend() -> OnnxRuntimeBackend:
    backend = build_backend(AutoConfig(intra_op_num_threads=2), yolov3_tiny_onnx().path)
    assert isinstance(backend, OnnxRuntimeBackend)
    return backend


@pytest.mark.slow
def test_yolov3_tiny_finds_the_pedestrians_of_vtest(
    tiny_backend: OnnxRuntimeBackend, vtest: Path
) -> None:
    (frame,) = _vtest_frames(vtest, {100})
    result = detect_batch(tiny_backend, [frame], SelectionParams(conf_threshold=0.3))
    (found,) = result.detections
    people = found.xyxy[found.class_ids == PERSON]
    assert len(people) >= 4
    assert people.min() >= 0
    assert people[:, [0, 2]].max() <= 768
    assert people[:, [1, 3]].max() <= 576
    heights = people[:, 3] - people[:, 1]
    assert np.all((heights > 15) & (heights < 200))  # pedestrians seen from above, not blobs
    assert set(result.timings_ms) == {"preprocess", "infer", "postprocess"}


@pytest.mark.slow
def test_a_batch_gives_what_each_frame_gives_alone(
    tiny_backend: OnnxRuntimeBackend, vtest: Path
) -> None:
    frames = _vtest_frames(vtest, {0, 50, 100, 150, 200, 250, 300, 350})
    params = SelectionParams()
    batch = detect_batch(tiny_backend, frames, params).detections
    for frame, found in zip(frames, batch, strict=True):
        (alone,) = detect_batch(tiny_backend, [frame], params).detections
        np.testing.assert_array_equal(found.class_ids, alone.class_ids)
        np.testing.assert_allclose(found.xyxy, alone.xyxy, atol=1e-2)
