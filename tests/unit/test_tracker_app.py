"""The tracker service without Kafka: the batch handler (ordering, redelivery, dead letters), the
offset guard, the rule book, the settings and the Faust app wiring (memory store)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from vsa.runtime.settings import ConfigError, TopicNames, load_settings
from vsa.schemas import CameraConfig, DeadLetter, Detections
from vsa.services.tracker.camera import CameraState
from vsa.services.tracker.config import TrackerSettings
from vsa.services.tracker.golden import GOLDEN_DIR, read_detections
from vsa.services.tracker.handler import BatchPlan, Record, TrackerHandler
from vsa.services.tracker.offsets import OffsetGuard
from vsa.services.tracker.replay import replay
from vsa.services.tracker.rulebook import RuleBook
from vsa.services.tracker.rules import compile_rules, load_camera_configs

NAMES = TopicNames(prefix="t.")
SCENE = read_detections(GOLDEN_DIR / "scene.detections.jsonl")
(SCENE_CONFIG,) = load_camera_configs(GOLDEN_DIR / "scene.rules.yaml")


def records(messages: Sequence[Detections], first_offset: int = 0) -> list[Record]:
    return [
        Record(m.camera_id.encode(), m.to_bytes(), "t.detections", 0, first_offset + i)
        for i, m in enumerate(messages)
    ]


class Table:
    """A dict standing in for the Faust table: camera_id bytes -> state bytes."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def load(self, record: Record) -> bytes | None:
        return self.data.get(record.key or b"")

    def write(self, plan: BatchPlan) -> None:
        for write in plan.writes:
            self.data[write.key] = write.data


def handler() -> TrackerHandler:
    rules = compile_rules(SCENE_CONFIG, None)
    return TrackerHandler(NAMES, lambda camera: rules if camera == "lab" else None)


def expected_values() -> list[tuple[str, bytes]]:
    rules = {"lab": compile_rules(SCENE_CONFIG, None)}
    return [(f"t.{topic}", value.to_bytes()) for topic, value in replay(SCENE, rules)]


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_batches_give_exactly_the_offline_replay(batch: int) -> None:
    tracker, table = handler(), Table()
    produced: list[tuple[str, bytes]] = []
    inputs = records(SCENE)
    for start in range(0, len(inputs), batch):
        plan = tracker.handle(inputs[start : start + batch], table.load)
        produced += [(out.topic, out.value) for out in plan.outputs]
        table.write(plan)
    assert produced == expected_values()
    state = CameraState.from_bytes(table.data[b"lab"])
    assert state.tracker.last_frame_seq == SCENE[-1].frame_seq


def test_a_crash_before_the_state_write_replays_the_same_alert_ids() -> None:
    """Outputs produced, then a crash before the table write: the redelivered batch is applied
    to the old state again and yields byte-identical outputs (same alert_ids)."""
    tracker, table = handler(), Table()
    inputs = records(SCENE)
    table.write(tracker.handle(inputs[:40], table.load))
    lost = tracker.handle(inputs[40:70], table.load)  # produced, never written
    again = tracker.handle(inputs[40:70], table.load)
    assert [o.value for o in again.outputs] == [o.value for o in lost.outputs]
    assert any(o.topic == "t.alerts" for o in again.outputs)


def test_a_redelivery_after_the_state_write_produces_nothing() -> None:
    tracker, table = handler(), Table()
    inputs = records(SCENE[:50])
    table.write(tracker.handle(inputs, table.load))
    plan = tracker.handle(inputs[10:], table.load)
    assert plan.outputs == []
    assert plan.writes == []
    assert plan.outcomes == {"already_applied": 40}


def test_bad_records_go_to_the_dead_letters_and_the_rest_is_applied() -> None:
    tracker, table = handler(), Table()
    good = records(SCENE[:3])
    other_camera = SCENE[3].model_copy(update={"camera_id": "gate"})  # frame ref says 'lab'
    bad = [
        Record(b"lab", b"{not json", "t.detections", 0, 10, [("trace", b"1")]),
        Record(b"gate", SCENE[3].to_bytes(), "t.detections", 0, 11),  # key is not camera_id
        Record(b"lab", other_camera.model_dump_json().encode(), "t.detections", 0, 12),
    ]
    plan = tracker.handle([good[0], *bad, good[1], good[2]], table.load)
    assert plan.outcomes == {"applied": 3, "failed": 3}
    assert [d.value for d in plan.dead_letters] == [r.value for r in bad]
    assert {d.topic for d in plan.dead_letters} == {"t.dlq.tracker"}
    first = plan.dead_letters[0]
    assert first.key == b"lab"
    assert first.headers is not None
    assert ("trace", b"1") in first.headers
    meta = DeadLetter.from_headers(first.headers)
    assert (meta.service, meta.error_class, meta.source_offset) == ("tracker", "SchemaError", 10)
    second = DeadLetter.from_headers(plan.dead_letters[1].headers)
    assert second.error_class == "KeyMismatchError"


