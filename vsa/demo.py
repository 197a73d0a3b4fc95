"""``vsa demo``: the main job. Starts the local stack, creates the topics, ingests several cameras
from the sample clip into Kafka, and shows live what the cameras publish and what Kafka holds.

A reader in the same process consumes the frames topic the way downstream services will, checks
the headers and that every JPEG decodes, and counts per camera: the table is proof that frames
arrive, not only that they were sent.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import simplejpeg
from confluent_kafka import Consumer

from vsa.assets import fetch_vtest
from vsa.progress import LiveTable, RateMeter
from vsa.runtime.kafka import consumer_config, ensure_topics
from vsa.runtime.service import StopFlag
from vsa.runtime.settings import KafkaSettings, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import FrameMeta, SchemaError
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.service import IngestService

COLUMNS = (
    "camera",
    "state",
    "published",
    "fps",
    "in kafka",
    "jpeg ok",
    "last frame_seq",
    "dropped",
)


@dataclass
class KafkaTally:
    """What a consumer of the frames topic saw, per camera."""

    frames: Counter[str] = field(default_factory=Counter)
    jpeg_ok: Counter[str] = field(default_factory=Counter)
    last_seq: dict[str, int] = field(default_factory=dict)
    bad: int = 0


def _read_frames(
    kafka: KafkaSettings, topic: str, tally: KafkaTally, stop: threading.Event
) -> None:
    consumer = Consumer(
        consumer_config(
            kafka,
            "demo-reader",
            f"vsa-demo-{uuid.uuid4().hex[:8]}",
            **{"auto.offset.reset": "latest"},
        )
    )
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            for msg in consumer.consume(200, 0.2):
                if msg.error() is not None:
                    continue
                try:
                    meta = FrameMeta.from_headers(msg.headers())
                    height, width, _, _ = simplejpeg.decode_jpeg_header(msg.value())
                except (SchemaError, ValueError):
                    tally.bad += 1
                    continue
                tally.frames[meta.camera_id] += 1
                if (width, height) == (meta.width, meta.height):
                    tally.jpeg_ok[meta.camera_id] += 1
                tally.last_seq[meta.camera_id] = meta.frame_seq
    finally:
        consumer.close()


def demo_main(args: argparse.Namespace) -> int:
    from vsa.devstack import stack

    clip = fetch_vtest()
    print(f"sample clip: {clip}")
    print("starting the local stack (Kafka + OpenSearch; the first run downloads them)...")
    info = stack.up()
    print(stack.format_status(stack.status()))
    kafka = load_settings(KafkaSettings, None, bootstrap_servers=info.kafka_bootstrap)
    topics = load_settings(TopicsSettings)
    created = ensure_topics(kafka, topics.specs())
    print(f"topics ready ({len(created)} created)")
    cameras = tuple(
        CameraSpec(camera_id=f"cam-{i}", url=str(clip), loop=True, realtime=not args.fast)
        for i in range(args.cameras)
    )
    settings = load_settings(
        IngestSettings, None, cameras=cameras, kafka=kafka, topics=topics.names, metrics_port=0
    )
    return _run(settings, args.duration)


def _run(settings: IngestSettings, duration_s: float) -> int:
    stop = StopFlag()
    stop.install()
    service = IngestService(settings, stop=stop)
    tally, reader_stop = KafkaTally(), threading.Event()
    reader = threading.Thread(
        target=_read_frames, daemon=True, args=(settings.kafka, service.topic, tally, reader_stop)
    )
    reader.start()
    time.sleep(1.0)  # let the reader join its group before frames flow
    runner = threading.Thread(target=service.run, name="ingest", daemon=True)
    runner.start()
    table = LiveTable(
        COLUMNS,
        title=f"vsa demo: {len(settings.cameras)} cameras → {service.topic} (Ctrl-C to stop)",
    )
    rates, started = RateMeter(), time.monotonic()
    while runner.is_alive() and time.monotonic() - started < duration_s and not stop.is_set():
        _draw(table, service, tally, rates, started)
        time.sleep(0.5)
    stop.set()
    runner.join(timeout=30)
    time.sleep(1.0)  # the reader catches up with the last acknowledged frames
    reader_stop.set()
    reader.join(timeout=10)
    _draw(table, service, tally, rates, started, final=True)
    print("\nThe local stack keeps running; stop it with: vsa devstack down")
    return 0 if service.totals.delivery_errors == 0 and tally.bad == 0 else 1


def _draw(
    table: LiveTable,
    service: IngestService,
    tally: KafkaTally,
    rates: RateMeter,
    started: float,
    final: bool = False,
) -> None:
    rows = []
    for camera_id, status in service.camera_status().items():
        published = service.published.get(camera_id, 0)
        rows.append(
            (
                camera_id,
                status.state,
                published,
                f"{rates.rate(camera_id, published):.1f}",
                tally.frames[camera_id],
                tally.jpeg_ok[camera_id],
                tally.last_seq.get(camera_id, "-"),
                service.dropped(camera_id),
            )
        )
    totals, elapsed = service.totals, max(time.monotonic() - started, 1e-9)
    footer = (
        f"{elapsed:5.0f} s  published {totals.published} frames "
        f"({totals.bytes_published / 1e6:.1f} MB), acked by Kafka {totals.acked}, "
        f"read back {sum(tally.frames.values())}, bad {tally.bad}"
    )
    table.draw(rows, footer, final=final)
