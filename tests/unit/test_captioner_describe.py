"""The scene describer from literal keyframes and painted images."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from vsa.schemas import Alert, AlertSnapshot, CameraConfig, FrameRef, Keyframe, TrackedObject
from vsa.services.captioner.describe import DescribeOptions, dominant_colour, motion_of, place_of
from vsa.services.captioner.scene import describe, noun

W, H = 800, 600
NOON_UTC = dt.datetime(2026, 6, 1, 13, 0, tzinfo=dt.timezone.utc).timestamp()


def obj(
    track_id: int,
    xyxy: tuple[float, float, float, float],
    cls: str = "person",
    v: tuple[float, float] = (0.0, 0.0),
) -> TrackedObject:
    class_id = {"person": 0, "car": 2}.get(cls, 5)
    return TrackedObject(
        track_id=track_id,
        xyxy=xyxy,
        class_id=class_id,
        class_name=cls,
        score=0.9,
        velocity_px_s=v,
        age_frames=10,
        state="confirmed",
    )


def keyframe(
    objects: list[TrackedObject], alerts: list[Alert] | None = None, ts: float = NOON_UTC
) -> Keyframe:
    ref = FrameRef(topic="frames", partition=0, offset=7, camera_id="cam-1", frame_seq=42)
    alerts = alerts or []
    return Keyframe(
        camera_id="cam-1",
        frame_seq=42,
        frame=ref,
        capture_ts=ts,
        reason="alert" if alerts else "periodic",
        objects=objects,
        alert_ids=[a.alert_id for a in alerts],
        alerts=alerts,
        track_ids=[o.track_id for o in objects][:1] if alerts else [],
    )


def painted(*boxes: tuple[tuple[int, int, int, int], tuple[int, int, int]]) -> np.ndarray:
    image = np.full((H, W, 3), 128, np.uint8)  # grey background
    for (x1, y1, x2, y2), rgb in boxes:
        image[y1:y2, x1:x2] = rgb
    return image


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((220, 20, 30), "red"),
        ((30, 60, 200), "blue"),
        ((245, 245, 245), "white"),
        ((15, 15, 15), "black"),
        ((40, 170, 60), "green"),
        ((230, 210, 40), "yellow"),
        ((110, 70, 30), "brown"),
        ((128, 128, 128), "grey"),
    ],
)
def test_dominant_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    image = painted(((100, 100, 200, 300), rgb))
    assert dominant_colour(image, (100, 100, 200, 300), "person") == name


def test_colour_is_measured_on_the_torso_not_the_background() -> None:
    image = painted(((300, 100, 400, 400), (20, 40, 200)))  # a blue box
    # The person's box is wider than the painted figure: the torso window still hits blue.
    assert dominant_colour(image, (280, 80, 420, 420), "person") == "blue"


def test_motion_words() -> None:
    tall = (100.0, 100.0, 150.0, 300.0)  # 200 px tall
    assert motion_of(obj(1, tall, v=(0.0, 5.0))) == ("standing", "")
    assert motion_of(obj(1, tall, v=(-120.0, 10.0))) == ("walking", "left")
    assert motion_of(obj(1, tall, v=(0.0, 500.0))) == ("running", "down the frame")
    assert motion_of(obj(1, (0, 0, 200, 100), "car", v=(1.0, 0.0))) == ("parked", "")
    assert motion_of(obj(1, (0, 0, 200, 100), "car", v=(90.0, 0.0))) == ("moving", "right")


def test_place_words() -> None:
    assert place_of((10, 10, 50, 50), W, H) == "at the top left"
    assert place_of((700, 280, 790, 320), W, H) == "on the right"
    assert place_of((380, 280, 420, 320), W, H) == "in the centre"


def test_nouns() -> None:
    assert (noun("person", 1), noun("person", 2), noun("umbrella", 1), noun("car", 12)) == (
        "a person",
        "2 people",
        "an umbrella",
        "12 cars",
    )


def test_full_description_with_zone_colour_motion_and_alert() -> None:
    config = CameraConfig.model_validate(
        {
            "camera_id": "cam-1",
            "zones": [
                {
                    "zone_id": "gate",
                    "name": "gate",
                    "polygon": [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]],
                }
            ],
            "rules": [{"kind": "loitering", "rule_id": "loiter", "zone_id": "gate", "dwell_s": 30}],
        }
    )
    walkers = [
        obj(1, (560, 100, 600, 220), v=(-80.0, 0.0)),
        obj(2, (620, 110, 660, 230), v=(-90.0, 0.0)),
    ]
    loiterer = obj(3, (100, 350, 160, 560), v=(0.0, 2.0))
    car = obj(4, (650, 400, 790, 480), "car")
    image = painted(
        ((100, 350, 160, 560), (210, 25, 30)),
        ((650, 400, 790, 480), (240, 240, 240)),
        ((560, 100, 600, 220), (20, 30, 160)),
        ((620, 110, 660, 230), (25, 35, 170)),
    )
    alert = Alert(
        alert_id="0" * 32,
        camera_id="cam-1",
        rule_id="loiter",
        kind="loitering",
        track_ids=[3],
        class_name="person",
        ts=NOON_UTC,
        frame_seq=42,
        snapshot=AlertSnapshot(
            frame=FrameRef(topic="frames", partition=0, offset=7, camera_id="cam-1", frame_seq=42),
            xyxy=(100, 350, 160, 560),
        ),
        details={"zone_id": "gate", "dwell_s": 45.2},
    )
    result = describe(keyframe([*walkers, loiterer, car], [alert]), image, config)
    text = result.text
    assert text.startswith("Afternoon. ")
    assert text.index("2 people in blue walking left at the top right") == len("Afternoon. ")
    assert "a person in red standing in zone 'gate'" in text
    assert "a white car parked at the bottom right" in text
    assert "Alerts: a person in red has been in zone 'gate' for 45 s (loitering)." in text
    assert [(o.class_name, o.count) for o in result.objects] == [("car", 1), ("person", 3)]


def test_empty_scene_and_timezone() -> None:
    night = describe(keyframe([]), None, options=DescribeOptions(timezone="Asia/Tokyo"))
    assert night.text == "Night. No objects in view."  # 13:00 UTC is 22:00 in Tokyo
    assert night.objects == ()


def test_lost_tracks_are_not_described() -> None:
    lost = obj(1, (10, 10, 50, 100)).model_copy(update={"state": "lost"})
    assert describe(keyframe([lost]), None).text == "Afternoon. No objects in view."


def test_tentative_tracks_of_old_keyframes_are_not_described() -> None:
    """Trackers before issue 14 put unconfirmed tracks in keyframes; a caption never counts or
    names them."""
    seen = obj(1, (10, 10, 50, 100))
    tentative = obj(2, (300, 10, 340, 100)).model_copy(update={"state": "tentative"})
    description = describe(keyframe([seen, tentative]), None)
    assert [(c.class_name, c.count) for c in description.objects] == [("person", 1)]
    assert "2 people" not in description.text


def an_alert(kind: str, details: dict[str, str | float], track_ids: list[int]) -> Alert:
    ref = FrameRef(topic="frames", partition=0, offset=7, camera_id="cam-1", frame_seq=42)
    return Alert(
        alert_id="0" * 32,
        camera_id="cam-1",
        rule_id="r",
        kind=kind,
        track_ids=track_ids,
        class_name="person",
        ts=NOON_UTC,
        frame_seq=42,
        snapshot=AlertSnapshot(frame=ref, xyxy=(10, 10, 50, 100)),
        details=details,
    )


@pytest.mark.parametrize(
    ("kind", "details", "words"),
    [
        ("zone_intrusion", {"zone_id": "gate"}, "a person entered zone 'Gate'"),
        ("loitering", {"zone_id": "gate", "dwell_s": 61.0}, "for 61 s (loitering)"),
        ("line_crossing", {"line_id": "mid", "direction": "a_to_b"}, "crossed line 'mid' (a_to_b)"),
        ("crowding", {"zone_id": "gate", "count": 4}, "4 people crowding zone 'Gate'"),
    ],
)
def test_each_alert_kind_is_described_by_its_own_phrase(
    kind: str, details: dict[str, str | float], words: str
) -> None:
    config = CameraConfig.model_validate(
        {
            "camera_id": "cam-1",
            "zones": [{"zone_id": "gate", "name": "Gate", "polygon": [[0, 0], [1, 0], [1, 1]]}],
        }
    )
    people = [obj(i, (10 + 60 * i, 10, 50 + 60 * i, 100)) for i in range(1, 5)]
    alert = an_alert(kind, details, [1, 2, 3, 4] if kind == "crowding" else [1])
    assert words in describe(keyframe(people, [alert]), None, config).text


def test_an_alert_of_an_unknown_kind_is_an_error_not_crowding() -> None:
    """Alerts are validated against the known kinds when parsed; one that got past that (a
    newer tracker's kind, built without validation here) must not be described as another."""
    from vsa.schemas.rules import UnknownRuleKindError

    known = an_alert("crowding", {"zone_id": "gate", "count": 2}, [1])
    alien = known.model_copy(update={"kind": "teleporting"})
    with pytest.raises(UnknownRuleKindError, match="unknown rule kind 'teleporting'"):
        describe(keyframe([obj(1, (10, 10, 50, 100))], [alien]), None)


def test_a_caption_names_only_the_confirmed_tracks_seen_on_the_frame() -> None:
    from vsa.services.captioner.service import keyframe_caption

    seen = obj(1, (10, 10, 50, 100))
    lost = obj(2, (100, 10, 140, 100)).model_copy(update={"state": "lost"})
    tentative = obj(3, (200, 10, 240, 100)).model_copy(update={"state": "tentative"})
    frame = keyframe([seen, lost, tentative])
    caption = keyframe_caption(frame, describe(frame, None), "scene", b"\xff\xd8\xff\xd9")
    assert caption.track_ids == [1]
