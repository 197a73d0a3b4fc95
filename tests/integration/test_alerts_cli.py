"""``vsa alerts tail`` on the real alerts topic and ``vsa alerts list`` on the alerts index that
the real indexer writes (local Kafka and OpenSearch)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from vsa.cli import main
from vsa.operate.alerts import alert_line
from vsa.runtime.kafka import Output, Producer, ensure_topics
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, TopicNames, TopicSpec
from vsa.schemas import Alert
from vsa.services.indexer.service import build_indexer
from vsa.services.indexer.store import make_client

from ..unit.test_notifier import make_alert
from .test_cameras_cli import keep_log_handlers  # noqa: F401  # autouse fixture
from .test_indexer import indexer_settings

pytestmark = pytest.mark.integration


class NoEmbedder:
    """Alerts are indexed without embeddings; a caption reaching this would be a test bug."""

    dims = 384

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # type: ignore[type-arg]
        raise AssertionError(f"no caption was expected, got {len(texts)}")


def publish(kafka: KafkaSettings, topic: str, alerts: Sequence[Alert]) -> None:
    producer = Producer(kafka, "test-alerts")
    for alert in alerts:
        producer.produce(Output(topic, alert.camera_id, alert.to_bytes()))
    producer.flush(30)


def test_tail_follows_from_now_with_filters(kafka: KafkaSettings, unique_name: str) -> None:
    names = TopicNames(prefix=f"{unique_name}.")
    topic = names.name("alerts")
    ensure_topics(kafka, {topic: TopicSpec(partitions=3)})
    old = make_alert("gate", "loitering", seq=1)
    publish(kafka, topic, [old])
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vsa",
            "alerts",
            "tail",
            "--topic-prefix",
            names.prefix,
            "--camera",
            "gate",
            "-n",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert tail.stderr is not None
        first = tail.stderr.readline()  # printed once the end offsets are taken: "now"
        assert first.startswith(f"following {topic} (3 partitions) from now"), first
        new = [
            make_alert("gate", "crowding", seq=2),
            make_alert("lobby", "crowding", seq=3),
            make_alert("gate", "line_crossing", seq=4),
        ]
        publish(kafka, topic, new)
        out, err = tail.communicate(timeout=60)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    assert out.splitlines() == [alert_line(new[0]), alert_line(new[2])]


def test_tail_from_the_beginning_as_json(
    kafka: KafkaSettings,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = TopicNames(prefix=f"{unique_name}.")
    topic = names.name("alerts")
    ensure_topics(kafka, {topic: TopicSpec(partitions=3)})
    alerts = [
        make_alert("gate", "crowding", 1),
        make_alert("lobby", "loitering", 2),
        make_alert("dock", "crowding", 3),
    ]
    publish(kafka, topic, alerts)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    args = ["--topic-prefix", names.prefix, "--from-beginning", "--json", "--kind", "crowding"]
    assert main(["alerts", "tail", *args, "-n", "2"]) == 0
    printed = [Alert.model_validate_json(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(printed, key=lambda a: a.frame_seq) == [alerts[0], alerts[2]]


@pytest.fixture
def indexed(
    kafka: KafkaSettings, opensearch: OpenSearchSettings, unique_name: str
) -> Iterator[list[Alert]]:
    """Alerts of three cameras written to an alerts topic and indexed by the real indexer."""
    settings = indexer_settings(kafka, opensearch, unique_name)
    alerts = [
        make_alert(camera, kind, seq)
        for seq, (camera, kind) in enumerate(
            [
                ("gate", "loitering"),
                ("lobby", "crowding"),
                ("gate", "crowding"),
                ("dock", "zone_intrusion"),
                ("gate", "line_crossing"),
            ]
        )
    ]
    publish(kafka, settings.topics.name("alerts"), alerts)
    indexer = build_indexer(settings, embedder=NoEmbedder(), idle_exit_s=3)
    indexer.loop.run()
    client = make_client(opensearch, 30)
    client.indices.refresh(index=settings.index.alerts_index)
    assert client.count(index=settings.index.alerts_index)["count"] == len(alerts)
    yield alerts
    client.indices.delete(index=f"{unique_name}-*", ignore_unavailable=True)
    for template in client.indices.get_index_template(name=f"{unique_name}-*", ignore=404).get(
        "index_templates", []
    ):
        client.indices.delete_index_template(name=template["name"])


@pytest.fixture
def search_env(
    opensearch: OpenSearchSettings, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vsa alerts list reads the test's OpenSearch and index prefix."""
    monkeypatch.setenv("OPENSEARCH_URL", opensearch.url)
    monkeypatch.setenv("VSA_SEARCH_INDEX__PREFIX", f"{unique_name}-")


def alerts_list(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["alerts", "list", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


@pytest.mark.usefixtures("search_env")
def test_list_reads_the_alerts_index_newest_first_with_filters(
    indexed: list[Alert], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = lambda alerts: [alert_line(a) for a in alerts]  # noqa: E731
    assert alerts_list(capsys)[:2] == (0, lines(indexed[::-1]))
    assert alerts_list(capsys, "--camera", "gate", "--limit", "2")[1] == lines(
        [indexed[4], indexed[2]]
    )
    assert alerts_list(capsys, "--kind", "crowding", "--camera", "gate", "--camera", "lobby")[
        1
    ] == lines([indexed[2], indexed[1]])
    # make_alert's times are 2025-11-21T04:40:00Z + seq seconds
    window = ["--since", "2025-11-21T04:40:01Z", "--until", "2025-11-21T04:40:03Z"]
    assert alerts_list(capsys, *window)[1] == lines(indexed[3:0:-1])
    code, out, _ = alerts_list(capsys, "--json", "--kind", "zone_intrusion")
    assert [Alert.model_validate_json(line) for line in out] == [indexed[3]]
    assert alerts_list(capsys, "--camera", "nowhere")[1] == ["no alerts"]
    code, _, err = alerts_list(capsys, "--limit", "0")
    assert code == 2
    assert err.strip().startswith("vsa alerts list: invalid filters: limit:")


@pytest.mark.usefixtures("search_env")
def test_list_says_when_there_is_no_alerts_index(
    unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = alerts_list(capsys)
    assert (code, out) == (1, [])
    assert err.strip() == (
        f"vsa alerts list: index {unique_name}-alerts does not exist: no alert was indexed yet "
        "(run vsa indexer; its consume_alerts is on by default)"
    )
