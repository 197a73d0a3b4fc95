"""The ingest service against the real local Kafka, with the real sample clip."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import simplejpeg
from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from vsa.runtime.kafka import ensure_topics
from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import FrameMeta
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.resume import last_frame_seqs
from vsa.services.ingest.service import IngestService

pytestmark = pytest.mark.integration

VTEST_FRAMES = 795


def make_settings(
    kafka: KafkaSettings, prefix: str, cameras: list[CameraSpec], **overrides: object
) -> IngestSettings:
    names = TopicNames(prefix=f"{prefix}.")
    ensure_topics(kafka, load_settings(TopicsSettings, None, names=names, partitions=3).specs())
    return load_settings(
        IngestSettings,
        None,
        kafka=kafka,
        topics=names,
        cameras=tuple(cameras),
        metrics_port=0,
        **overrides,
    )


def read_frames(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 30
) -> list[Message]:
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"check-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    frames: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(frames) < expected and time.monotonic() < deadline:
            frames.extend(m for m in consumer.consume(500, 0.5) if m.error() is None)
    finally:
        consumer.close()
    return frames


def by_camera(frames: list[Message]) -> dict[str, list[tuple[FrameMeta, Message]]]:
    out: dict[str, list[tuple[FrameMeta, Message]]] = {}
    for msg in frames:
        meta = FrameMeta.from_headers(msg.headers())
        out.setdefault(meta.camera_id, []).append((meta, msg))
    return out


def test_file_cameras_arrive_sampled_ordered_and_decodable(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    cams = [
        CameraSpec(camera_id="full", url=str(vtest)),
        CameraSpec(camera_id="half", url=str(vtest), fps=5, max_width=384, jpeg_quality=70),
    ]
    settings = make_settings(kafka, unique_name, cams)
    service = IngestService(settings)
    totals = service.run()
    assert totals.published == totals.acked == VTEST_FRAMES + 398
    cameras = by_camera(read_frames(kafka, settings.topics.name("frames"), totals.published))
    assert {k: len(v) for k, v in cameras.items()} == {"full": VTEST_FRAMES, "half": 398}
    for camera_id, frames in cameras.items():
        seqs = [meta.frame_seq for meta, _ in frames]
        assert seqs == list(range(len(frames))), "frame_seq dense and in order per camera"
        assert {msg.partition() for _, msg in frames} == {partition_for_key(camera_id, 3)}
        assert all(msg.key() == camera_id.encode() for _, msg in frames)
        stamps = [meta.capture_ts for meta, _ in frames]
        assert stamps == sorted(stamps)
    for meta, msg in cameras["full"][::100] + cameras["half"][::50]:
        image = simplejpeg.decode_jpeg(msg.value())
        assert image.shape == (meta.height, meta.width, 3)
    assert {(m.width, m.height) for m, _ in cameras["full"]} == {(768, 576)}
    assert {(m.width, m.height) for m, _ in cameras["half"]} == {(384, 288)}
    pts = [m.pts_s for m, _ in cameras["half"][:5]]
    assert pts == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])


def test_frame_seq_continues_after_a_restart(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    cams = [CameraSpec(camera_id="gate", url=str(vtest), fps=2)]
    settings = make_settings(kafka, unique_name, cams, max_frames=30)
    assert IngestService(settings).run().published == 30
    assert IngestService(settings).run().published == 30
    frames = by_camera(read_frames(kafka, settings.topics.name("frames"), 60))["gate"]
    assert [meta.frame_seq for meta, _ in frames] == list(range(60))


def test_frame_seq_lookup_does_not_wait_out_its_timeout(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    """Reading back the tail of a partition ends at its last record, not at the timeout (it
    used to wait the whole timeout per partition: 20 s before the demo's cameras started)."""
    cams = [CameraSpec(camera_id="gate", url=str(vtest), fps=2)]
    settings = make_settings(kafka, unique_name, cams, max_frames=30)
    assert IngestService(settings).run().published == 30
    started = time.monotonic()
    found = last_frame_seqs(kafka, settings.topics.name("frames"), ["gate", "door"], 500, 30.0)
    assert found == {"gate": 29}
    assert time.monotonic() - started < 15


def test_frames_deleted_by_retention_are_reported_and_numbering_starts_over(
    kafka: KafkaSettings, unique_name: str, vtest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Retention deleted every frame of the camera (the demo run an hour later): ingest cannot
    continue frame_seq and says so, with the reason; it starts at 0 (the tracker copes)."""
    cams = [CameraSpec(camera_id="gate", url=str(vtest), fps=2)]
    settings = make_settings(kafka, unique_name, cams, max_frames=30)
    topic = settings.topics.name("frames")
    assert IngestService(settings).run().published == 30
    partition = partition_for_key("gate", 3)
    admin = AdminClient(kafka.client_config())
    # what retention does: the log start offset moves to the end, the records are gone
    for future in admin.delete_records([TopicPartition(topic, partition, OFFSET_END)]).values():
        assert future.result().low_watermark == 30
    with caplog.at_level(logging.WARNING, logger="vsa.ingest.resume"):
        assert IngestService(settings).run().published == 30
    (warning,) = [r for r in caplog.records if r.getMessage() == "frame_seq_not_recovered"]
    assert (warning.camera_id, warning.reason) == ("gate", "expired")
    assert IngestService(settings).run().published == 30  # continues from what is left
    frames = by_camera(read_frames(kafka, topic, 60))["gate"]
    # the second run's 0-29 (the first run's were deleted), then the third run's 30-59
    assert [meta.frame_seq for meta, _ in frames] == list(range(60))


def test_looping_file_keeps_frame_seq_growing(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    cams = [CameraSpec(camera_id="loop", url=str(vtest), fps=1, loop=True)]
    settings = make_settings(kafka, unique_name, cams, max_frames=200)  # 80 per pass
    service = IngestService(settings)
    assert service.run().published == 200
    assert service.camera_status()["loop"].passes >= 3
    frames = by_camera(read_frames(kafka, settings.topics.name("frames"), 200))["loop"]
    assert [meta.frame_seq for meta, _ in frames] == list(range(200))


def test_truncated_and_corrupt_files_do_not_stop_other_cameras(
    kafka: KafkaSettings, unique_name: str, vtest: Path, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(vtest.read_bytes()[: vtest.stat().st_size * 2 // 5])
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"\x00garbage" * 10_000)
    cams = [
        CameraSpec(camera_id="good", url=str(vtest), fps=5),
        CameraSpec(camera_id="truncated", url=str(truncated)),
        CameraSpec(camera_id="corrupt", url=str(corrupt)),
    ]
    settings = make_settings(kafka, unique_name, cams)
    service = IngestService(settings)
    totals = service.run()
    status = service.camera_status()
    assert status["corrupt"].state == "failed"
    assert "cannot open" in (status["corrupt"].last_error or "")
    assert status["good"].state == "finished"
    assert service.published["good"] == 398
    assert 100 < service.published["truncated"] < VTEST_FRAMES
    assert totals.delivery_errors == 0


def test_missing_file_is_reported_not_raised(
    kafka: KafkaSettings, unique_name: str, tmp_path: Path
) -> None:
    cams = [CameraSpec(camera_id="ghost", url=str(tmp_path / "nope.mp4"))]
    service = IngestService(make_settings(kafka, unique_name, cams))
    assert service.run().published == 0
    assert service.camera_status()["ghost"].state == "failed"


def test_image_folder_source(kafka: KafkaSettings, unique_name: str, tmp_path: Path) -> None:
    import numpy as np

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        (folder / f"{i:03d}.jpg").write_bytes(simplejpeg.encode_jpeg(pixels, 90))
    (folder / "notes.txt").write_text("ignored")
    settings = make_settings(kafka, unique_name, [CameraSpec(camera_id="imgs", url=str(folder))])
    assert IngestService(settings).run().published == 5
    frames = by_camera(read_frames(kafka, settings.topics.name("frames"), 5))["imgs"]
    originals = [(folder / f"{i:03d}.jpg").read_bytes() for i in range(5)]
    assert [msg.value() for _, msg in frames] == originals  # JPEGs pass through untouched
