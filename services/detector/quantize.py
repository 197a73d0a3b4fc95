"""Static INT8 quantisation of a converted detector with ONNX Runtime, calibrated on real frames.

The result is a QDQ model (QuantizeLinear/DequantizeLinear around every quantised tensor) that
ONNX Runtime fuses into QLinearConv, QLinearLeakyRelu, QLinearConcat... at load: weights int8
per output channel, activations uint8 per tensor with ranges from the calibration frames
(min/max). On CPUs with AVX-512 VNNI or AVX-VNNI the convolutions run about twice as fast.

The weights use 7 bits (``reduce_range``: values in [-64, 64]). On x86 CPUs without VNNI (AVX2,
or AVX-512 without VNNI: AMD EPYC before Zen 4, Intel before Cascade Lake) ONNX Runtime adds
pairs of uint8 x int8 products into a saturating 16-bit integer (VPMADDUBSW): with 8-bit weights
a pair can reach 2 x 255 x 127 = 64,770 and is clipped to 32,767, and the model loses boxes
(seen: 74 % of the FP32 boxes found instead of 98 %). With 7-bit weights a pair stays within
2 x 255 x 64 = 32,640, so the integer results are exact, and the same on every CPU: the
outputs were bit-identical on a VNNI CPU and on an emulated AVX2-only EPYC.
:mod:`vsa.runtime.int8_cpu` checks other INT8 models at load. The price is one bit of weight
precision (measured on the held-out frames: 96 % of the FP32 boxes instead of 98 % with 8 bits
on a VNNI CPU).

The YOLO decoding inside the graph (sigmoid, exp, grid offsets, anchors) stays float32: its
outputs mix box coordinates (0..416 pixels) and probabilities (0..1), and one uint8 scale for
both would round every score to 0 or ~1.6 (measured: 37 % of the boxes kept).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx

from .layout import INPUT_NAME, META_NAMES, META_OUTPUT_LAYOUT, META_SOURCE_DIGEST, ModelInfo
from .preprocess import letterbox

U8 = npt.NDArray[np.uint8]
#: One calibration batch: model input name -> ``(1, 3, H, W)`` float32.
CalibrationInput = dict[str, npt.NDArray[np.float32]]

#: Bump when the quantisation recipe changes, so cached INT8 models are rebuilt.
QUANTIZER_VERSION = "2"
#: Calibration frames of the sample clip: every 20th frame from 0 (40 of 795). Frames at
#: other indices (10, 30, ...) are left for measuring agreement with the float model.
CALIBRATION_START = 0
CALIBRATION_STEP = 20
CALIBRATION_COUNT = 40
#: Operators quantised; everything else (and the YOLO decoding) stays float32.
QUANTIZED_OPS = ("Conv", "LeakyRelu", "MaxPool", "Concat", "Resize")
#: Bits of the int8 weights: 7 keeps ONNX Runtime's 16-bit pair sums exact without VNNI.
WEIGHT_BITS = 7
#: ONNX metadata key describing the quantisation.
META_QUANTIZATION = "vsa.quantization"


class QuantizationError(Exception):
    """The INT8 model could not be built; the message names the model and the cause."""


def clip_frames(clip: Path, start: int, step: int, count: int) -> list[U8]:
    """RGB frames ``start, start + step, ...`` of a video (``count`` at most), via PyAV."""
    import av

    frames: list[U8] = []
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start and (index - start) % step == 0:
                frames.append(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
                if len(frames) >= count:
                    break
    if not frames:
        raise QuantizationError(f"{clip}: no frames decoded for calibration")
    return frames


def decode_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes computing the YOLO decoding: everything downstream of a Reshape."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: set[str] = set()
    pending = [node for node in model.graph.node if node.op_type == "Reshape"]
    while pending:
        node = pending.pop()
        if node.name in found:
            continue
        found.add(node.name)
        for name in node.output:
            pending.extend(consumers.get(name, []))
    return sorted(found)


def _calibration_inputs(
    frames: Sequence[U8], net_size: tuple[int, int]
) -> Iterator[CalibrationInput]:
    for frame in frames:
        yield {INPUT_NAME: letterbox([frame], net_size).pixels}


def _metadata(fp32: onnx.ModelProto, digest: str, frames: int, weight_bits: int) -> dict[str, str]:
    props = {p.key: p.value for p in fp32.metadata_props}
    props[META_SOURCE_DIGEST] = digest
    props[META_QUANTIZATION] = (
        f"int8 static QDQ per-channel, weights {weight_bits} bits, MinMax on {frames} frames, "
        f"ops {','.join(QUANTIZED_OPS)}"
    )
    return props


def quantize_int8(
    fp32: ModelInfo,
    frames: Sequence[U8],
    out: Path,
    digest: str,
    weight_bits: int = WEIGHT_BITS,
) -> ModelInfo:
    """Write an INT8 version of ``fp32`` calibrated on ``frames`` (RGB) to ``out``.

    Args:
        fp32: The float model (``darknet`` layout, as converted by vsa).
        frames: ``(h, w, 3)`` uint8 RGB calibration frames, letterboxed like the service does.
        out: Where to write; replaced atomically.
        digest: Stored as the source digest, so callers can tell when to rebuild.
        weight_bits: 7 (exact on every CPU) or 8 (one bit more precise, but only exact on CPUs
            with VNNI; kept for measuring the difference).
    """
    if weight_bits not in (7, 8):
        raise QuantizationError(f"weight_bits must be 7 or 8, not {weight_bits}")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = _calibration_inputs(frames, fp32.input_size)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def get_next(self) -> CalibrationInput | None:
            return next(inputs, None)

    source = onnx.load(str(fp32.path))
    with tempfile.TemporaryDirectory(prefix="vsa-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32.path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(Path(tmp) / "int8.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=weight_bits == 7,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=decode_nodes(onnx.load(str(prepared))),
        )
        model = onnx.load(str(Path(tmp) / "int8.onnx"))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, _metadata(source, digest, len(frames), weight_bits))
    _save(model, out)
    return ModelInfo(out, fp32.layout, fp32.input_size, fp32.class_names)


def _save(model: onnx.ModelProto, out: Path) -> None:
    """Write ``model`` to ``out`` atomically (a partial file, then a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    onnx.save_model(model, str(partial))
    partial.replace(out)


def int8_digest(fp32_path: Path, calibration: str) -> str:
    """What an INT8 build depends on: the float model's source digest, recipe, calibration."""
    model = onnx.load(str(fp32_path), load_external_data=False)
    source = {p.key: p.value for p in model.metadata_props}.get(META_SOURCE_DIGEST, "")
    text = f"{QUANTIZER_VERSION}|{source}|{calibration}|{','.join(QUANTIZED_OPS)}"
    return hashlib.sha256(text.encode()).hexdigest()


def cached_int8(out: Path, digest: str) -> bool:
    """Whether ``out`` is an INT8 model built from the same inputs (by its stored digest)."""
    if not out.is_file():
        return False
    try:
        model = onnx.load(str(out), load_external_data=False)
    except Exception:  # a truncated or foreign file is rebuilt, not trusted
        return False
    props = {p.key: p.value for p in model.metadata_props}
    return (
        props.get(META_SOURCE_DIGEST) == digest
        and META_NAMES in props
        and (props.get(META_OUTPUT_LAYOUT) == "darknet")
    )
