"""Counts end to end on the real Kafka and OpenSearch: count periods on the counts topic are
indexed by the indexer (once, whatever the redeliveries) and `vsa stats` sums them per camera
per hour."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

from vsa.cli import main
from vsa.runtime.kafka import Output, Producer
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings
from vsa.schemas import Counts, make_count_id
from vsa.services.indexer.count_stats import CountStats, StatsQuery, StatsRow
from vsa.services.indexer.service import build_indexer
from vsa.services.indexer.settings import SearchSettings

from . import test_indexer
from .test_indexer import indexer_settings

pytestmark = pytest.mark.integration

#: The indexer tests' client fixture: it deletes the test's indices and templates afterwards.
os_client = test_indexer.os_client

HOUR = datetime(2026, 1, 1, 6, tzinfo=timezone.utc)
H0 = HOUR.timestamp()


class NoEmbedder:
    """Counts are indexed without embeddings; a caption reaching this would be a test bug."""

    dims = 384

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # type: ignore[type-arg]
        raise AssertionError(f"no caption was expected, got {len(texts)}")


def period(camera: str, rule: str, start: float, **values: float) -> Counts:
    kind = "line_count" if "total" in values else "occupancy"
    return Counts(
        count_id=make_count_id(camera, rule, start),
        camera_id=camera,
        rule_id=rule,
        kind=kind,
        target_id="walkway" if kind == "line_count" else "plaza",
        period_start_ts=start,
        period_end_ts=start + 900,
        frame_seq=int(start - H0),
        values=values,
    )


COUNTS = [
    period("gate", "walk", H0, a_to_b=3, b_to_a=1, total=4),
    period("gate", "walk", H0 + 900, a_to_b=2, b_to_a=2, total=4),
    period("gate", "walk", H0 + 3600, a_to_b=0, b_to_a=5, total=5),  # the next hour
    period("gate", "plaza", H0, min=0, max=3, mean=1.0, frames=900, observed_s=900),
    period("gate", "plaza", H0 + 900, min=1, max=6, mean=4.0, frames=300, observed_s=300),
    period("lobby", "walk", H0, a_to_b=1, b_to_a=0, total=1),
]


def test_counts_are_indexed_once_and_summed_per_camera_per_hour(
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    unique_name: str,
    os_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = indexer_settings(kafka, opensearch, unique_name)
    producer = Producer(kafka, "test-counts")
    for counts in [*COUNTS, COUNTS[0]]:  # the first period redelivered
        topic = settings.topics.name("counts")
        producer.produce(Output(topic, counts.camera_id, counts.to_bytes()))
    producer.flush(30)
    build_indexer(settings, embedder=NoEmbedder(), idle_exit_s=3).loop.run()
    index = settings.index.counts_index
    os_client.indices.refresh(index=index)
    assert os_client.count(index=index)["count"] == len(COUNTS)
    doc = os_client.get(index=index, id=COUNTS[3].count_id)["_source"]
    assert doc["values"]["mean"] == 1.0
    assert doc["period_start"] == int(H0 * 1000)

    search = SearchSettings(opensearch=opensearch, index=settings.index)
    rows = CountStats(os_client, search).hourly(StatsQuery(cameras=("gate",)))
    assert rows == [
        StatsRow("gate", HOUR, "plaza", "occupancy", "plaza", 2, max=6.0, mean=1.75),
        StatsRow("gate", HOUR, "walk", "line_count", "walkway", 2, 5.0, 3.0, 8.0),
        StatsRow(
            "gate",
            datetime(2026, 1, 1, 7, tzinfo=timezone.utc),
            "walk",
            "line_count",
            "walkway",
            1,
            0.0,
            5.0,
            5.0,
        ),
    ]

    monkeypatch.setenv("OPENSEARCH_URL", opensearch.url)
    monkeypatch.setenv("VSA_SEARCH_INDEX__PREFIX", settings.index.prefix)
    since, until = "2026-01-01T00:00:00", "2026-01-02T00:00:00"
    assert main(["stats", "--since", since, "--until", until, "--rule", "walk"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == [
        "gate  2026-01-01 06:00  walk  line_count  walkway  2  a_to_b=5 b_to_a=3 total=8",
        "gate  2026-01-01 07:00  walk  line_count  walkway  1  a_to_b=0 b_to_a=5 total=5",
        "lobby  2026-01-01 06:00  walk  line_count  walkway  1  a_to_b=1 b_to_a=0 total=1",
    ]
