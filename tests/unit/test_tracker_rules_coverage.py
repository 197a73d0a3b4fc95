"""``vsa track`` says when rules and detections name different cameras (issue 15, point 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsa.cli import main
from vsa.services.tracker import golden
from vsa.services.tracker.replay import rules_coverage_warnings

SCENE = golden.GOLDEN_DIR / "scene.detections.jsonl"
RULES = golden.GOLDEN_DIR / "scene.rules.yaml"


def test_no_warning_when_rules_and_cameras_match() -> None:
    assert rules_coverage_warnings(["cam-0"], ["cam-0"]) == []


def test_no_warning_without_rules() -> None:
    assert rules_coverage_warnings([], ["vtest"]) == []


def test_rules_for_unseen_cameras_and_cameras_without_rules() -> None:
    warnings = rules_coverage_warnings(["cam-0", "cam-1"], ["vtest", "cam-1"])
    assert len(warnings) == 2
    assert "event=rules_for_unseen_cameras cameras=cam-0 " in warnings[0]
    assert "seen=cam-1,vtest" in warnings[0]
    assert "event=cameras_without_rules cameras=vtest " in warnings[1]
    assert all("\n" not in w for w in warnings)


def test_track_warns_when_the_camera_ids_do_not_meet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed = tmp_path / "vtest.jsonl"
    lines = []
    for line in SCENE.read_text().splitlines():
        message = json.loads(line)
        message["camera_id"] = message["frame"]["camera_id"] = "vtest"
        lines.append(json.dumps(message))
    renamed.write_text("\n".join(lines) + "\n")
    assert main(["track", str(renamed), "--rules", str(RULES), "--only", "alerts"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "event=rules_for_unseen_cameras cameras=lab" in err
    assert "event=cameras_without_rules cameras=vtest" in err


def test_track_is_quiet_when_the_camera_ids_meet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["track", str(SCENE), "--rules", str(RULES), "--only", "alerts"]) == 0
    assert "level=warning" not in capsys.readouterr().err
