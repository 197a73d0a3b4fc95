"""The demo's per-camera view: tallies, the sliding window, the rendered tables, record counting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vsa.demo import camera_tally
from vsa.demo_cameras import (
    CameraCounter,
    Tally,
    detections_tally,
    render_live,
    render_totals,
    sum_tallies,
    top_classes,
)
from vsa.progress import format_table
from vsa.schemas import Detection, Detections, FrameRef


class Clock:
    """A settable monotonic clock, seconds."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def objects(**counts: int) -> Tally:
    """One detections message with ``counts`` boxes per class."""
    return detections_tally(name for name, n in counts.items() for _ in range(n))


def test_detections_tally_counts_boxes_per_class() -> None:
    tally = detections_tally(["person", "car", "person"])
    assert tally == Tally(detections=1, objects=3, classes={"person": 2, "car": 1})
    assert detections_tally([]) == Tally(detections=1)


def test_tallies_add_field_by_field_and_merge_classes() -> None:
    total = Tally(frames=2, tracks=1) + objects(person=2) + objects(person=1, dog=1)
    assert total == Tally(
        frames=2, detections=2, objects=4, tracks=1, classes={"person": 3, "dog": 1}
    )


def test_sum_tallies_per_camera() -> None:
    sums = sum_tallies(
        [("a", Tally(frames=1)), ("b", Tally(frames=1)), ("a", Tally(frames=1, alerts=1))]
    )
    assert sums == {"a": Tally(frames=2, alerts=1), "b": Tally(frames=1)}


def test_counter_window_forgets_old_tallies_but_totals_keep_them() -> None:
    clock = Clock()
    counter = CameraCounter(window_s=5.0, clock=clock)
    counter.add("cam-0", Tally(frames=1))
    clock.now += 3
    counter.add("cam-0", objects(person=2))
    counter.add("cam-1", Tally(frames=1))
    clock.now += 3  # the first frame is now 6 s old
    window, span_s = counter.window()
    assert span_s == 5.0
    assert window == {"cam-0": objects(person=2), "cam-1": Tally(frames=1)}
    assert counter.totals() == {
        "cam-0": Tally(frames=1) + objects(person=2),
        "cam-1": Tally(frames=1),
    }
    clock.now += 10
    assert counter.window() == ({}, 5.0)
    assert counter.elapsed_s() == 16.0


def test_counter_span_grows_with_the_run_from_one_second() -> None:
    clock = Clock()
    counter = CameraCounter(window_s=5.0, clock=clock)
    clock.now += 0.2
    assert counter.window()[1] == 1.0  # a first frame 0.2 s in is not 5 frames/s
    clock.now += 2.3
    assert counter.window()[1] == 2.5
    clock.now += 60
    assert counter.window()[1] == 5.0


def test_counter_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError, match="window_s"):
        CameraCounter(window_s=0)


def test_top_classes_most_first_ties_by_name_at_most_three() -> None:
    classes = {"car": 2, "person": 21, "bicycle": 2, "dog": 1}
    assert top_classes(classes, 5.0) == "person 4.2/s, bicycle 0.4/s, car 0.4/s"
    assert top_classes(classes) == "person 21, bicycle 2, car 2"
    assert top_classes({}, 5.0) == "-"
    assert top_classes({}) == "-"


def test_render_live_rates_per_camera() -> None:
    window = {
        "cam-0": Tally(frames=15, tracks=14) + objects(person=21, car=2),
        "cam-2": Tally(frames=5),
    }
    totals = {"cam-0": Tally(alerts=3), "cam-9": Tally(frames=1)}
    lines = render_live(["cam-0", "cam-1", "cam-2"], window, 5.0, totals)
    assert lines == [
        "per camera (rates over the last 5 s; alerts since start)",
        "camera  frames/s  detections/s  objects/s  tracks/s  alerts  top classes (objects/s)",
        "------  --------  ------------  ---------  --------  ------  -----------------------",
        "cam-0        3.0           0.2        4.6       2.8       3  person 4.2/s, car 0.4/s",
        "cam-1        0.0           0.0        0.0       0.0       0  -",
        "cam-2        1.0           0.0        0.0       0.0       0  -",
        "cam-9        0.0           0.0        0.0       0.0       0  -",
    ]


def test_render_live_refuses_a_zero_span() -> None:
    with pytest.raises(ValueError, match="span_s"):
        render_live(["cam-0"], {}, 0.0, {})


def test_render_totals_whole_run() -> None:
    totals = {
        "cam-1": Tally(frames=270, tracks=268, alerts=4)
        + objects(person=1234, car=12, handbag=3, dog=1),
        "cam-0": Tally(frames=269),
    }
    assert render_totals(["cam-0", "cam-1"], totals, 89.6) == [
        "per camera, whole run (90 s)",
        "camera  frames  detections  objects  tracks  alerts  top classes",
        "------  ------  ----------  -------  ------  ------  ------------------------------",
        "cam-0      269           0        0       0       0  -",
        "cam-1      270           1     1250     268       4  person 1234, car 12, handbag 3",
    ]


def test_format_table_aligns_text_left_and_numbers_right() -> None:
    lines = format_table(("name", "n", "note"), [("a", 10, "x"), ("bb", 2, "long")], left=(0, 2))
    assert lines == ["name   n  note", "----  --  ----", "a     10  x", "bb     2  long"]


@dataclass
class Record:
    """The two things :func:`camera_tally` reads of a confluent-kafka message."""

    payload: bytes | None
    camera: bytes | None

    def key(self) -> bytes | None:
        return self.camera

    def value(self) -> bytes | None:
        return self.payload


def detections_message(camera: str, classes: list[str]) -> bytes:
    ref = FrameRef(topic="demo.frames", partition=2, offset=7, camera_id=camera, frame_seq=3)
    return Detections(
        camera_id=camera,
        frame_seq=3,
        frame=ref,
        capture_ts=1_767_225_600.0,
        width=768,
        height=576,
        model_id="test",
        boxes=[
            Detection(xyxy=(10, 20, 50, 120), class_id=i, class_name=name, score=0.8)
            for i, name in enumerate(classes)
        ],
    ).to_bytes()


def test_camera_tally_decodes_detections_for_their_classes() -> None:
    record = Record(detections_message("cam-2", ["person", "person", "car"]), b"cam-2")
    assert camera_tally("detections", record) == ("cam-2", objects(person=2, car=1))


def test_camera_tally_counts_other_topics_by_key_and_bad_detections_without_objects() -> None:
    jpeg = Record(b"\xff\xd8 not decoded", b"cam-1")
    assert camera_tally("frames", jpeg) == ("cam-1", Tally(frames=1))
    assert camera_tally("alerts", Record(b"{}", b"cam-0")) == ("cam-0", Tally(alerts=1))
    broken = Record(b"{not json", b"cam-1")
    assert camera_tally("detections", broken) == ("cam-1", Tally(detections=1))
