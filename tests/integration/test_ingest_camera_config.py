"""Ingest following the camera-config topic, against the real local Kafka and the sample clip."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vsa.runtime.kafka import Output, Producer
from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import CameraConfig
from vsa.services.ingest.config import IngestSettings
from vsa.services.ingest.service import IngestService

from .test_ingest import by_camera, make_settings, read_frames
from .test_ingest_live import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def follow_settings(kafka: KafkaSettings, unique_name: str) -> IngestSettings:
    return make_settings(kafka, unique_name, [], from_camera_config=True, group_id=unique_name)


def put(kafka: KafkaSettings, settings: IngestSettings, *records: tuple[str, bytes | None]) -> None:
    producer = Producer(kafka, "test-camera-config")
    for camera_id, value in records:
        producer.produce(Output(settings.topics.name("camera_config"), camera_id, value))  # type: ignore[arg-type]
    producer.flush(30)


def config(camera_id: str, clip: Path, fps: float, enabled: bool = True) -> tuple[str, bytes]:
    model = CameraConfig(camera_id=camera_id, source_url=str(clip), fps_target=fps, enabled=enabled)
    return camera_id, model.to_bytes()


@contextmanager
def running(service: IngestService) -> Iterator[IngestService]:
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def active(service: IngestService) -> set[str]:
    assert service.follower is not None
    return {c for c, w in service.follower.fleet.active.items() if w.is_alive()}


def rate(service: IngestService, camera_id: str, window_s: float) -> float:
    before = service.published[camera_id]
    time.sleep(window_s)
    return (service.published[camera_id] - before) / window_s


def test_cameras_start_stop_and_change_with_camera_config(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    settings = follow_settings(kafka, unique_name)
    with running(IngestService(settings)) as service:
        put(kafka, settings, config("north", vtest, 5), config("south", vtest, 5))
        wait_for(lambda: min(service.published[c] for c in ("north", "south")) >= 5, 30, "frames")
        put(kafka, settings, config("north", vtest, 5, enabled=False))
        wait_for(lambda: active(service) == {"south"}, 20, "north to stop")
        stopped_at = service.published["north"]
        assert 3.5 <= rate(service, "south", 4) <= 6.5
        assert service.published["north"] == stopped_at
        south = service.follower.fleet.active["south"]  # type: ignore[union-attr]
        put(kafka, settings, ("south", b'{"camera_id": "south", "fps_target": -1}'))
        # an invalid config is counted and logged; the previous one stays in force
        wait_for(lambda: service.follower.configs.invalid == 1, 20, "the invalid config")  # type: ignore[union-attr]
        assert service.follower.configs.get("south") == CameraConfig(  # type: ignore[union-attr]
            camera_id="south", source_url=str(vtest), fps_target=5
        )
        assert service.follower.fleet.active["south"] is south  # type: ignore[union-attr]
        put(kafka, settings, config("south", vtest, 2))
        # the old camera leaves the fleet a moment before the new one joins it (a CI run read
        # camera_status() in between and got a KeyError): wait for the new one itself
        fleet = service.follower.fleet  # type: ignore[union-attr]
        wait_for(lambda: fleet.active.get("south") not in (None, south), 20, "restart")
        wait_for(lambda: running_state(service, "south") == "running", 20, "south again")
        assert 1.2 <= rate(service, "south", 5) <= 2.8
        put(kafka, settings, ("south", None))
        wait_for(lambda: not active(service), 20, "south to stop after its tombstone")
        totals = dict(service.published)
    frames = by_camera(read_frames(kafka, settings.topics.name("frames"), sum(totals.values())))
    for camera_id, count in totals.items():
        seqs = [meta.frame_seq for meta, _ in frames[camera_id]]
        assert seqs == list(range(count)), f"{camera_id}: frame_seq continues across restarts"


def running_state(service: IngestService, camera_id: str) -> str | None:
    """The camera's state, None while it is not in the service's fleet."""
    status = service.camera_status().get(camera_id)
    return None if status is None else status.state


def one_camera_per_partition(partitions: int) -> list[str]:
    chosen: dict[int, str] = {}
    for n in range(1000):
        chosen.setdefault(partition_for_key(f"cam-{n}", partitions), f"cam-{n}")
    return [chosen[p] for p in range(partitions)]


def test_replicas_share_cameras_without_duplicates(
    kafka: KafkaSettings, unique_name: str, vtest: Path
) -> None:
    settings = follow_settings(kafka, unique_name)
    cameras = one_camera_per_partition(3)
    put(kafka, settings, *(config(c, vtest, 2) for c in cameras))
    first = IngestService(settings)
    with running(first):
        wait_for(lambda: active(first) == set(cameras), 30, "one replica to run every camera")
        second = IngestService(settings)
        with running(second):
            wait_for(lambda: bool(active(second)), 60, "the second replica to get cameras")
            wait_for(lambda: active(first) | active(second) == set(cameras), 30, "all cameras")
            assert not active(first) & active(second)
            moved = active(second)
            stopped = {c: first.published[c] for c in moved}
            wait_for(lambda: min(second.published[c] for c in moved) >= 4, 30, "moved frames")
            assert {c: first.published[c] for c in moved} == stopped
        wait_for(lambda: active(first) == set(cameras), 60, "cameras back on the first replica")
        wait_for(lambda: min(first.published[c] for c in moved) > stopped[min(moved)], 30, "back")
    total = sum(first.published.values()) + sum(second.published.values())
    frames = by_camera(read_frames(kafka, settings.topics.name("frames"), total))
    for camera_id in cameras:
        seqs = [meta.frame_seq for meta, _ in frames[camera_id]]
        assert seqs == list(range(len(seqs))), f"{camera_id}: one replica at a time, no duplicates"
