"""``vsa topics delete`` against the real local Kafka: refuses without --yes when not
interactive, refuses topics holding messages without --force (issue 15, point 3)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka import Producer

from vsa.runtime.settings import KafkaSettings
from vsa.runtime.topic_admin import message_counts

pytestmark = pytest.mark.integration


def topics(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vsa", "topics", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_delete_needs_yes_and_force_for_topics_with_messages(
    kafka_bootstrap: str, unique_name: str
) -> None:
    prefix = unique_name + "-"
    assert topics(kafka_bootstrap, "create", "--prefix", prefix).returncode == 0
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(prefix + "alerts", key=b"cam-0", value=b"{}")
    assert producer.flush(30) == 0
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)

    no_yes = topics(kafka_bootstrap, "delete", "--prefix", prefix)
    assert no_yes.returncode == 2
    assert "--yes" in no_yes.stderr or "--force" in no_yes.stderr
    not_forced = topics(kafka_bootstrap, "delete", "--prefix", prefix, "--yes")
    assert not_forced.returncode == 2
    assert f"{prefix}alerts (1 messages)" in not_forced.stderr
    assert message_counts(kafka, [prefix + "alerts"]) == {prefix + "alerts": 1}

    forced = topics(kafka_bootstrap, "delete", "--topic-prefix", prefix, "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "deleted" in forced.stdout
    assert message_counts(kafka, [prefix + "alerts", prefix + "frames"]) == {}


def test_old_prefix_spelling_still_works_with_a_note(
    kafka_bootstrap: str, unique_name: str
) -> None:
    prefix = unique_name + "-"
    old = topics(kafka_bootstrap, "create", "--prefix", prefix)
    assert old.returncode == 0, old.stderr
    assert "--prefix is deprecated; use --topic-prefix" in old.stderr
    new = topics(kafka_bootstrap, "create", "--topic-prefix", prefix)
    assert new.returncode == 0, new.stderr
    assert "deprecated" not in new.stderr
    assert "0 topics, " in new.stdout
    assert topics(kafka_bootstrap, "delete", "--topic-prefix", prefix, "--yes").returncode == 0


def test_unreachable_kafka_is_one_clear_line() -> None:
    result = topics("127.0.0.1:1", "create", "--topic-prefix", "t-unreachable-")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "Kafka at 127.0.0.1:1 is unreachable" in line
    assert "Traceback" not in result.stderr
