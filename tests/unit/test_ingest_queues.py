"""Back-pressure: live cameras drop their oldest frame, files wait, cameras are served fairly."""

import threading
import time

from vsa.services.ingest.queues import CameraQueues


def test_live_camera_drops_oldest_when_full() -> None:
    dropped: list[tuple[str, int]] = []
    queues: CameraQueues[int] = CameraQueues(3, on_drop=lambda c, item: dropped.append((c, item)))
    queues.add_camera("live")
    for frame in range(5):
        assert queues.put("live", frame, drop_oldest=True, timeout_s=0.1)
    assert dropped == [("live", 0), ("live", 1)]
    assert queues.dropped("live") == 2
    assert [queues.get(0.1) for _ in range(3)] == [("live", 2), ("live", 3), ("live", 4)]


def test_file_camera_waits_for_room() -> None:
    queues: CameraQueues[int] = CameraQueues(2)
    queues.add_camera("file")
    assert queues.put("file", 0, drop_oldest=False)
    assert queues.put("file", 1, drop_oldest=False)
    assert not queues.put("file", 2, drop_oldest=False, timeout_s=0.05)  # full: waited, gave up
    done = threading.Event()

    def producer() -> None:
        queues.put("file", 2, drop_oldest=False, timeout_s=5)
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.05)
    assert not done.is_set()
    assert queues.get(0.1) == ("file", 0)
    thread.join(timeout=5)
    assert done.is_set()
    assert queues.dropped("file") == 0
    assert [queues.get(0.1) for _ in range(2)] == [("file", 1), ("file", 2)]


def test_round_robin_between_cameras() -> None:
    queues: CameraQueues[int] = CameraQueues(10)
    for camera in ("a", "b"):
        queues.add_camera(camera)
    for i in range(3):
        queues.put("a", i, drop_oldest=False)
    queues.put("b", 100, drop_oldest=False)
    order = [queues.get(0.1) for _ in range(4)]
    assert order == [("a", 0), ("b", 100), ("a", 1), ("a", 2)]
    assert queues.get(0.01) is None


def test_close_wakes_a_blocked_producer() -> None:
    queues: CameraQueues[int] = CameraQueues(1)
    queues.add_camera("file")
    queues.put("file", 0, drop_oldest=False)
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(queues.put("file", 1, drop_oldest=False))
    )
    thread.start()
    time.sleep(0.05)
    queues.close("file")
    thread.join(timeout=2)
    assert result == [False]


def test_a_restarted_camera_reopens_its_queue_behind_what_is_left() -> None:
    queues: CameraQueues[int] = CameraQueues(4)
    queues.add_camera("cam")
    assert queues.put("cam", 0, drop_oldest=False)
    queues.close("cam")
    assert not queues.put("cam", 1, drop_oldest=False)
    queues.add_camera("cam")  # the camera's new reader
    assert queues.put("cam", 1, drop_oldest=False)
    assert (queues.pending("cam"), queues.pending("other")) == (2, 0)
    assert [queues.get(0.1) for _ in range(2)] == [("cam", 0), ("cam", 1)]
