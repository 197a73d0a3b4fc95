"""``vsa cameras`` against the real local Kafka: what it publishes is what ingest's follower
(a consumer group) and the tracker's (every partition, compiled rules) see."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from vsa.cli import main
from vsa.runtime.camera_configs import CameraConfigs, ConfigFollower
from vsa.runtime.kafka import ensure_topics
from vsa.runtime.settings import KafkaSettings, TopicNames, TopicSpec
from vsa.services.tracker.rulebook import RuleBook

from .test_ingest_live import wait_for

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vtest-rules.yaml"
SECRET = "s3cret-camera-pw"


@pytest.fixture
def names(kafka: KafkaSettings, unique_name: str, monkeypatch: pytest.MonkeyPatch) -> TopicNames:
    """A pipeline prefix whose camera-config topic exists; the CLI talks to the test's Kafka."""
    names = TopicNames(prefix=f"{unique_name}.")
    spec = TopicSpec(partitions=3, compact=True, retention_ms=-1)
    ensure_topics(kafka, {names.name("camera_config"): spec})
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    return names


@pytest.fixture
def followers(
    kafka: KafkaSettings, names: TopicNames, unique_name: str
) -> Iterator[tuple[CameraConfigs, RuleBook]]:
    """Ingest's view (a group member of the topic) and the tracker's (rules compiled)."""
    topic = names.name("camera_config")
    ingest = CameraConfigs(kafka, topic, "test-ingest", group_id=f"{unique_name}-ingest")
    book = RuleBook(known_classes=None)
    tracker = ConfigFollower(kafka, topic, "test-tracker", book.apply_record)
    ingest.start()
    tracker.start()
    try:
        yield ingest, book
    finally:
        ingest.stop()
        tracker.stop()


@pytest.fixture(autouse=True)
def keep_log_handlers() -> Iterator[None]:
    """vsa's main() points the root logger at this test's (captured) stderr, and vsa cameras
    quietens the camera-config follower's logger: put both back."""
    root, follower = logging.getLogger(), logging.getLogger("vsa.camera_configs")
    handlers, level, follower_level = root.handlers[:], root.level, follower.level
    yield
    root.handlers[:], root.level = handlers, level
    follower.setLevel(follower_level)


def records(kafka: KafkaSettings, topic: str) -> int:
    """Records ever written to the topic (sum of high watermarks); a new topic's partitions may
    answer 'not leader' for a moment, so each is asked until it answers (30 s at most)."""
    consumer = Consumer({**kafka.client_config(), "group.id": "test-watermarks"})
    total = 0
    try:
        for partition in range(3):
            offsets: list[int] = []

            def answered(p: int = partition, out: list[int] = offsets) -> bool:
                try:
                    out.append(consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1])
                except KafkaException:
                    return False
                return True

            wait_for(answered, 30, f"{topic}[{partition}] watermarks")
            total += offsets[0]
        return total
    finally:
        consumer.close()


def cameras(names: TopicNames, *args: str) -> int:
    action, rest = args[0], args[1:]
    return main(["cameras", action, "--topic-prefix", names.prefix, *rest])


def test_add_set_remove_reach_ingest_and_tracker(
    kafka: KafkaSettings,
    names: TopicNames,
    followers: tuple[CameraConfigs, RuleBook],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ingest, tracker = followers
    url = f"rtsp://admin:{SECRET}@10.0.0.5/stream"
    assert cameras(names, "add", "gate", "--url", url, "--fps", "5", "--rules", str(EXAMPLE)) == 0
    wait_for(lambda: ingest.get("gate") is not None, 30, "ingest's follower to see gate")
    wait_for(lambda: tracker.rules_for("gate") is not None, 30, "the tracker's rules for gate")
    config = ingest.get("gate")
    assert config is not None
    assert config.source_url == url
    assert config.fps_target == 5
    assert [r.rule_id for r in tracker.rules_for("gate").rules] == [  # type: ignore[union-attr]
        "entrance-entry",
        "plaza-loiter",
        "midline-cross",
        "plaza-crowd",
    ]

    assert cameras(names, "add", "gate", "--fps", "2") == 1
    assert "camera 'gate' exists already; change it with: vsa cameras set gate" in (
        capsys.readouterr().err
    )

    assert cameras(names, "set", "gate", "--disable", "--fps", "2") == 0
    wait_for(lambda: not ingest.get("gate").enabled, 30, "gate disabled")  # type: ignore[union-attr]
    assert ingest.get("gate").fps_target == 2  # type: ignore[union-attr]
    assert len(ingest.get("gate").rules) == 4  # type: ignore[union-attr]  # kept
    wait_for(lambda: not tracker.rules_for("gate").enabled, 30, "tracker: gate disabled")  # type: ignore[union-attr]

    capsys.readouterr()
    assert cameras(names, "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].split() == ["gate", "no", "2", "2", "1", "4", "rtsp://***@10.0.0.5/stream"]
    assert SECRET not in "\n".join(listed)

    assert cameras(names, "remove", "gate") == 0
    wait_for(lambda: ingest.get("gate") is None, 30, "ingest's follower to drop gate")
    wait_for(lambda: tracker.rules_for("gate") is None, 30, "the tracker to drop gate's rules")
    assert cameras(names, "remove", "gate") == 1
    assert "no camera 'gate'; add it with: vsa cameras add gate" in capsys.readouterr().err


def test_invalid_rules_are_one_line_and_nothing_is_published(
    kafka: KafkaSettings, names: TopicNames, tmp_path: Path
) -> None:
    bad = tmp_path / "gate-rules.yaml"
    bad.write_text(
        "zones:\n  - {zone_id: door, polygon: [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}\n",
        encoding="utf-8",
    )
    topic = names.name("camera_config")
    before = records(kafka, topic)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vsa",
            "cameras",
            "add",
            "gate",
            "--rules",
            str(bad),
            "--topic-prefix",
            names.prefix,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"vsa cameras: configuration error: {bad}: camera-config: camera 'gate': "
        "zones[0].polygon: self-intersecting: edge 0-1 crosses edge 2-3 "
        "(got [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]])"
    ]
    assert run.stdout == ""
    assert records(kafka, topic) == before


def test_missing_topic_is_one_line_naming_the_command(
    kafka: KafkaSettings,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    prefix = f"{unique_name}-none."
    assert main(["cameras", "list", "--topic-prefix", prefix]) == 1
    assert capsys.readouterr().err.strip() == (
        f"vsa cameras list: topic {prefix}camera-config does not exist; "
        f"create it with: vsa topics create --topic-prefix {prefix}"
    )
