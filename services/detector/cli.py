"""Command-line entry points: ``vsa detector`` (the service), ``vsa detect`` (offline, on a
file) and ``vsa models`` (fetch, convert, describe). Heavy libraries load inside the commands."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vsa.helptext import add_action_argument, add_service_parser
from vsa.runtime.settings import ConfigError, load_settings
from vsa.topic_flags import add_topic_prefix, topic_overrides

from .config import BUNDLED_MODELS, DetectorSettings

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from vsa.schemas import Detections, FrameMeta, FrameRef

    from .core import FrameDetector
    from .jpeg import DecodedFrame

JPEG_MAGIC = b"\xff\xd8"
#: A frame decoded outside the core (PyAV), with its metadata and pseudo reference.
Decoded = tuple["FrameMeta", "FrameRef", "DecodedFrame"]
DETECT_BATCH = 8


MODELS_ACTIONS = {
    "list": "the bundled model names and the default",
    "fetch": "download a bundled model's files (default: the YOLOv3-tiny Darknet files)",
    "convert": "build the ONNX model (--int8: also the INT8 one)",
    "info": "a model's input, output, layout and classes (--verbose: all as JSON)",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa detector``, ``vsa detect`` and ``vsa models``."""
    p = add_service_parser(
        sub,
        "detector",
        "Run the detector service (frames → detections topic).",
        "DetectorSettings",
        "VSA_DETECTOR_",
    )
    add_topic_prefix(p, "VSA_DETECTOR_TOPICS__PREFIX")
    p.set_defaults(func=detector_main)

    p = sub.add_parser("detect", help="Detect objects in an image or video file; JSON lines.")
    p.add_argument("file", type=Path, help="A JPEG/PNG image or a video file.")
    p.add_argument(
        "--model",
        help=f"ONNX file or bundled model ({', '.join(BUNDLED_MODELS)}; vsa models list).",
    )
    p.add_argument("--conf", type=float, help="Confidence threshold 0..1 (default 0.25).")
    p.add_argument("--iou", type=float, help="NMS IoU threshold 0..1 (default 0.45).")
    p.add_argument("--classes", help="Comma-separated class names to keep, e.g. person,car.")
    p.add_argument("--input-size", help="Network input: 416 or HxW such as 320x416.")
    p.add_argument("--max-frames", type=int, help="Stop after this many frames of a video.")
    p.add_argument("--draw", type=Path, metavar="OUTDIR", help="Write annotated JPEGs here.")
    p.add_argument(
        "--camera-id",
        help="camera_id of the output (default: from the file name, e.g. vtest); match the "
        "rules' camera_id when the output goes to vsa track.",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Frames done and frames/s on stderr (default: on when stderr is a terminal).",
    )
    p.set_defaults(func=detect_main)

    p = sub.add_parser(
        "models",
        help="List, fetch, convert or describe detector models.",
    )
    add_action_argument(p, MODELS_ACTIONS)
    p.add_argument(
        "model",
        nargs="?",
        default=BUNDLED_MODELS[0],
        help="fetch: a bundled name; info: an ONNX file or bundled name.",
    )
    p.add_argument("--int8", action="store_true", help="convert: also build the INT8 model.")
    p.add_argument("--input-size", help="convert/info: network input, 416 or HxW.")
    p.add_argument("--verbose", action="store_true", help="info: the full JSON description.")
    p.set_defaults(func=models_main)


def detector_settings(config: Path | None = None, **overrides: Any) -> DetectorSettings:
    """Settings from flags, ``VSA_DETECTOR_*`` and an optional YAML file; ConfigError if bad."""
    from pydantic_settings import SettingsError

    try:
        return load_settings(DetectorSettings, config, **overrides)
    except SettingsError as exc:  # e.g. an environment value that is not valid JSON
        raise ConfigError(f"invalid DetectorSettings from environment: {exc}") from exc


def detector_main(args: argparse.Namespace) -> int:
    """``vsa detector``: run the service until stopped."""
    from .service import run_detector

    overrides = topic_overrides(args)
    settings = detector_settings(args.config, **overrides)
    if args.print_config:
        from vsa.runtime.print_config import print_config

        return print_config(settings, args.config, overrides)
    return run_detector(settings)


