"""Darknet (YOLOv3 family) cfg + weights to ONNX, with the YOLO heads decoded inside the graph.

Supported sections: ``[net]``, ``[convolutional]`` (batch norm, groups; activations leaky,
linear, relu, logistic), ``[maxpool]`` (Darknet's asymmetric padding included), ``[route]``
(with ``groups``/``group_id``), ``[upsample]`` and ``[yolo]`` (with ``scale_x_y``). Anything else,
or an option that changes inference and is not implemented, raises :class:`DarknetError` naming
the cfg file, the section and its line; nothing is silently approximated.

The graph takes ``images`` float32 ``[N, 3, H, W]`` (RGB, 0..1, dynamic N) and returns
``detections`` float32 ``[N, boxes, 5 + classes]`` in the ``darknet`` layout of
:mod:`vsa.services.detector.layout`. Boxes are ordered head by head (cfg order), then grid row,
grid column, anchor: the order OpenCV's Darknet reader uses, so outputs compare row for row.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from .layout import (
    DARKNET_OUTPUT_NAME,
    INPUT_NAME,
    META_NAMES,
    META_OUTPUT_LAYOUT,
    META_SOURCE_DIGEST,
    ModelInfo,
    format_class_names,
)

#: Bump when the generated graph changes, so cached conversions are rebuilt.
CONVERTER_VERSION = "1"
OPSET = 17
#: IR version 8 (ONNX 1.13) keeps the files loadable by older ONNX Runtime releases.
IR_VERSION = 8
#: Darknet's leaky ReLU slope.
LEAKY_ALPHA = 0.1
#: Darknet's batch-norm epsilon; it is added to sqrt(variance), not to the variance.
BN_EPSILON = 1e-6

F32 = npt.NDArray[np.float32]


class DarknetError(Exception):
    """The cfg or weights cannot be converted; the message names the file and the section."""


@dataclass(frozen=True)
class Section:
    """One ``[kind]`` block of a cfg file: its options as written and its header line (1-based)."""

    kind: str
    options: dict[str, str]
    line: int


@dataclass(frozen=True)
class Conv:
    """A convolution; ``padding`` in pixels on every side."""

    filters: int
    size: int
    stride: int
    padding: int
    groups: int
    batch_normalize: bool
    activation: str


@dataclass(frozen=True)
class MaxPool:
    """Max pooling; Darknet pads ``padding // 2`` before and the rest after (-inf)."""

    size: int
    stride: int
    padding: int


@dataclass(frozen=True)
class Route:
    """Channel concatenation of earlier layers (absolute indices), optionally one channel group."""

    layers: tuple[int, ...]
    groups: int
    group_id: int


@dataclass(frozen=True)
class Upsample:
    """Nearest-neighbour upsampling by an integer ``stride``."""

    stride: int


@dataclass(frozen=True)
class Yolo:
    """A detection head: its anchors ``(w, h)`` in network-input pixels and its class count."""

    anchors: tuple[tuple[float, float], ...]
    classes: int
    scale_x_y: float


Layer = Conv | MaxPool | Route | Upsample | Yolo


@dataclass(frozen=True)
class Shape:
    """Shape of one layer's output for one image: channels, height, width."""

    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class DarknetNetwork:
    """A parsed cfg at one input size: its layers and the output shape of each."""

    source: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    shapes: tuple[Shape, ...]

    @property
    def heads(self) -> list[tuple[int, Yolo]]:
        """The YOLO layers with their indices, in cfg order."""
        return [(i, layer) for i, layer in enumerate(self.layers) if isinstance(layer, Yolo)]


@dataclass(frozen=True)
class ConvParams:
    """A convolution's weights with batch norm folded in: ``weight (F, C/groups, k, k)``,
    ``bias (F,)``."""

    weight: F32
    bias: F32


_SECTION_ALIASES = {"network": "net", "conv": "convolutional", "max": "maxpool"}
SUPPORTED_ACTIVATIONS = ("leaky", "linear", "relu", "logistic")
# Options that change inference and are not implemented, with the value that is harmless.
_UNSUPPORTED_OPTIONS: dict[str, dict[str, str | None]] = {
    "convolutional": {
        "dilation": "1",
        "binary": "0",
        "xnor": "0",
        "antialiasing": "0",
        "stride_x": None,
        "stride_y": None,
    },
    "maxpool": {"stride_x": None, "stride_y": None, "maxpool_depth": "0", "antialiasing": "0"},
    "upsample": {"scale": "1"},
    "yolo": {"new_coords": "0"},
    "route": {},
}


