"""Round-trip property tests: every topic model survives its own codec, every sub-model JSON.

Strategies build valid messages only (constraints respected by construction): a failure here is
a codec that loses or changes information, never a validation error of the generated input.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from vsa.schemas import (
    ALERT_KINDS,
    COUNT_KINDS,
    JPEG_MAGIC,
    RULE_KINDS,
    TOPIC_MODELS,
    Alert,
    AlertSnapshot,
    AppearanceVectors,
    Calibration,
    CameraConfig,
    Caption,
    Counts,
    CrowdingRule,
    DeadLetter,
    Detection,
    Detections,
    FrameMeta,
    FrameRef,
    JsonMessage,
    Keyframe,
    Line,
    LineCrossingRule,
    LoiteringRule,
    ObjectCount,
    TrackedObject,
    Tracks,
    Zone,
    ZoneIntrusionRule,
    decode,
    make_alert_id,
    make_count_id,
)
from vsa.schemas.rules.kinds.line_count import LineCountRule
from vsa.schemas.rules.kinds.occupancy import OccupancyRule
from vsa.schemas.rules.kinds.speed import SpeedRule
from vsa.schemas.rules.kinds.stationary import StationaryRule

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT64 = st.integers(min_value=0, max_value=2**63 - 1)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,15}", fullmatch=True)
topic_names = st.from_regex(r"[A-Za-z0-9._-]{1,30}", fullmatch=True)
names = st.text(min_size=1, max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
timestamps = st.floats(min_value=0, max_value=4e9, allow_nan=False)
durations = st.floats(min_value=0, max_value=1e6, allow_nan=False)
scores = st.floats(min_value=0, max_value=1)
unit = st.floats(min_value=0, max_value=1)
dimensions = st.integers(min_value=1, max_value=16384)
class_ids = st.integers(min_value=0, max_value=2**31 - 1)
track_ids = st.integers(min_value=1, max_value=2**63 - 1)
alert_kinds = st.sampled_from(sorted(ALERT_KINDS))
class_filters = st.none() | st.lists(names, min_size=1, max_size=3)


@st.composite
def xyxy(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x1, x2 = sorted(draw(st.tuples(finite, finite)))
    y1, y2 = sorted(draw(st.tuples(finite, finite)))
    return (x1, y1, x2, y2)


@st.composite
def frame_refs(
    draw: st.DrawFn, camera_id: str | None = None, frame_seq: int | None = None
) -> FrameRef:
    return FrameRef(
        topic=draw(topic_names),
        partition=draw(st.integers(min_value=0, max_value=2**31 - 1)),
        offset=draw(INT64),
        camera_id=camera_id if camera_id is not None else draw(ids),
        frame_seq=frame_seq if frame_seq is not None else draw(INT64),
    )


@st.composite
def frame_fields(draw: st.DrawFn) -> dict[str, Any]:
    """camera_id, frame_seq, a matching frame reference and capture_ts."""
    camera_id, frame_seq = draw(ids), draw(INT64)
    return {
        "camera_id": camera_id,
        "frame_seq": frame_seq,
        "frame": draw(frame_refs(camera_id, frame_seq)),
        "capture_ts": draw(timestamps),
    }


detection_models = st.builds(
    Detection, xyxy=xyxy(), class_id=class_ids, class_name=names, score=scores
)

tracked_objects = st.builds(
    TrackedObject,
    track_id=track_ids,
    xyxy=xyxy(),
    class_id=class_ids,
    class_name=names,
    score=scores,
    velocity_px_s=st.tuples(finite, finite),
    age_frames=INT64,
    state=st.sampled_from(["tentative", "confirmed", "lost"]),
)


def unique_tracks(max_size: int = 4) -> st.SearchStrategy[list[TrackedObject]]:
    return st.lists(tracked_objects, max_size=max_size, unique_by=lambda obj: obj.track_id)


frame_metas = st.builds(
    FrameMeta,
    camera_id=ids,
    frame_seq=INT64,
    capture_ts=timestamps,
    width=dimensions,
    height=dimensions,
    pts_s=st.none() | finite,
    source=st.text(min_size=1, max_size=64),
)


@st.composite
def appearance_vectors(draw: st.DrawFn, boxes: int | None = None) -> AppearanceVectors:
    """Vectors of ``boxes`` boxes (any number when None), 1..8 dims, any float16 bytes."""
    dims = draw(st.integers(1, 8))
    count = draw(st.integers(0, 5)) if boxes is None else boxes
    data = draw(st.binary(min_size=2 * dims * count, max_size=2 * dims * count))
    return AppearanceVectors(
        model=draw(names), dims=dims, float16_b64=base64.b64encode(data).decode("ascii")
    )


@st.composite
def detections_messages(draw: st.DrawFn) -> Detections:
    boxes = draw(st.lists(detection_models, max_size=5))
    return Detections(
        **draw(frame_fields()),
        width=draw(dimensions),
        height=draw(dimensions),
        model_id=draw(names),
        boxes=boxes,
        timings=draw(st.dictionaries(names, durations, max_size=4)),
        appearance=draw(st.none() | appearance_vectors(len(boxes))),
    )


@st.composite
def tracks_messages(draw: st.DrawFn) -> Tracks:
    return Tracks(**draw(frame_fields()), tracks=draw(unique_tracks()))


alert_ids = st.builds(make_alert_id, ids, ids, st.integers(0, 2**63 - 1), st.integers(0, 1000))

detail_values = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | finite
    | st.text(max_size=30)
)


@st.composite
def alert_messages(draw: st.DrawFn) -> Alert:
    camera_id, frame_seq = draw(ids), draw(INT64)
    return Alert(
        alert_id=draw(alert_ids),
        camera_id=camera_id,
        rule_id=draw(ids),
        kind=draw(alert_kinds),
        track_ids=draw(st.lists(track_ids, min_size=1, max_size=4, unique=True)),
        class_name=draw(names),
        ts=draw(timestamps),
        frame_seq=frame_seq,
        snapshot=AlertSnapshot(frame=draw(frame_refs(camera_id, frame_seq)), xyxy=draw(xyxy())),
        details=draw(st.dictionaries(names, detail_values, max_size=5)),
    )


@st.composite
def keyframe_messages(draw: st.DrawFn) -> Keyframe:
    objects = draw(unique_tracks())
    known = [obj.track_id for obj in objects]
    reason = draw(st.sampled_from(["new_track", "alert", "periodic"]))
    return Keyframe(
        **draw(frame_fields()),
        reason=reason,
        track_ids=draw(st.lists(st.sampled_from(known), unique=True)) if known else [],
        alert_ids=draw(st.lists(alert_ids, min_size=1 if reason == "alert" else 0, max_size=3)),
        objects=objects,
    )


@st.composite
def caption_messages(draw: st.DrawFn) -> Caption:
    thumbnail = draw(st.just(b"") | st.binary(max_size=300).map(lambda tail: JPEG_MAGIC + tail))
    return Caption(
        **draw(frame_fields()),
        text=draw(st.text(min_size=1, max_size=200)),
        objects=draw(
            st.lists(
                st.builds(ObjectCount, class_name=names, count=st.integers(1, 10_000)),
                max_size=4,
                unique_by=lambda obj: obj.class_name,
            )
        ),
        track_ids=draw(st.lists(track_ids, max_size=4)),
        alert_kinds=draw(st.lists(alert_kinds, max_size=4)),
        captioner=draw(names),
        thumbnail_jpeg=thumbnail,
    )


@st.composite
def polygons(draw: st.DrawFn) -> list[tuple[float, float]]:
    """Star-shaped around the image centre: one vertex per angular sector, so always simple."""
    n = draw(st.integers(min_value=3, max_value=12))
    points = []
    for i in range(n):
        angle = 2 * math.pi * (i + draw(st.floats(0, 0.8))) / n
        radius = draw(st.floats(0.1, 0.45))
        points.append((0.5 + radius * math.cos(angle), 0.5 + radius * math.sin(angle)))
    return points


def zones(zone_id: str) -> st.SearchStrategy[Zone]:
    return st.builds(
        Zone,
        zone_id=st.just(zone_id),
        name=st.text(max_size=20),
        polygon=polygons(),
        classes=class_filters,
    )


@st.composite
def lines(draw: st.DrawFn, line_id: str) -> Line:
    a = draw(st.tuples(unit, unit))
    b = draw(st.tuples(unit, unit).filter(lambda p: p != a))
    direction = draw(st.sampled_from(["a_to_b", "b_to_a", "both"]))
    return Line(line_id=line_id, name=draw(st.text(max_size=20)), a=a, b=b, direction=direction)


def rule_strategies(
    rule_id: str, zone_ids: list[str], line_ids: list[str], calibrated: bool = False
) -> dict[str, st.SearchStrategy[Any]]:
    """A strategy per rule kind that the zones and lines allow, by kind."""
    common = {"rule_id": st.just(rule_id), "classes": class_filters, "cooldown_s": durations}
    intervals = st.floats(1, 86_400)
    optional_zone = st.none() | st.sampled_from(zone_ids) if zone_ids else st.none()
    units = st.sampled_from(["px_s", "m_s"] if calibrated else ["px_s"])
    options: dict[str, st.SearchStrategy[Any]] = {
        "speed": st.builds(
            SpeedRule,
            min_speed=st.floats(1e-3, 1e6),
            unit=units,
            zone_id=optional_zone,
            min_duration_s=durations,
            **common,
        ),
        "stationary": st.builds(
            StationaryRule,
            still_s=st.floats(1e-3, 86_400),
            zone_id=optional_zone,
            max_move_box_heights=st.floats(1e-3, 10),
            forget_s=st.floats(0, 7 * 86_400),
            alert=st.booleans(),
            **common,
        ),
    }
    if zone_ids:
        zone = st.sampled_from(zone_ids)
        options["zone_intrusion"] = st.builds(
            ZoneIntrusionRule, zone_id=zone, min_dwell_s=durations, **common
        )
        options["loitering"] = st.builds(
            LoiteringRule, zone_id=zone, dwell_s=st.floats(1e-3, 1e5), **common
        )
        options["crowding"] = st.builds(
            CrowdingRule, zone_id=zone, min_count=st.integers(2, 100_000), **common
        )
        options["occupancy"] = st.builds(
            OccupancyRule, zone_id=zone, interval_s=intervals, **common
        )
    if line_ids:
        line = st.sampled_from(line_ids)
        direction = st.none() | st.sampled_from(["a_to_b", "b_to_a", "both"])
        options["line_crossing"] = st.builds(
            LineCrossingRule, line_id=line, direction=direction, **common
        )
        options["line_count"] = st.builds(
            LineCountRule, line_id=line, interval_s=intervals, **common
        )
    return options


def rules_for(
    rule_id: str, zone_ids: list[str], line_ids: list[str], calibrated: bool = False
) -> st.SearchStrategy[Any]:
    return st.one_of(list(rule_strategies(rule_id, zone_ids, line_ids, calibrated).values()))


@st.composite
def calibrations(draw: st.DrawFn) -> Calibration:
    """A scale, or four image and ground points in general position (a jittered quad)."""
    if draw(st.booleans()):
        return Calibration(metres_per_pixel=draw(st.floats(1e-4, 1000)))
    corners = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)]
    jitter = st.floats(-0.05, 0.05)
    image = [(x + draw(jitter), y + draw(jitter)) for x, y in corners]
    size = draw(st.floats(1, 500))
    ground = [(x * size + draw(jitter), y * size + draw(jitter)) for x, y in corners]
    return Calibration(image_points=image, ground_points=ground)


@st.composite
def camera_configs(draw: st.DrawFn) -> CameraConfig:
    zone_ids = draw(st.lists(ids, max_size=3, unique=True))
    line_ids = draw(st.lists(ids, max_size=3, unique=True))
    rule_ids = draw(st.lists(ids, max_size=4, unique=True))
    calibration = draw(st.none() | calibrations())
    return CameraConfig(
        camera_id=draw(ids),
        enabled=draw(st.booleans()),
        source_url=draw(st.none() | st.text(min_size=1, max_size=60)),
        fps_target=draw(st.none() | st.floats(min_value=0.01, max_value=120)),
        zones=[draw(zones(zone_id)) for zone_id in zone_ids],
        lines=[draw(lines(line_id)) for line_id in line_ids],
        rules=[
            draw(rules_for(rule_id, zone_ids, line_ids, calibration is not None))
            for rule_id in rule_ids
        ],
        calibration=calibration,
        keyframe_interval_s=draw(durations),
    )


count_values = st.dictionaries(
    st.text(min_size=1, max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1) | finite,
    max_size=6,
)


@st.composite
def counts_messages(draw: st.DrawFn) -> Counts:
    camera_id, rule_id = draw(ids), draw(ids)
    start = draw(st.floats(min_value=0, max_value=4e9))
    return Counts(
        count_id=make_count_id(camera_id, rule_id, start),
        camera_id=camera_id,
        rule_id=rule_id,
        kind=draw(st.sampled_from(COUNT_KINDS)),
        target_id=draw(ids),
        period_start_ts=start,
        period_end_ts=start + draw(st.floats(min_value=1, max_value=86_400)),
        frame_seq=draw(INT64),
        values=draw(count_values),
    )


dead_letters = st.builds(
    DeadLetter,
    service=ids,
    error_class=st.text(min_size=1, max_size=40),
    error_message=st.text(max_size=1500),
    source_topic=topic_names,
    source_partition=st.integers(min_value=0, max_value=2**31 - 1),
    source_offset=INT64,
    failed_ts=timestamps,
)

VALUE_TOPIC_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "detections": detections_messages(),
    "tracks": tracks_messages(),
    "alerts": alert_messages(),
    "keyframes": keyframe_messages(),
    "captions": caption_messages(),
    "camera-config": camera_configs(),
    "counts": counts_messages(),
}


def test_every_topic_has_a_round_trip_strategy() -> None:
    assert set(VALUE_TOPIC_STRATEGIES) | {"frames", "dlq"} == set(TOPIC_MODELS)


@pytest.mark.parametrize("topic", sorted(VALUE_TOPIC_STRATEGIES))
@PROPERTY
@given(data=st.data())
def test_value_topic_round_trip(topic: str, data: st.DataObject) -> None:
    message = data.draw(VALUE_TOPIC_STRATEGIES[topic], label=topic)
    assert type(message) is TOPIC_MODELS[topic]
    assert isinstance(message, JsonMessage)
    value = message.to_bytes()
    parsed = type(message).from_bytes(value)
    assert parsed == message
    assert decode(topic, value) == message
    assert parsed.to_bytes() == value  # the encoding is canonical


@PROPERTY
@given(alert=alert_messages())
def test_alert_details_keep_their_types(alert: Alert) -> None:
    parsed = Alert.from_bytes(alert.to_bytes())
    for key, value in alert.details.items():
        assert type(parsed.details[key]) is type(value), key


@PROPERTY
@given(meta=frame_metas)
def test_frame_meta_header_round_trip(meta: FrameMeta) -> None:
    headers = meta.to_headers()
    assert all(isinstance(value, bytes) for _, value in headers)
    assert FrameMeta.from_headers(headers) == meta


@PROPERTY
@given(letter=dead_letters)
def test_dead_letter_header_round_trip(letter: DeadLetter) -> None:
    assert len(letter.error_message) <= 1000
    assert DeadLetter.from_headers(letter.to_headers()) == letter


SUB_MODEL_STRATEGIES: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    FrameRef: frame_refs(),
    Detection: detection_models,
    AppearanceVectors: appearance_vectors(),
    TrackedObject: tracked_objects,
    AlertSnapshot: st.builds(AlertSnapshot, frame=frame_refs(), xyxy=xyxy()),
    ObjectCount: st.builds(ObjectCount, class_name=names, count=st.integers(1, 10_000)),
    Zone: zones("z-1"),
    Line: lines("l-1"),
    **{
        RULE_KINDS[kind].config: strategy
        for kind, strategy in rule_strategies("r", ["z"], ["l"], calibrated=True).items()
    },
    Calibration: calibrations(),
}


def test_every_rule_kind_has_a_round_trip_strategy() -> None:
    assert {kind.config for kind in RULE_KINDS.values()} <= set(SUB_MODEL_STRATEGIES)


@pytest.mark.parametrize("model", list(SUB_MODEL_STRATEGIES), ids=lambda m: m.__name__)
@PROPERTY
@given(data=st.data())
def test_sub_model_json_round_trip(model: type[BaseModel], data: st.DataObject) -> None:
    instance = data.draw(SUB_MODEL_STRATEGIES[model], label=model.__name__)
    assert isinstance(instance, model)
    assert model.model_validate_json(instance.model_dump_json()) == instance
    assert model.model_validate(instance.model_dump()) == instance
