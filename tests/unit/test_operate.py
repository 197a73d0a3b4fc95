"""``vsa cameras`` and ``vsa alerts``, the parts without Kafka or OpenSearch: configs built from
flags and rules files with one-line errors, the camera table, alert lines, the alert-history
query body and documents turned back into alerts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from vsa.operate.alerts import alert_line
from vsa.operate.cameras import (
    CameraChanges,
    build_config,
    camera_json,
    camera_rows,
    names_classes,
    rules_file_fields,
)
from vsa.runtime.settings import ConfigError
from vsa.schemas import CameraConfig
from vsa.services.indexer.alert_history import AlertQuery, alerts_body
from vsa.services.indexer.mapping import alert_document, alert_from_document
from vsa.services.indexer.search import QueryError

from .test_notifier import make_alert

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vtest-rules.yaml"
COCO_LIKE = ("person", "car", "truck")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_rules_become_the_named_camera() -> None:
    fields, named = rules_file_fields(EXAMPLE, "gate")
    assert named == "cam-0"
    changes = CameraChanges(source_url="rtsp://u:p@h/x", fps_target=5)
    config = build_config("gate", None, changes, fields, str(EXAMPLE), COCO_LIKE)
    assert config.camera_id == "gate"
    assert (len(config.zones), len(config.lines), len(config.rules)) == (2, 1, 4)
    assert config.fps_target == 5
    assert config.keyframe_interval_s == 5
    assert names_classes(config)


def test_set_changes_only_what_is_given() -> None:
    fields, _ = rules_file_fields(EXAMPLE, "gate")
    base = build_config("gate", None, CameraChanges(source_url="/v.mp4", fps_target=4), fields)
    disabled = build_config("gate", base, CameraChanges(enabled=False))
    assert disabled == base.model_copy(update={"enabled": False})
    cleared = build_config("gate", disabled, CameraChanges(no_rules=True))
    assert (cleared.zones, cleared.lines, cleared.rules) == ([], [], [])
    assert cleared.source_url == "/v.mp4"
    assert not names_classes(cleared)


def test_a_cameras_list_file_gives_this_cameras_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "cameras:\n  - {camera_id: a, fps_target: 2}\n  - {camera_id: b}\n")
    assert rules_file_fields(path, "a") == ({"fps_target": 2}, None)
    with pytest.raises(ConfigError, match=r"no camera 'c' under 'cameras' \(found: \['a', 'b'\]\)"):
        rules_file_fields(path, "c")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "zones:\n  - {zone_id: z, polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]}\n",
            "rules.yaml: camera-config: camera 'gate': zones[0].polygon: self-intersecting",
        ),
        (
            "rules:\n  - {kind: loitering, rule_id: r, zone_id: nowhere, dwell_s: 3}\n",
            "rules.yaml: camera-config: camera 'gate': rules[0].zone_id: unknown zone 'nowhere'",
        ),
        ("zonez: []\n", "rules.yaml: camera-config: camera 'gate': zonez: Extra inputs"),
        (
            "zones: [{zone_id: z, polygon: [[0, 0], [1, 0], [1, 1]], classes: [persn]}]\n",
            "rules.yaml: camera 'gate': zones[0].classes[0]: unknown class 'persn' "
            "(did you mean 'person'?)",
        ),
        ("zones: [\n", "rules.yaml: invalid YAML"),
    ],
)
def test_rules_file_errors_are_one_line_naming_file_camera_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)

    def build() -> None:
        fields, _ = rules_file_fields(path, "gate")
        build_config("gate", None, CameraChanges(), fields, str(path), COCO_LIKE)

    with pytest.raises(ConfigError) as caught:
        build()
    error = str(caught.value)
    assert "\n" not in error
    assert error.startswith(str(path.parent))
    assert message in error


def test_a_bad_flag_is_blamed_on_the_command_line(tmp_path: Path) -> None:
    fields, _ = rules_file_fields(EXAMPLE, "gate")
    with pytest.raises(ConfigError) as caught:
        build_config("gate", None, CameraChanges(fps_target=500), fields, str(EXAMPLE))
    assert str(caught.value).startswith(
        "command-line arguments: camera-config: camera 'gate': fps_target: "
    )


def test_camera_table_and_json_mask_credentials() -> None:
    configs = {
        "lobby": CameraConfig(camera_id="lobby", source_url="/videos/lobby.mp4", enabled=False),
        "gate": CameraConfig(
            camera_id="gate", source_url="rtsp://admin:s3cret@10.0.0.5/x", fps_target=5
        ),
    }
    rows = camera_rows(configs)
    assert [row.split()[0] for row in rows] == ["camera_id", "gate", "lobby"]
    assert rows[1].split() == ["gate", "yes", "5", "0", "0", "0", "rtsp://***@10.0.0.5/x"]
    assert rows[2].split() == ["lobby", "no", "source", "0", "0", "0", "/videos/lobby.mp4"]
    assert "s3cret" not in "".join(rows)
    assert camera_json(configs["gate"])["source_url"] == "rtsp://***@10.0.0.5/x"


def test_alert_line() -> None:
    alert = make_alert("gate", "loitering", seq=7)
    assert alert_line(alert) == (
        "2025-11-21T04:40:07.000Z  gate  loitering  rule=loitering-rule class=person tracks=3 "
        f"frame_seq=7 dwell_s=8.5 zone_id=plaza id={alert.alert_id}"
    )


def test_alert_documents_read_back_as_the_alert() -> None:
    alert = make_alert()
    assert alert_from_document(alert_document(alert, indexed_at=1.0)) == alert


def test_alert_history_body() -> None:
    since = datetime(2025, 11, 21, 4, 0, tzinfo=timezone.utc)
    query = AlertQuery(cameras=("gate",), kinds=("crowding", "loitering"), since=since, limit=5)
    assert alerts_body(query) == {
        "size": 5,
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"camera_id": ["gate"]}},
                    {"terms": {"kind": ["crowding", "loitering"]}},
                    {
                        "range": {
                            "capture_time": {"format": "epoch_millis", "gte": 1_763_697_600_000}
                        }
                    },
                ]
            }
        },
        "sort": [{"capture_time": {"order": "desc"}}, {"alert_id": {"order": "asc"}}],
    }
    assert alerts_body(AlertQuery())["query"] == {"bool": {"filter": []}}
    with pytest.raises(QueryError, match="limit"):
        AlertQuery.parse(limit=0)
    with pytest.raises(QueryError, match="kinds"):
        AlertQuery.parse(kinds=("fire",))