def test_an_unreadable_state_sends_the_frame_to_the_dead_letters() -> None:
    tracker, table = handler(), Table()
    table.data[b"lab"] = b"garbage"
    plan = tracker.handle(records(SCENE[:1]), table.load)
    assert plan.outputs == []
    assert DeadLetter.from_headers(plan.dead_letters[0].headers).error_class == ("StateFormatError")


def test_a_disabled_camera_is_neither_tracked_nor_written() -> None:
    disabled = compile_rules(SCENE_CONFIG.model_copy(update={"enabled": False}), None)
    tracker, table = TrackerHandler(NAMES, lambda _: disabled), Table()
    plan = tracker.handle(records(SCENE[:5]), table.load)
    assert (plan.outputs, plan.writes, plan.outcomes) == ([], [], {"disabled": 5})


def restarted(messages: Sequence[Detections], after_s: float = 3600.0) -> list[Detections]:
    """The same frames, numbered from the same frame_seq again but captured ``after_s`` later:
    what ingest sends when it found no earlier frame of the camera (its frames expired)."""
    return [m.model_copy(update={"capture_ts": m.capture_ts + after_s}) for m in messages]


def test_a_restarted_camera_is_tracked_again_as_a_new_start_with_new_ids() -> None:
    """The scene, then the scene again with frame_seq from 0 an hour later: the second pass is
    tracked exactly like the first (a camera starting over), its track ids after the first's,
    its alerts with new ids."""
    rules = {"lab": compile_rules(SCENE_CONFIG, None)}
    outputs = list(replay([*SCENE, *restarted(SCENE)], rules))
    tracks = [m for topic, m in outputs if topic == "tracks"]
    first, second = tracks[: len(tracks) // 2], tracks[len(tracks) // 2 :]
    assert len(first) == len(second) == 115  # every frame of both passes (minus 2 repeats)
    offset = max(t.track_id for m in first for t in m.tracks)
    for a, b in zip(first, second, strict=True):
        assert (b.frame_seq, b.capture_ts) == (a.frame_seq, a.capture_ts + 3600)
        assert [(t.track_id + offset, t.xyxy, t.state) for t in a.tracks] == [
            (t.track_id, t.xyxy, t.state) for t in b.tracks
        ]
    alerts = [m for topic, m in outputs if topic == "alerts"]
    assert len(alerts) == 22  # 11 per pass
    assert len({getattr(a, "alert_id") for a in alerts}) == 22  # noqa: B009


def test_a_restart_is_applied_once_and_redeliveries_around_it_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker, table = handler(), Table()
    before, after = records(SCENE), records(restarted(SCENE), first_offset=len(SCENE))
    table.write(tracker.handle(before, table.load))
    with caplog.at_level("WARNING", logger="vsa.tracker"):
        plan = tracker.handle(after[:60], table.load)
    assert plan.outcomes == {"restarted": 1, "applied": 57, "already_applied": 2}
    (warning,) = [r for r in caplog.records if r.getMessage() == "camera_sequence_restarted"]
    assert (warning.camera_id, warning.last_frame_seq) == ("lab", 119)
    table.write(plan)
    # A crash before the offsets were committed: the end of the first pass and the start of the
    # second come again. Nothing is applied twice, whatever their frame_seq.
    again = tracker.handle([*before[-40:], *after[:60]], table.load)
    assert (again.outputs, again.writes) == ([], [])
    assert again.outcomes == {"already_applied": 100}
    plan = tracker.handle(after[60:], table.load)
    assert plan.outcomes == {"applied": 57}


# ------------------------------------------------------------------------------- offset guard


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_offset_guard_finds_a_gap_seeks_back_and_closes_it() -> None:
    clock = Clock()
    guard: OffsetGuard[int] = OffsetGuard(retry_s=1.0, max_seeks=3, clock=clock)
    assert [guard.check(0, o) for o in (5, 6, 7)] == ["next", "next", "next"]
    assert guard.check(0, 9) == "gap"  # 8 is missing
    assert guard.check(0, 10) == "gap"
    assert guard.check(1, 3) == "next"  # other partitions go on
    assert guard.due_seeks() == [(0, 8, False)]
    assert guard.due_seeks() == []  # not again before retry_s
    clock.now = 1.5
    assert guard.due_seeks() == [(0, 8, False)]
    assert guard.check(0, 6) == "seen"  # the seek redelivers applied offsets first
    assert [guard.check(0, o) for o in (8, 9, 10)] == ["next", "next", "next"]
    assert guard.gaps == {}


def test_offset_guard_gives_up_on_a_hole_in_the_log() -> None:
    clock = Clock()
    guard: OffsetGuard[int] = OffsetGuard(retry_s=1.0, max_seeks=2, clock=clock)
    guard.check(0, 0)
    assert guard.check(0, 2) == "gap"  # offset 1 is a transaction marker, say
    assert guard.check(0, 3) == "gap"
    for _ in range(2):
        assert guard.due_seeks() == [(0, 1, False)]
        assert guard.due_seeks() == []  # sought, nothing back yet
        assert guard.check(0, 2) == "gap"  # fetched again without offset 1: in vain
        assert guard.check(0, 3) == "gap"
    assert guard.due_seeks() == [(0, 2, True)]  # now expects the lowest dropped offset
    assert guard.check(0, 2) == "next"
    guard.forget()
    assert guard.check(0, 100) == "next"


def test_offset_guard_never_gives_up_for_time_alone() -> None:
    """A loaded worker may take long to fetch again: the seek is repeated every retry_s, and
    records queued before the seek (rising past every dropped offset) prove nothing."""
    clock = Clock()
    guard: OffsetGuard[int] = OffsetGuard(retry_s=1.0, max_seeks=2, clock=clock)
    guard.check(0, 10)
    assert guard.check(0, 12) == "gap"  # 11 missing
    for second in range(1, 20):
        assert guard.due_seeks() == [(0, 11, False)]
        assert guard.check(0, 12 + second) == "gap"  # queued before the seek, not a refetch
        clock.now = float(second)
    assert guard.check(0, 11) == "next"
    assert guard.gaps == {}


def test_offset_guard_rewound_seeks_back_to_a_dropped_batch() -> None:
    """A batch dropped after a freeze was taken but not applied: the next record is a gap and
    the partition is sought back to the batch's first offset."""
    guard: OffsetGuard[int] = OffsetGuard(clock=Clock())
    assert [guard.check(0, o) for o in (4, 5, 6, 7)] == ["next"] * 4
    guard.rewind(0, 5)  # 5..7 dropped
    assert guard.check(0, 8) == "gap"
    assert guard.due_seeks() == [(0, 5, False)]
    assert [guard.check(0, o) for o in (5, 6, 7, 8)] == ["next"] * 4
    guard.rewind(1, 3)  # a partition never seen: nothing to expect
    assert guard.check(1, 9) == "next"


def test_offset_guard_told_the_start_offset_seeks_back_to_skipped_first_records() -> None:
    """Offsets 0..54 of a partition just assigned never reached the agent: expecting the
    committed offset makes the first record that arrives a gap."""
    guard: OffsetGuard[int] = OffsetGuard(clock=Clock())
    assert not guard.knows(0)
    guard.expect(0, 0)
    assert guard.knows(0)
    assert guard.check(0, 55) == "gap"
    assert guard.due_seeks() == [(0, 0, False)]
    assert [guard.check(0, o) for o in range(56)] == ["next"] * 56
    guard.expect(0, 3)  # only a partition's first expectation counts
    assert guard.check(0, 56) == "next"


# ---------------------------------------------------------------------------------- rule book


def test_rule_book_file_then_topic_then_tombstone(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(SCENE_CONFIG.model_dump(mode="json")), encoding="utf-8")
    invalid: list[str] = []
    book = RuleBook(["person", "car"], keyframe_interval_s=7.0, on_invalid=invalid.append)
    assert book.load_file(path) == 1
    from_file = book.rules_for("lab")
    assert from_file is not None
    assert len(from_file.rules) == 5
    assert from_file.keyframe_interval_s == 7.0  # the override wins over the camera's 2 s
    one_rule = SCENE_CONFIG.model_copy(update={"rules": SCENE_CONFIG.rules[:1]})
    book.apply_record(b"lab", one_rule.to_bytes())
    assert len(book.rules_for("lab").rules) == 1  # type: ignore[union-attr]
    book.apply_record(b"lab", b'{"camera_id": "lab", "bogus": 1}')  # invalid: kept previous
    assert len(book.rules_for("lab").rules) == 1  # type: ignore[union-attr]
    assert invalid == ["lab"]
    book.apply_record(b"lab", None)  # tombstone: back to the file's config
    assert book.rules_for("lab") is from_file
    assert book.rules_for("elsewhere") is None


def test_rule_book_refuses_unknown_classes(tmp_path: Path) -> None:
    book = RuleBook(["car"])
    invalid: list[str] = []
    book.on_invalid = invalid.append
    book.apply_record(b"lab", SCENE_CONFIG.to_bytes())  # its zone is for 'person'
    assert book.rules_for("lab") is None
    assert invalid == ["lab"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(SCENE_CONFIG.model_dump(mode="json")), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown class 'person'"):
        book.load_file(path)


# ----------------------------------------------------------------------------------- settings


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSA_TRACKER_TRACKING__MATCH_IOU", "0.35")
    monkeypatch.setenv("VSA_TRACKER_KNOWN_CLASSES", '["person", "car"]')
    monkeypatch.setenv("VSA_TRACKER_SESSION_TIMEOUT_S", "6")
    monkeypatch.setenv("VSA_TRACKER_HEARTBEAT_INTERVAL_S", "1")
    settings = load_settings(TrackerSettings)
    assert settings.tracking.match_iou == 0.35
    assert settings.known_classes == ("person", "car")
    assert settings.metrics_port == 9103
    assert settings.service_group == "vsa-tracker"


def test_settings_defaults_and_checks() -> None:
    settings = load_settings(TrackerSettings)
    assert len(settings.known_classes) == 80
    assert "person" in settings.known_classes
    with pytest.raises(ConfigError, match="heartbeat_interval_s"):
        load_settings(TrackerSettings, session_timeout_s=6, heartbeat_interval_s=3)


# ------------------------------------------------------------------------- the Faust wiring


def test_the_faust_app_with_a_memory_store(tmp_path: Path) -> None:
    from vsa.services.tracker.service import TABLE_NAME, TrackerService, faust_broker

    settings = load_settings(
        TrackerSettings,
        store="memory",
        datadir=tmp_path,
        group_id="unit-tracker",
        topics=NAMES,
        session_timeout_s=6,
        heartbeat_interval_s=1,
        follow_camera_config=False,
    )
    service = TrackerService(settings, partitions=4, rulebook=RuleBook(None))
    conf = service.app.conf
    assert conf.id == "unit-tracker"
    assert str(conf.store) == "memory:"
    assert conf.broker_session_timeout == 6
    assert conf.topic_partitions == 4
    assert service.table.name == TABLE_NAME
    assert service.table.partitions == 4
    assert service.table.changelog_topic.get_topic_name() == ("unit-tracker-camera-state-changelog")
    assert service.detections.get_topic_name() == "t.detections"
    assert faust_broker(settings.kafka.model_copy(update={"bootstrap_servers": "a:1, b:2"})) == (
        "kafka://a:1;kafka://b:2"
    )


def test_event_context_makes_the_event_current() -> None:
    from faust.streams import current_event

    from vsa.services.tracker.service import event_context

    class Event:  # any object: Faust only keeps a weak reference to it
        pass

    ev = Event()
    assert current_event() is None
    with event_context(ev):
        assert current_event() is ev  # type: ignore[comparison-overlap]
    assert current_event() is None


def test_take_returns_a_batch_within_the_wait() -> None:
    from vsa.services.tracker.service import _take

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for item in range(5):
            queue.put_nowait(item)
        full = await _take(queue, 3, 0.01, 0.1)  # type: ignore[arg-type]
        rest = await _take(queue, 10, 0.01, 0.1)  # type: ignore[arg-type]
        idle = await _take(queue, 10, 0.01, 0.05)  # type: ignore[arg-type]
        return full, rest, idle  # type: ignore[return-value]

    assert asyncio.run(scenario()) == ([0, 1, 2], [3, 4], [])


def test_vsa_tracker_is_a_command() -> None:
    from vsa.cli import build_parser

    args = build_parser().parse_args(["tracker", "--rules", "r.yaml"])
    assert args.command == "tracker"
    assert args.rules == Path("r.yaml")


def test_the_rules_file_must_be_valid(tmp_path: Path) -> None:
    from vsa.services.tracker.service import make_rulebook

    bad = CameraConfig.from_dict({"camera_id": "gate"}).model_dump(mode="json")
    bad["zones"] = [{"zone_id": "z", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    settings = load_settings(TrackerSettings, rules_file=path)
    with pytest.raises(ConfigError, match="self-intersecting"):
        make_rulebook(settings)


@pytest.mark.parametrize("case", ["scene", "tud-campus"])
def test_fast_output_bytes_equal_the_models_bytes(case: str) -> None:
    """tracks_json()/keyframe_json() (documents, no models) give exactly the models' bytes."""
    from vsa.services.tracker.camera import process

    messages = read_detections(GOLDEN_DIR / f"{case}.detections.jsonl")
    (config,) = load_camera_configs(GOLDEN_DIR / f"{case}.rules.yaml")
    rules = compile_rules(config, None)
    state, keyframes = CameraState(), 0
    for message in messages:
        state, out = process(state, message, rules)
        if out is None:
            continue
        assert out.tracks_json() == out.tracks.to_bytes()
        keyframe = out.keyframe
        assert out.keyframe_json() == (None if keyframe is None else keyframe.to_bytes())
        keyframes += keyframe is not None
    assert keyframes > 5
