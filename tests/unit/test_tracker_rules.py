"""Alert rules with literal scenarios: zones, lines, loitering, crowding, cooldowns, ids, config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vsa.schemas import Alert, CameraConfig, FrameRef, SchemaError, make_alert_id
from vsa.services.tracker.rules import (
    CameraRules,
    FrameContext,
    RuleConfigError,
    RuleState,
    TrackView,
    compile_rules,
    evaluate,
    load_camera_configs,
)

W, H = 1000, 500
T0 = 1_767_225_600.0
DOOR = [[0.5, 0.2], [0.9, 0.2], [0.9, 0.8], [0.5, 0.8]]  # x 500..900, y 100..400 px


def camera(rules: list[dict[str, Any]], **extra: Any) -> CameraRules:
    config = CameraConfig.from_dict(
        {
            "camera_id": "cam",
            "zones": [{"zone_id": "door", "polygon": DOOR}],
            "lines": [{"line_id": "gate", "a": [0.3, 0.1], "b": [0.3, 0.9]}],
            "rules": rules,
            **extra,
        }
    )
    return compile_rules(config, ["person", "car", "truck"])


def at(*tracks: tuple[int, float, float, str], lost: tuple[int, ...] = ()) -> TrackView:
    """Tracks (id, centre x px, centre y px, class) as 40×80 boxes; ids in ``lost`` are lost."""
    ids = np.array([t[0] for t in tracks], np.int64)
    xyxy = np.array([[x - 20, y - 40, x + 20, y + 40] for _, x, y, _ in tracks], float).reshape(
        -1, 4
    )
    observed = np.array([t[0] not in lost for t in tracks], bool)
    return TrackView(
        track_ids=ids,
        xyxy=xyxy,
        class_names=tuple(t[3] for t in tracks),
        observed=observed,
        confirmed=np.ones(len(tracks), bool),
        velocity_px_s=np.zeros((len(tracks), 2)),
        direction_deg=np.zeros(len(tracks)),
    )


def frame(seq: int, fps: float = 10.0) -> FrameContext:
    ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id="cam", frame_seq=seq)
    return FrameContext("cam", seq, T0 + seq / fps, W, H, ref)


def play(
    rules: CameraRules, views: list[TrackView], state: RuleState | None = None
) -> tuple[RuleState, list[tuple[int, Alert]]]:
    """Evaluate one view per frame (frame_seq = index); return the state and (seq, alert)s."""
    state = state or RuleState()
    fired = []
    for seq, view in enumerate(views):
        state, alerts = evaluate(state, rules, view, frame(seq))
        fired += [(seq, alert) for alert in alerts]
    return state, fired


# -- zone intrusion ---------------------------------------------------------------------------


def test_intrusion_fires_once_after_the_minimum_dwell() -> None:
    rules = camera(
        [{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door", "min_dwell_s": 0.5}]
    )
    views = [at((1, 300 + 50 * k, 250, "person")) for k in range(5)]  # enters at k = 4 (x 500)
    views += [at((1, 550, 250, "person"))] * 20  # then stays
    _, fired = play(rules, views)
    assert [seq for seq, _ in fired] == [9]  # 0.5 s after entering at frame 4
    alert = fired[0][1]
    assert alert.kind == "zone_intrusion"
    assert alert.track_ids == [1]
    assert alert.class_name == "person"
    assert alert.alert_id == make_alert_id("cam", "in", 1, 0)
    assert alert.details == {"zone_id": "door", "dwell_s": pytest.approx(0.5), "episode": 0}
    assert alert.snapshot.frame.frame_seq == 9
    assert alert.snapshot.xyxy == (530, 210, 570, 290)
    assert alert.ts == pytest.approx(T0 + 0.9)
    assert alert.frame_seq == 9


def test_a_brief_pass_through_the_zone_does_not_fire() -> None:
    rules = camera(
        [{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door", "min_dwell_s": 1}]
    )
    views = [at((1, 450 + 60 * k, 250, "person")) for k in range(10)]  # inside for 0.7 s
    assert play(rules, views)[1] == []


def test_cooldown_suppresses_a_repeat_and_a_later_visit_is_a_new_episode() -> None:
    rules = camera(
        [{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door", "cooldown_s": 3}]
    )
    inside, outside = at((1, 600, 250, "person")), at((1, 300, 250, "person"))
    views = [inside, outside, inside, outside] + [outside] * 30 + [inside]
    _, fired = play(rules, views)
    assert [seq for seq, _ in fired] == [0, 34]  # the re-entry at frame 2 is within 3 s
    assert [a.details["episode"] for _, a in fired] == [0, 1]
    assert fired[0][1].alert_id != fired[1][1].alert_id


def test_a_visit_that_outlasts_the_cooldown_fires_when_it_ends() -> None:
    rules = camera(
        [{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door", "cooldown_s": 1}]
    )
    inside, outside = at((1, 600, 250, "person")), at((1, 300, 250, "person"))
    _, fired = play(rules, [inside, outside] + [inside] * 15)
    assert [seq for seq, _ in fired] == [0, 10]


def test_class_filter_of_the_zone_applies_to_its_rules() -> None:
    config = {"zones": [{"zone_id": "door", "polygon": DOOR, "classes": ["person"]}]}
    rules = camera([{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door"}], **config)
    _, fired = play(rules, [at((1, 600, 250, "car"), (2, 700, 250, "person"))])
    assert [a.track_ids for _, a in fired] == [[2]]
    # a rule's own classes override the zone's
    rules = camera(
        [{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door", "classes": ["car"]}],
        **config,
    )
    _, fired = play(rules, [at((1, 600, 250, "car"), (2, 700, 250, "person"))])
    assert [a.track_ids for _, a in fired] == [[1]]


def test_a_lost_track_keeps_its_dwell_time() -> None:
    rules = camera([{"kind": "loitering", "rule_id": "loiter", "zone_id": "door", "dwell_s": 2}])
    inside = at((1, 600, 250, "person"))
    occluded = at((1, 600, 250, "person"), lost=(1,))
    _, fired = play(rules, [inside] * 10 + [occluded] * 5 + [inside] * 10)
    assert [seq for seq, _ in fired] == [20]
    assert fired[0][1].details["dwell_s"] == pytest.approx(2.0)


def test_rows_of_removed_tracks_are_dropped() -> None:
    rules = camera([{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door"}])
    state, _ = play(rules, [at((1, 600, 250, "person"), (2, 300, 250, "person"))])
    assert state.tables["in"].track_ids.tolist() == [1, 2]
    state, _ = play(rules, [at((2, 300, 250, "person"))], state)
    assert state.tables["in"].track_ids.tolist() == [2]
    state, _ = play(camera([]), [at((2, 300, 250, "person"))], state)
    assert state.tables == {}  # rules removed from the config take their state with them


def test_bottom_center_anchor_tests_the_feet() -> None:
    config = CameraConfig.from_dict(
        {
            "camera_id": "cam",
            "zones": [{"zone_id": "floor", "polygon": [[0, 0.6], [1, 0.6], [1, 1], [0, 1]]}],
            "rules": [{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "floor"}],
        }
    )
    view = at((1, 500, 280, "person"))  # centre y 280 (0.56), bottom y 320 (0.64)
    assert play(compile_rules(config, None, "center"), [view])[1] == []
    assert len(play(compile_rules(config, None, "bottom_center"), [view])[1]) == 1


# -- line crossing ----------------------------------------------------------------------------


def walk(track: int, xs: list[float], y: float = 250) -> list[TrackView]:
    return [at((track, x, y, "person")) for x in xs]


def test_line_crossing_in_both_directions() -> None:
    # the line runs down the image at x = 300 px: a -> b points down, so its right-hand side
    # on screen is x < 300 (+1) and moving east (x increasing) is 'b_to_a'
    rules = camera(
        [{"kind": "line_crossing", "rule_id": "cross", "line_id": "gate", "cooldown_s": 0}]
    )
    _, fired = play(rules, walk(1, [250, 280, 320, 350, 320, 280, 250]))
    assert [(seq, a.details["direction"]) for seq, a in fired] == [(2, "b_to_a"), (5, "a_to_b")]
    assert [a.details["episode"] for _, a in fired] == [0, 1]


@pytest.mark.parametrize(
    ("direction", "expected"), [("a_to_b", [5]), ("b_to_a", [2]), ("both", [2, 5])]
)
def test_line_crossing_direction_filter(direction: str, expected: list[int]) -> None:
    rules = camera(
        [
            {
                "kind": "line_crossing",
                "rule_id": "cross",
                "line_id": "gate",
                "direction": direction,
                "cooldown_s": 0,
            }
        ]
    )
    _, fired = play(rules, walk(1, [250, 280, 320, 350, 320, 280, 250]))
    assert [seq for seq, _ in fired] == expected


def test_line_cooldown_suppresses_a_repeat_crossing() -> None:
    rules = camera(
        [{"kind": "line_crossing", "rule_id": "cross", "line_id": "gate", "cooldown_s": 2}]
    )
    xs = [280, 320, 280, 320] + [320] * 20 + [280]
    _, fired = play(rules, walk(1, xs))
    assert [seq for seq, _ in fired] == [1, 24]


def test_passing_beyond_the_end_of_the_line_is_not_a_crossing() -> None:
    rules = camera([{"kind": "line_crossing", "rule_id": "cross", "line_id": "gate"}])
    assert play(rules, walk(1, [250, 350], y=480))[1] == []  # the line ends at y = 450 px
    assert len(play(rules, walk(1, [250, 350], y=440))[1]) == 1


def test_standing_on_the_line_then_stepping_back_is_not_a_crossing() -> None:
    rules = camera([{"kind": "line_crossing", "rule_id": "cross", "line_id": "gate"}])
    assert play(rules, walk(1, [280, 300, 300, 280]))[1] == []
    assert len(play(rules, walk(1, [280, 300, 320]))[1]) == 1


# -- line crossing: hysteresis ----------------------------------------------------------------
# The boxes of ``at`` are 80 px tall, so the default dead band (0.1 box heights) is 8 px either
# side of the line at x = 300 px: x in [292, 308] keeps the track's last side.


def line_rule(**fields: Any) -> CameraRules:
    return camera(
        [
            {
                "kind": "line_crossing",
                "rule_id": "cross",
                "line_id": "gate",
                "cooldown_s": 0,
                **fields,
            }
        ]
    )


def jitter(centre: float, amplitude: float, frames: int) -> list[float]:
    """Deterministic box noise: x = centre + amplitude * (1, -1, 0.5, -0.5, ...)."""
    steps = [1.0, -1.0, 0.5, -0.5, 0.9, -0.8, 0.2, -0.3]
    return [centre + amplitude * steps[k % len(steps)] for k in range(frames)]


def test_jitter_within_the_band_never_fires() -> None:
    xs = [250, 270, 290, *jitter(300, 7, 60), 290, 270]  # stands on the line, then leaves
    assert play(line_rule(), walk(1, xs))[1] == []
    # without the band the same noise fires on every flip (what the dead band is for)
    assert len(play(line_rule(hysteresis_box_heights=0), walk(1, xs))[1]) > 10


def test_a_real_crossing_with_noise_fires_once_when_beyond_the_band() -> None:
    xs = [x + d for x, d in zip(range(250, 355, 5), jitter(0, 4, 21), strict=True)]
    _, fired = play(line_rule(), walk(1, xs))
    first_beyond = next(k for k, x in enumerate(xs) if x > 308)
    assert [(seq, a.details["direction"]) for seq, a in fired] == [(first_beyond, "b_to_a")]
    _, back = play(line_rule(), walk(1, xs + xs[::-1]))
    assert [a.details["direction"] for _, a in back] == ["b_to_a", "a_to_b"]


def test_stopping_inside_the_band_and_turning_back_does_not_fire() -> None:
    for xs in ([250, 280, 296, 305, 307, 305, 296, 280, 250], [350, 320, 304, 293, 304, 350]):
        assert play(line_rule(), walk(1, xs))[1] == []


def test_a_track_first_seen_inside_the_band_has_no_side_yet() -> None:
    assert play(line_rule(), walk(1, [305, 300, 295, 280, 250]))[1] == []
    assert len(play(line_rule(), walk(1, [305, 300, 295, 280, 250, 300, 350]))[1]) == 1


def test_crossing_beyond_the_end_of_the_segment_does_not_fire() -> None:
    # the segment ends at y = 450 px; the path from the last point on one side to the first on
    # the other must pass through the segment, not the line's extension
    going_round = [at((1, 280, 440, "person")), at((1, 300, 470, "person"))]
    going_round += [at((1, 320, 480, "person"))]
    assert play(line_rule(), going_round)[1] == []
    through = [at((1, 280, 430, "person")), at((1, 300, 440, "person"))]
    through += [at((1, 320, 445, "person"))]
    assert len(play(line_rule(), through)[1]) == 1


def test_band_is_configured_per_line_and_per_rule() -> None:
    def rules(line: dict[str, Any], rule: dict[str, Any]) -> CameraRules:
        config = CameraConfig.from_dict(
            {
                "camera_id": "cam",
                "lines": [{"line_id": "gate", "a": [0.3, 0.1], "b": [0.3, 0.9], **line}],
                "rules": [{"kind": "line_crossing", "rule_id": "cross", "line_id": "gate", **rule}],
            }
        )
        return compile_rules(config, None)

    assert rules({}, {}).rules[0].hysteresis_box_heights == 0.1
    assert rules({"hysteresis_box_heights": 0.3}, {}).rules[0].hysteresis_box_heights == 0.3
    override = rules({"hysteresis_box_heights": 0.3}, {"hysteresis_box_heights": 0})
    assert override.rules[0].hysteresis_box_heights == 0
    xs = [280, 320, 350]  # 20 px past the line: beyond 0.1 (8 px), within 0.3 (24 px)
    assert len(play(rules({}, {}), walk(1, xs))[1]) == 1
    assert play(rules({"hysteresis_box_heights": 0.3}, {}), walk(1, xs[:2]))[1] == []
    with pytest.raises(SchemaError, match=r"lines\[0\]\.hysteresis_box_heights"):
        rules({"hysteresis_box_heights": -0.1}, {})


def test_band_is_in_pixels_of_the_box_height_across_a_non_square_frame() -> None:
    from vsa.services.tracker.rules.geometry import side_beyond_band

    # the diagonal (0, 0)-(1, 1) of a 1000 x 500 frame runs at 26.57 degrees: a point 10 px
    # below it vertically is 10 * cos(26.57 deg) = 8.94 px from it
    a, b = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    points = np.array([[0.5, 0.52], [0.5, 0.52], [0.5, 0.48], [0.5, 0.5]])
    band = np.array([8.9, 9.0, 8.9, 0.0])
    assert side_beyond_band(points, a, b, 1000, 500, band).tolist() == [1, 0, -1, 0]


def test_rule_state_round_trip_keeps_the_side_across_the_band() -> None:
    from vsa.services.tracker.core.binary import Reader, Writer

    rules = line_rule()
    state, fired = play(rules, walk(1, [250, 280, 298, 305]))  # side +1, then inside the band
    assert fired == []
    out = Writer()
    state.write(out)
    decoded = RuleState.read(Reader(out.getvalue()))
    again = Writer()
    decoded.write(again)
    assert again.getvalue() == out.getvalue()
    rest = walk(1, [305, 303, 320, 350])
    assert [seq for seq, _ in play(rules, rest, decoded)[1]] == [2]
    assert [seq for seq, _ in play(rules, rest, state)[1]] == [2]


#: A rule state written by the version before hysteresis (same layout: its rows hold the last
#: side and where it was seen). Rule 'cross': track 1 last seen at x = 302 px (side -1, inside
#: today's band), track 7 at x = 250 px (side +1) with one alert so far, cooldown to T0 + 1 s.
OLD_RULE_STATE = bytes.fromhex(
    "010000000500000063726f737302000000000000000000000100000000000000"
    "07000000000000000000000000000000ffffffffffffffff0000000000000000"
    "010000000000000001000000000000000000000000000000000000000000f0bf"
    "00000000000000008716d9cef753d33f000000000000e03f000000000000f0bf"
    "000040406e55da41000000000000d03f000000000000e03f"
)


def test_a_rule_state_of_the_previous_version_still_loads() -> None:
    from vsa.services.tracker.core.binary import Reader, Writer

    src = Reader(OLD_RULE_STATE)
    state = RuleState.read(src, version=1)  # camera state version 1: tables without widths
    src.done()
    out = Writer()
    state.write(out)  # written back in today's format (version 2), read back the same
    again = Reader(out.getvalue())
    copy = RuleState.read(again)
    again.done()
    for rule_id, table in state.tables.items():
        for name in ("track_ids", "ints", "floats"):
            assert np.array_equal(getattr(copy.tables[rule_id], name), getattr(table, name))
    table = state.tables["cross"]
    assert table.track_ids.tolist() == [1, 7]
    # the stored side counts as the last side beyond the band: noise around the line does not
    # fire, walking off to the other side fires once; track 7 crosses after its stored cooldown
    # (T0 + 1 s, frame 10) and goes on with episode 1
    views = [at((1, x, 250, "person"), (7, 250, 250, "person")) for x in (298, 303, 297)]
    views += [at((1, 280, 250, "person"), (7, 250, 250, "person"))] * 9
    views += [at((1, 280, 250, "person"), (7, 350, 250, "person"))] * 3
    _, fired = play(line_rule(), views, state)
    assert [(seq, a.track_ids, a.details["direction"]) for seq, a in fired] == [
        (3, [1], "a_to_b"),
        (12, [7], "b_to_a"),
    ]
    assert fired[1][1].alert_id == make_alert_id("cam", "cross", 7, 1)


# -- loitering and crowding -------------------------------------------------------------------


def test_loitering_after_dwell_seconds() -> None:
    rules = camera([{"kind": "loitering", "rule_id": "loiter", "zone_id": "door", "dwell_s": 3}])
    _, fired = play(rules, [at((1, 600, 250, "person"))] * 40)
    assert [seq for seq, _ in fired] == [30]
    assert fired[0][1].kind == "loitering"


def test_crowding_threshold_one_alert_per_crowd_and_cooldown() -> None:
    rules = camera(
        [
            {
                "kind": "crowding",
                "rule_id": "crowd",
                "zone_id": "door",
                "min_count": 3,
                "cooldown_s": 2,
                "classes": ["person"],
            }
        ]
    )
    two = at((1, 550, 200, "person"), (2, 650, 200, "person"), (3, 750, 200, "car"))
    three = at(
        (1, 550, 200, "person"),
        (2, 650, 200, "person"),
        (4, 800, 300, "person"),
        (3, 750, 200, "car"),
    )
    views = [two] * 3 + [three] * 5 + [two] + [three] * 5 + [two] * 20 + [three]
    _, fired = play(rules, views)
    assert [seq for seq, _ in fired] == [3, 34]  # the crowd re-forming at 9 is within 2 s
    first = fired[0][1]
    assert first.track_ids == [1, 2, 4]
    assert first.details["count"] == 3
    assert first.alert_id == make_alert_id("cam", "crowd", 0, 0)
    assert fired[1][1].alert_id == make_alert_id("cam", "crowd", 0, 1)
    assert first.snapshot.xyxy == (530, 160, 820, 340)  # around every counted track


def test_crowding_counts_lost_tracks() -> None:
    rules = camera([{"kind": "crowding", "rule_id": "crowd", "zone_id": "door", "min_count": 2}])
    views = [at((1, 550, 200, "person"), (2, 650, 200, "person"))] * 2
    views += [at((1, 550, 200, "person"), (2, 650, 200, "person"), lost=(2,))]
    views += [at((1, 550, 200, "person"), (2, 650, 200, "person"))] * 2
    assert [seq for seq, _ in play(rules, views)[1]] == [0]


def test_replaying_from_the_same_state_gives_the_same_alert_ids() -> None:
    rules = camera(
        [
            {"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door", "cooldown_s": 0},
            {"kind": "line_crossing", "rule_id": "cross", "line_id": "gate", "cooldown_s": 0},
        ]
    )
    views = walk(1, [250, 350, 450, 550, 450, 550, 350, 250])
    state, first = play(rules, views[:3])
    _, rest = play(rules, views[3:], state)
    _, again = play(rules, views[3:], state)
    assert [a.alert_id for _, a in rest] == [a.alert_id for _, a in again]
    ids = [a.alert_id for _, a in first + rest]
    assert len(ids) == len(set(ids)) == 4  # two crossings, two entries


# -- configuration ----------------------------------------------------------------------------


def test_unknown_class_is_refused_naming_camera_and_field() -> None:
    config = CameraConfig.from_dict(
        {
            "camera_id": "gate-cam",
            "zones": [{"zone_id": "door", "polygon": DOOR}],
            "rules": [
                {
                    "kind": "zone_intrusion",
                    "rule_id": "in",
                    "zone_id": "door",
                    "classes": ["person", "persn"],
                }
            ],
        }
    )
    with pytest.raises(RuleConfigError) as info:
        compile_rules(config, ["person", "car"])
    assert (
        str(info.value)
        == "camera 'gate-cam': rules[0].classes[1]: unknown class 'persn' (did you mean 'person'?)"
    )
    assert info.value.camera_id == "gate-cam"
    assert info.value.field == "rules[0].classes[1]"
    zone_config = CameraConfig.from_dict(
        {"camera_id": "c2", "zones": [{"zone_id": "door", "polygon": DOOR, "classes": ["zebra"]}]}
    )
    with pytest.raises(
        RuleConfigError, match=r"camera 'c2': zones\[0\]\.classes\[0\]: unknown class 'zebra'"
    ):
        compile_rules(zone_config, ["person"])
    compile_rules(zone_config, None)  # no class list: not checked


@pytest.mark.parametrize(
    ("rule", "polygon", "message"),
    [
        (
            {"kind": "zone_intrusion", "rule_id": "r", "zone_id": "z"},
            [[0, 0], [1, 1], [1, 0], [0, 1]],
            r"camera 'cam7': zones\[0\]\.polygon: self-intersecting",
        ),
        (
            {"kind": "loitering", "rule_id": "r", "zone_id": "z", "dwell_s": -5},
            DOOR,
            r"camera 'cam7': rules\[0\]\.loitering\.dwell_s: Input should be greater than 0",
        ),
        (
            {"kind": "zone_intrusion", "rule_id": "r", "zone_id": "z", "min_dwell_s": -1},
            DOOR,
            r"camera 'cam7': rules\[0\]\.zone_intrusion\.min_dwell_s",
        ),
        (
            {"kind": "zone_intrusion", "rule_id": "r", "zone_id": "z", "dwel": 1},
            DOOR,
            r"camera 'cam7': rules\[0\]\.zone_intrusion\.dwel: Extra inputs are not permitted",
        ),
        (
            {"kind": "zone_intrusion", "rule_id": "r", "zone_id": "nowhere"},
            DOOR,
            r"camera 'cam7': rules\[0\]\.zone_id: unknown zone 'nowhere'",
        ),
    ],
)
def test_invalid_rules_in_yaml_are_refused_naming_file_camera_and_field(
    tmp_path: Path, rule: dict[str, Any], polygon: list[list[float]], message: str
) -> None:
    import yaml

    path = tmp_path / "rules.yaml"
    path.write_text(
        yaml.safe_dump(
            {"camera_id": "cam7", "zones": [{"zone_id": "z", "polygon": polygon}], "rules": [rule]}
        )
    )
    with pytest.raises(RuleConfigError, match=message) as info:
        load_camera_configs(path)
    assert str(info.value).startswith(f"{path}: ")
    assert isinstance(info.value.__cause__, SchemaError)


def test_yaml_with_several_cameras(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("cameras:\n  - camera_id: a\n  - camera_id: b\n    keyframe_interval_s: 5\n")
    assert [c.camera_id for c in load_camera_configs(path)] == ["a", "b"]
    path.write_text("- 1\n- 2\n")
    with pytest.raises(RuleConfigError, match="expected a camera config"):
        load_camera_configs(path)


# -- geometry ---------------------------------------------------------------------------------


def test_points_in_a_concave_polygon_with_horizontal_edges() -> None:
    from vsa.services.tracker.rules.geometry import points_in_polygon, polygon_edges

    # a U shape: the notch (0.4..0.6, 0.2..0.8) is outside
    u_shape = np.array(
        [
            [0.2, 0.2],
            [0.4, 0.2],
            [0.4, 0.8],
            [0.6, 0.8],
            [0.6, 0.2],
            [0.8, 0.2],
            [0.8, 0.9],
            [0.2, 0.9],
        ]
    )
    points = np.array([[0.3, 0.5], [0.5, 0.5], [0.7, 0.5], [0.5, 0.85], [0.1, 0.5], [0.5, 0.95]])
    inside = points_in_polygon(points, polygon_edges(u_shape))
    assert inside.tolist() == [True, False, True, True, False, False]
    assert points_in_polygon(np.zeros((0, 2)), polygon_edges(u_shape)).tolist() == []
