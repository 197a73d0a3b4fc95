"""The INT8 variant of YOLOv3-tiny: what stays float, how closely it agrees with FP32, and that
its integer arithmetic is exact (the same outputs) on CPUs with and without VNNI."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from vsa.runtime.int8_cpu import SAFE_WEIGHT_PEAK, CpuInt8, int8_weight_peak
from vsa.runtime.int8_cpu import saturation_risk as risk
from vsa.services.detector.agreement import Agreement, compare
from vsa.services.detector.backends import OnnxRuntimeConfig, build_backend
from vsa.services.detector.layout import META_NAMES, ModelInfo
from vsa.services.detector.models import yolov3_tiny_onnx
from vsa.services.detector.pipeline import detect_batch
from vsa.services.detector.postprocess import SelectionParams
from vsa.services.detector.preprocess import letterbox
from vsa.services.detector.quantize import (
    CALIBRATION_COUNT,
    CALIBRATION_START,
    CALIBRATION_STEP,
    META_QUANTIZATION,
    QuantizationError,
    clip_frames,
    decode_nodes,
    quantize_int8,
)

CONFIG = OnnxRuntimeConfig(intra_op_num_threads=2)
#: An AMD EPYC of the Zen 2 generation as QEMU emulates it: AVX2, no AVX-512, no VNNI.
CPU_WITHOUT_VNNI = "EPYC-Rome"
NO_VNNI = CpuInt8("x86_64", frozenset({"sse4_2", "avx", "avx2", "fma"}))


@pytest.fixture(scope="module")
def fp32() -> ModelInfo:
    return yolov3_tiny_onnx()


@pytest.fixture(scope="module")
def calibration(vtest: Path) -> list[np.ndarray]:
    """The frames the bundled INT8 model is calibrated on (every 20th from frame 0)."""
    return clip_frames(vtest, CALIBRATION_START, CALIBRATION_STEP, CALIBRATION_COUNT)


@pytest.fixture(scope="module")
def int8_models(
    fp32: ModelInfo, calibration: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, ModelInfo]:
    """The shipped recipe (7-bit weights) and the 8-bit one, by weight bits."""
    out = tmp_path_factory.mktemp("int8")
    return {
        bits: quantize_int8(fp32, calibration, out / f"int8-w{bits}.onnx", "test", bits)
        for bits in (7, 8)
    }


def test_the_yolo_decoding_stays_float() -> None:
    model = onnx.load(str(yolov3_tiny_onnx().path))
    names = set(decode_nodes(model))
    kinds = {node.op_type for node in model.graph.node if node.name in names}
    assert {"Reshape", "Sigmoid", "Exp"} <= kinds
    assert "Conv" not in kinds
    assert "detections" in {
        out for node in model.graph.node if node.name in names for out in node.output
    }


def test_weight_bits_other_than_7_or_8_are_refused(fp32: ModelInfo, tmp_path: Path) -> None:
    with pytest.raises(QuantizationError, match="weight_bits"):
        quantize_int8(fp32, [], tmp_path / "x.onnx", "test", weight_bits=6)


def test_the_shipped_recipe_keeps_weights_within_7_bits(int8_models: dict[int, ModelInfo]) -> None:
    shipped = onnx.load(str(int8_models[7].path))
    assert int8_weight_peak(shipped) == SAFE_WEIGHT_PEAK
    assert "weights 7 bits" in {p.key: p.value for p in shipped.metadata_props}[META_QUANTIZATION]
    assert risk(int8_models[7].path, NO_VNNI) is None
    peak = int8_weight_peak(onnx.load(str(int8_models[8].path)))
    assert peak is not None
    assert peak > SAFE_WEIGHT_PEAK
    assert "no VNNI" in (risk(int8_models[8].path, NO_VNNI) or "")


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_frames_it_was_not_calibrated_on(
    fp32: ModelInfo, int8_models: dict[int, ModelInfo], vtest: Path
) -> None:
    int8 = int8_models[7]
    meta = {p.key: p.value for p in onnx.load(str(int8.path)).metadata_props}
    assert META_NAMES in meta
    assert "int8" in meta[META_QUANTIZATION]
    # Frames 10, 30, 50, ...: between the calibration frames, none of them.
    held_out = clip_frames(vtest, CALIBRATION_STEP // 2, CALIBRATION_STEP, CALIBRATION_COUNT)
    params = SelectionParams()
    reference = detect_batch(build_backend(CONFIG, fp32.path), held_out, params).detections
    candidate = detect_batch(build_backend(CONFIG, int8.path), held_out, params).detections
    total = sum((compare(r, c) for r, c in zip(reference, candidate, strict=True)), Agreement())
    assert total.reference > 250
    assert total.matched_fraction >= 0.95
    assert total.extra_fraction <= 0.10


#: Runs one model on one input with ONNX Runtime's CPU provider; argv: model, input, output.
_RUN_ONCE = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
np.save(sys.argv[3], session.run(None, {name: np.load(sys.argv[2])})[0])
"""


def _outputs(model: Path, pixels: Path, out: Path, emulate: str | None = None) -> np.ndarray:
    command = [sys.executable, "-c", _RUN_ONCE, str(model), str(pixels), str(out)]
    if emulate is not None:
        command = ["qemu-x86_64", "-cpu", emulate, *command]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return np.load(out)


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 integer kernels only")
@pytest.mark.skipif(
    shutil.which("qemu-x86_64") is None,
    reason="qemu-x86_64 (Debian's qemu-user, installed by scripts/system-deps.sh test) is needed "
    "to run ONNX Runtime as on a CPU without VNNI",
)
def test_int8_outputs_are_identical_on_a_cpu_without_vnni(
    int8_models: dict[int, ModelInfo], calibration: list[np.ndarray], tmp_path: Path
) -> None:
    """ONNX Runtime under QEMU's AVX2-only EPYC takes its non-VNNI kernels (VPMADDUBSW)."""
    pixels = tmp_path / "pixels.npy"
    np.save(pixels, letterbox(calibration[5:6], int8_models[7].input_size).pixels)
    for bits, exact in ((7, True), (8, False)):
        model = int8_models[bits].path
        here = _outputs(model, pixels, tmp_path / f"here-{bits}.npy")
        there = _outputs(model, pixels, tmp_path / f"there-{bits}.npy", CPU_WITHOUT_VNNI)
        # 8-bit weights must differ there, or the emulation did not reach the saturating kernel
        # (and the 7-bit check would prove nothing); 7-bit weights must not differ at all.
        assert np.array_equal(here, there) == exact, f"{bits}-bit weights"
