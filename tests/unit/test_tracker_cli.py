"""``vsa track``: offline replay of detections JSON lines, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsa.cli import main
from vsa.services.tracker import golden

SCENE = golden.GOLDEN_DIR / "scene.detections.jsonl"
RULES = golden.GOLDEN_DIR / "scene.rules.yaml"


def test_prints_tracks_alerts_and_keyframes_as_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["track", str(SCENE), "--rules", str(RULES)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    topics = {line["topic"] for line in lines}
    assert topics == {"tracks", "alerts", "keyframes"}
    assert all(line["key"] == "lab" for line in lines)
    expected = golden.read_expected("scene")
    actual = [{"topic": line["topic"], "value": line["value"]} for line in lines]
    assert list(golden.differences(expected, actual)) == []
    assert "115 frames applied, 2 already applied (skipped), 0 bad lines" in err


def test_only_alerts_prints_the_topic_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["track", str(SCENE), "--rules", str(RULES), "--only", "alerts"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(alerts) == 11
    assert {a["camera_id"] for a in alerts} == {"lab"}


def test_camera_config_topic_lines_work_like_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vsa.services.tracker.rules import load_camera_configs

    config = load_camera_configs(RULES)[0]
    path = tmp_path / "camera-config.jsonl"
    path.write_bytes(config.to_bytes() + b"\n")
    assert main(["track", str(SCENE), "--camera-config", str(path), "--only", "alerts"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 11


def test_bad_lines_are_reported_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = SCENE.read_bytes().splitlines()[:5]
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b"\n".join([lines[0], b"{not json", lines[1], b'{"camera_id": "x"}', *lines[2:]]) + b"\n"
    )
    assert main(["track", str(path), "--only", "tracks"]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 5
    assert f"{path}:2: skipped: detections:" in err
    assert f"{path}:4: skipped: detections: camera 'x'" in err


def test_invalid_rules_exit_2_naming_camera_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.read_text().replace("classes: [person]", "classes: [persn]", 1))
    assert main(["track", str(SCENE), "--rules", str(path), "--classes", "person,car"]) == 2
    assert (
        "camera 'lab': zones[0].classes[0]: unknown class 'persn' (did you mean 'person'?)"
        in capsys.readouterr().err
    )
    path.write_text(
        RULES.read_text().replace("[0.95, 0.9], [0.55, 0.9]", "[0.55, 0.9], [0.95, 0.9]")
    )
    assert main(["track", str(SCENE), "--rules", str(path)]) == 2
    assert "camera 'lab': zones[0].polygon: self-intersecting" in capsys.readouterr().err


def test_tracker_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tracker.yaml"
    path.write_text("min_hits: 5\nmax_lost_s: 0.2\n")
    assert main(["track", str(SCENE), "--tracker-config", str(path), "--only", "keyframes"]) == 0
    capsys.readouterr()
    path.write_text("min_hits: 0\n")
    assert main(["track", str(SCENE), "--tracker-config", str(path)]) == 2
    assert "min_hits" in capsys.readouterr().err


def test_counts_of_the_street_golden_case_replay_offline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    street = golden.GOLDEN_DIR / "street.detections.jsonl"
    rules = golden.GOLDEN_DIR / "street.rules.yaml"
    assert main(["track", str(street), "--rules", str(rules), "--only", "counts"]) == 0
    out, err = capsys.readouterr()
    counts = [json.loads(line) for line in out.splitlines()]
    assert [(c["rule_id"], c["values"].get("total")) for c in counts] == [
        ("walk-count", 2),
        ("plaza-people", None),
        ("walk-count", 2),
        ("plaza-people", None),
    ]
    assert "3 alerts, 4 counts" in err
