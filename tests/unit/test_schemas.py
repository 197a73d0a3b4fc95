"""Topic contracts: committed JSON Schema files are current, and the interesting rules hold."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from vsa.schemas import (
    HEADER_TOPICS,
    MAX_THUMBNAIL_BYTES,
    TOPIC_MODELS,
    VALUE_TOPICS,
    Alert,
    AlertSnapshot,
    CameraConfig,
    Caption,
    DeadLetter,
    Detection,
    Detections,
    FrameMeta,
    FrameRef,
    Keyframe,
    Line,
    TrackedObject,
    Tracks,
    Zone,
    decode,
    make_alert_id,
    polygon_problem,
)
from vsa.schemas import SchemaError as SchemaErrorType
from vsa.schemas.generate import (
    SCHEMA_DIR,
    check_json_schemas,
    main,
    render_json_schemas,
    write_json_schemas,
)

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


# ----------------------------------------------------------------------------- factories


def frame_meta(**overrides: Any) -> FrameMeta:
    fields: dict[str, Any] = {
        "camera_id": "cam-1",
        "frame_seq": 42,
        "capture_ts": 1_700_000_000.25,
        "width": 768,
        "height": 576,
        "pts_s": 4.2,
        "source": "file",
    }
    return FrameMeta(**(fields | overrides))


def frame_ref(camera_id: str = "cam-1", frame_seq: int = 42) -> FrameRef:
    return FrameRef(
        topic="frames", partition=3, offset=1000, camera_id=camera_id, frame_seq=frame_seq
    )


def detections(**overrides: Any) -> Detections:
    fields: dict[str, Any] = {
        "camera_id": "cam-1",
        "frame_seq": 42,
        "frame": frame_ref(),
        "capture_ts": 1_700_000_000.25,
        "width": 768,
        "height": 576,
        "model_id": "yolov3-tiny",
        "boxes": [Detection(xyxy=(10, 20, 110, 220), class_id=0, class_name="person", score=0.9)],
        "timings": {"infer": 3.5},
    }
    return Detections(**(fields | overrides))


def tracked(track_id: int = 1) -> TrackedObject:
    return TrackedObject(
        track_id=track_id,
        xyxy=(10, 20, 110, 220),
        class_id=0,
        class_name="person",
        score=0.9,
        velocity_px_s=(12.5, -3.0),
        age_frames=4,
        state="confirmed",
    )


def caption(**overrides: Any) -> Caption:
    fields: dict[str, Any] = {
        "camera_id": "cam-1",
        "frame_seq": 42,
        "frame": frame_ref(),
        "capture_ts": 1_700_000_000.25,
        "text": "A person walks past the door.",
        "objects": [{"class_name": "person", "count": 1}],
        "track_ids": [1],
        "alert_kinds": ["zone_intrusion"],
        "captioner": "scene-describer/1",
        "thumbnail_jpeg": JPEG,
    }
    return Caption(**(fields | overrides))


def camera_config_dict(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "camera_id": "cam-1",
        "zones": [{"zone_id": "door", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}],
        "lines": [{"line_id": "gate", "a": [0.0, 0.5], "b": [1.0, 0.5]}],
        "rules": [
            {"kind": "zone_intrusion", "rule_id": "r-door", "zone_id": "door"},
            {"kind": "line_crossing", "rule_id": "r-gate", "line_id": "gate"},
        ],
    }
    return fields | overrides


# ----------------------------------------------------------------------------- JSON Schema files


def test_committed_json_schemas_are_current() -> None:
    stale = check_json_schemas(SCHEMA_DIR)
    assert stale == [], f"stale schema files {stale}: run `python -m vsa.schemas.generate`"


def test_one_schema_file_per_topic_with_id_and_title() -> None:
    rendered = render_json_schemas()
    assert sorted(rendered) == sorted(f"{topic}.schema.json" for topic in TOPIC_MODELS)
    for name, text in rendered.items():
        schema = json.loads(text)
        assert schema["$id"] == f"urn:vsa:schema:{name.removesuffix('.schema.json')}"
        assert schema["title"]
        assert schema["additionalProperties"] is False
        assert text.endswith("}\n")


def test_caption_schema_describes_the_json_part_only() -> None:
    schema = json.loads(render_json_schemas()["captions.schema.json"])
    assert "thumbnail_jpeg" not in schema["properties"]
    assert "thumbnail_jpeg" not in schema.get("required", [])


def test_check_lists_stale_missing_and_orphan_files(tmp_path: Path) -> None:
    written = write_json_schemas(tmp_path)
    assert len(written) == len(TOPIC_MODELS)
    assert check_json_schemas(tmp_path) == []
    (tmp_path / "tracks.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "alerts.schema.json").unlink()
    (tmp_path / "old.schema.json").write_text("{}\n", encoding="utf-8")
    assert check_json_schemas(tmp_path) == [
        "alerts.schema.json",
        "old.schema.json",
        "tracks.schema.json",
    ]
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert main(["--out", str(tmp_path)]) == 0
    assert check_json_schemas(tmp_path) == []
    assert main(["--check", "--out", str(tmp_path)]) == 0


# ----------------------------------------------------------------------------- model config


def _all_models() -> set[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    todo = list(TOPIC_MODELS.values())
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            for arg in _type_args(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    todo.append(arg)
    return seen


def _type_args(annotation: object) -> list[object]:
    args = [annotation]
    for arg in getattr(annotation, "__args__", ()):
        args.extend(_type_args(arg))
    return args


def test_every_model_forbids_extra_keys_is_frozen_and_versioned() -> None:
    models = _all_models()
    assert {Zone, Line, TrackedObject, FrameRef, AlertSnapshot} <= models
    for model in models:
        assert model.model_config.get("extra") == "forbid", model
        assert model.model_config.get("frozen") is True, model
    for model in TOPIC_MODELS.values():
        assert model.model_fields["schema_version"].default == 1


def test_topic_sets_partition_the_registry() -> None:
    assert {"frames", "dlq"} == HEADER_TOPICS
    assert set(TOPIC_MODELS) == HEADER_TOPICS | VALUE_TOPICS
    assert not HEADER_TOPICS & VALUE_TOPICS


# ----------------------------------------------------------------------------- decode errors


def test_extra_key_refused() -> None:
    raw = json.loads(detections().to_bytes())
    raw["boxes"][0]["colour"] = "red"
    with pytest.raises(SchemaErrorType, match=r"boxes\[0\]\.colour: Extra inputs") as info:
        decode("detections", json.dumps(raw).encode())
    assert info.value.field == "boxes[0].colour"
    with pytest.raises(ValidationError):
        Detection(xyxy=(0, 0, 1, 1), class_id=0, class_name="car", score=0.5, colour="red")  # type: ignore[call-arg]


def test_unknown_schema_version_refused_with_clear_message() -> None:
    raw = json.loads(detections().to_bytes())
    raw["schema_version"] = 2
    raw["new_field_of_v2"] = True
    with pytest.raises(SchemaErrorType) as info:
        decode("detections", json.dumps(raw).encode())
    message = str(info.value)
    assert message.startswith("detections: unsupported schema_version 2;")
    assert "reads schema_version 1" in message
    assert "new_field_of_v2" not in message  # the version is the problem, not the fields


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (b"{not json", r"detections: Invalid JSON"),
        (b"[1, 2]", r"detections: Input should be an object"),
        (b'{"camera_id": 5}', r"camera_id: Input should be a valid string"),
        (b'{"camera_id": "cam 1"}', r"camera_id: String should match pattern"),
    ],
)
def test_malformed_values_raise_schema_error(value: bytes, pattern: str) -> None:
    with pytest.raises(SchemaErrorType, match=pattern):
        decode("detections", value)


def test_wrong_types_name_camera_frame_and_field() -> None:
    raw = json.loads(detections().to_bytes())
    raw["boxes"][0]["score"] = "high"
    with pytest.raises(SchemaErrorType) as info:
        decode("detections", json.dumps(raw).encode())
    assert str(info.value).startswith("detections: camera 'cam-1' frame_seq 42: boxes[0].score:")


def test_oversize_value_refused_before_parsing() -> None:
    value = detections().to_bytes()
    with pytest.raises(SchemaErrorType, match=r"exceeds the limit of 100"):
        decode("detections", value, max_bytes=100)
    assert decode("detections", value, max_bytes=len(value)) == detections()


def test_decode_refuses_header_topics_unknown_topics_and_tombstones() -> None:
    with pytest.raises(SchemaErrorType, match=r"FrameMeta\.from_headers"):
        decode("frames", b"\xff\xd8")
    with pytest.raises(SchemaErrorType, match=r"unknown topic 'nope'"):
        decode("nope", b"{}")
    with pytest.raises(SchemaErrorType, match=r"tombstone"):
        decode("camera-config", None)  # type: ignore[call-overload]


def test_schema_error_is_a_value_error() -> None:
    assert issubclass(SchemaErrorType, ValueError)


# ----------------------------------------------------------------------------- boxes and frames


@pytest.mark.parametrize(
    ("xyxy", "pattern"),
    [((10, 0, 5, 1), r"x1 \(10\.0\) must be <= x2 \(5\.0\)"), ((0, 9, 1, 1), r"y1 .* <= y2")],
)
def test_xyxy_order_validated(xyxy: tuple[float, ...], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        Detection(xyxy=xyxy, class_id=0, class_name="person", score=0.5)


def test_degenerate_box_and_nan_coordinates() -> None:
    assert Detection(xyxy=(5, 5, 5, 5), class_id=0, class_name="person", score=0.0)
    with pytest.raises(ValidationError, match="finite"):
        Detection(xyxy=(float("nan"), 0, 1, 1), class_id=0, class_name="person", score=0.5)


def test_frame_reference_must_match_the_message() -> None:
    with pytest.raises(ValidationError, match=r"frame\.camera_id 'cam-2' differs"):
        detections(frame=frame_ref(camera_id="cam-2"))
    with pytest.raises(ValidationError, match=r"frame\.frame_seq 7 differs"):
        detections(frame=frame_ref(frame_seq=7))


def test_track_ids_unique_per_frame() -> None:
    with pytest.raises(ValidationError, match="track_id 3 appears twice"):
        Tracks(
            camera_id="cam-1",
            frame_seq=42,
            frame=frame_ref(),
            capture_ts=1.0,
            tracks=[tracked(3), tracked(3)],
        )


def test_keyframe_track_ids_must_be_in_objects_and_alert_needs_ids() -> None:
    common: dict[str, Any] = {
        "camera_id": "cam-1",
        "frame_seq": 42,
        "frame": frame_ref(),
        "capture_ts": 1.0,
    }
    with pytest.raises(ValidationError, match=r"track_ids \[9\] are not in objects"):
        Keyframe(**common, reason="new_track", track_ids=[9], objects=[tracked(1)])
    with pytest.raises(ValidationError, match="reason 'alert' needs"):
        Keyframe(**common, reason="alert", objects=[tracked(1)])


# ----------------------------------------------------------------------------- frames headers


def test_frame_meta_header_round_trip_ignores_unrelated_headers() -> None:
    meta = frame_meta()
    headers = meta.to_headers()
    assert dict(headers)["vsa-frame-seq"] == b"42"
    assert dict(headers)["vsa-content-type"] == b"image/jpeg"
    assert all(name.startswith("vsa-") for name, _ in headers)
    noisy = [("traceparent", b"00-abc"), *headers, ("vsa-dlq-service", b"x"), ("other", None)]
    assert FrameMeta.from_headers(noisy) == meta
    assert FrameMeta.from_headers(dict(headers)) == meta


def test_frame_meta_without_pts_leaves_the_header_out() -> None:
    meta = frame_meta(pts_s=None)
    assert "vsa-pts-s" not in dict(meta.to_headers())
    assert FrameMeta.from_headers(meta.to_headers()) == meta


def test_missing_frame_header_names_it() -> None:
    headers = [(k, v) for k, v in frame_meta().to_headers() if k != "vsa-camera-id"]
    with pytest.raises(SchemaErrorType, match=r"frames: missing header 'vsa-camera-id'") as info:
        FrameMeta.from_headers(headers)
    assert info.value.field == "vsa-camera-id"
    with pytest.raises(SchemaErrorType, match=r"missing header 'vsa-schema-version'"):
        FrameMeta.from_headers(None)


@pytest.mark.parametrize(
    ("name", "value", "pattern"),
    [
        ("vsa-frame-seq", b"forty-two", r"header 'vsa-frame-seq': Input should be a valid integer"),
        ("vsa-width", b"0", r"header 'vsa-width': Input should be greater than or equal to 1"),
        ("vsa-capture-ts", b"nan", r"header 'vsa-capture-ts': Input should be a finite number"),
        ("vsa-source", b"\xff\xfe", r"header 'vsa-source' is not valid UTF-8"),
        ("vsa-height", None, r"header 'vsa-height' has no value"),
        ("vsa-content-type", b"image/png", r"header 'vsa-content-type'"),
        ("vsa-schema-version", b"2", r"unsupported schema_version '2' in header"),
    ],
)
def test_garbled_frame_header_names_it(name: str, value: bytes | None, pattern: str) -> None:
    headers = [(k, value if k == name else v) for k, v in frame_meta().to_headers()]
    with pytest.raises(SchemaErrorType, match=pattern) as info:
        FrameMeta.from_headers(headers)
    assert info.value.field in {name, "schema_version"}


def test_frame_meta_builds_its_frame_ref() -> None:
    assert frame_meta().frame_ref("frames", 3, 1000) == frame_ref()


# ----------------------------------------------------------------------------- dead letters


def test_dead_letter_headers_round_trip_and_truncate() -> None:
    letter = DeadLetter.for_exception(
        "detector",
        SchemaErrorType("x" * 5000),
        source_topic="frames",
        source_partition=1,
        source_offset=99,
        failed_ts=1_700_000_000.5,
    )
    assert len(letter.error_message) == 1000
    assert letter.error_message.endswith("\u2026")
    headers = letter.to_headers()
    assert [name for name, _ in headers] == [
        "vsa-dlq-schema-version",
        "vsa-dlq-service",
        "vsa-dlq-error-class",
        "vsa-dlq-error-message",
        "vsa-dlq-source-topic",
        "vsa-dlq-source-partition",
        "vsa-dlq-source-offset",
        "vsa-dlq-failed-ts",
    ]
    original = frame_meta().to_headers()
    assert DeadLetter.from_headers(original + headers) == letter
    assert FrameMeta.from_headers(original + headers) == frame_meta()


# ----------------------------------------------------------------------------- captions


def test_caption_binary_codec_round_trip_and_layout() -> None:
    message = caption()
    value = message.to_bytes()
    (json_length,) = struct.unpack(">I", value[:4])
    json_part = json.loads(value[4 : 4 + json_length])
    assert "thumbnail_jpeg" not in json_part
    assert json_part["text"] == message.text
    assert value[4 + json_length :] == JPEG
    assert Caption.from_bytes(value) == message
    assert decode("captions", value) == message
    empty = caption(thumbnail_jpeg=b"")
    assert Caption.from_bytes(empty.to_bytes()) == empty


def test_caption_thumbnail_over_32_kib_refused() -> None:
    caption(thumbnail_jpeg=JPEG[:4] + b"\x00" * (MAX_THUMBNAIL_BYTES - 4))
    with pytest.raises(ValidationError, match="thumbnail_jpeg"):
        caption(thumbnail_jpeg=JPEG[:4] + b"\x00" * (MAX_THUMBNAIL_BYTES - 3))


def test_caption_thumbnail_must_be_jpeg() -> None:
    with pytest.raises(ValidationError, match="not a JPEG"):
        caption(thumbnail_jpeg=b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (b"\x00\x00", r"no 4-byte length prefix"),
        (b'{"text": "plain json"}', r"length prefix says \d+ bytes of JSON but only"),
        (struct.pack(">I", 3) + b"[1]", r"JSON part must be an object"),
        (struct.pack(">I", 2) + b"{x", r"JSON part is not valid JSON"),
    ],
)
def test_caption_bad_framing_refused(value: bytes, pattern: str) -> None:
    with pytest.raises(SchemaErrorType, match=pattern):
        Caption.from_bytes(value)


def test_caption_thumbnail_inside_the_json_refused() -> None:
    json_part = json.loads(caption(thumbnail_jpeg=b"").to_bytes()[4:])
    json_part["thumbnail_jpeg"] = "/9j/4AAQ"  # base64: exactly what the framing exists to avoid
    encoded = json.dumps(json_part).encode()
    with pytest.raises(SchemaErrorType, match="raw bytes, not sit inside it"):
        Caption.from_bytes(struct.pack(">I", len(encoded)) + encoded)


# ----------------------------------------------------------------------------- alerts


def test_alert_id_is_stable_and_documented() -> None:
    alert_id = make_alert_id("cam-1", "door", 7, 0)
    assert alert_id == "60cc5f33aa5d961dca8243b6d64edfa6"  # pinned: ids must never change
    assert make_alert_id("cam-1", "door", 7, 1) != alert_id
    assert make_alert_id("cam-1", "door", 70, 0) != make_alert_id("cam-1", "door7", 0, 0)
    with pytest.raises(ValueError, match="episode must be an integer >= 0"):
        make_alert_id("cam-1", "door", 7, -1)


def test_alert_snapshot_must_be_the_alert_frame() -> None:
    fields: dict[str, Any] = {
        "alert_id": make_alert_id("cam-1", "door", 1, 0),
        "camera_id": "cam-1",
        "rule_id": "door",
        "kind": "zone_intrusion",
        "track_ids": [1],
        "class_name": "person",
        "ts": 1.0,
        "frame_seq": 42,
        "snapshot": {"frame": frame_ref(camera_id="cam-9").model_dump(), "xyxy": [0, 0, 1, 1]},
        "details": {"dwell_s": 2.5, "zone_id": "door", "episode": 0, "inside": True},
    }
    with pytest.raises(ValidationError, match="differs from camera_id"):
        Alert(**fields)
    fields["snapshot"]["frame"] = frame_ref().model_dump()
    alert = Alert(**fields)
    assert Alert.from_bytes(alert.to_bytes()).details == fields["details"]


# ----------------------------------------------------------------------------- camera config


def test_valid_camera_config_parses() -> None:
    config = CameraConfig.from_dict(camera_config_dict())
    assert config.zone("door").polygon[0] == (0.1, 0.1)
    assert config.line("gate").direction == "both"
    assert CameraConfig.from_bytes(config.to_bytes()) == config


def test_self_intersecting_polygon_refused_naming_camera_and_field() -> None:
    bowtie = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]
    data = camera_config_dict(zones=[{"zone_id": "door", "polygon": bowtie}])
    with pytest.raises(SchemaErrorType) as info:
        CameraConfig.from_dict(data)
    message = str(info.value)
    assert message.startswith("camera-config: camera 'cam-1': zones[0].polygon: self-intersecting")
    assert info.value.field == "zones[0].polygon"


@pytest.mark.parametrize(
    ("polygon", "pattern"),
    [
        ([[0, 0], [1, 0], [1, 1], [0, 0]], r"vertices 0 and 3 .*do not repeat the first point"),
        ([[0, 0], [0.5, 0.5], [1, 1]], r"run back over each other|zero area"),
        ([[0, 0], [1, 0], [0.5, 0], [0.5, 1]], r"run back over each other"),
        ([[0, 0], [1, 0], [1, 1], [0.5, 0], [0, 1]], r"self-intersecting"),  # touches edge 0
        ([[0, 0], [1, 0]], r"at least 3 items"),
        ([[0, 0], [1.5, 0], [1, 1]], r"less than or equal to 1"),
    ],
)
def test_bad_polygons_refused(polygon: list[list[float]], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        Zone(zone_id="z", polygon=polygon)


def test_concave_and_clockwise_polygons_accepted() -> None:
    concave = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 0.4), (0.0, 1.0)]
    assert polygon_problem(concave) is None
    assert polygon_problem(list(reversed(concave))) is None
    collinear_vertex = [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (0.5, 1.0)]
    assert polygon_problem(collinear_vertex) is None


@pytest.mark.parametrize(
    ("rule", "pattern"),
    [
        (
            {"kind": "loitering", "rule_id": "r9", "zone_id": "yard", "dwell_s": 30},
            r"camera 'cam-1': rules\[2\]\.zone_id: unknown zone 'yard'",
        ),
        (
            {"kind": "line_crossing", "rule_id": "r9", "line_id": "fence"},
            r"camera 'cam-1': rules\[2\]\.line_id: unknown line 'fence'",
        ),
        (
            {"kind": "crowding", "rule_id": "r-door", "zone_id": "door", "min_count": 3},
            r"camera 'cam-1': rules: id 'r-door' is used twice",
        ),
    ],
)
def test_rule_references_checked_naming_camera_and_field(
    rule: dict[str, Any], pattern: str
) -> None:
    data = camera_config_dict()
    data["rules"] = [*data["rules"], rule]
    with pytest.raises(SchemaErrorType, match=pattern) as info:
        CameraConfig.from_dict(data)
    assert str(info.value).count("camera 'cam-1'") == 1


def test_duplicate_zone_ids_refused() -> None:
    zone = {"zone_id": "door", "polygon": [[0, 0], [1, 0], [1, 1]]}
    with pytest.raises(SchemaErrorType, match=r"zones: id 'door' is used twice"):
        CameraConfig.from_dict(camera_config_dict(zones=[zone, zone]))


@pytest.mark.parametrize(
    ("rule", "pattern"),
    [
        ({"kind": "crowding", "rule_id": "r", "zone_id": "door", "min_count": 1}, "min_count"),
        ({"kind": "loitering", "rule_id": "r", "zone_id": "door", "dwell_s": 0}, "dwell_s"),
        ({"kind": "zone_intrusion", "rule_id": "r", "zone_id": "door", "classes": []}, "classes"),
        ({"kind": "teleport", "rule_id": "r"}, "does not match any of the expected tags"),
        ({"rule_id": "r", "zone_id": "door"}, "Unable to extract tag"),
    ],
)
def test_rule_fields_validated(rule: dict[str, Any], pattern: str) -> None:
    with pytest.raises(SchemaErrorType, match=pattern):
        CameraConfig.from_dict(camera_config_dict(rules=[rule]))


def test_fps_target_bounds() -> None:
    assert CameraConfig.from_dict(camera_config_dict(fps_target=120)).fps_target == 120
    for bad in (0, 121):
        with pytest.raises(SchemaErrorType, match="fps_target"):
            CameraConfig.from_dict(camera_config_dict(fps_target=bad))


def test_line_sides_follow_the_documented_convention() -> None:
    line = Line(line_id="gate", a=(0.0, 0.5), b=(1.0, 0.5), direction="a_to_b")
    # Walking a->b (to the right on screen, y down), the right-hand side is below the line.
    assert line.side_of(0.5, 0.9) == 1
    assert line.side_of(0.5, 0.1) == -1
    assert line.side_of(0.3, 0.5) == 0
    with pytest.raises(ValidationError, match="a and b are the same point"):
        Line(line_id="gate", a=(0.2, 0.2), b=(0.2, 0.2))


def test_unknown_class_names_are_accepted_here() -> None:
    data = camera_config_dict()
    data["zones"][0]["classes"] = ["unicorn"]
    assert CameraConfig.from_dict(data).zone("door").classes == ["unicorn"]
