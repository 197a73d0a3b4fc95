"""Whether an INT8 model runs faithfully on this CPU under ONNX Runtime.

ONNX Runtime's x86 integer convolutions and matrix products multiply uint8 activations by int8
weights. With VNNI (AVX512-VNNI, AVX-VNNI, AMX) the products are summed in 32 bits. Without it
(AVX2, or AVX-512 without VNNI) they go through VPMADDUBSW, which adds two neighbouring products
into a saturating 16-bit integer: 255 x 127 x 2 = 64,770 is clipped to 32,767. A model whose
int8 weights stay within [-64, 64] (7 bits, what vsa's quantisers write: the detector's static
QDQ model and the indexer's dynamically quantised embedding model) never reaches the clip; one
with full 8-bit weights does, and silently degrades: the detector lost boxes (74 % of the FP32
boxes found on such a CPU), the embedding model's vectors moved by up to cosine 0.01.

:func:`saturation_risk` says, for a model file and this machine, whether that can happen; the
detector falls back to the FP32 model (or warns, for a user's file) and the embedder to fp32
instead of degrading.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

#: CPU flags (Linux /proc/cpuinfo names) whose presence makes ONNX Runtime sum uint8 x int8
#: products in 32 bits.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
#: Largest |int8 weight| whose pair sums cannot saturate a 16-bit integer: 2 x 255 x 64 = 32,640.
SAFE_WEIGHT_PEAK = 64
#: Machines (``platform.machine()``) where ONNX Runtime's int8 kernels use VPMADDUBSW.
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686"})


@dataclass(frozen=True)
class CpuInt8:
    """The facts :func:`saturation_risk` decides on (pass them in tests)."""

    machine: str
    flags: frozenset[str] | None  # None: not known (no /proc/cpuinfo)

    @property
    def exact_int8(self) -> bool:
        """Whether any int8 weight range is summed exactly (non-x86, or x86 with VNNI)."""
        if self.machine.lower() not in X86_MACHINES:
            return True
        return self.flags is not None and bool(self.flags & VNNI_FLAGS)


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first processor's flags from ``/proc/cpuinfo``; None where there is no such file."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return None


def this_cpu() -> CpuInt8:
    """This machine's architecture and CPU flags."""
    return CpuInt8(platform.machine(), read_cpu_flags())


#: Integer operators (ONNX's and ONNX Runtime's com.microsoft ones) and the input holding their
#: weights: static operator-oriented models (QLinear*) and dynamically quantised ones.
WEIGHT_INPUT = {
    "QLinearConv": 3,
    "QLinearMatMul": 3,
    "MatMulInteger": 1,
    "ConvInteger": 1,
    "DynamicQuantizeMatMul": 1,
    "MatMulIntegerToFloat": 1,
}


def int8_weight_peak(model: onnx.ModelProto) -> int | None:
    """Largest |value| of the int8 weights the model multiplies with; None if it has none.

    Weights are int8 initializers read by ``DequantizeLinear`` (QDQ models) or as the weight
    input of an integer operator (:data:`WEIGHT_INPUT`: operator-oriented and dynamically
    quantised models).
    """
    initializers = {t.name: t for t in model.graph.initializer}
    names: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input:
            names.add(node.input[0])
        elif node.op_type in WEIGHT_INPUT and len(node.input) > WEIGHT_INPUT[node.op_type]:
            names.add(node.input[WEIGHT_INPUT[node.op_type]])
    peak: int | None = None
    for name in names:
        tensor = initializers.get(name)
        if tensor is None or tensor.data_type != onnx.TensorProto.INT8:
            continue
        values = numpy_helper.to_array(tensor)
        if values.size:
            biggest = int(np.abs(values.astype(np.int16)).max())
            peak = biggest if peak is None else max(peak, biggest)
    return peak


def saturation_risk(path: Path, cpu: CpuInt8 | None = None) -> str | None:
    """Why ``path`` would lose accuracy on ``cpu`` (default: this one), or None if it would not.

    Only the model's graph is read (no external weight files: vsa's models have none).
    """
    cpu = cpu or this_cpu()
    if cpu.exact_int8:
        return None
    peak = int8_weight_peak(onnx.load(str(path), load_external_data=False))
    if peak is None or peak <= SAFE_WEIGHT_PEAK:
        return None
    return (
        f"its int8 weights reach {peak} (8-bit) and this {cpu.machine} CPU has no VNNI "
        f"({', '.join(sorted(VNNI_FLAGS))}): ONNX Runtime's 16-bit sums saturate and results "
        f"degrade; quantize with 7-bit weights (reduce_range) to run it here"
    )
