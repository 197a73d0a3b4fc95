"""Golden files: recorded detection sequences through tracking, rules and keyframes.

On an intended behaviour change: ``python -m vsa.services.tracker.golden --update``, then review
the diff of ``tests/golden/tracker/*.expected.jsonl``.
"""

from __future__ import annotations

import pytest

from vsa.services.tracker import golden
from vsa.services.tracker.replay import ReplayStats, replay
from vsa.services.tracker.rules import compile_rules, load_camera_configs

UPDATE_HINT = "if intended: python -m vsa.services.tracker.golden --update, then review the diff"


def test_golden_cases_exist() -> None:
    assert golden.case_names() == ["scene", "tud-campus"]


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
