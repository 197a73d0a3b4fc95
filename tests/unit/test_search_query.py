"""Search queries: validation, time parsing, the OpenSearch bodies built from them, RRF fusion,
and URL parameters of the HTTP endpoint (pure, no OpenSearch)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from vsa.services.api.params import query_from_params
from vsa.services.indexer.search import (
    QueryError,
    SearchQuery,
    bm25_body,
    filter_clauses,
    fuse_hybrid,
    knn_body,
    parse_time,
    rrf_fuse,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
VECTOR = [0.1] * 384


def test_query_defaults_and_limits() -> None:
    query = SearchQuery(text="  white van  ")
    assert query.text == "white van"
    assert (query.k, query.hybrid, query.cameras) == (10, False, ())
    for bad in (
        {"text": ""},
        {"text": "x" * 501},
        {"text": "van", "k": 0},
        {"text": "van", "k": 101},
        {"text": "van", "cameras": ("bad camera",)},
        {"text": "van", "alert_kinds": ("fire",)},
        {"text": "van", "size": 3},  # unknown keys: no way to smuggle query DSL in
        {"text": "van", "cameras": tuple(f"c{i}" for i in range(101))},
    ):
        with pytest.raises(QueryError):
            SearchQuery.parse(**bad)


def test_time_window_rules() -> None:
    naive = SearchQuery(text="van", since=datetime(2026, 1, 1, 8, 0))
    assert naive.since == datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
    with pytest.raises(QueryError, match="since must not be after until"):
        SearchQuery.parse(text="van", since=NOW, until=NOW - timedelta(seconds=1))
    with pytest.raises(QueryError, match="366 days"):
        SearchQuery.parse(text="van", since=NOW - timedelta(days=367), until=NOW)
    assert SearchQuery(text="van", since=NOW - timedelta(days=366), until=NOW).until == NOW


def test_parse_time() -> None:
    assert parse_time("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_time("1w", NOW) == NOW - timedelta(days=7)
    assert parse_time("2026-11-21T08:00Z") == datetime(2026, 11, 21, 8, tzinfo=timezone.utc)
    assert parse_time("2026-11-21T09:00+01:00") == datetime(2026, 11, 21, 8, tzinfo=timezone.utc)
    assert parse_time("2026-11-21") == datetime(2026, 11, 21, tzinfo=timezone.utc)
    with pytest.raises(QueryError, match="ISO 8601"):
        parse_time("this morning")
    with pytest.raises(QueryError, match="before year 1"):
        parse_time("999999w")


def test_filters_inside_the_knn_clause() -> None:
    query = SearchQuery(
        text="van",
        cameras=("gate", "lot"),
        classes=("car",),
        alert_kinds=("loitering",),
        since=datetime(2026, 11, 21, 8, tzinfo=timezone.utc),
        until=datetime(2026, 11, 21, 9, tzinfo=timezone.utc),
        k=7,
    )
    body = knn_body(VECTOR, query, size=7, ef_search=100, engine="lucene")
    knn = body["query"]["knn"]["embedding"]
    assert body["size"] == 7
    assert knn["k"] == 7
    assert knn["method_parameters"] == {"ef_search": 100}
    assert knn["filter"] == {
        "bool": {
            "filter": [
                {"terms": {"camera_id": ["gate", "lot"]}},
                {"terms": {"classes": ["car"]}},
                {"terms": {"alert_kinds": ["loitering"]}},
                {
                    "range": {
                        "capture_time": {
                            "format": "epoch_millis",
                            "gte": 1_795_248_000_000,
                            "lte": 1_795_251_600_000,
                        }
                    }
                },
            ]
        }
    }
    assert set(body) == {"size", "query", "_source"}  # no post_filter, no bool around knn


def test_knn_body_without_filters_and_per_engine_ef_search() -> None:
    query = SearchQuery(text="van", k=50)
    knn = knn_body(VECTOR, query, 50, ef_search=20, engine="faiss")["query"]["knn"]["embedding"]
    assert "filter" not in knn
    assert knn["method_parameters"] == {"ef_search": 50}  # never below k
    nmslib = knn_body(VECTOR, query, 50, ef_search=20, engine="nmslib")
    assert "method_parameters" not in nmslib["query"]["knn"]["embedding"]
    assert filter_clauses(SearchQuery(text="van", until=NOW)) == [
        {"range": {"capture_time": {"format": "epoch_millis", "lte": 1_795_262_400_000}}}
    ]


def test_bm25_body_uses_the_same_filters() -> None:
    query = SearchQuery(text="red truck", cameras=("dock",))
    body = bm25_body(query, 20)
    assert body["query"]["bool"]["must"] == [{"match": {"caption": {"query": "red truck"}}}]
    assert body["query"]["bool"]["filter"] == filter_clauses(query)


def test_rrf_fuse() -> None:
    fused = rrf_fuse([["a", "b", "c"], ["c", "a", "d"]], rank_constant=60, k=3)
    assert [doc for doc, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert rrf_fuse([[], []], 60, 5) == []


def _response(*docs: tuple[str, float]) -> dict[str, object]:
    frame = {"topic": "frames", "partition": 0, "offset": 1, "camera_id": "gate", "frame_seq": 1}
    source = {
        "camera_id": "gate",
        "frame_seq": 1,
        "capture_time": 1_700_000_000_000,
        "caption": "c",
        "frame": frame,
        "thumbnail_jpeg": "",
    }
    return {"hits": {"hits": [{"_id": d, "_score": s, "_source": source} for d, s in docs]}}


def test_fuse_hybrid_keeps_similarity_from_knn() -> None:
    hits = fuse_hybrid(_response(("a", 0.9), ("b", 0.8)), _response(("c", 12.0), ("a", 3.0)), 60, 3)
    assert [h.doc_id for h in hits] == ["a", "c", "b"]
    assert hits[0].similarity == pytest.approx(0.8)
    assert hits[1].similarity is None
    assert hits[0].capture_time == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)


def test_query_from_params() -> None:
    query = query_from_params(
        {
            "q": ["white van"],
            "camera": ["gate,lot", "dock"],
            "class": ["car"],
            "since": ["2h"],
            "k": ["5"],
            "hybrid": ["true"],
        },
        now=NOW,
    )
    assert query.cameras == ("gate", "lot", "dock")
    assert query.since == NOW - timedelta(hours=2)
    assert (query.k, query.hybrid) == (5, True)
    for params, words in [
        ({"q": ["van"], "body": ["{}"]}, "unknown parameter 'body'"),
        ({}, "q: the search text is required"),
        ({"q": ["a", "b"]}, "give it once"),
        ({"q": ["van"], "k": ["-1"]}, "k: expected an integer"),
        ({"q": ["van"], "hybrid": ["perhaps"]}, "hybrid"),
    ]:
        with pytest.raises(QueryError, match=words):
            query_from_params(params)
