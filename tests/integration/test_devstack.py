"""The local stack against itself: real Kafka and OpenSearch processes, no mocks."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from opensearchpy import OpenSearch

from vsa.devstack import DevstackError, DevstackSettings, StackInfo, down, status, up
from vsa.devstack.kafka import kafka_paths
from vsa.devstack.procs import is_alive, read_pid
from vsa.runtime.settings import MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration

FRAME_BYTES = 5 * 1024 * 1024


def _create_topic(bootstrap: str, name: str, config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, 1, 1, config=config or {})])
    futures[name].result(timeout=30)


def _delete_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.delete_topics([name])[name].result(timeout=30)


def _topics(bootstrap: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics)


def test_stack_is_up(stack: StackInfo) -> None:
    for endpoint in (stack.kafka, stack.opensearch):
        assert endpoint is not None
        if not endpoint.external:
            assert endpoint.pid is not None
            assert is_alive(endpoint.pid)
            assert endpoint.address.startswith(("127.0.0.1:", "http://127.0.0.1:"))


def test_status_reports_both_healthy(stack: StackInfo) -> None:
    report = status()
    assert report.healthy, report
    assert report.component("kafka").address == stack.kafka_bootstrap
    assert report.component("opensearch").address == stack.opensearch_url
    assert "opensearch-knn" in report.component("opensearch").detail


def test_up_again_reuses_the_running_stack(stack: StackInfo) -> None:
    again = up()
    assert again.started == ()
    assert again.kafka_bootstrap == stack.kafka_bootstrap
    assert again.opensearch_url == stack.opensearch_url
    if stack.kafka is not None and not stack.kafka.external:
        assert again.kafka is not None
        assert again.kafka.pid == stack.kafka.pid


def test_kafka_does_not_create_topics_on_produce(kafka_bootstrap: str, unique_name: str) -> None:
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000})
    producer.produce(unique_name, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    assert len(errors) == 1
    assert errors[0] is not None
    assert unique_name not in _topics(kafka_bootstrap)


def test_five_megabyte_message_round_trip(kafka_bootstrap: str, unique_name: str) -> None:
    _create_topic(kafka_bootstrap, unique_name, {"max.message.bytes": str(MAX_MESSAGE_BYTES)})
    payload = os.urandom(FRAME_BYTES)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "message.max.bytes": MAX_MESSAGE_BYTES}
    )
    delivered: list[KafkaError | None] = []
    producer.produce(
        unique_name, payload, key=b"cam-1", on_delivery=lambda e, _m: delivered.append(e)
    )
    assert producer.flush(30) == 0
    assert delivered == [None]
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_name,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": MAX_MESSAGE_BYTES,
            "max.partition.fetch.bytes": MAX_MESSAGE_BYTES,
        }
    )
    try:
        consumer.subscribe([unique_name])
        message = None
        deadline = time.monotonic() + 60
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
        assert message is not None
        assert message.error() is None
        assert message.key() == b"cam-1"
        assert message.value() == payload
    finally:
        consumer.close()
        _delete_topic(kafka_bootstrap, unique_name)  # 5 MB would stay for the retention period


@pytest.fixture
def knn_index(opensearch_url: str, unique_name: str) -> Iterator[tuple[OpenSearch, str]]:
    client = OpenSearch(hosts=[opensearch_url], timeout=30)
    body = {
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {
            "properties": {
                "embedding": {
                    "type": "knn_vector",
                    "dimension": 3,
                    "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"},
                },
                "label": {"type": "keyword"},
            }
        },
    }
    client.indices.create(index=unique_name, body=body)
    yield client, unique_name
    client.indices.delete(index=unique_name, ignore_unavailable=True)


def test_knn_query_returns_nearest_first(knn_index: tuple[OpenSearch, str]) -> None:
    client, index = knn_index
    docs = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "blue": [0.0, 0.0, 1.0]}
    for label, vector in docs.items():
        client.index(index=index, id=label, body={"label": label, "embedding": vector})
    client.indices.refresh(index=index)
    query = {"size": 3, "query": {"knn": {"embedding": {"vector": [0.1, 0.9, 0.2], "k": 3}}}}
    hits = client.search(index=index, body=query)["hits"]["hits"]
    assert hits[0]["_id"] == "green"
    assert len(hits) == 3


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def own_kafka_settings(tmp_path: Path) -> Iterator[DevstackSettings]:
    """A second, private Kafka (own ports and state) so the shared session stack is untouched."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS is set: no local broker to restart")
    kafka_port, controller_port = _free_ports(2)
    settings = DevstackSettings(
        kafka_port=kafka_port, kafka_controller_port=controller_port, state_dir=tmp_path / "state"
    )
    yield settings
    down(settings=settings)


def test_down_then_up_keeps_topics(own_kafka_settings: DevstackSettings, unique_name: str) -> None:
    settings = own_kafka_settings
    first = up(kafka=True, opensearch=False, settings=settings)
    assert first.started == ("kafka",)
    _create_topic(first.kafka_bootstrap, unique_name)

    assert first.kafka is not None
    assert first.kafka.pid is not None
    assert down(settings=settings) == [f"kafka (pid {first.kafka.pid})"]
    assert read_pid(kafka_paths(settings).pid_file) is None
    assert not is_alive(first.kafka.pid)
    assert down(settings=settings) == []

    second = up(kafka=True, opensearch=False, settings=settings)
    assert second.started == ("kafka",)
    assert unique_name in _topics(second.kafka_bootstrap)


def test_broker_dying_at_start_is_reported_with_its_log(
    own_kafka_settings: DevstackSettings,
) -> None:
    data = kafka_paths(own_kafka_settings).data
    data.mkdir(parents=True)
    # Storage formatted for another node: the broker refuses it and exits.
    (data / "meta.properties").write_text(
        "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\n"
    )
    with pytest.raises(DevstackError, match="Kafka failed to start") as failure:
        up(kafka=True, opensearch=False, settings=own_kafka_settings, timeout_s=60)
    assert "Last lines of" in str(failure.value)
    assert read_pid(kafka_paths(own_kafka_settings).pid_file) is None
