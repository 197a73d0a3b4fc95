"""Golden files: recorded detection sequences through tracking, rules and keyframes.

On an intended behaviour change: ``python -m vsa.services.tracker.golden --update``, then review
the diff of ``tests/golden/tracker/*.expected.jsonl``.
"""

from __future__ import annotations

import pytest

from vsa.services.tracker import golden, golden_inputs
from vsa.services.tracker.replay import ReplayStats, replay
from vsa.services.tracker.rules import compile_rules, load_camera_configs

UPDATE_HINT = "if intended: python -m vsa.services.tracker.golden --update, then review the diff"


def test_golden_cases_exist() -> None:
    assert golden.case_names() == ["scene", "street", "tud-campus"]


@pytest.mark.parametrize("name", golden.case_names())
def test_replay_matches_the_golden_file(name: str) -> None:
    expected = golden.read_expected(name)
    actual = golden.run_case(name)
    problems = list(golden.differences(expected, actual))
    assert not problems, f"{name}: {len(problems)} differences ({UPDATE_HINT}):\n" + "\n".join(
        problems[:20]
    )


def test_scene_exercises_every_rule_and_the_redelivery() -> None:
    outputs = golden.read_expected("scene")
    kinds = {o["value"]["kind"] for o in outputs if o["topic"] == "alerts"}
    reasons = {o["value"]["reason"] for o in outputs if o["topic"] == "keyframes"}
    assert kinds == {"zone_intrusion", "line_crossing", "loitering", "crowding"}
    assert reasons == {"new_track", "alert", "periodic"}
    messages = golden.read_detections(golden.GOLDEN_DIR / "scene.detections.jsonl")
    config = load_camera_configs(golden.GOLDEN_DIR / "scene.rules.yaml")[0]
    stats = ReplayStats()
    list(replay(messages, {"lab": compile_rules(config, None)}, stats=stats))
    assert stats.skipped == 2
    assert stats.applied == len(messages) - 2


def test_street_exercises_every_kind_of_the_scene_s_complement() -> None:
    """Counting, speed and stationary kinds: a golden file for each, and the parked car the
    detector loses for 2 s alerts once (entry, stationary), not again on its new track."""
    outputs = golden.read_expected("street")
    config = load_camera_configs(golden.GOLDEN_DIR / "street.rules.yaml")[0]
    alerts = [o["value"] for o in outputs if o["topic"] == "alerts"]
    counts = [o["value"] for o in outputs if o["topic"] == "counts"]
    assert {r.kind for r in config.rules} == {
        "stationary",
        "zone_intrusion",
        "loitering",
        "speed",
        "line_count",
        "occupancy",
    }
    assert [(a["rule_id"], a["track_ids"]) for a in alerts] == [
        ("lot-entry", [1]),
        ("too-fast", [4]),
        ("parked", [1]),
    ]
    assert alerts[1]["details"]["unit"] == "m/s"
    parked_tracks = {
        t["track_id"]
        for o in outputs
        if o["topic"] == "tracks"
        for t in o["value"]["tracks"]
        if t["class_name"] == "car" and t["xyxy"][0] > 400 and o["value"]["frame_seq"] > 150
    }
    assert parked_tracks  # the car's new track after the gap...
    assert 1 not in parked_tracks  # ...is not its first one
    assert {(c["kind"], c["period_start_ts"] - golden_inputs.START_TS) for c in counts} == {
        ("line_count", 0.0),
        ("occupancy", 0.0),
        ("line_count", 10.0),
        ("occupancy", 10.0),
    }


def test_replay_without_the_state_codec_gives_the_same_output() -> None:
    messages = golden.read_detections(golden.GOLDEN_DIR / "scene.detections.jsonl")
    rules = {
        "lab": compile_rules(load_camera_configs(golden.GOLDEN_DIR / "scene.rules.yaml")[0], None)
    }
    through = [(t, v.model_dump()) for t, v in replay(messages, rules, through_bytes=True)]
    direct = [(t, v.model_dump()) for t, v in replay(messages, rules, through_bytes=False)]
    assert through == direct


def test_differences_reports_paths() -> None:
    assert list(golden.differences({"a": [1, 2.0]}, {"a": [1, 2.0 + 1e-12]})) == []
    assert list(golden.differences({"a": [1, 2.0]}, {"a": [1, 2.5]})) == [
        ".a[1]: expected 2.0, got 2.5"
    ]
    assert list(golden.differences({"a": 1}, {"b": 1})) == [
        ".a: only in expected",
        ".b: only in actual",
    ]
