"""Ingest following camera-config without a broker: which cameras to run, and how the running
set is moved towards it (start, stop, restart with frame_seq continued)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vsa.runtime.camera_configs import CameraConfigs
from vsa.runtime.metrics import ServiceMetrics
from vsa.runtime.settings import ConfigError, KafkaSettings, load_settings
from vsa.schemas import CameraConfig
from vsa.services.ingest.camera import CameraWorker, FirstSeq, PendingFrame
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.fleet import CameraFleet
from vsa.services.ingest.follow import Plan, camera_spec, desired_cameras, plan
from vsa.services.ingest.queues import CameraQueues


def spec(camera_id: str, url: str = "rtsp://cam/1", fps: float | None = None) -> CameraSpec:
    return CameraSpec(camera_id=camera_id, url=url, fps=fps)


def cfg(camera_id: str, **fields: object) -> CameraConfig:
    return CameraConfig.model_validate({"camera_id": camera_id, **fields})


def test_plan_starts_stops_and_restarts_only_what_changed() -> None:
    running = {"a": spec("a"), "b": spec("b"), "c": spec("c", fps=5)}
    desired = {"a": spec("a"), "c": spec("c", fps=2), "d": spec("d")}
    assert plan(desired, running) == Plan(start=("d",), stop=("b",), restart=("c",))
    assert plan({"c": spec("c", url="rtsp://cam/2")}, {"c": spec("c")}).restart == ("c",)
    assert not plan(running, dict(running))


def test_desired_cameras_are_the_enabled_ones_with_a_source(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    configs = {
        "live": cfg("live", source_url="rtsp://host/s", fps_target=5),
        "file": cfg("file", source_url=str(clip)),
        "off": cfg("off", source_url="rtsp://host/s", enabled=False),
        "rules-only": cfg("rules-only"),
    }
    desired = desired_cameras(configs)
    assert set(desired) == {"live", "file"}
    assert desired["live"] == spec("live", "rtsp://host/s", fps=5)
    assert (desired["file"].loop, desired["file"].realtime, desired["file"].fps) == (
        True,
        True,
        None,
    )


def test_a_config_ingest_cannot_use_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    config = cfg("bad", source_url="rtsp://host/s").model_copy(update={"camera_id": "a b"})
    assert camera_spec(config) is None
    assert [r.getMessage() for r in caplog.records] == ["camera_config_unusable"]


def test_snapshot_hides_partitions_still_loading_and_revoke_drops_their_cameras() -> None:
    configs = CameraConfigs(KafkaSettings(), "camera-config", "test", group_id="g")
    configs.follower.loading({0, 1})
    configs.apply(b"a", cfg("a").to_bytes(), partition=0)
    configs.apply(b"b", cfg("b").to_bytes(), partition=1)
    configs.follower.loaded(0)
    assert set(configs.snapshot()) == {"a"}
    assert not configs.follower.synced.is_set()  # partition 1 is still being read
    configs.apply(b"a", b'{"camera_id": "a", "fps_target": 0}', partition=0)
    assert configs.invalid == 1
    assert configs.snapshot()["a"] == cfg("a")
    configs.follower.loaded(1)
    assert configs.follower.synced.is_set()
    assert configs.drop_partitions({1}) == {"b"}
    configs.apply(b"a", None, partition=0)
    assert configs.snapshot() == {}
    assert configs.get("b") is None


class HeldWorker(CameraWorker):
    """A reader that reads nothing and, once stopped, ends only when released."""

    release = threading.Event()

    def run(self) -> None:
        self.stop_event.wait()
        self.release.wait(10)


FIRST_SEQS: list[FirstSeq] = []


@pytest.fixture
def fleet() -> Iterator[CameraFleet]:
    settings = load_settings(IngestSettings, None, metrics_port=0)
    queues: CameraQueues[PendingFrame] = CameraQueues(2)
    encoders = ThreadPoolExecutor(1)
    metrics = ServiceMetrics("ingest")
    HeldWorker.release = threading.Event()
    FIRST_SEQS.clear()

    def make(camera: CameraSpec, first_seq: FirstSeq) -> CameraWorker:
        FIRST_SEQS.append(first_seq)
        return HeldWorker(camera, settings, queues, encoders, metrics, first_seq)

    fleet = CameraFleet(make, resume=lambda camera_id: 100)
    yield fleet
    HeldWorker.release.set()
    for worker in fleet.workers():
        worker.stop()
        worker.join(5)
    encoders.shutdown()


def test_fleet_restarts_a_changed_camera_after_the_old_reader_ends(fleet: CameraFleet) -> None:
    fleet.apply({"a": spec("a"), "b": spec("b")})
    a, b = fleet.active["a"], fleet.active["b"]
    a.next_seq = 42  # what the first reader got to
    fleet.apply({"a": spec("a", fps=2), "b": spec("b")})
    assert "a" not in fleet.active
    assert fleet.retiring["a"] is a
    assert a.stop_event.is_set()
    fleet.apply({"a": spec("a", fps=2), "b": spec("b")})
    assert "a" not in fleet.active, "waits for the old reader: one reader per camera"
    HeldWorker.release.set()
    a.join(5)
    fleet.apply({"a": spec("a", fps=2), "b": spec("b")})
    assert fleet.active["a"].spec.fps == 2
    assert fleet.active["a"].next_seq == 42
    assert fleet.active["b"] is b
    assert not b.stop_event.is_set()


def test_fleet_stops_removed_cameras_and_forgets_them(fleet: CameraFleet) -> None:
    HeldWorker.release.set()
    fleet.apply({"a": spec("a")})
    fleet.apply({})
    assert not fleet.active
    fleet.retiring["a"].join(5)
    assert fleet.stopped({"a"})
    fleet.forget({"a"})
    fleet.apply({"a": spec("a")})
    assert [callable(s) for s in FIRST_SEQS] == [True, True], "frame_seq looked up again"
    assert [s() for s in FIRST_SEQS if callable(s)] == [100, 100]


def test_settings_refuse_cameras_together_with_camera_config() -> None:
    with pytest.raises(ConfigError, match="from_camera_config"):
        load_settings(IngestSettings, None, from_camera_config=True, cameras=(spec("a"),))
