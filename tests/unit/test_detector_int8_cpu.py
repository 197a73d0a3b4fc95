"""Which CPUs run which INT8 models faithfully, and what the detector does about the others."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vsa.runtime.int8_cpu import (
    CpuInt8,
    int8_weight_peak,
    read_cpu_flags,
    saturation_risk,
)
from vsa.services.detector.config import DetectorSettings
from vsa.services.detector.loading import faithful_model

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw"})
NO_VNNI = CpuInt8("x86_64", AVX2)
VNNI = CpuInt8("x86_64", AVX2 | {"avx512_vnni"})


def qdq_model(path: Path, weights: np.ndarray) -> Path:
    """A one-node QDQ graph: y = DequantizeLinear(weights) (int8 initializer)."""
    node = helper.make_node("DequantizeLinear", ["w", "scale", "zero"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(weights.shape))],
        [
            numpy_helper.from_array(weights.astype(np.int8), "w"),
            numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
            numpy_helper.from_array(np.array(0, np.int8), "zero"),
        ],
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n")
    assert read_cpu_flags(info) == {"fpu", "avx2", "avx512_vnni"}
    assert read_cpu_flags(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("cpu", "exact"),
    [
        (NO_VNNI, False),
        (VNNI, True),
        (CpuInt8("x86_64", AVX2 | {"avx_vnni"}), True),
        (CpuInt8("x86_64", AVX2 | {"amx_int8"}), True),
        (CpuInt8("x86_64", None), False),  # unknown flags: assume the worst
        (CpuInt8("aarch64", None), True),
    ],
)
def test_which_cpus_sum_int8_products_exactly(cpu: CpuInt8, exact: bool) -> None:
    assert cpu.exact_int8 == exact


def test_8_bit_weights_are_a_risk_only_without_vnni(tmp_path: Path) -> None:
    full = qdq_model(tmp_path / "w8.onnx", np.array([[-127, 3], [90, 1]]))
    seven = qdq_model(tmp_path / "w7.onnx", np.array([[-64, 3], [64, 1]]))
    assert int8_weight_peak(onnx.load(str(full))) == 127
    assert saturation_risk(seven, NO_VNNI) is None
    assert saturation_risk(full, VNNI) is None
    reason = saturation_risk(full, NO_VNNI)
    assert reason is not None
    assert "127" in reason
    assert "reduce_range" in reason


def test_a_model_without_int8_weights_is_no_risk(tmp_path: Path) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "f.onnx"))
    assert int8_weight_peak(onnx.load(str(tmp_path / "f.onnx"))) is None
    assert saturation_risk(tmp_path / "f.onnx", NO_VNNI) is None


def test_the_bundled_int8_model_falls_back_to_fp32_where_it_would_lose_boxes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = qdq_model(tmp_path / "w8.onnx", np.array([[-127, 3]]))
    settings = DetectorSettings(model="yolov3-tiny-int8")
    with caplog.at_level(logging.WARNING, "vsa.detector"):
        path, model_id = faithful_model(settings, full, "yolov3-tiny-int8@416x416", NO_VNNI)
    assert model_id == "yolov3-tiny@416x416"
    assert path.name == "yolov3-tiny-416x416.onnx"
    assert "int8_falls_back_to_fp32" in caplog.text
    assert faithful_model(settings, full, "int8", VNNI) == (full, "int8")


def test_a_users_int8_file_that_would_lose_boxes_is_loaded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = qdq_model(tmp_path / "w8.onnx", np.array([[-127, 3]]))
    settings = DetectorSettings(model=str(full))
    with caplog.at_level(logging.WARNING, "vsa.detector"):
        assert faithful_model(settings, full, "mine", NO_VNNI) == (full, "mine")
    assert "int8_model_loses_boxes_here" in caplog.text
    gpu = DetectorSettings(
        model=str(full),
        backend={"type": "onnxruntime", "providers": ["CUDAExecutionProvider"]},
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, "vsa.detector"):
        assert faithful_model(gpu, full, "mine", NO_VNNI) == (full, "mine")
    assert caplog.text == ""
