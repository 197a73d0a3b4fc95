"""The INT8 variant of YOLOv3-tiny: what stays float, and how closely it agrees with FP32."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from vsa.services.detector.agreement import Agreement, compare
from vsa.services.detector.backends import OnnxRuntimeConfig, build_backend
from vsa.services.detector.layout import META_NAMES
from vsa.services.detector.models import yolov3_tiny_onnx
from vsa.services.detector.pipeline import detect_batch
from vsa.services.detector.postprocess import SelectionParams
from vsa.services.detector.quantize import (
    CALIBRATION_STEP,
    META_QUANTIZATION,
    clip_frames,
    decode_nodes,
    quantize_int8,
)

CONFIG = OnnxRuntimeConfig(intra_op_num_threads=2)


def test_the_yolo_decoding_stays_float() -> None:
    model = onnx.load(str(yolov3_tiny_onnx().path))
    names = set(decode_nodes(model))
    kinds = {node.op_type for node in model.graph.node if node.name in names}
    assert {"Reshape", "Sigmoid", "Exp"} <= kinds
    assert "Conv" not in kinds
    assert "detections" in {
        out for node in model.graph.node if node.name in names for out in node.output
    }


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_frames_it_was_not_calibrated_on(
    tmp_path: Path, vtest: Path
) -> None:
    fp32 = yolov3_tiny_onnx()
    calibration = clip_frames(vtest, 0, CALIBRATION_STEP * 2, 20)
    int8 = quantize_int8(fp32, calibration, tmp_path / "int8.onnx", digest="test")
    meta = {p.key: p.value for p in onnx.load(str(int8.path)).metadata_props}
    assert META_NAMES in meta
    assert "int8" in meta[META_QUANTIZATION]
    held_out = clip_frames(vtest, CALIBRATION_STEP // 2, CALIBRATION_STEP * 2, 20)
    params = SelectionParams()
    reference = detect_batch(build_backend(CONFIG, fp32.path), held_out, params).detections
    candidate = detect_batch(build_backend(CONFIG, int8.path), held_out, params).detections
    total = sum((compare(r, c) for r, c in zip(reference, candidate, strict=True)), Agreement())
    assert total.reference > 100
    assert total.matched_fraction >= 0.95
    assert total.extra_fraction <= 0.10