def parse_cfg(text: str, source: str) -> list[Section]:
    """Split cfg text into sections; ``#`` and ``;`` start comments. ``source`` names the file."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"[#;]", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            kind = line[1:-1].strip().lower()
            sections.append(Section(_SECTION_ALIASES.get(kind, kind), {}, number))
        elif "=" in line and sections:
            key, value = (part.strip() for part in line.split("=", 1))
            sections[-1].options[key] = value
        else:
            raise DarknetError(f"{source}:{number}: cannot parse line {raw.strip()!r}")
    if not sections or sections[0].kind != "net":
        raise DarknetError(f"{source}: a Darknet cfg starts with a [net] section")
    return sections


class _Options:
    """Typed access to one section's options, with errors that say where the problem is."""

    def __init__(self, section: Section, index: int, source: str) -> None:
        self.section = section
        self.where = f"{source}:{section.line}: [{section.kind}] (layer {index})"

    def error(self, message: str) -> DarknetError:
        return DarknetError(f"{self.where}: {message}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.section.options.get(key, default)
        if value is None:
            raise self.error(f"missing option {key!r}")
        return value

    def integer(self, key: str, default: int | None = None) -> int:
        raw = self.text(key, None if default is None else str(default))
        try:
            return int(raw)
        except ValueError:
            raise self.error(f"option {key}={raw!r} is not an integer") from None

    def number(self, key: str, default: float) -> float:
        raw = self.text(key, str(default))
        try:
            return float(raw)
        except ValueError:
            raise self.error(f"option {key}={raw!r} is not a number") from None

    def numbers(self, key: str, default: str | None = None) -> list[float]:
        raw = self.text(key, default)
        try:
            return [float(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise self.error(f"option {key}={raw!r} is not a list of numbers") from None

    def refuse_unsupported(self) -> None:
        for key, harmless in _UNSUPPORTED_OPTIONS.get(self.section.kind, {}).items():
            value = self.section.options.get(key)
            if value is not None and value != harmless:
                raise self.error(f"option {key}={value} is not supported by the converter")


def _parse_conv(opts: _Options) -> Conv:
    size = opts.integer("size", 1)
    padding = size // 2 if opts.integer("pad", 0) else opts.integer("padding", 0)
    activation = opts.text("activation", "logistic")
    if activation not in SUPPORTED_ACTIVATIONS:
        raise opts.error(f"activation {activation!r} is not one of {SUPPORTED_ACTIVATIONS}")
    return Conv(
        filters=opts.integer("filters", 1),
        size=size,
        stride=opts.integer("stride", 1),
        padding=padding,
        groups=opts.integer("groups", 1),
        batch_normalize=bool(opts.integer("batch_normalize", 0)),
        activation=activation,
    )


def _parse_maxpool(opts: _Options) -> MaxPool:
    size = opts.integer("size", 1)
    stride = opts.integer("stride", 1)
    return MaxPool(size=size, stride=stride, padding=opts.integer("padding", size - 1))


def _parse_route(opts: _Options, index: int) -> Route:
    relative = [int(value) for value in opts.numbers("layers")]
    layers = tuple(index + value if value < 0 else value for value in relative)
    if not layers or any(not 0 <= layer < index for layer in layers):
        raise opts.error(f"layers={opts.text('layers')} must name earlier layers")
    groups = opts.integer("groups", 1)
    group_id = opts.integer("group_id", 0)
    if groups < 1 or not 0 <= group_id < groups:
        raise opts.error(f"group_id={group_id} must be in 0..groups-1 (groups={groups})")
    return Route(layers=layers, groups=groups, group_id=group_id)


def _parse_yolo(opts: _Options) -> Yolo:
    flat = opts.numbers("anchors")
    if len(flat) % 2:
        raise opts.error("anchors must be pairs w,h")
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    mask = [int(m) for m in opts.numbers("mask", ",".join(str(i) for i in range(len(pairs))))]
    if any(not 0 <= m < len(pairs) for m in mask):
        raise opts.error(f"mask {mask} refers to anchors that do not exist ({len(pairs)} given)")
    classes = opts.integer("classes", 20)
    if classes < 1:
        raise opts.error("classes must be >= 1")
    anchors = tuple(pairs[m] for m in mask)
    return Yolo(anchors=anchors, classes=classes, scale_x_y=opts.number("scale_x_y", 1.0))


def _parse_layer(opts: _Options, index: int) -> Layer:
    opts.refuse_unsupported()
    kind = opts.section.kind
    if kind == "convolutional":
        return _parse_conv(opts)
    if kind == "maxpool":
        return _parse_maxpool(opts)
    if kind == "route":
        return _parse_route(opts, index)
    if kind == "upsample":
        return Upsample(stride=opts.integer("stride", 2))
    if kind == "yolo":
        return _parse_yolo(opts)
    raise opts.error("section type not supported (convolutional, maxpool, route, upsample, yolo)")


def _conv_shape(layer: Conv, prev: Shape, opts: _Options) -> Shape:
    if prev.channels % layer.groups or layer.filters % layer.groups:
        raise opts.error(
            f"groups={layer.groups} must divide {prev.channels} input channels "
            f"and {layer.filters} filters"
        )
    height = (prev.height + 2 * layer.padding - layer.size) // layer.stride + 1
    width = (prev.width + 2 * layer.padding - layer.size) // layer.stride + 1
    return Shape(layer.filters, height, width)


def _route_shape(layer: Route, network: list[Layer], shapes: list[Shape], opts: _Options) -> Shape:
    sources = [shapes[i] for i in layer.layers]
    if any(isinstance(network[i], Yolo) for i in layer.layers):
        raise opts.error("a route to a [yolo] layer is not supported")
    if len({(s.height, s.width) for s in sources}) != 1:
        raise opts.error(f"routed layers {layer.layers} differ in size: {sources}")
    if any(s.channels % layer.groups for s in sources):
        raise opts.error(f"groups={layer.groups} must divide the routed channels {sources}")
    channels = sum(s.channels // layer.groups for s in sources)
    return Shape(channels, sources[0].height, sources[0].width)


def _output_shape(
    layer: Layer, prev: Shape, network: list[Layer], shapes: list[Shape], opts: _Options
) -> Shape:
    """Output shape of ``layer`` given the previous layer's output ``prev``."""
    if isinstance(layer, Conv):
        shape = _conv_shape(layer, prev, opts)
    elif isinstance(layer, MaxPool):
        height = (prev.height + layer.padding - layer.size) // layer.stride + 1
        width = (prev.width + layer.padding - layer.size) // layer.stride + 1
        shape = Shape(prev.channels, height, width)
    elif isinstance(layer, Route):
        shape = _route_shape(layer, network, shapes, opts)
    elif isinstance(layer, Upsample):
        shape = Shape(prev.channels, prev.height * layer.stride, prev.width * layer.stride)
    else:
        expected = len(layer.anchors) * (5 + layer.classes)
        if prev.channels != expected:
            raise opts.error(
                f"the layer before has {prev.channels} channels; "
                f"{len(layer.anchors)} anchors x (5 + {layer.classes}) = {expected}"
            )
        shape = prev
    if shape.height < 1 or shape.width < 1:
        raise opts.error(f"output would be empty ({shape}); is the input size too small?")
    return shape


def parse_network(
    text: str, source: str, input_size: tuple[int, int] | None = None
) -> DarknetNetwork:
    """Parse cfg ``text`` into layers and shapes.

    Args:
        text: The cfg file's content.
        source: Name of the cfg file, for error messages.
        input_size: Network input ``(height, width)`` in pixels; None keeps the cfg's
            ``height``/``width``. Multiples of 32 keep YOLOv3 grids aligned.
    """
    sections = parse_cfg(text, source)
    net = _Options(sections[0], -1, source)
    height, width = input_size or (net.integer("height"), net.integer("width"))
    input_shape = Shape(net.integer("channels", 3), height, width)
    layers: list[Layer] = []
    shapes: list[Shape] = []
    for index, section in enumerate(sections[1:]):
        opts = _Options(section, index, source)
        layer = _parse_layer(opts, index)
        layers.append(layer)
        prev = shapes[-1] if shapes else input_shape
        shapes.append(_output_shape(layer, prev, layers, shapes, opts))
    network = DarknetNetwork(source, input_shape, tuple(layers), tuple(shapes))
    if not network.heads:
        raise DarknetError(f"{source}: no [yolo] section; only YOLO detectors are supported")
    if len({head.classes for _, head in network.heads}) != 1:
        raise DarknetError(f"{source}: [yolo] sections disagree on the number of classes")
    return network


@dataclass(frozen=True)
class WeightsHeader:
    """Header of a Darknet weights file; ``seen`` counts training images."""

    major: int
    minor: int
    revision: int
    seen: int

    @property
    def size(self) -> int:
        """Header length in bytes: ``seen`` is 64-bit from format 0.2 on, 32-bit before."""
        return 20 if self.major * 10 + self.minor >= 2 else 16


def read_header(data: bytes, source: str) -> WeightsHeader:
    """Parse the header of a weights file's content ``data``."""
    if len(data) < 16:
        raise DarknetError(f"{source}: {len(data)} bytes is too short for a weights file")
    major, minor, revision = (int(v) for v in np.frombuffer(data, "<i4", count=3))
    if major > 1000 or minor > 1000:
        raise DarknetError(f"{source}: transposed weights (version {major}.{minor}) unsupported")
    wide = major * 10 + minor >= 2
    seen = int(np.frombuffer(data, "<i8" if wide else "<i4", count=1, offset=12)[0])
    return WeightsHeader(major, minor, revision, seen)


class _FloatReader:
    """Consumes the float32 parameters of a weights file in order."""

    def __init__(self, floats: F32, source: str) -> None:
        self.floats = floats
        self.source = source
        self.position = 0

    def take(self, count: int, what: str) -> F32:
        end = self.position + count
        if end > self.floats.size:
            raise DarknetError(
                f"{self.source}: ends after {self.floats.size} floats but {what} needs floats "
                f"{self.position}..{end}: the weights do not belong to this cfg"
            )
        values = self.floats[self.position : end]
        self.position = end
        return values

    def finish(self) -> None:
        left = self.floats.size - self.position
        if left:
            raise DarknetError(
                f"{self.source}: {left} floats left after the last layer: "
                "the weights do not belong to this cfg"
            )


def _read_conv(reader: _FloatReader, layer: Conv, in_channels: int, what: str) -> ConvParams:
    """Read one convolution (Darknet order: biases, [scales, mean, variance], weights), fold BN."""
    filters = layer.filters
    bias = reader.take(filters, what).astype(np.float64)
    if layer.batch_normalize:
        scales = reader.take(filters, what).astype(np.float64)
        mean = reader.take(filters, what).astype(np.float64)
        variance = reader.take(filters, what).astype(np.float64)
    per_filter = in_channels // layer.groups * layer.size * layer.size
    weight = reader.take(filters * per_filter, what).astype(np.float64)
    weight = weight.reshape(filters, in_channels // layer.groups, layer.size, layer.size)
    if layer.batch_normalize:
        factor = scales / (np.sqrt(variance) + BN_EPSILON)
        weight = weight * factor[:, None, None, None]
        bias = bias - mean * factor
    return ConvParams(weight.astype(np.float32), bias.astype(np.float32))


def read_weights(data: bytes, network: DarknetNetwork, source: str) -> dict[int, ConvParams]:
    """Parameters of every convolution of ``network`` (by layer index) from weights ``data``.

    Raises:
        DarknetError: when the file is shorter or longer than the cfg requires.
    """
    header = read_header(data, source)
    if (len(data) - header.size) % 4:
        raise DarknetError(f"{source}: size {len(data)} is not a header plus float32 values")
    reader = _FloatReader(np.frombuffer(data, "<f4", offset=header.size), source)
    params: dict[int, ConvParams] = {}
    for index, layer in enumerate(network.layers):
        if isinstance(layer, Conv):
            prev = network.shapes[index - 1] if index else network.input_shape
            params[index] = _read_conv(reader, layer, prev.channels, f"layer {index}")
    reader.finish()
    return params


class _Graph:
    """Collects ONNX nodes and initializers, giving every tensor a unique name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, array: npt.NDArray[np.generic]) -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, *values: int) -> str:
        return self.constant("ints", np.array(values, dtype=np.int64))

    def add(self, op: str, inputs: Sequence[str], output: str | None = None, **attrs: Any) -> str:
        name = output or self._name(op.lower())
        node = helper.make_node(op, list(inputs), [name], name=name)
        node.attribute.extend(helper.make_attribute(key, value) for key, value in attrs.items())
        self.nodes.append(node)
        return name


def _emit_conv(graph: _Graph, x: str, layer: Conv, params: ConvParams) -> str:
    weight = graph.constant("weight", params.weight)
    bias = graph.constant("bias", params.bias)
    y = graph.add(
        "Conv",
        [x, weight, bias],
        kernel_shape=[layer.size, layer.size],
        strides=[layer.stride, layer.stride],
        pads=[layer.padding] * 4,
        group=layer.groups,
    )
    if layer.activation == "leaky":
        return graph.add("LeakyRelu", [y], alpha=LEAKY_ALPHA)
    if layer.activation == "relu":
        return graph.add("Relu", [y])
    if layer.activation == "logistic":
        return graph.add("Sigmoid", [y])
    return y


def _emit_maxpool(graph: _Graph, x: str, layer: MaxPool) -> str:
    # Darknet pads padding//2 before and the rest after; size=2 stride=1 thus pads only the
    # bottom and right edges by one pixel, which ONNX pads [top, left, bottom, right] express.
    before = layer.padding // 2
    after = layer.padding - before
    return graph.add(
        "MaxPool",
        [x],
        kernel_shape=[layer.size, layer.size],
        strides=[layer.stride, layer.stride],
        pads=[before, before, after, after],
    )


def _emit_route(graph: _Graph, layer: Route, outputs: list[str], shapes: Sequence[Shape]) -> str:
    parts = []
    for index in layer.layers:
        part = outputs[index]
        if layer.groups > 1:
            width = shapes[index].channels // layer.groups
            start = width * layer.group_id
            axis = graph.ints(1)
            part = graph.add("Slice", [part, graph.ints(start), graph.ints(start + width), axis])
        parts.append(part)
    return parts[0] if len(parts) == 1 else graph.add("Concat", parts, axis=1)


def _emit_upsample(graph: _Graph, x: str, layer: Upsample) -> str:
    scales = graph.constant("scales", np.array([1, 1, layer.stride, layer.stride], np.float32))
    return graph.add(
        "Resize",
        [x, "", scales],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def _grid(height: int, width: int) -> F32:
    """Cell offsets ``(gx, gy)`` of shape ``(H, W, 1, 2)``: broadcast over anchors."""
    gy, gx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([gx, gy], axis=-1)[:, :, None, :].astype(np.float32)


def _emit_yolo(graph: _Graph, x: str, layer: Yolo, grid: Shape, net: Shape) -> str:
    """Decode one head ``[N, A*(5+C), H, W]`` into ``[N, H*W*A, 5+C]`` (darknet layout)."""
    anchors, cell = len(layer.anchors), 5 + layer.classes
    height, width = grid.height, grid.width
    x = graph.add("Reshape", [x, graph.ints(-1, anchors, cell, height, width)])
    x = graph.add("Transpose", [x], perm=[0, 3, 4, 1, 2])  # N, H, W, A, 5+C
    axis = graph.ints(-1)
    txy = graph.add("Slice", [x, graph.ints(0), graph.ints(2), axis])
    twh = graph.add("Slice", [x, graph.ints(2), graph.ints(4), axis])
    scores = graph.add("Sigmoid", [graph.add("Slice", [x, graph.ints(4), graph.ints(cell), axis])])
    offset = graph.add("Sigmoid", [txy])
    if layer.scale_x_y != 1.0:
        # Darknet (YOLOv4): sigmoid * scale - (scale - 1) / 2 lets centres reach cell edges.
        scale = graph.constant("scale_x_y", np.array(layer.scale_x_y, np.float32))
        shift = graph.constant("shift_xy", np.array(-(layer.scale_x_y - 1) / 2, np.float32))
        offset = graph.add("Add", [graph.add("Mul", [offset, scale]), shift])
    stride = np.array([net.width / width, net.height / height], np.float32)
    centre = graph.add("Add", [offset, graph.constant("grid", _grid(height, width))])
    centre = graph.add("Mul", [centre, graph.constant("stride", stride)])
    size = graph.add("Exp", [twh])
    size = graph.add("Mul", [size, graph.constant("anchors", np.array(layer.anchors, np.float32))])
    decoded = graph.add("Concat", [centre, size, scores], axis=-1)
    return graph.add("Reshape", [decoded, graph.ints(-1, height * width * anchors, cell)])


def build_onnx(network: DarknetNetwork, params: dict[int, ConvParams]) -> onnx.ModelProto:
    """The ONNX model of ``network`` with ``params`` (from :func:`read_weights`), no metadata."""
    graph = _Graph()
    outputs: list[str] = []
    heads: list[str] = []
    for index, layer in enumerate(network.layers):
        x = outputs[-1] if outputs else INPUT_NAME
        prev = network.shapes[index - 1] if index else network.input_shape
        if isinstance(layer, Conv):
            y = _emit_conv(graph, x, layer, params[index])
        elif isinstance(layer, MaxPool):
            y = _emit_maxpool(graph, x, layer)
        elif isinstance(layer, Route):
            y = _emit_route(graph, layer, outputs, network.shapes)
        elif isinstance(layer, Upsample):
            y = _emit_upsample(graph, x, layer)
        else:
            heads.append(_emit_yolo(graph, x, layer, prev, network.input_shape))
            y = x
        outputs.append(y)
    graph.add("Concat", heads, output=DARKNET_OUTPUT_NAME, axis=1)
    return _model(graph, network)


def _model(graph: _Graph, network: DarknetNetwork) -> onnx.ModelProto:
    net = network.input_shape
    boxes = sum(
        network.shapes[i].height * network.shapes[i].width * len(head.anchors)
        for i, head in network.heads
    )
    cell = 5 + network.heads[0][1].classes
    inputs = [
        helper.make_tensor_value_info(
            INPUT_NAME, TensorProto.FLOAT, ["batch", net.channels, net.height, net.width]
        )
    ]
    outputs = [
        helper.make_tensor_value_info(
            DARKNET_OUTPUT_NAME, TensorProto.FLOAT, ["batch", boxes, cell]
        )
    ]
    onnx_graph = helper.make_graph(
        graph.nodes, Path(network.source).stem, inputs, outputs, initializer=graph.initializers
    )
    return helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="vsa",
        producer_version=CONVERTER_VERSION,
        ir_version=IR_VERSION,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DarknetError(f"cannot read the Darknet {what} {path}: {exc.strerror}") from exc


def _digest(cfg: bytes, weights: bytes, names: Sequence[str], net: Shape) -> str:
    """What a conversion depends on: converter version, input size, names and both files."""
    digest = hashlib.sha256()
    digest.update(f"{CONVERTER_VERSION}|{net}|{format_class_names(names)}|".encode())
    digest.update(hashlib.sha256(cfg).digest())
    digest.update(hashlib.sha256(weights).digest())
    return digest.hexdigest()


def _cached_digest(path: Path) -> str | None:
    """The source digest stored in an earlier conversion, or None if there is none usable."""
    if not path.is_file():
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # a truncated or foreign file is rebuilt, not trusted
        return None
    return {p.key: p.value for p in model.metadata_props}.get(META_SOURCE_DIGEST)


def convert_darknet(
    cfg: Path,
    weights: Path,
    out_onnx: Path,
    class_names: Sequence[str],
    input_size: tuple[int, int] | None = None,
) -> ModelInfo:
    """Convert a Darknet YOLO detector to ONNX (cached: skipped when ``out_onnx`` is current).

    Args:
        cfg: The Darknet cfg file.
        weights: The matching weights file.
        out_onnx: Where to write the model; replaced atomically, its folder is created.
        class_names: One name per class, in class-id order (e.g. the 80 COCO names).
        input_size: Network input ``(height, width)`` in pixels; None keeps the cfg's. Larger
            sizes find smaller objects and cost time roughly in proportion to the pixels.

    Returns:
        The model's description (``darknet`` layout, see :mod:`vsa.services.detector.layout`).

    Raises:
        DarknetError: unreadable or unsupported cfg, weights that do not match it, or class
            names whose count differs from the cfg's ``classes``.
    """
    cfg_bytes, weights_bytes = _read(cfg, "cfg"), _read(weights, "weights")
    network = parse_network(cfg_bytes.decode("utf-8", errors="replace"), str(cfg), input_size)
    classes = network.heads[0][1].classes
    if len(class_names) != classes:
        raise DarknetError(f"{cfg}: {classes} classes but {len(class_names)} class names given")
    net = network.input_shape
    info = ModelInfo(out_onnx, "darknet", (net.height, net.width), tuple(class_names))
    digest = _digest(cfg_bytes, weights_bytes, class_names, net)
    if _cached_digest(out_onnx) == digest:
        return info
    model = build_onnx(network, read_weights(weights_bytes, network, str(weights)))
    helper.set_model_props(
        model,
        {
            META_NAMES: format_class_names(class_names),
            META_OUTPUT_LAYOUT: "darknet",
            META_SOURCE_DIGEST: digest,
            "imgsz": f"[{net.height}, {net.width}]",
            "source": f"{cfg.name} + {weights.name}",
        },
    )
    onnx.checker.check_model(model)
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    partial = out_onnx.with_name(f"{out_onnx.name}.{os.getpid()}.partial")
    onnx.save_model(model, str(partial))
    partial.replace(out_onnx)
    return info
