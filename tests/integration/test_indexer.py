"""The indexer against the real local Kafka and OpenSearch: captions and alerts in, searchable
documents out; replays overwrite; rejected documents are dead-lettered; an unreachable
OpenSearch commits nothing."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import simplejpeg
from confluent_kafka import Consumer, Message, TopicPartition

from vsa.runtime.kafka import Output, Producer, ensure_topics
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, TopicNames, TopicSpec
from vsa.schemas import Alert, AlertSnapshot, Caption, DeadLetter, FrameRef, make_alert_id
from vsa.services.indexer.embedder import SentenceEmbedder
from vsa.services.indexer.handler import IndexSetupError, OpenSearchUnavailableError
from vsa.services.indexer.search import Searcher, SearchQuery
from vsa.services.indexer.service import build_indexer
from vsa.services.indexer.settings import (
    EmbeddingSettings,
    HnswSettings,
    IndexerSettings,
    IndexNames,
    RetrySettings,
    SearchSettings,
)
from vsa.services.indexer.store import KNN_NATIVE_LIBS_ATTR, make_client
from vsa.services.indexer.synthetic import synthetic_caption

from .test_ingest import read_frames

pytestmark = pytest.mark.integration

BASE_TS = 1_763_700_000.0  # 2025-11-21T04:40Z
CAMERAS = ("gate", "lobby", "dock")


@pytest.fixture(scope="session")
def embedder() -> SentenceEmbedder:
    """The real all-MiniLM-L6-v2, loaded once per session (offline)."""
    return SentenceEmbedder(EmbeddingSettings())


@pytest.fixture
def os_client(opensearch: OpenSearchSettings, unique_name: str) -> Iterator[Any]:
    """A client; the test's indices and templates (``<unique_name>-*``) are deleted after."""
    client = make_client(opensearch, 30)
    yield client
    client.indices.delete(index=f"{unique_name}-*", ignore_unavailable=True)
    for template in client.indices.get_index_template(name=f"{unique_name}-*", ignore=404).get(
        "index_templates", []
    ):
        client.indices.delete_index_template(name=template["name"])


def thumbnail() -> bytes:
    pixels = np.full((24, 32, 3), 128, dtype=np.uint8)
    return bytes(simplejpeg.encode_jpeg(pixels, 80))


def make_captions(n: int, seed: int = 7) -> list[Caption]:
    """n synthetic captions over three cameras, one second apart; #0 is a white van at the gate."""
    rng = random.Random(seed)
    thumb = thumbnail()
    captions = []
    for seq in range(n):
        camera = CAMERAS[seq % len(CAMERAS)]
        text = "A white van parked near the gate" if seq == 0 else None
        captions.append(
            synthetic_caption(rng, camera, seq, BASE_TS + seq, thumbnail_jpeg=thumb, text=text)
        )
    return captions


def make_alert(camera: str, seq: int, track_id: int) -> Alert:
    return Alert(
        alert_id=make_alert_id(camera, "door", track_id, 0),
        camera_id=camera,
        rule_id="door",
        kind="zone_intrusion",
        track_ids=[track_id],
        class_name="person",
        ts=BASE_TS + seq,
        frame_seq=seq,
        snapshot=AlertSnapshot(
            frame=FrameRef(
                topic="frames", partition=0, offset=seq, camera_id=camera, frame_seq=seq
            ),
            xyxy=(1.0, 2.0, 30.0, 40.0),
        ),
        details={"zone_id": "door", "dwell_s": 3.5},
    )


def indexer_settings(
    kafka: KafkaSettings, opensearch: OpenSearchSettings, name: str, **overrides: Any
) -> IndexerSettings:
    names = TopicNames(prefix=f"{name}.")
    specs = {names.name(t): TopicSpec(partitions=2) for t in ("captions", "alerts", "counts")}
    ensure_topics(kafka, {**specs, names.dlq("indexer"): TopicSpec(partitions=1)})
    fields: dict[str, Any] = {
        "kafka": kafka,
        "opensearch": opensearch,
        "topics": names,
        "index": IndexNames(prefix=f"{name}-"),
        "group_id": f"{name}-indexer",
        "metrics_port": 0,
        "max_batch": 64,
        "refresh_interval": "100ms",
        **overrides,
    }
    return IndexerSettings(**fields)


def produce(
    kafka: KafkaSettings, settings: IndexerSettings, captions: list[Caption], alerts: list[Alert]
) -> None:
    producer = Producer(kafka, "test")
    for caption in captions:
        topic = settings.topics.name("captions")
        producer.produce(Output(topic, caption.camera_id, caption.to_bytes()))
    for alert in alerts:
        producer.produce(Output(settings.topics.name("alerts"), alert.camera_id, alert.to_bytes()))
    producer.flush()


def run_indexer(settings: IndexerSettings, embedder: SentenceEmbedder, idle_s: float = 3) -> Any:
    indexer = build_indexer(settings, embedder=embedder, idle_exit_s=idle_s)
    indexer.loop.run()
    return indexer