def _detect_overrides(args: argparse.Namespace) -> dict[str, Any]:
    flags = {
        "model": args.model,
        "conf_threshold": args.conf,
        "iou_threshold": args.iou,
        "classes": args.classes,
        "input_size": parse_size(args.input_size),
    }
    return {key: value for key, value in flags.items() if value is not None}


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``416`` -> (416, 416), ``320x416`` -> (320, 416) (height x width); None stays None."""
    if text is None:
        return None
    height, _, width = text.lower().partition("x")
    try:
        size = (int(height), int(width or height))
    except ValueError as exc:
        raise ConfigError(f"input size {text!r}: expected 416 or HEIGHTxWIDTH") from exc
    if any(side < 32 or side > 4096 or side % 32 for side in size):
        raise ConfigError(f"input size {text!r}: sides must be multiples of 32 within 32..4096")
    return size


def camera_id_for(path: Path) -> str:
    """A valid camera_id from a file name: ``my clip.mp4`` -> ``my-clip``."""
    text = re.sub(r"[^A-Za-z0-9._:-]+", "-", path.stem).lstrip("._:-")[:128]
    return text or "file"


def detect_main(args: argparse.Namespace) -> int:
    """``vsa detect FILE``: one Detections JSON line per frame on stdout."""
    from .loading import load_detector

    if not args.file.is_file():
        print(f"vsa detect: {args.file}: no such file", file=sys.stderr)
        return 2
    settings = detector_settings(None, metrics_port=0, **_detect_overrides(args))
    core = load_detector(settings)
    with args.file.open("rb") as fh:
        is_jpeg = fh.read(2) == JPEG_MAGIC
    camera_id = args.camera_id or camera_id_for(args.file)
    if is_jpeg:
        return _detect_jpeg(core, args.file, args.draw, camera_id)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = DetectProgress(sys.stderr) if show else None
    return _detect_video(core, args.file, args.max_frames, args.draw, camera_id, progress)


def _emit(
    messages: Sequence[Detections],
    images: Sequence[npt.NDArray[np.uint8]] | None,
    draw: Path | None,
) -> None:
    """Print each message as one JSON line; with ``draw``, write its annotated image too."""
    for index, message in enumerate(messages):
        sys.stdout.write(message.model_dump_json() + "\n")
        if draw is not None and images is not None:
            from .drawing import write_annotated

            write_annotated(images[index], message, draw)
    sys.stdout.flush()


def _detect_jpeg(core: FrameDetector, path: Path, draw: Path | None, camera_id: str) -> int:
    import simplejpeg

    from vsa.schemas import FrameMeta

    from .core import FrameInput
    from .jpeg import FrameError, jpeg_size
    from .loading import pseudo_ref

    data = path.read_bytes()
    try:
        width, height = jpeg_size(data)
    except FrameError as exc:
        print(f"vsa detect: {path}: {exc}", file=sys.stderr)
        return 1
    meta = FrameMeta(
        camera_id=camera_id,
        frame_seq=0,
        capture_ts=path.stat().st_mtime,
        width=width,
        height=height,
        source="images",
    )
    (outcome,) = core.detect([FrameInput(meta, pseudo_ref(camera_id, 0), data)])
    if isinstance(outcome, FrameError):
        print(f"vsa detect: {path}: {outcome}", file=sys.stderr)
        return 1
    images = [simplejpeg.decode_jpeg(data, colorspace="RGB")] if draw is not None else None
    _emit([outcome], images, draw)
    return 0


def _video_frames(
    path: Path, max_frames: int | None
) -> Iterator[tuple[int, npt.NDArray[np.uint8], float | None]]:
    """``(frame index, RGB image, presentation time in seconds or None)`` of a video/image."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if max_frames is not None and index >= max_frames:
                return
            yield index, np.asarray(frame.to_ndarray(format="rgb24"), np.uint8), frame.time


class DetectProgress:
    """``frames N, X frames/s`` on one stderr line, rewritten at most every ``interval_s``."""

    def __init__(self, stream: IO[str], interval_s: float = 0.5) -> None:
        self.stream, self.interval_s = stream, interval_s
        self.frames, self.started = 0, time.monotonic()
        self.shown_at = self.started

    def update(self, frames: int, final: bool = False) -> None:
        self.frames += frames
        now = time.monotonic()
        if not final and now - self.shown_at < self.interval_s:
            return
        self.shown_at = now
        rate = self.frames / max(now - self.started, 1e-9)
        end = "\n" if final else "\r"
        self.stream.write(f"vsa detect: {self.frames} frames, {rate:.1f} frames/s{end}")
        self.stream.flush()


def _detect_video(
    core: FrameDetector,
    path: Path,
    max_frames: int | None,
    draw: Path | None,
    camera_id: str,
    progress: DetectProgress | None = None,
) -> int:
    import av

    from vsa.schemas import FrameMeta

    from .jpeg import DecodedFrame
    from .loading import pseudo_ref

    mtime = path.stat().st_mtime
    batch: list[Decoded] = []
    try:
        for seq, image, pts in _video_frames(path, max_frames):
            meta = FrameMeta(
                camera_id=camera_id,
                frame_seq=seq,
                capture_ts=mtime + (pts or 0.0),
                width=image.shape[1],
                height=image.shape[0],
                pts_s=pts,
                source="file",
            )
            batch.append((meta, pseudo_ref(camera_id, seq), DecodedFrame.full(image)))
            if len(batch) >= DETECT_BATCH:
                _flush(core, batch, draw)
                if progress is not None:
                    progress.update(len(batch))
                batch = []
    except (av.error.FFmpegError, IndexError) as exc:  # IndexError: no video stream
        print(f"vsa detect: {path}: cannot decode: {exc}", file=sys.stderr)
        return 1
    _flush(core, batch, draw)
    if progress is not None:
        progress.update(len(batch), final=True)
    return 0


