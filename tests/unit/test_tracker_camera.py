"""The frame adapter: detections message in, tracks / alerts / keyframe out; keyframe decisions."""

from __future__ import annotations

from vsa.schemas import CameraConfig, Detection, Detections, FrameRef, Tracks
from vsa.services.tracker.camera import CameraState, process
from vsa.services.tracker.rules import compile_rules

T0 = 1_767_225_600.0


def message(
    seq: int, boxes: list[tuple[float, float, str]], ts: float | None = None, camera: str = "cam"
) -> Detections:
    """A detections message with 40×80 boxes at centres (x, y) of the given classes."""
    class_ids = {"person": 0, "car": 2, "truck": 7}
    ref = FrameRef(topic="frames", partition=1, offset=500 + seq, camera_id=camera, frame_seq=seq)
    return Detections(
        camera_id=camera,
        frame_seq=seq,
        frame=ref,
        capture_ts=T0 + seq / 10 if ts is None else ts,
        width=1000,
        height=500,
        model_id="test",
        boxes=[
            Detection(
                xyxy=(x - 20, y - 40, x + 20, y + 40),
                class_id=class_ids[name],
                class_name=name,
                score=0.9,
            )
            for x, y, name in boxes
        ],
    )


def config(**extra: object) -> CameraConfig:
    return CameraConfig.from_dict(
        {
            "camera_id": "cam",
            "zones": [
                {"zone_id": "door", "polygon": [[0.5, 0.2], [0.9, 0.2], [0.9, 0.8], [0.5, 0.8]]}
            ],
            "rules": [{"kind": "zone_intrusion", "rule_id": "in", "zone_id": "door"}],
            **extra,
        }
    )


def test_tracks_message_carries_every_live_track_with_its_frame_reference() -> None:
    state = CameraState()
    state, out = process(state, message(0, [(100, 100, "person"), (300, 100, "car")]))
    assert out is not None
    tracks = out.tracks
    assert isinstance(tracks, Tracks)
    assert tracks.frame.offset == 500
    assert tracks.frame_seq == 0
    assert [(t.track_id, t.class_name, t.state) for t in tracks.tracks] == [
        (1, "person", "confirmed"),
        (2, "car", "confirmed"),
    ]
    state, out = process(state, message(1, [(105, 100, "person")]))
    assert out is not None
    assert [(t.track_id, t.state) for t in out.tracks.tracks] == [(1, "confirmed"), (2, "lost")]
    assert out.tracks.tracks[0].velocity_px_s[0] > 0


def test_redelivered_message_gives_nothing_and_keeps_the_state() -> None:
    state, _ = process(CameraState(), message(0, [(100, 100, "person")]))
    state, _ = process(state, message(1, [(100, 100, "person")]))
    again, out = process(state, message(1, [(500, 300, "person")]))
    assert out is None
    assert again is state


def test_disabled_camera_is_ignored() -> None:
    rules = compile_rules(config(enabled=False), ["person"])
    state, out = process(CameraState(), message(0, [(100, 100, "person")]), rules)
    assert out is None
    assert state.tracker.last_frame_seq == -1


def test_track_class_name_comes_from_the_detections() -> None:
    state = CameraState()
    for seq in range(6):
        name = "truck" if seq % 3 == 2 else "car"
        state, out = process(state, message(seq, [(100 + seq, 100, name)]))
    assert out is not None
    assert out.tracks.tracks[0].class_name == "car"
    assert state.class_names == {2: "car", 7: "truck"}


def test_alert_and_new_track_keyframes() -> None:
    rules = compile_rules(config(), ["person"])
    state, out = process(CameraState(), message(0, [(100, 100, "person")]), rules)
    assert out is not None
    assert out.keyframe is not None
    assert out.keyframe.reason == "new_track"
    assert out.keyframe.track_ids == [1]
    state, out = process(state, message(1, [(600, 250, "person")], ts=T0 + 0.1), rules)
    assert out is not None
    assert out.keyframe is None
    state, out = process(state, message(2, [(600, 250, "person")]), rules)
    assert out is not None
    assert out.keyframe is not None
    # track 2 was confirmed and alerted on the same frame: the alert reason wins
    assert out.keyframe.reason == "alert"
    assert out.keyframe.alert_ids == [out.alerts[0].alert_id]
    assert out.keyframe.track_ids == [2]
    assert {o.track_id for o in out.keyframe.objects} == {1, 2}


def test_periodic_keyframes_while_objects_are_present() -> None:
    rules = compile_rules(config(rules=[], keyframe_interval_s=1.0), ["person"])
    state = CameraState()
    reasons = {}
    for seq in range(40):
        boxes = [(100 + seq, 100, "person")] if seq < 25 else []
        state, out = process(state, message(seq, boxes), rules)
        assert out is not None
        if out.keyframe is not None:
            reasons[seq] = out.keyframe.reason
    assert reasons == {0: "new_track", 10: "periodic", 20: "periodic"}


def test_no_periodic_keyframes_when_the_interval_is_zero() -> None:
    rules = compile_rules(config(rules=[]), ["person"])
    state = CameraState()
    reasons = []
    for seq in range(30):
        state, out = process(state, message(seq, [(100, 100, "person")]), rules)
        if out is not None and out.keyframe is not None:
            reasons.append(out.keyframe.reason)
    assert reasons == ["new_track"]


def test_a_restarted_frame_seq_starts_the_camera_over_with_its_alerts() -> None:
    """The camera's frame_seq starts at 0 again an hour later (ingest found none of its frames):
    it is tracked again; track ids and the crowd's alert episodes go on, so no id repeats."""
    plaza = {"zone_id": "plaza", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    crowd = {"kind": "crowding", "rule_id": "crowd", "zone_id": "plaza", "min_count": 2}
    rules = compile_rules(config(zones=[plaza], rules=[crowd]), ["person"])
    people = [(100, 100, "person"), (300, 100, "person")]
    state = CameraState()
    first = []
    for seq in range(10):
        state, out = process(state, message(seq, people), rules)
        assert out is not None
        assert out.restarted_from is None
        first += out.alerts
    assert [a.details["episode"] for a in first] == [0]  # one crowd, one alert
    later = T0 + 3600
    state, out = process(state, message(0, people, ts=later), rules)
    assert out is not None
    assert out.restarted_from == 9
    assert [t.track_id for t in out.tracks.tracks] == [3, 4]
    assert [a.details["episode"] for a in out.alerts] == [1]  # a new crowd: a new alert_id
    assert out.alerts[0].alert_id != first[0].alert_id
    assert state.tracker.last_frame_seq == 0
    assert state.rules.table("crowd").track_ids.tolist() == [0]  # the zone row only
    for seq, ts in ((0, later), (5, T0 + 0.5), (12, T0 + 1.2)):  # frames already applied
        again, skipped = process(state, message(seq, people, ts=ts), rules)
        assert skipped is None
        assert again is state
    state, out = process(state, message(1, people, ts=later + 0.1), rules)
    assert out is not None
    assert out.restarted_from is None
    assert [t.track_id for t in out.tracks.tracks] == [3, 4]
