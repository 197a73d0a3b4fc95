"""Tracker and camera state encode to bytes exactly, and a decoded copy steps identically."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsa.schemas import CameraConfig, Detection, Detections, FrameRef
from vsa.services.tracker.camera import CameraState, process
from vsa.services.tracker.core import (
    FrameDetections,
    StateFormatError,
    TrackerConfig,
    TrackerState,
    TrackOutputs,
    step,
)
from vsa.services.tracker.core.binary import F8, I8, Writer
from vsa.services.tracker.rules import compile_rules

T0 = 1_767_225_600.0


@st.composite
def scenes(draw: st.DrawFn) -> list[tuple[int, float, FrameDetections]]:
    """Frames of a few moving objects with misses, clutter, class flicker, gaps, repeats and
    restarts of the numbering."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    objects = draw(st.integers(0, 6))
    frames = draw(st.integers(1, 40))
    start = rng.uniform(0, 500, (objects, 2))
    velocity = rng.uniform(-80, 80, (objects, 2))
    size = rng.uniform(10, 120, (objects, 2))
    seq, ts, out = 0, T0, []
    for _ in range(frames):
        seq += int(rng.choice([0, 1, 1, 1, 2, 5]))  # 0: a redelivery of the previous frame
        ts += float(rng.choice([0.0, 0.04, 0.1, 0.1, 0.5, 3.0]))
        if rng.random() < 0.05:  # ingest numbered the camera from 0 again, a minute later
            seq, ts = 0, ts + 60.0
        centre = start + velocity * (ts - T0) + rng.normal(0, 2, (objects, 2))
        keep = rng.random(objects) > 0.2
        boxes = np.hstack([centre - size / 2, centre + size / 2])[keep]
        clutter = rng.uniform(0, 400, (int(rng.integers(0, 3)), 4))
        boxes = np.vstack([boxes, np.hstack([clutter[:, :2], clutter[:, :2] + 30])])
        scores = rng.uniform(0.0, 1.0, len(boxes))
        classes = rng.choice([0, 0, 0, 2], len(boxes))
        out.append((seq, ts, FrameDetections(boxes, scores, classes)))
    return out


configs = st.builds(
    TrackerConfig,
    min_hits=st.integers(1, 3),
    max_lost_s=st.sampled_from([0.3, 1.0, 5.0]),
    max_lost_frames=st.sampled_from([None, 2]),
    fuse_score=st.booleans(),
)


def assert_same_outputs(a: TrackOutputs | None, b: TrackOutputs | None) -> None:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, field.name
            assert np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scene=scenes(), config=configs)
def test_tracker_state_round_trips_exactly_and_steps_identically(
    scene: list[tuple[int, float, FrameDetections]], config: TrackerConfig
) -> None:
    state = TrackerState()
    for seq, ts, frame in scene:
        data = state.to_bytes()
        copy = TrackerState.from_bytes(data)
        assert copy.to_bytes() == data
        state, out = step(state, frame, ts, seq, config)
        copy, copy_out = step(copy, frame, ts, seq, config)
        assert copy.to_bytes() == state.to_bytes()
        assert_same_outputs(out, copy_out)


RULES = CameraConfig.from_dict(
    {
        "camera_id": "cam",
        "zones": [{"zone_id": "z", "polygon": [[0.1, 0.1], [0.6, 0.1], [0.6, 0.7], [0.1, 0.7]]}],
        "lines": [{"line_id": "l", "a": [0.3, 0.0], "b": [0.3, 1.0]}],
        "rules": [
            {"kind": "zone_intrusion", "rule_id": "in", "zone_id": "z", "cooldown_s": 0.5},
            {"kind": "loitering", "rule_id": "loiter", "zone_id": "z", "dwell_s": 0.5},
            {"kind": "line_crossing", "rule_id": "cross", "line_id": "l", "cooldown_s": 0},
            {"kind": "crowding", "rule_id": "crowd", "zone_id": "z", "min_count": 2},
        ],
        "keyframe_interval_s": 0.3,
    }
)


def message(seq: int, ts: float, frame: FrameDetections) -> Detections:
    boxes = [
        Detection(
            xyxy=tuple(b), class_id=int(c), class_name="car" if c else "person", score=float(s)
        )
        for b, s, c in zip(frame.xyxy.tolist(), frame.scores, frame.class_ids, strict=True)
    ]
    ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id="cam", frame_seq=seq)
    return Detections(
        camera_id="cam",
        frame_seq=seq,
        frame=ref,
        capture_ts=ts,
        width=640,
        height=480,
        model_id="m",
        boxes=boxes,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scene=scenes())
def test_camera_state_with_rules_round_trips_exactly_and_alerts_identically(
    scene: list[tuple[int, float, FrameDetections]],
) -> None:
    rules = compile_rules(RULES, ["person", "car"])
    state = CameraState()
    for seq, ts, frame in scene:
        if np.any(frame.xyxy[:, :2] > frame.xyxy[:, 2:]):
            continue
        msg = message(seq, ts, frame)
        data = state.to_bytes()
        copy = CameraState.from_bytes(data)
        assert copy.to_bytes() == data
        state, out = process(state, msg, rules)
        copy, copy_out = process(copy, msg, rules)
        assert copy.to_bytes() == state.to_bytes()
        assert (out is None) == (copy_out is None)
        if out is not None and copy_out is not None:
            assert out.tracks == copy_out.tracks
            assert out.alerts == copy_out.alerts
            assert out.keyframe == copy_out.keyframe