def _flush(
    core: FrameDetector,
    batch: Sequence[Decoded],
    draw: Path | None,
) -> None:
    if batch:
        _emit(core.detect_decoded(batch), [frame.image for _, _, frame in batch], draw)


def models_main(args: argparse.Namespace) -> int:
    """``vsa models fetch|convert|info``."""
    from .darknet import DarknetError
    from .layout import ModelLayoutError
    from .models import ModelFetchError
    from .quantize import QuantizationError

    size = parse_size(args.input_size)
    try:
        if args.action == "list":
            return _models_list()
        if args.action == "fetch":
            return _models_fetch(args.model)
        if args.action == "convert":
            return _models_convert(size, args.int8)
        return _models_info(args.model, size, args.verbose)
    except (ModelFetchError, DarknetError, QuantizationError, ModelLayoutError, OSError) as exc:
        print(f"vsa models {args.action}: {exc}", file=sys.stderr)
        return 1


def _models_fetch(model: str) -> int:
    from .models import DEFAULT_MODEL, bundled_model, fetch_yolov3_tiny

    if model not in BUNDLED_MODELS:
        print(
            f"vsa models fetch: {model!r} is not a bundled model (see: vsa models list)",
            file=sys.stderr,
        )
        return 2
    if model != DEFAULT_MODEL and not model.startswith(f"{DEFAULT_MODEL}-"):
        print(bundled_model(model)[0].path)
        return 0
    files = fetch_yolov3_tiny()
    print(f"cfg      {files.cfg}\nweights  {files.weights}\nclasses  {len(files.names)}")
    return 0


def _models_convert(size: tuple[int, int] | None, int8: bool) -> int:
    from .models import DEFAULT_MODEL, INT8_MODEL, bundled_model

    for name in (DEFAULT_MODEL, INT8_MODEL) if int8 else (DEFAULT_MODEL,):
        info, model_id = bundled_model(name, size)
        print(f"{model_id:24} {info.path}")
    return 0


#: One line on each bundled model for ``vsa models list``.
BUNDLED_SUMMARY = {
    "yolov3-tiny": "YOLOv3-tiny, COCO 80 classes, FP32 (Darknet weights converted to ONNX)",
    "yolov3-tiny-int8": "the same, INT8 (about 2x faster on a CPU)",
    "yolov8-fall": "Ultralytics YOLOv8 export, classes Normal and Fall, 640x640 "
    "(weights AGPL-3.0 per its metadata)",
}


def _models_list() -> int:
    for name in BUNDLED_MODELS:
        default = " (default)" if name == DetectorSettings.model_fields["model"].default else ""
        print(f"{name:18} {BUNDLED_SUMMARY[name]}{default}")
    print("or the path of an ONNX file (Darknet-converted or Ultralytics YOLOv8/YOLO11 export)")
    return 0


def _models_info(model: str, size: tuple[int, int] | None, verbose: bool = False) -> int:
    from .layout import describe_onnx
    from .models import bundled_model

    path = bundled_model(model, size)[0].path if model in BUNDLED_MODELS else Path(model)
    description = onnx_description(path)
    info = describe_onnx(
        path, description["input_shape"], description["output_shape"], description["metadata"]
    )
    description.update(layout=info.layout, classes=list(info.class_names))
    if verbose:
        print(json.dumps(description, indent=2, default=str))
        return 0
    names = list(info.class_names)
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    print(f"path     {description['path']}")
    print(f"input    {description['input']} {description['input_shape']}")
    print(f"output   {description['output']} {description['output_shape']}")
    print(f"layout   {info.layout}")
    print(f"classes  {shown}")
    return 0


def onnx_description(path: Path) -> dict[str, Any]:
    """Input/output names and shapes (ints, or names for dynamic axes) and metadata of a model."""
    from .layout import read_onnx_io

    io = read_onnx_io(path)
    first_input = io.inputs[0] if io.inputs else None
    first_output = io.outputs[0] if io.outputs else None
    return {
        "path": str(path),
        "input": first_input[0] if first_input else None,
        "input_shape": list(first_input[1]) if first_input else [],
        "output": first_output[0] if first_output else None,
        "output_shape": list(first_output[1]) if first_output else [],
        "metadata": io.metadata,
    }
