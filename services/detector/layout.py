"""What a detector model looks like from outside: input, output layout and class names.

Two output layouts are understood, each named by constants here so that no code indexes a model
output with bare numbers:

``darknet``
    Models converted by :mod:`vsa.services.detector.darknet`. One output ``detections`` of shape
    ``[N, boxes, 5 + classes]``; per box ``cx, cy, w, h`` in network-input pixels, then the
    objectness (0..1), then the per-class probabilities given an object (0..1, sigmoid, *not*
    multiplied by the objectness).
``ultralytics``
    Ultralytics YOLOv8 / YOLO11 detection exports. One output of shape
    ``[N, 4 + classes, anchors]`` (channels first); per anchor ``cx, cy, w, h`` in network-input
    pixels, then the class scores (0..1, sigmoid already applied, no objectness).

Both carry their class names in the ONNX metadata key ``names`` as a Python dict literal,
``"{0: 'person', 1: 'bicycle'}"`` (the Ultralytics convention, which the converter follows).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: Name of the model input: float32 ``[N, 3, H, W]``, RGB, values 0..1.
INPUT_NAME = "images"
#: Name of the output of converted Darknet models.
DARKNET_OUTPUT_NAME = "detections"

OutputLayout = Literal["darknet", "ultralytics"]

# Columns of the last axis of a ``darknet`` layout output.
DARKNET_BOX = slice(0, 4)  # cx, cy, w, h in network-input pixels
DARKNET_OBJECTNESS = 4
DARKNET_FIRST_CLASS = 5

# Rows of axis 1 of an ``ultralytics`` layout output.
ULTRALYTICS_BOX = slice(0, 4)  # cx, cy, w, h in network-input pixels
ULTRALYTICS_FIRST_CLASS = 4

#: ONNX metadata key holding the class names (dict literal, index -> name).
META_NAMES = "names"
#: ONNX metadata key naming the output layout; written by the converter.
META_OUTPUT_LAYOUT = "vsa.output_layout"
#: ONNX metadata key with the digest of the converter's inputs (cache validity).
META_SOURCE_DIGEST = "vsa.source_digest"


class ModelLayoutError(ValueError):
    """A model's metadata or input/output layout is not one vsa understands."""