def test_bad_bytes_are_refused_clearly() -> None:
    data = CameraState().to_bytes()
    with pytest.raises(StateFormatError, match="magic"):
        CameraState.from_bytes(b"x" + data[1:])
    with pytest.raises(StateFormatError, match="truncated"):
        CameraState.from_bytes(data[:-3])
    with pytest.raises(StateFormatError, match="trailing"):
        CameraState.from_bytes(data + b"\0")
    with pytest.raises(StateFormatError, match="magic"):
        TrackerState.from_bytes(data)


def test_a_version_1_state_is_still_read() -> None:
    """States written before ``seq_start_ts`` (format version 1) are read back, the start unknown;
    the next write is version 3."""
    one = FrameDetections(np.array([[0, 0, 10, 10.0]]), np.array([0.9]), np.array([0]))
    state, _ = step(TrackerState(), one, T0, 7)
    out = Writer()
    out.raw(b"VSATRK\x00\x01")
    out.pack(struct.Struct("<qdqI"), 7, T0, state.next_track_id, len(state))
    out.array(state.floats, F8)
    out.array(state.ints, I8)
    old = TrackerState.from_bytes(out.getvalue())
    assert (old.last_frame_seq, old.last_ts, old.seq_start_ts) == (7, T0, 0.0)
    assert np.array_equal(old.floats, state.floats)
    assert np.array_equal(old.ints, state.ints)
    assert old.to_bytes()[:8] == b"VSATRK\x00\x03"
    assert TrackerState.from_bytes(old.to_bytes()).to_bytes() == old.to_bytes()


def version_2_bytes(state: TrackerState, numbered: dict[int, int]) -> bytes:
    """``state`` as a tracker before issue 14 wrote it: every track numbered, tentative ones
    included (``numbered``: row -> the id it had), rows in id order."""
    ints = state.ints.copy()
    for row, track_id in numbered.items():
        ints[row, 0] = track_id
    order = np.argsort(ints[:, 0], kind="stable")
    out = Writer()
    out.raw(b"VSATRK\x00\x02")
    out.pack(
        struct.Struct("<qddqI"),
        state.last_frame_seq,
        state.last_ts,
        state.seq_start_ts,
        max(state.next_track_id, *numbered.values()) + 1,
        len(state),
    )
    out.array(state.floats[order], F8)
    out.array(ints[order], I8)
    return out.getvalue()


def test_a_version_2_state_loses_its_tentative_ids_and_steps_on() -> None:
    """A running deployment's table holds version 2 states, whose tentative tracks had ids:
    read back, those tracks have none (they are numbered when confirmed, with ids above every
    id given before), the confirmed ones keep theirs, and the next write is version 3."""
    config = TrackerConfig(min_hits=2)
    boxes = [[0, 0, 10, 10.0], [100, 100, 120, 140.0]]
    first = FrameDetections(np.array(boxes[:1]), np.array([0.9]), np.array([0]))
    both = FrameDetections(np.array(boxes), np.array([0.9, 0.9]), np.array([0, 0]))
    state, _ = step(TrackerState(), first, T0, 0, config)
    state, _ = step(state, both, T0 + 0.1, 1, config)  # row 1: tentative, id 2 under version 2
    old = TrackerState.from_bytes(version_2_bytes(state, {1: 2}))
    assert old.track_ids.tolist() == [1]
    assert old.ints[:, 0].tolist() == [1, 0]
    assert old.next_track_id == 3  # id 2 was shown as tentative: never given again
    assert old.to_bytes()[:8] == b"VSATRK\x00\x03"
    assert TrackerState.from_bytes(old.to_bytes()).to_bytes() == old.to_bytes()
    new, out = step(old, both, T0 + 0.2, 2, config)
    assert out is not None
    assert out.new_confirmed_ids.tolist() == [3]
    assert new.track_ids.tolist() == [1, 3]
    # a version 2 state whose tentative row sat between confirmed ones (confirmed at once on
    # the first frame, after it): tentative rows move last, confirmed rows stay in id order
    mixed = version_2_bytes(state, {0: 5, 1: 4})
    read = TrackerState.from_bytes(mixed)
    assert read.ints[:, 0].tolist() == [5, 0]
    assert not read.ints.flags.writeable


def test_states_are_read_only_whether_stepped_or_decoded() -> None:
    one = FrameDetections(np.array([[0, 0, 10, 10.0]]), np.array([0.9]), np.array([0]))
    state, out = step(TrackerState(), one, T0, 0)
    assert out is not None
    copy = TrackerState.from_bytes(state.to_bytes())
    for s in (state, copy):
        assert not s.floats.flags.writeable
        assert not s.ints.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        out.track_ids[0] = 5  # outputs share the state's memory: nobody may change it
    after, out = step(copy, FrameDetections.empty(), T0 + 0.1, 1)
    assert out is not None
    assert after.track_ids.tolist() == [1]