def count(client: Any, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def committed(kafka: KafkaSettings, group: str, topic: str, partitions: int = 2) -> int:
    """Sum of the group's committed offsets over the topic's partitions (-1001: none)."""
    consumer = Consumer({**kafka.client_config(), "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def read_topic(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 15
) -> list[Message]:
    return read_frames(kafka, topic, expected, timeout_s)


def check_searchable(
    opensearch: OpenSearchSettings, index: IndexNames, embedder: SentenceEmbedder, van: Caption
) -> None:
    """The white van caption is the top hit, with thumbnail and frame; filters hold."""
    search = SearchSettings(opensearch=opensearch, index=index)
    searcher = Searcher(make_client(opensearch, 10), embedder, search)
    hits = searcher.search(SearchQuery(text="white van parked at the gate", k=3))
    assert hits[0].doc_id == "gate:0"
    assert hits[0].thumbnail_jpeg == van.thumbnail_jpeg
    assert hits[0].frame == van.frame
    only_lobby = searcher.search(SearchQuery(text="white van parked", cameras=("lobby",), k=10))
    assert len(only_lobby) == 10
    assert {h.camera_id for h in only_lobby} == {"lobby"}


def test_captions_and_alerts_indexed_searchable_and_replay_safe(
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    unique_name: str,
    embedder: SentenceEmbedder,
    os_client: Any,
) -> None:
    settings = indexer_settings(kafka, opensearch, unique_name)
    captions = make_captions(30)
    alerts = [make_alert("gate", 3, 1), make_alert("lobby", 4, 2)]
    produce(kafka, settings, captions, alerts)

    indexer = run_indexer(settings, embedder)
    index = settings.index
    assert count(os_client, index.captions_index) == 30
    assert count(os_client, index.alerts_index) == 2
    assert committed(kafka, settings.group_id or "", settings.topics.name("captions")) == 30
    assert committed(kafka, settings.group_id or "", settings.topics.name("alerts")) == 2
    dead = indexer.loop.metrics.registry.get_sample_value(
        "vsa_dead_letters_total", {"service": "indexer", "topic": settings.topics.name("captions")}
    )
    assert dead is None

    doc = os_client.get(index=index.captions_index, id="gate:0")["_source"]
    assert doc["caption"] == "A white van parked near the gate"
    assert "embedding" not in doc  # excluded from _source, kept in the k-NN structures
    alert = os_client.get(index=index.alerts_index, id=alerts[0].alert_id)["_source"]
    assert alert["kind"] == "zone_intrusion"
    assert alert["camera_id"] == "gate"

    check_searchable(opensearch, index, embedder, captions[0])

    # Replay everything from the start with a new group: documents overwrite, never duplicate.
    replay = settings.model_copy(update={"group_id": f"{unique_name}-replay"})
    run_indexer(replay, embedder)
    assert count(os_client, index.captions_index) == 30
    assert count(os_client, index.alerts_index) == 2


@pytest.mark.parametrize("write_chunk", [3, 64], ids=["chunks-of-3", "one-chunk"])
def test_rejected_document_goes_to_dead_letters_rest_indexed(
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    unique_name: str,
    embedder: SentenceEmbedder,
    os_client: Any,
    write_chunk: int,
) -> None:
    # With chunks of 3 the bad document is written by a later bulk request than the first:
    # its position within the batch must still lead back to its own message.
    settings = indexer_settings(kafka, opensearch, unique_name, write_chunk=write_chunk)
    captions = make_captions(12)
    # Valid for the topic contract, but its capture time (year ~300 million) overflows
    # OpenSearch's millisecond date: a mapper_parsing_exception for this document only.
    bad = captions[5].model_copy(update={"capture_ts": 1e16})
    captions[5] = bad
    produce(kafka, settings, captions, [])

    run_indexer(settings, embedder)
    assert count(os_client, settings.index.captions_index) == 11
    assert committed(kafka, settings.group_id or "", settings.topics.name("captions")) == 12
    [dead] = read_topic(kafka, settings.topics.dlq("indexer"), 1)
    meta = DeadLetter.from_headers(dead.headers())
    assert dead.value() == bad.to_bytes()
    assert meta.service == "indexer"
    assert meta.error_class == "DocumentRejectedError"
    assert "mapper_parsing_exception" in meta.error_message
    assert not os_client.exists(index=settings.index.captions_index, id=f"{bad.camera_id}:5")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("write_chunk", [2, 64], ids=["chunks-of-2", "one-chunk"])
def test_opensearch_unreachable_commits_nothing_then_recovers(
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    unique_name: str,
    embedder: SentenceEmbedder,
    os_client: Any,
    write_chunk: int,
) -> None:
    down = OpenSearchSettings(url=f"http://127.0.0.1:{closed_port()}")
    retry = RetrySettings(min_backoff_s=0.05, max_backoff_s=0.2, give_up_after_s=1.5)
    settings = indexer_settings(kafka, down, unique_name, retry=retry, write_chunk=write_chunk)
    produce(kafka, settings, make_captions(8), [make_alert("gate", 1, 1)])

    indexer = build_indexer(settings, embedder=embedder, idle_exit_s=10)
    started = time.monotonic()
    with pytest.raises(OpenSearchUnavailableError):
        indexer.loop.run()
    assert time.monotonic() - started < 15
    assert not indexer.loop.health.ready
    assert "failing" in indexer.loop.health.detail["opensearch"]
    group = settings.group_id or ""
    assert committed(kafka, group, settings.topics.name("captions")) == 0
    assert committed(kafka, group, settings.topics.name("alerts")) == 0
    assert read_topic(kafka, settings.topics.dlq("indexer"), 1, timeout_s=2) == []

    # OpenSearch back: the same group gets the same messages again and indexes all of them.
    healthy = settings.model_copy(update={"opensearch": opensearch})
    run_indexer(healthy, embedder)
    assert count(os_client, settings.index.captions_index) == 8
    assert count(os_client, settings.index.alerts_index) == 1
    assert committed(kafka, group, settings.topics.name("captions")) == 8


def test_stop_requested_during_outage_leaves_batch_uncommitted(
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    unique_name: str,
    embedder: SentenceEmbedder,
) -> None:
    down = OpenSearchSettings(url=f"http://127.0.0.1:{closed_port()}")
    retry = RetrySettings(min_backoff_s=0.05, max_backoff_s=0.5)  # would retry for 240 s
    settings = indexer_settings(kafka, down, unique_name, retry=retry)
    produce(kafka, settings, make_captions(4), [])
    indexer = build_indexer(settings, embedder=embedder, idle_exit_s=10)

    def stop_when_failing() -> None:
        deadline = time.monotonic() + 20
        while indexer.handler.retrier.failing_since is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        indexer.loop.stop.set()

    threading.Thread(target=stop_when_failing, daemon=True).start()
    with pytest.raises(OpenSearchUnavailableError, match="stop requested"):
        indexer.loop.run()
    assert committed(kafka, settings.group_id or "", settings.topics.name("captions")) == 0


def test_cli_indexer_runs_until_idle_and_refuses_bad_config(
    kafka: KafkaSettings, opensearch: OpenSearchSettings, unique_name: str, os_client: Any
) -> None:
    settings = indexer_settings(kafka, opensearch, unique_name)
    produce(kafka, settings, make_captions(6), [make_alert("dock", 2, 5)])
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "OPENSEARCH_URL": opensearch.url,
        "VSA_INDEXER_TOPICS__PREFIX": settings.topics.prefix,
        "VSA_INDEXER_INDEX__PREFIX": settings.index.prefix,
        "VSA_INDEXER_GROUP_ID": f"{unique_name}-cli",
        "VSA_INDEXER_METRICS_HOST": "127.0.0.1",
        "VSA_INDEXER_METRICS_PORT": "0",
    }
    command = [sys.executable, "-m", "vsa", "indexer", "--idle-exit", "3"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert count(os_client, settings.index.captions_index) == 6
    assert count(os_client, settings.index.alerts_index) == 1
    assert "event=stopped" in done.stderr

    bad = subprocess.run(
        command, env={**env, "VSA_INDEXER_HNSW__M": "1"}, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "hnsw.m" in bad.stderr


def test_native_engine_refused_where_the_nodes_lack_it(
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    unique_name: str,
    embedder: SentenceEmbedder,
    os_client: Any,
) -> None:
    """The devstack's k-NN plugin has no native libraries (a faiss index would crash its JVM):
    the indexer refuses faiss there before writing anything, and says what to use."""
    attrs = os_client.cat.nodeattrs(format="json", h="attr,value")
    if not any(a["attr"] == KNN_NATIVE_LIBS_ATTR for a in attrs):
        pytest.skip("this OpenSearch is not the devstack's (it may have native k-NN engines)")
    settings = indexer_settings(kafka, opensearch, unique_name, hnsw=HnswSettings(engine="faiss"))
    indexer = build_indexer(settings, embedder=embedder, client=os_client)
    with pytest.raises(IndexSetupError, match=r"'faiss'.*set hnsw.engine to 'lucene'"):
        indexer.handler.ensure_indices()
    assert not os_client.indices.exists(index=settings.index.captions_index)
    assert not os_client.indices.exists_index_template(name=settings.index.captions_index)

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "OPENSEARCH_URL": opensearch.url,
        "VSA_INDEXER_INDEX__PREFIX": settings.index.prefix,
        "VSA_INDEXER_HNSW__ENGINE": "faiss",
    }
    command = [sys.executable, "-m", "vsa", "indexer", "--init-only"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "VSA_INDEXER_HNSW__ENGINE=lucene" in done.stderr
    assert not os_client.indices.exists(index=settings.index.captions_index)
