"""The counting, speed and stationary rule kinds with literal scenarios (issue 14 point 3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vsa.schemas import CameraConfig, Counts, FrameRef, SchemaError, make_count_id
from vsa.services.tracker.camera import MAGIC_V1, CameraState
from vsa.services.tracker.core.binary import Reader, Writer
from vsa.services.tracker.rules import (
    CameraRules,
    FrameContext,
    RuleState,
    TrackView,
    compile_rules,
    run_rules,
)

W, H = 1000, 500
T0 = 1_767_225_600.0  # a multiple of 60 s: count periods start here
DOOR = [[0.5, 0.2], [0.9, 0.2], [0.9, 0.8], [0.5, 0.8]]  # x 500..900, y 100..400 px
Track = tuple[int, float, float, str]  # id, centre x px, centre y px, class


def camera(rules: list[dict[str, Any]], **extra: Any) -> CameraRules:
    config = CameraConfig.from_dict(
        {
            "camera_id": "cam",
            "zones": [{"zone_id": "door", "polygon": DOOR}],
            "lines": [{"line_id": "gate", "a": [0.3, 0.0], "b": [0.3, 1.0]}],
            "rules": rules,
            **extra,
        }
    )
    return compile_rules(config, ["person", "car"])


def view(*tracks: Track, velocity: tuple[float, float] = (0.0, 0.0), lost: tuple[int, ...] = ()):
    """Tracks as 40x80 boxes; every track moves at ``velocity`` px/s; ids in ``lost`` are lost."""
    ids = np.array([t[0] for t in tracks], np.int64)
    xyxy = np.array([[x - 20, y - 40, x + 20, y + 40] for _, x, y, _ in tracks], float)
    vel = np.tile(np.array(velocity, float), (len(tracks), 1))
    return TrackView(
        track_ids=ids,
        xyxy=xyxy.reshape(-1, 4),
        class_names=tuple(t[3] for t in tracks),
        observed=np.array([t[0] not in lost for t in tracks], bool),
        confirmed=np.ones(len(tracks), bool),
        velocity_px_s=vel.reshape(-1, 2),
        direction_deg=np.zeros(len(tracks)),
    )


def context(seq: int, fps: float = 10.0) -> FrameContext:
    ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id="cam", frame_seq=seq)
    return FrameContext("cam", seq, T0 + seq / fps, W, H, ref)


def play(rules: CameraRules, views: list[TrackView], fps: float = 10.0, first: int = 0):
    """Run the rules on one view per frame; (state, [(seq, alert)], [(seq, counts)])."""
    state, alerts, counts = RuleState(), [], []
    for seq, frame_view in enumerate(views, first):
        out = run_rules(state, rules, frame_view, context(seq, fps))
        state = out.state
        alerts += [(seq, a) for a in out.alerts]
        counts += [(seq, c) for c in out.counts]
    return state, alerts, counts


# -- speed --------------------------------------------------------------------------------------


def test_speed_in_pixels_alerts_once_after_the_minimum_duration_and_rearms_when_slow() -> None:
    rules = camera([{"kind": "speed", "rule_id": "fast", "min_speed": 150, "cooldown_s": 0}])
    fast = [view((1, 100, 250, "car"), velocity=(120.0, 160.0))] * 12  # 200 px/s
    slow = [view((1, 100, 250, "car"), velocity=(100.0, 0.0))] * 3  # below 0.9 x 150
    _, alerts, _ = play(rules, fast + slow + fast)
    assert [seq for seq, _ in alerts] == [5, 20]  # 0.5 s over the threshold, then again
    first = alerts[0][1]
    assert first.kind == "speed"
    assert first.details["speed"] == pytest.approx(200.0)
    assert first.details["unit"] == "px/s"
    # just under the threshold, or only for 0.4 s: nothing
    _, none, _ = play(rules, [view((1, 100, 250, "car"), velocity=(149.0, 0.0))] * 20)
    assert none == []
    _, short, _ = play(rules, fast[:5] + slow)
    assert short == []


def test_speed_in_metres_per_second_with_a_scale_a_zone_and_classes() -> None:
    rules = camera(
        [
            {
                "kind": "speed",
                "rule_id": "speeding",
                "min_speed": 4,
                "unit": "m_s",
                "zone_id": "door",
                "classes": ["car"],
            }
        ],
        calibration={"metres_per_pixel": 0.05},
    )
    tracks = ((1, 700, 250, "car"), (2, 700, 300, "person"), (3, 100, 250, "car"))
    _, alerts, _ = play(rules, [view(*tracks, velocity=(100.0, 0.0))] * 10)  # 5 m/s
    assert [(seq, a.track_ids, a.details["speed"]) for seq, a in alerts] == [(5, [1], 5.0)]
    assert alerts[0][1].details["unit"] == "m/s"
    assert alerts[0][1].details["zone_id"] == "door"


def test_speed_through_a_four_point_homography() -> None:
    """A 20 m x 40 m ground rectangle seen in perspective (its far edge is the narrow top of the
    image quad): the same pixel speed is more metres per second far away than close by."""
    from vsa.schemas.rules.base import RuleFrame
    from vsa.schemas.rules.geometry import anchor_points, apply_homography
    from vsa.schemas.rules.kinds.speed import CompiledSpeed, speeds

    image = [[0.2, 0.2], [0.8, 0.2], [1.0, 1.0], [0.0, 1.0]]
    ground = [[0, 40], [20, 40], [20, 0], [0, 0]]
    rules = camera(
        [{"kind": "speed", "rule_id": "s", "min_speed": 100, "unit": "m_s"}],
        calibration={"image_points": image, "ground_points": ground},
    )
    rule = rules.rules[0]
    assert isinstance(rule, CompiledSpeed)
    assert rule.ground is not None
    mapped = apply_homography(rule.ground, np.array(image, float))
    assert mapped == pytest.approx(np.array(ground, float), abs=1e-9)
    tracks = view((1, 500, 460, "car"), (2, 500, 140, "car"), velocity=(60.0, 0.0))
    frame = RuleFrame(context(0), tracks, anchor_points(tracks.xyxy, W, H, "center"))
    near, far = speeds(rule, frame, np.array([0, 1]))
    # at the bottom edge 1000 px span 20 m (60 px/s = 1.2 m/s); at y = 0.92, 1.25 m/s
    assert near == pytest.approx(1.25, rel=1e-6)
    assert far == pytest.approx(1.875, rel=1e-6)


def test_speed_in_metres_needs_a_calibration_and_calibrations_are_checked() -> None:
    base: dict[str, Any] = {"camera_id": "c", "rules": [], "zones": [], "lines": []}
    rule = {"kind": "speed", "rule_id": "s", "min_speed": 3, "unit": "m_s"}
    with pytest.raises(SchemaError, match=r"rules\[0\]: unit 'm_s' needs the camera's calibration"):
        CameraConfig.from_dict({**base, "rules": [rule]})
    line = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.9, 0.1]]
    bad = {"image_points": line, "ground_points": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    with pytest.raises(SchemaError, match=r"image_points: points .* lie on one line"):
        CameraConfig.from_dict({**base, "calibration": bad})
    with pytest.raises(SchemaError, match="either metres_per_pixel or image_points"):
        CameraConfig.from_dict({**base, "calibration": {}})


# -- stationary ---------------------------------------------------------------------------------


STATIONARY = {"kind": "stationary", "rule_id": "parked", "still_s": 2, "classes": ["car"]}
ENTRY = {"kind": "zone_intrusion", "rule_id": "entry", "zone_id": "door", "cooldown_s": 0}


def test_a_still_object_alerts_once_and_a_new_track_on_it_is_the_same_parked_object() -> None:
    rules = camera(
        [ENTRY, STATIONARY, {**ENTRY, "rule_id": "loiter", "kind": "loitering", "dwell_s": 3}]
    )
    assert rules.rules[0].kind == "stationary"  # stationary rules run first
    arrive = [view((1, 400 + 40 * k, 250, "car")) for k in range(8)]  # drives into the door zone
    parked = [view((1, 700, 250, "car"))] * 25  # still for 2.5 s
    gone = [view()] * 15  # the detector loses it; the track ends
    again = [view((5, 702, 251, "car"))] * 40  # a new track at the same place
    away = [view((5, 700 - 60 * k, 250, "car")) for k in range(1, 8)]  # it drives off...
    back = [view((5, 400 + 60 * k, 250, "car")) for k in range(8)]  # ...and comes back
    _, alerts, _ = play(rules, arrive + parked + gone + again + away + back)
    fired = [(seq, a.rule_id, a.track_ids) for seq, a in alerts]
    assert fired == [
        (3, "entry", [1]),  # entered moving (x = 520)
        (28, "parked", [1]),  # settled at frame 8 (the last move over 0.5 box heights), 2 s on
        # the loitering dwell (3 s) is never reached while parked; track 5 (frame 48) is the
        # same parked car: no entry, no loitering, no second stationary alert, nor when it
        # drives off within the zone (frames 88-90); back into the zone after leaving it:
        (97, "entry", [5]),
    ]
    assert alerts[1][1].details["still_s"] == pytest.approx(2.0)


def test_a_remembered_object_is_forgotten_after_forget_s_and_other_classes_do_not_take_it() -> None:
    rules = camera([{**STATIONARY, "forget_s": 1, "classes": None}, ENTRY])
    parked = [view((1, 700, 250, "car"))] * 25
    gap = [view()] * 15  # 1.5 s > forget_s
    person = [view((2, 700, 250, "person"))] * 3
    _, alerts, _ = play(rules, parked + gap + person)
    assert [(a.rule_id, a.track_ids) for _, a in alerts] == [
        ("entry", [1]),
        ("parked", [1]),
        ("entry", [2]),  # a new arrival: the car is forgotten (and was not a person)
    ]


def test_stationary_can_mark_without_alerting() -> None:
    rules = camera([{**STATIONARY, "alert": False}, ENTRY])
    _, alerts, _ = play(
        rules, [view((1, 700, 250, "car"))] * 30 + [view()] * 5 + [view((2, 700, 250, "car"))] * 5
    )
    assert [(a.rule_id, a.track_ids) for _, a in alerts] == [("entry", [1])]


# -- line counts --------------------------------------------------------------------------------


def test_line_counts_per_direction_per_period() -> None:
    rules = camera(
        [{"kind": "line_count", "rule_id": "gate-count", "line_id": "gate", "interval_s": 5}]
    )
    # the gate is x = 300 px; +1 side is left of a->b (downwards): x < 300 is side +1
    right_to_left = [view((1, 400 - 20 * k, 250, "person")) for k in range(10)]
    left_to_right = [view((2, 200 + 20 * k, 250, "person")) for k in range(10)]
    frames = right_to_left + left_to_right + [view()] * 31
    frames[25:30] = [view((3, 200 + 40 * k, 100, "person")) for k in range(5)]
    _, alerts, counts = play(rules, frames)
    assert alerts == []
    # a_to_b is side -1 to +1: right to left (a->b points down, its right is the image's left)
    assert [(seq, c.period_start_ts - T0, c.values) for seq, c in counts] == [
        (50, 0.0, {"a_to_b": 1, "b_to_a": 2, "total": 3}),  # frame 50 is the first at 5 s
    ]
    closing = counts[0][1]
    assert isinstance(closing, Counts)
    assert closing.kind == "line_count"
    assert closing.target_id == "gate"
    assert closing.period_end_ts == T0 + 5
    assert closing.count_id == make_count_id("cam", "gate-count", T0)


def test_an_idle_period_sends_zero_counts_and_a_gap_skips_periods() -> None:
    rules = camera([{"kind": "line_count", "rule_id": "n", "line_id": "gate", "interval_s": 1}])
    _, _, counts = play(rules, [view()] * 25, fps=10)
    assert [(c.period_start_ts - T0, c.values["total"]) for _, c in counts] == [(0, 0), (1, 0)]
    state = RuleState()
    out = run_rules(state, rules, view(), context(0))
    out = run_rules(out.state, rules, view(), context(100))  # 10 s later
    assert [(c.period_start_ts - T0, c.period_end_ts - T0) for c in out.counts] == [(0, 1)]


# -- occupancy ----------------------------------------------------------------------------------


def test_occupancy_min_max_and_time_weighted_mean_per_period() -> None:
    rules = camera([{"kind": "occupancy", "rule_id": "occ", "zone_id": "door", "interval_s": 2}])
    one = view((1, 700, 250, "person"), (2, 100, 250, "person"))  # one inside
    three = view((1, 700, 250, "person"), (2, 600, 250, "person"), (3, 800, 300, "car"))
    lost = view((1, 700, 250, "person"), (2, 600, 250, "person"), lost=(2,))  # lost counts
    frames = [one] * 10 + [three] * 5 + [lost] * 5 + [one] * 21
    _, _, counts = play(rules, frames)
    assert [(seq, c.period_start_ts - T0) for seq, c in counts] == [(20, 0.0), (40, 2.0)]
    first, second = counts[0][1].values, counts[1][1].values
    # 1 object for 1.0 s, 3 for 0.5 s, 2 for 0.5 s (the last frame's 2 held until 2 s)
    assert first == {
        "min": 1,
        "max": 3,
        "mean": pytest.approx(1.75),
        "frames": 20,
        "observed_s": 2.0,
    }
    # frame 20 came at 2.0 s exactly: nothing of the previous frame's 2 held into the period
    assert second == {"min": 1, "max": 1, "mean": 1.0, "frames": 20, "observed_s": 2.0}


def test_occupancy_carries_the_last_count_across_a_period_end() -> None:
    rules = camera([{"kind": "occupancy", "rule_id": "occ", "zone_id": "door", "interval_s": 2}])
    two = view((1, 700, 250, "person"), (2, 600, 250, "person"))
    one = view((1, 700, 250, "person"))
    state = RuleState()
    for seq, frame_view in ((19, two), (21, one), (41, one)):  # 1.9 s, 2.1 s, 4.1 s
        out = run_rules(state, rules, frame_view, context(seq))
        state = out.state
    (closed,) = out.counts
    assert closed.period_start_ts == T0 + 2
    # 2 objects held from 2.0 to 2.1 s, then 1 until 4.0 s
    assert closed.values["mean"] == pytest.approx((2 * 0.1 + 1 * 1.9) / 2)
    assert (closed.values["min"], closed.values["max"], closed.values["frames"]) == (1, 2, 1)


# -- state --------------------------------------------------------------------------------------


ALL_KINDS = CameraConfig.from_dict(
    {
        "camera_id": "cam",
        "zones": [{"zone_id": "door", "polygon": DOOR}],
        "lines": [{"line_id": "gate", "a": [0.3, 0.0], "b": [0.3, 1.0]}],
        "calibration": {"metres_per_pixel": 0.02},
        "rules": [
            {"kind": "line_count", "rule_id": "count", "line_id": "gate", "interval_s": 1},
            {"kind": "occupancy", "rule_id": "occ", "zone_id": "door", "interval_s": 1},
            {"kind": "speed", "rule_id": "speed", "min_speed": 1, "unit": "m_s"},
            {"kind": "stationary", "rule_id": "still", "still_s": 0.5, "forget_s": 2},
            {"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door", "cooldown_s": 0.5},
            {"kind": "loitering", "rule_id": "loiter", "zone_id": "door", "dwell_s": 0.8},
        ],
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 60))
def test_every_kind_s_state_round_trips_exactly_and_evaluates_identically(
    seed: int, frames: int
) -> None:
    from vsa.services.tracker.rules.state import RuleState as State

    rng = np.random.default_rng(seed)
    rules = compile_rules(ALL_KINDS, ["person", "car"])
    state = State()
    start = rng.uniform(50, 950, (5, 2))
    velocity = rng.choice([0.0, 0.0, 80.0, -120.0], (5, 2))
    alive = rng.random(5) < 0.8
    for seq in range(frames):
        alive ^= rng.random(5) < 0.05  # tracks end and new ones come
        centres = start + velocity * seq / 10
        tracks = [
            (i + 1 + 10 * (seq // 20), *c, "car" if i % 2 else "person")
            for i, c in enumerate(centres.tolist())
            if alive[i]
        ]
        out = Writer()
        state.write(out)
        data = out.getvalue()
        src = Reader(data)
        copy = State.read(src)
        src.done()
        again = Writer()
        copy.write(again)
        assert again.getvalue() == data
        frame_view = view(*tracks, velocity=tuple(velocity[0]))
        a = run_rules(state, rules, frame_view, context(seq))
        b = run_rules(copy, rules, frame_view, context(seq))
        assert a.alerts == b.alerts
        assert a.counts == b.counts
        state = a.state


def test_a_camera_state_of_format_version_1_still_loads() -> None:
    """Camera states written before kinds had columns of their own: tables without widths."""
    import struct

    from vsa.services.tracker.core import TrackerState
    from vsa.services.tracker.core.binary import F8, I8

    out = Writer()
    out.raw(MAGIC_V1)
    TrackerState().write(out)
    out.pack(struct.Struct("<I"), 1)  # one table
    out.text("cross")
    out.pack(struct.Struct("<I"), 1)  # one row: track 7, side -1, episode 2
    out.array(np.array([7]), I8)
    out.array(np.array([[2, -1, 0]]), I8)
    out.array(np.array([[-1.0, T0, 0.25, 0.5]]), F8)
    out.pack(struct.Struct("<?d"), True, T0)
    out.pack(struct.Struct("<I"), 0)
    state = CameraState.from_bytes(out.getvalue())
    table = state.rules.tables["cross"]
    assert table.track_ids.tolist() == [7]
    assert table.ints.tolist() == [[2, -1, 0]]
    assert table.floats.tolist() == [[-1.0, T0, 0.25, 0.5]]
    assert state.last_keyframe_ts == T0
    data = state.to_bytes()
    assert data[:8] == b"VSACAM\x00\x02"
    assert CameraState.from_bytes(data).to_bytes() == data


def test_the_service_handler_produces_the_counts_to_the_counts_topic() -> None:
    """The Kafka-free handler of the service gives the street case's counts, keyed by camera,
    on the counts topic, as the offline replay does."""
    from vsa.runtime.settings import TopicNames
    from vsa.services.tracker.golden import GOLDEN_DIR, read_detections
    from vsa.services.tracker.handler import Record, TrackerHandler
    from vsa.services.tracker.replay import replay
    from vsa.services.tracker.rules import load_camera_configs

    messages = read_detections(GOLDEN_DIR / "street.detections.jsonl")
    (config,) = load_camera_configs(GOLDEN_DIR / "street.rules.yaml")
    rules = compile_rules(config, None)
    handler = TrackerHandler(TopicNames(prefix="t."), lambda camera: rules)
    records = [
        Record(m.camera_id.encode(), m.to_bytes(), "t.detections", 0, i)
        for i, m in enumerate(messages)
    ]
    plan = handler.handle(records, lambda record: None)
    produced = [(o.key, o.value) for o in plan.outputs if o.topic == "t.counts"]
    expected = [v.to_bytes() for t, v in replay(messages, {"street": rules}) if t == "counts"]
    assert [value for _, value in produced] == expected
    assert len(expected) == 4
    assert {key for key, _ in produced} == {b"street"}
