"""Issue 15 point 8: `vsa search` checks the index before it loads a model, and reports the time
from its start to the first result (--timing, and the search_answered log line)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, load_settings
from vsa.services.indexer import embedder as embedder_module
from vsa.services.indexer.embedder import make_embedder
from vsa.services.indexer.mapping import caption_doc_id, caption_document
from vsa.services.indexer.oneshot import SearchTiming, process_age_s, search_once
from vsa.services.indexer.search import SearchQuery, SearchUnavailableError
from vsa.services.indexer.settings import IndexerSettings, IndexNames, QueryEmbeddingSettings
from vsa.services.indexer.store import bulk, ensure_indices, make_client
from vsa.services.indexer.synthetic import synthetic_caption

from .test_secrets_pipeline import drop_everything_named

pytestmark = pytest.mark.integration


@pytest.fixture
def names(
    kafka: KafkaSettings, opensearch: OpenSearchSettings, unique_name: str
) -> Iterator[IndexNames]:
    yield IndexNames(prefix=f"{unique_name}-")
    drop_everything_named(kafka, opensearch, unique_name)


def index_captions(opensearch: OpenSearchSettings, names: IndexNames, count: int) -> None:
    settings = load_settings(
        IndexerSettings, None, opensearch=opensearch, index=names, consume_alerts=False
    )
    client = make_client(opensearch, 60)
    ensure_indices(client, settings)
    rng = random.Random(3)
    captions = [synthetic_caption(rng, "gate", i, 1.767e9 + i) for i in range(count)]
    vectors = make_embedder(QueryEmbeddingSettings()).encode([c.text for c in captions])
    actions = [
        (
            {"index": {"_index": names.captions_index, "_id": caption_doc_id("gate", c.frame_seq)}},
            caption_document(c, v),
        )
        for c, v in zip(captions, vectors, strict=True)
    ]
    bulk(client, actions, 60)
    client.indices.refresh(index=names.captions_index)


def test_a_missing_index_is_reported_before_any_model_is_loaded(
    opensearch: OpenSearchSettings, names: IndexNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(*_: object) -> None:
        raise AssertionError("a model was loaded before the index was checked")

    monkeypatch.setattr(embedder_module, "make_embedder", no_model)
    timing = SearchTiming()
    with pytest.raises(SearchUnavailableError, match=r"does not exist \(run vsa indexer\)"):
        search_once(SearchQuery(text="a van"), None, timing, opensearch=opensearch, index=names)
    assert [step for step, _ in timing.steps] == []


def test_vsa_search_reports_the_time_to_its_first_result(
    opensearch: OpenSearchSettings, names: IndexNames
) -> None:
    index_captions(opensearch, names, 20)
    env = {
        **os.environ,
        "OPENSEARCH_URL": opensearch.url,
        "VSA_SEARCH_INDEX__PREFIX": names.prefix,
        "VSA_LOG_LEVEL": "INFO",
    }
    vsa = [sys.executable, "-m", "vsa", "search"]
    found = subprocess.run(
        [*vsa, "a white van near the gate", "--timing", "-k", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert "gate" in found.stdout
    timing = re.search(
        r"^timing: .*first result ([\d.]+) s after the process started$", found.stderr, re.M
    )
    assert timing, found.stderr
    steps = ("index checked", "embedder loaded", "query embedded", "OpenSearch answered")
    assert all(step in timing.group(0) for step in steps)
    logged = re.search(
        r"event=search_answered .*precision=int8 .*first_result_s=([\d.]+)", found.stderr
    )
    assert logged, found.stderr
    assert 0 < float(logged.group(1)) < 600

    env["VSA_SEARCH_INDEX__PREFIX"] = f"{names.prefix}missing-"
    missing = subprocess.run(
        [*vsa, "a white van"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert missing.returncode == 1
    assert "does not exist (run vsa indexer)" in missing.stderr
    assert "embedder_loaded" not in missing.stderr  # reported before any model was loaded


def test_timing_lines_and_fields(tmp_path: Path) -> None:
    timing = SearchTiming(startup_s=0.5)
    timing.mark("index checked")
    timing.mark("OpenSearch answered")
    fields = timing.fields()
    assert list(fields) == [
        "startup_s",
        "index_checked_s",
        "opensearch_answered_s",
        "first_result_s",
    ]
    assert fields["first_result_s"] >= 0.5
    assert timing.line().startswith("timing: start-up 0.50 s, index checked ")
    assert timing.line().endswith("s after the process started")
    stat, uptime = tmp_path / "stat", tmp_path / "uptime"
    ticks = os.sysconf("SC_CLK_TCK")
    stat.write_text(f"42 (my (odd) name) S {' '.join(['0'] * 18)} {100 * ticks} 0 0\n")
    uptime.write_text("103.25 1.00\n")
    assert process_age_s(stat, uptime) == pytest.approx(3.25)
    assert process_age_s(tmp_path / "none", uptime) is None
    assert process_age_s() is not None  # this Linux process
