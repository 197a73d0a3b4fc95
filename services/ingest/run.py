"""Command-line entry points: ``vsa ingest`` (the service) and ``vsa produce`` (a tool)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vsa.helptext import add_print_config, settings_epilog
from vsa.progress import LiveTable, RateMeter
from vsa.runtime.logs import event
from vsa.runtime.metrics import serve_http
from vsa.runtime.settings import ConfigError, load_settings
from vsa.runtime.topic_check import topics_problem
from vsa.runtime.topics import TopicsSettings
from vsa.services.ingest.config import (
    CameraSpec,
    IngestSettings,
    camera_from_flag,
    load_cameras_file,
)
from vsa.topic_flags import DeprecatedSpelling, add_topic_prefix, topic_overrides

if TYPE_CHECKING:  # imported when run: it needs PyAV, which only decoding hosts have
    from vsa.services.ingest.service import IngestService

log = logging.getLogger("vsa.ingest")

COLUMNS = ("camera", "state", "decoded", "published", "fps", "dropped", "reconnects", "last error")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``vsa ingest`` and ``vsa produce``."""
    p = sub.add_parser(
        "ingest",
        help="Run the ingest service (cameras → frames topic).",
        epilog=settings_epilog("IngestSettings", "VSA_INGEST_"),
    )
    add_ingest_args(p)
    p.set_defaults(func=ingest_main)
    p = sub.add_parser("produce", help="Push files, image folders or streams as N cameras.")
    add_produce_args(p)
    p.set_defaults(func=produce_main)


def add_ingest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file with IngestSettings keys.")
    parser.add_argument("--cameras-file", type=Path, help="YAML file: cameras: [{camera_id, url}].")
    parser.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="[ID=]URL[,key=value...]",
        help="A camera (repeatable): a file, image folder, rtsp:// or http(s):// URL, with options "
        "such as loop=true, fps=5, max_width=1280, jpeg_quality=80.",
    )
    parser.add_argument(
        "--from-camera-config",
        action="store_true",
        default=None,
        help="Run the cameras of the camera-config topic (enabled, with a source_url), following "
        "its changes; replicas share them through a consumer group.",
    )
    add_topic_prefix(parser, "VSA_INGEST_TOPICS__PREFIX")
    parser.add_argument("--max-frames", type=int, help="Stop after this many frames in total.")
    add_print_config(parser)
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Live table of cameras (default: on for a terminal).",
    )


def add_produce_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", help="Video files, image folders or stream URLs.")
    parser.add_argument("--cameras", type=int, default=1, help="Cameras to simulate per source.")
    parser.add_argument(
        "--camera-prefix",
        default="cam",
        metavar="PREFIX",
        help="camera_id prefix (cam-0, cam-1, ...).",
    )
    parser.add_argument(
        "--prefix",
        dest="camera_prefix",
        action=DeprecatedSpelling,
        use="--camera-prefix",
        note="the camera_id prefix; the topic prefix is --topic-prefix",
        help="Deprecated spelling of --camera-prefix.",
    )
    add_topic_prefix(parser, "VSA_INGEST_TOPICS__PREFIX")
    parser.add_argument("--fps", type=float, help="Target frames/s per camera.")
    parser.add_argument("--loop", action="store_true", help="Loop files until stopped.")
    parser.add_argument("--realtime", action="store_true", help="Pace files at their own rate.")
    parser.add_argument("--max-width", type=int, help="Downscale wider frames (px).")
    parser.add_argument("--jpeg-quality", type=int, default=85, help="JPEG quality 10-100.")
    parser.add_argument("--max-frames", type=int, help="Stop after this many frames in total.")
    parser.add_argument("--duration", type=float, help="Stop after this many seconds.")
    parser.add_argument("--create-topics", action="store_true", help="Create missing topics first.")


