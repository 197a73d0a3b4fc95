"""Replication derived from the cluster's size (vsa.runtime.replication) and where it is used."""

from __future__ import annotations

import pytest

from vsa.runtime.kafka import spec_replication, topic_config
from vsa.runtime.replication import Replication, replication_for
from vsa.runtime.settings import ConfigError, TopicNames, TopicSpec, load_settings
from vsa.runtime.topics import TopicsSettings


@pytest.mark.parametrize(
    ("brokers", "expected"),
    [
        (1, Replication(1, 1)),
        (2, Replication(2, 1)),
        (3, Replication(3, 2)),
        (6, Replication(3, 2)),
    ],
)
def test_default_follows_the_cluster_size(brokers: int, expected: Replication) -> None:
    assert replication_for(brokers) == expected


def test_explicit_numbers_win() -> None:
    assert replication_for(1, factor=3) == Replication(3, 2)  # Kafka refuses it on one broker
    assert replication_for(5, factor=5, min_insync_replicas=3) == Replication(5, 3)
    assert replication_for(3, min_insync_replicas=1) == Replication(3, 1)


def test_impossible_replication_is_refused() -> None:
    with pytest.raises(ValueError, match=r"min\.insync\.replicas 2 is more than"):
        replication_for(1, min_insync_replicas=2)
    with pytest.raises(ValueError, match="no broker"):
        replication_for(0)


def test_topic_specs_leave_replication_to_the_cluster_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    specs = load_settings(TopicsSettings, None, names=TopicNames(prefix="p.")).specs()
    frames = specs["p.frames"]
    assert frames.replication_factor is None
    assert spec_replication(frames, 3) == Replication(3, 2)
    assert spec_replication(frames, 1) == Replication(1, 1)
    assert topic_config(frames, Replication(3, 2))["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in topic_config(frames)

    monkeypatch.setenv("VSA_TOPICS_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("VSA_TOPICS_MIN_INSYNC_REPLICAS", "2")
    fixed = load_settings(TopicsSettings).specs()["frames"]
    assert spec_replication(fixed, 5) == Replication(2, 2)


def test_a_spec_that_cannot_work_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"topic replication: min\.insync\.replicas 3"):
        spec_replication(TopicSpec(replication_factor=2, min_insync_replicas=3), 3)


def test_tracker_changelog_follows_the_same_rule() -> None:
    from vsa.services.tracker.config import TrackerSettings
    from vsa.services.tracker.service import changelog_replication

    settings = load_settings(TrackerSettings, None, metrics_port=0)
    assert changelog_replication(settings, 3) == Replication(3, 2)
    assert changelog_replication(settings, 1) == Replication(1, 1)
    pinned = load_settings(TrackerSettings, None, metrics_port=0, replication_factor=1)
    assert changelog_replication(pinned, 3) == Replication(1, 1)
    bad = load_settings(TrackerSettings, None, metrics_port=0, min_insync_replicas=2)
    with pytest.raises(ConfigError, match="tracker changelog"):
        changelog_replication(bad, 1)
