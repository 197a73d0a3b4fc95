"""Which topics are missing and what is said about it; the ``vsa topics list`` table from
watermarks and committed offsets; ``--topic-prefix`` and old flag spellings (no broker)."""

from __future__ import annotations

import argparse

import pytest

from vsa.runtime.topic_admin import TopicState, format_topic_states, topic_states
from vsa.runtime.topic_check import create_command, missing_message, missing_topics
from vsa.topic_flags import DeprecatedSpelling, add_topic_prefix, topic_overrides


def test_create_command_names_the_prefix_quoted_for_a_shell() -> None:
    assert create_command("") == "vsa topics create"
    assert create_command("site-a.") == "vsa topics create --topic-prefix site-a."
    assert create_command("my site.") == "vsa topics create --topic-prefix 'my site.'"


def test_missing_topics_keep_the_order_given_once_each() -> None:
    existing = {"p.frames", "p.dlq.detector"}
    needed = ["p.frames", "p.detections", "p.dlq.detector", "p.alerts", "p.detections"]
    assert missing_topics(existing, needed) == ["p.detections", "p.alerts"]
    assert missing_topics(existing, ["p.frames"]) == []


def test_missing_message_says_which_and_how_to_create_them() -> None:
    assert missing_message(["p.frames"], "p.") == (
        "topic p.frames does not exist; create it with: vsa topics create --topic-prefix p."
    )
    assert missing_message(["frames", "detections"], "") == (
        "topics frames, detections do not exist; create them with: vsa topics create"
    )


def test_topic_states_count_messages_and_lag_per_group() -> None:
    planned = ["p.frames", "p.detections", "p.alerts"]
    partitions = {"p.frames": 2, "p.detections": 2, "p.extra": 1, "other.frames": 1}
    marks = {
        ("p.frames", 0): (0, 10),
        ("p.frames", 1): (5, 8),  # 5 messages expired by retention
        ("p.detections", 0): (0, 4),
        ("p.detections", 1): (0, 0),
        ("p.extra", 0): (0, 1),
    }
    commits = {
        "vsa-detector": {("p.frames", 0): 7},  # partition 1 never committed: from its low mark
        "vsa-captioner-frames": {("p.frames", 0): 10, ("p.frames", 1): 8},
        "vsa-tracker": {("p.detections", 0): 4},
    }
    states = topic_states(planned, partitions, marks, commits, "p.")
    assert states == [
        TopicState("p.frames", True, 2, 13, {"vsa-captioner-frames": 0, "vsa-detector": 6}),
        TopicState("p.detections", True, 2, 4, {"vsa-tracker": 0}),
        TopicState("p.alerts", True),
        TopicState("p.extra", False, 1, 1, {}),
    ]
    # without a prefix only the planned topics are shown (not the whole cluster)
    assert [s.name for s in topic_states(planned, partitions, marks, {}, "")] == planned


def test_the_table_marks_missing_topics_and_says_how_to_create_them() -> None:
    states = [
        TopicState("p.frames", True, 2, 13, {"vsa-detector": 6, "vsa-captioner-frames": 0}),
        TopicState("p.alerts", True),
        TopicState("p.extra", False, 1, 1),
    ]
    header, frames, alerts, extra, advice = format_topic_states(states, "p.")
    assert header.split()[:3] == ["topic", "partitions", "messages"]
    assert frames.split() == ["p.frames", "2", "13", "vsa-detector=6,", "vsa-captioner-frames=0"]
    assert alerts.split() == ["p.alerts", "MISSING", "-", "-"]
    assert extra.split()[:4] == ["p.extra", "1", "1", "-"]
    assert "not a vsa topic" in extra
    assert advice == "1 of 2 topics missing; create them with: vsa topics create --topic-prefix p."
    assert len(format_topic_states(states[:1], "p.")) == 2  # nothing missing: no advice


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsa produce")
    parser.add_argument("--camera-prefix", default="cam")
    parser.add_argument(
        "--prefix", dest="camera_prefix", action=DeprecatedSpelling, use="--camera-prefix"
    )
    add_topic_prefix(parser, "VSA_INGEST_TOPICS__PREFIX")
    return parser


def test_old_spelling_works_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["--prefix", "gate"])
    assert args.camera_prefix == "gate"
    assert capsys.readouterr().err == "vsa produce: --prefix is deprecated; use --camera-prefix\n"
    args = _parser().parse_args(["--camera-prefix", "gate"])
    assert args.camera_prefix == "gate"
    assert capsys.readouterr().err == ""


def test_topic_prefix_overrides_only_the_prefix() -> None:
    assert topic_overrides(_parser().parse_args([])) == {}
    args = _parser().parse_args(["--topic-prefix", "site-a."])
    assert topic_overrides(args) == {"topics": {"prefix": "site-a."}}
    assert topic_overrides(_parser().parse_args(["--topic-prefix", ""])) == {
        "topics": {"prefix": ""}
    }