def ingest_main(args: argparse.Namespace) -> int:
    """``vsa ingest``: run the service with cameras from flags, a cameras file or settings."""
    cameras: list[CameraSpec] = []
    if args.cameras_file:
        cameras.extend(load_cameras_file(args.cameras_file))
    cameras.extend(camera_from_flag(flag, i) for i, flag in enumerate(args.camera))
    overrides: dict[str, object] = {}
    if cameras:
        overrides["cameras"] = tuple(cameras)
    if args.max_frames:
        overrides["max_frames"] = args.max_frames
    if args.from_camera_config:
        overrides["from_camera_config"] = True
    overrides.update(topic_overrides(args))
    settings = load_settings(IngestSettings, args.config, **overrides)
    if args.print_config:
        from vsa.runtime.print_config import print_config

        return print_config(settings, args.config, overrides)
    if not settings.cameras and not settings.from_camera_config:
        raise ConfigError(
            "no cameras: give --camera, --cameras-file, cameras in --config or --from-camera-config"
        )
    return run_service(settings, progress=args.progress)


def produce_main(args: argparse.Namespace) -> int:
    """``vsa produce``: push sources into Kafka as N cameras, with a progress display."""
    cameras = []
    for s_index, source in enumerate(args.sources):
        for c_index in range(args.cameras):
            index = s_index * args.cameras + c_index
            cameras.append(
                CameraSpec(
                    camera_id=f"{args.camera_prefix}-{index}",
                    url=source,
                    loop=args.loop,
                    realtime=args.realtime,
                    fps=args.fps,
                    max_width=args.max_width,
                    jpeg_quality=args.jpeg_quality,
                )
            )
    settings = load_settings(
        IngestSettings,
        None,
        cameras=tuple(cameras),
        max_frames=args.max_frames,
        metrics_port=0,
        **topic_overrides(args),
    )
    if args.create_topics:
        from vsa.runtime.kafka import ensure_topics

        topics = load_settings(TopicsSettings, None, names=settings.topics)
        ensure_topics(settings.kafka, topics.specs())
    problem = topics_problem(
        settings.kafka, [settings.topics.name("frames")], settings.topics.prefix
    )
    if problem is not None:  # a tool stops here; the ingest service waits instead
        print(f"vsa produce: {problem}", file=sys.stderr)
        return 1
    return run_service(settings, progress=True, duration_s=args.duration, serve_metrics=False)


def run_service(
    settings: IngestSettings,
    progress: bool | None = None,
    duration_s: float | None = None,
    serve_metrics: bool = True,
) -> int:
    """Run until done, stopped (SIGINT/SIGTERM) or past ``duration_s``; 1 if frames failed."""
    from vsa.services.ingest.service import IngestService

    service = IngestService(settings)
    service.stop.install()
    if serve_metrics:
        server = serve_http(
            service.metrics, service.health, settings.metrics_host, settings.metrics_port
        )
        event(log, "metrics_listening", port=server.server_address[1])
    table = LiveTable(COLUMNS, title=f"vsa ingest → {service.topic}")
    show = progress if progress is not None else table.tty
    view = IngestView(table) if show else None
    started = time.monotonic()

    def tick(svc: IngestService) -> None:
        if view is not None:
            view.draw(svc)
        if duration_s is not None and time.monotonic() - started >= duration_s:
            svc.stop.set()

    totals = service.run(on_tick=tick)
    if view is not None:
        view.draw(service, final=True)
    failed = [c for c, s in service.camera_status().items() if s.state == "failed"]
    return 1 if totals.delivery_errors or (failed and len(failed) == len(settings.cameras)) else 0


class IngestView:
    """Turns the service's counters into the live table."""

    def __init__(self, table: LiveTable) -> None:
        self.table = table
        self.rates = RateMeter()
        self.started = time.monotonic()

    def draw(self, service: IngestService, final: bool = False) -> None:
        rows = []
        for camera_id, status in service.camera_status().items():
            rows.append(
                (
                    camera_id,
                    status.state,
                    status.decoded,
                    service.published[camera_id],
                    f"{self.rates.rate(camera_id, service.published[camera_id]):.1f}",
                    service.dropped(camera_id),
                    status.reconnects,
                    (status.last_error or "")[:60],
                )
            )
        totals = service.totals
        elapsed = max(time.monotonic() - self.started, 1e-9)
        footer = (
            f"published {totals.published} frames ({totals.bytes_published / 1e6:.1f} MB), "
            f"acked {totals.acked}, {totals.published / elapsed:.1f} frames/s overall, "
            f"delivery errors {totals.delivery_errors}"
        )
        self.table.draw(rows, footer, final=final)
