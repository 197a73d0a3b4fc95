"""Frame sources: video files and live streams through PyAV, and folders of images.

A source yields :class:`Decoded` frames. Problems are raised as :class:`SourceError` with a reason
a person can act on; the camera worker decides whether to retry (live) or give up (files).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import simplejpeg

from vsa.runtime.logs import event
from vsa.runtime.redact import mask_secrets
from vsa.services.ingest.config import CameraSpec
from vsa.services.ingest.pacing import fit_size

log = logging.getLogger("vsa.ingest.sources")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: Consecutive undecodable packets after which a stream counts as broken, not merely glitched.
MAX_BAD_PACKETS = 50


class SourceError(Exception):
    """A source could not be opened or broke while reading."""


class SourceDamagedError(Exception):
    """A file ended early because of damage (truncation, corrupt data); earlier frames were kept."""


@dataclass(frozen=True)
class Decoded:
    """One decoded frame: the PyAV frame (or ready JPEG bytes) and its media time."""

    frame: av.VideoFrame | None
    jpeg: bytes | None
    pts_s: float | None
    width: int
    height: int


def encode_jpeg(frame: av.VideoFrame, spec: CameraSpec) -> tuple[bytes, int, int]:
    """JPEG bytes (libjpeg-turbo via simplejpeg) of ``frame``, scaled to the camera's bounds.

    Encodes straight from 4:2:0 planes: no RGB conversion, so it costs about a third less than
    encoding an RGB array. Returns ``(jpeg, width, height)``; sizes in pixels.
    """
    width, height = fit_size(frame.width, frame.height, spec.max_width, spec.max_height)
    yuv = frame.reformat(width=width, height=height, format="yuv420p")
    planes = [
        np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        for p in yuv.planes
    ]
    data = simplejpeg.encode_jpeg_yuv_planes(
        planes[0], planes[1], planes[2], quality=spec.jpeg_quality, fastdct=True
    )
    return bytes(data), width, height


def open_options(spec: CameraSpec, timeout_s: float) -> dict[str, str]:
    """FFmpeg options for a source: network timeouts for live streams."""
    if spec.kind != "live":
        return {}
    micros = str(int(timeout_s * 1_000_000))
    opts = {"rw_timeout": micros}
    if spec.url.lower().startswith(("rtsp://", "rtsps://")):
        opts["timeout"] = micros
    return opts


def read_video(spec: CameraSpec, timeout_s: float, decode_threads: int = 0) -> Iterator[Decoded]:
    """Decode a file or stream; SourceError if it cannot open, SourceDamagedError if damaged."""
    try:
        container = av.open(
            spec.url, options=open_options(spec, timeout_s), timeout=(timeout_s, timeout_s)
        )
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {spec.display_url}: {mask_secrets(str(exc))}") from exc
    with container:
        if not container.streams.video:
            raise SourceError(f"{spec.display_url} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if decode_threads:
            stream.codec_context.thread_count = decode_threads
        yield from _decode_packets(container, stream, spec)


def _decode_packets(
    container: av.container.InputContainer, stream: av.VideoStream, spec: CameraSpec
) -> Iterator[Decoded]:
    bad_in_row = 0
    damaged: str | None = None
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                bad_in_row += 1
                damaged = str(exc)
                if bad_in_row >= MAX_BAD_PACKETS:
                    raise SourceError(
                        f"{spec.display_url}: {bad_in_row} bad packets in a row: "
                        f"{mask_secrets(str(exc))}"
                    ) from exc
                continue
            bad_in_row = 0
            for frame in frames:
                yield Decoded(frame, None, frame.time, frame.width, frame.height)
    except av.FFmpegError as exc:
        if spec.kind == "live":
            raise SourceError(
                f"{spec.display_url}: stream broke: {mask_secrets(str(exc))}"
            ) from exc
        damaged = str(exc)
    if damaged is not None and spec.kind != "live":
        raise SourceDamagedError(f"{spec.display_url}: damaged data: {mask_secrets(damaged)}")


def read_images(spec: CameraSpec) -> Iterator[Decoded]:
    """Images of a folder in name order; JPEGs that need no scaling are passed through as is.

    Each image is one frame, ``1 / fps`` seconds after the previous (10 fps without a target), so
    a target fps paces a folder (with ``realtime``) instead of skipping images.
    """
    fps = spec.fps or 10.0
    files = sorted(p for p in Path(spec.url).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"{spec.display_url}: no images ({', '.join(IMAGE_SUFFIXES)})")
    for index, path in enumerate(files):
        pts_s = index / fps
        try:
            yield _read_image(path, spec, pts_s)
        except (av.FFmpegError, ValueError, OSError) as exc:
            event(
                log,
                "image_skipped",
                logging.WARNING,
                camera_id=spec.camera_id,
                file=str(path),
                error=str(exc),
            )


def _read_image(path: Path, spec: CameraSpec, pts_s: float) -> Decoded:
    data = path.read_bytes()
    if path.suffix.lower() in (".jpg", ".jpeg"):
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        if fit_size(width, height, spec.max_width, spec.max_height) == (width, height):
            return Decoded(None, data, pts_s, width, height)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    return Decoded(frame, None, pts_s, frame.width, frame.height)


def pace(started_wall: float, first_pts: float, pts_s: float) -> None:
    """Sleep until media time ``pts_s`` is due, relative to when the source started."""
    delay = (pts_s - first_pts) - (time.monotonic() - started_wall)
    if delay > 0:
        time.sleep(min(delay, 5.0))