@dataclass(frozen=True)
class ModelInfo:
    """A detection model on disk and how to feed and read it.

    Attributes:
        path: The ONNX file.
        layout: Which output layout the model has (see the module docstring).
        input_size: Network input ``(height, width)`` in pixels.
        class_names: Name of each class, indexed by class id.
    """

    path: Path
    layout: OutputLayout
    input_size: tuple[int, int]
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes the model scores."""
        return len(self.class_names)


def format_class_names(names: Sequence[str]) -> str:
    """The ``names`` metadata value for ``names``: ``"{0: 'person', 1: 'bicycle'}"``."""
    return repr(dict(enumerate(names)))


def parse_class_names(text: str) -> tuple[str, ...]:
    """Class names from a ``names`` metadata value (a Python dict literal, index -> name).

    Raises:
        ModelLayoutError: when the text is not a dict literal whose keys are exactly
            ``0..n-1`` and whose values are non-empty strings.
    """
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ModelLayoutError(f"metadata 'names' is not a Python dict literal: {exc}") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise ModelLayoutError("metadata 'names' must be a non-empty dict {index: name}")
    if any(type(key) is not int for key in parsed) or sorted(parsed) != list(range(len(parsed))):
        raise ModelLayoutError("metadata 'names' keys must be the integers 0..n-1")
    names = tuple(parsed[index] for index in range(len(parsed)))
    if not all(isinstance(name, str) and name for name in names):
        raise ModelLayoutError("metadata 'names' values must be non-empty strings")
    return names


Dim = int | str | None


def _describe_input(path: Path, shape: Sequence[Dim]) -> tuple[int, int]:
    """Network input ``(height, width)`` from the input shape ``[N, 3, H, W]``."""
    if len(shape) != 4 or shape[1] != 3:
        raise ModelLayoutError(f"{path}: input shape {list(shape)}, expected [N, 3, H, W] (RGB)")
    height, width = shape[2], shape[3]
    if not isinstance(height, int) or not isinstance(width, int):
        raise ModelLayoutError(
            f"{path}: input shape {list(shape)} has a dynamic height or width; export the "
            "model with a fixed input size (e.g. Ultralytics imgsz=640)"
        )
    return height, width


def _describe_output(
    path: Path, shape: Sequence[Dim], layout_name: str | None, classes: int
) -> OutputLayout:
    """Which layout an output of ``shape`` has, given the layout metadata (None if absent)."""
    if layout_name == "darknet":
        expected = DARKNET_FIRST_CLASS + classes
        # A dynamic last dimension is accepted: the converter names the layout explicitly.
        if len(shape) == 3 and (shape[2] == expected or not isinstance(shape[2], int)):
            return "darknet"
        raise ModelLayoutError(
            f"{path}: darknet layout output shape {list(shape)}, expected [N, boxes, {expected}]"
        )
    if layout_name is not None:
        raise ModelLayoutError(f"{path}: unknown {META_OUTPUT_LAYOUT}={layout_name!r}")
    expected = ULTRALYTICS_FIRST_CLASS + classes
    if len(shape) == 3 and shape[1] == expected:
        return "ultralytics"
    raise ModelLayoutError(
        f"{path}: output shape {list(shape)} is not a known detection layout: expected an "
        f"Ultralytics YOLOv8/YOLO11 detect export, [N, {expected}, anchors] for "
        f"{classes} classes, or a model converted by vsa (metadata {META_OUTPUT_LAYOUT})"
    )


@dataclass(frozen=True)
class OnnxIO:
    """An ONNX model's graph inputs and outputs as ``(name, shape)`` pairs (dims are ints, or
    names when dynamic, ``''`` when unnamed) and its metadata; read without running it."""

    inputs: tuple[tuple[str, tuple[Dim, ...]], ...]
    outputs: tuple[tuple[str, tuple[Dim, ...]], ...]
    metadata: dict[str, str]


def read_onnx_io(path: Path) -> OnnxIO:
    """Inputs (initialisers left out), outputs and metadata of the ONNX file at ``path``.

    Raises:
        OSError: the file is missing or is not an ONNX model.
    """
    import onnx

    if not path.is_file():
        raise OSError(f"{path}: model file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise OSError(f"{path}: not an ONNX model: {exc}") from exc

    def pair(value: onnx.ValueInfoProto) -> tuple[str, tuple[Dim, ...]]:
        dims = value.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims)
        return value.name, shape

    graph = model.graph
    initialisers = {init.name for init in graph.initializer}
    return OnnxIO(
        inputs=tuple(pair(v) for v in graph.input if v.name not in initialisers),
        outputs=tuple(pair(v) for v in graph.output),
        metadata={p.key: p.value for p in model.metadata_props},
    )


def describe_onnx(
    path: Path,
    input_shape: Sequence[Dim],
    output_shape: Sequence[Dim],
    metadata: dict[str, str],
) -> ModelInfo:
    """Describe a detection model from its first input and output shapes and its metadata.

    Dimensions are ints, or names/None when dynamic (as ONNX Runtime reports them).

    Raises:
        ModelLayoutError: naming ``path`` and what was expected.
    """
    if META_NAMES not in metadata:
        raise ModelLayoutError(
            f"{path}: no '{META_NAMES}' metadata; expected an Ultralytics YOLOv8/YOLO11 export "
            "or a model converted by vsa, both of which list their class names"
        )
    try:
        names = parse_class_names(metadata[META_NAMES])
    except ModelLayoutError as exc:
        raise ModelLayoutError(f"{path}: {exc}") from exc
    input_size = _describe_input(path, input_shape)
    layout = _describe_output(path, output_shape, metadata.get(META_OUTPUT_LAYOUT), len(names))
    return ModelInfo(path, layout, input_size, names)
