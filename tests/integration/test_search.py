"""Search against the real local OpenSearch: filters inside k-NN, hybrid fusion, the HTTP
endpoint (JSON hits, 400 on bad input) and ``vsa search``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from vsa.runtime.settings import OpenSearchSettings
from vsa.services.api.server import start_in_thread
from vsa.services.api.service import make_server
from vsa.services.indexer.embedder import SentenceEmbedder
from vsa.services.indexer.mapping import caption_doc_id, caption_document
from vsa.services.indexer.search import Searcher, SearchQuery
from vsa.services.indexer.settings import IndexerSettings, IndexNames, SearchSettings
from vsa.services.indexer.store import bulk, ensure_indices, make_client

from .test_indexer import BASE_TS, embedder, make_captions

__all__ = ["embedder"]  # the session fixture, shared with test_indexer

pytestmark = pytest.mark.integration

N_DOCS = 45


@pytest.fixture(scope="module")
def indexed(opensearch: OpenSearchSettings, embedder: SentenceEmbedder) -> Iterator[IndexNames]:
    """45 captions over gate/lobby/dock written straight to a fresh index; deleted after."""
    names = IndexNames(prefix=f"t-search-{uuid.uuid4().hex[:8]}-")
    settings = IndexerSettings(opensearch=opensearch, index=names, consume_alerts=False)
    client = make_client(opensearch, 30)
    ensure_indices(client, settings)
    captions = make_captions(N_DOCS)
    vectors = embedder.encode([c.text for c in captions])
    actions = [
        (
            {
                "index": {
                    "_index": names.captions_index,
                    "_id": caption_doc_id(c.camera_id, c.frame_seq),
                }
            },
            caption_document(c, v),
        )
        for c, v in zip(captions, vectors, strict=True)
    ]
    assert all(item["index"]["status"] == 201 for item in bulk(client, actions, 30))
    client.indices.refresh(index=names.captions_index)
    yield names
    client.indices.delete(index=names.captions_index)
    client.indices.delete_index_template(name=names.captions_index)


@pytest.fixture(scope="module")
def searcher(
    opensearch: OpenSearchSettings, embedder: SentenceEmbedder, indexed: IndexNames
) -> Searcher:
    settings = SearchSettings(opensearch=opensearch, index=indexed)
    return Searcher(make_client(opensearch, 10), embedder, settings)


def utc(seconds_after_base: float) -> datetime:
    return datetime.fromtimestamp(BASE_TS + seconds_after_base, tz=timezone.utc)


def test_filters_apply_inside_knn(searcher: Searcher) -> None:
    top = searcher.search(SearchQuery(text="white van parked near the gate", k=5))
    assert top[0].doc_id == "gate:0"
    assert top[0].similarity is not None
    assert top[0].similarity > 0.9
    assert top[0].score == pytest.approx((1 + top[0].similarity) / 2)
    assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)

    # A narrow filter still returns k hits (filtering while walking the graph, not after).
    dock = searcher.search(SearchQuery(text="white van parked near the gate", cameras=("dock",)))
    assert len(dock) == 10
    assert {h.camera_id for h in dock} == {"dock"}

    window = SearchQuery(text="people walking", since=utc(10), until=utc(19), k=100)
    assert sorted(h.frame_seq for h in searcher.search(window)) == list(range(10, 20))

    trucks = searcher.search(SearchQuery(text="vehicle", classes=("truck",), k=100))
    assert trucks
    assert all("truck" in h.classes for h in trucks)
    both = SearchQuery(text="vehicle", classes=("truck",), cameras=("gate", "lobby"), k=100)
    assert {h.doc_id for h in searcher.search(both)} == {
        h.doc_id for h in trucks if h.camera_id in ("gate", "lobby")
    }


def test_hybrid_fuses_knn_and_bm25(searcher: Searcher) -> None:
    hits = searcher.search(SearchQuery(text="white van parked near the gate", k=5, hybrid=True))
    assert hits[0].doc_id == "gate:0"
    assert len(hits) == 5
    assert hits[0].score == pytest.approx(2 / 61)  # rank 1 in both lists, RRF c = 60


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_endpoint_json_hits_and_errors(searcher: Searcher) -> None:
    server = make_server(searcher, "127.0.0.1", 0)
    start_in_thread(server)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        status, body = get(f"{base}/search?q=white+van+near+the+gate&camera=gate,lobby&k=3")
        assert status == 200
        assert body["hits"][0]["id"] == "gate:0"
        assert len(body["hits"]) == 3
        assert {h["camera_id"] for h in body["hits"]} <= {"gate", "lobby"}
        first = body["hits"][0]
        assert base64.b64decode(first["thumbnail_jpeg_b64"]).startswith(b"\xff\xd8\xff")
        assert first["frame"]["camera_id"] == "gate"
        assert first["capture_time"].endswith("Z")
        assert body["query"]["cameras"] == ["gate", "lobby"]

        for bad, words in [
            ("q=van&k=0", "k"),
            ("q=van&k=abc", "k"),
            ("q=van&k=101", "k"),
            ("k=3", "q"),
            ("q=", "text"),
            ("q=van&query={}", "unknown parameter"),
            ("q=van&since=2h&until=3h", "since"),
            ("q=van&since=2020-01-01&until=2022-01-01", "366 days"),
            ("q=van&camera=bad%20camera", "cameras"),
            ("q=van&hybrid=maybe", "hybrid"),
            ("q=van&since=yesterday", "time"),
            (f"q={'x' * 501}", "text"),
        ]:
            status, body = get(f"{base}/search?{bad}")
            assert status == 400, bad
            assert words in body["error"], (bad, body)
        assert get(f"{base}/nothing")[0] == 404
        assert get(f"{base}/healthz") == (200, {"ok": True})
    finally:
        server.shutdown()


def test_http_endpoint_503_when_the_index_is_missing(
    opensearch: OpenSearchSettings, embedder: SentenceEmbedder
) -> None:
    missing = SearchSettings(opensearch=opensearch, index=IndexNames(prefix="t-no-such-"))
    server = make_server(Searcher(make_client(opensearch, 10), embedder, missing), "127.0.0.1", 0)
    start_in_thread(server)
    try:
        status, body = get(f"http://127.0.0.1:{server.server_port}/search?q=van")
        assert status == 503
        assert "does not exist" in body["error"]
    finally:
        server.shutdown()


def vsa_search(indexed: IndexNames, opensearch: OpenSearchSettings, *args: str) -> Any:
    env = {
        **os.environ,
        "OPENSEARCH_URL": opensearch.url,
        "VSA_SEARCH_INDEX__PREFIX": indexed.prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "vsa", "search", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_prints_hits(indexed: IndexNames, opensearch: OpenSearchSettings) -> None:
    result = vsa_search(
        indexed, opensearch, "white van near the gate", "--camera", "gate", "-k", "3"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "caption" in lines[0]
    assert len(lines) == 4
    assert "A white van parked near the gate" in lines[1]

    result = vsa_search(indexed, opensearch, "white van", "--json", "-k", "2", "--hybrid")
    assert result.returncode == 0, result.stderr[-2000:]
    body = json.loads(result.stdout)
    assert len(body["hits"]) == 2
    assert body["query"]["hybrid"] is True

    result = vsa_search(indexed, opensearch, "white van", "-k", "0")
    assert result.returncode == 2
    assert "invalid query: k" in result.stderr
