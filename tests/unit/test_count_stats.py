"""The counts index: its documents, and the hourly aggregation `vsa stats` asks for (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from vsa.schemas import Counts, make_count_id
from vsa.services.indexer.count_stats import (
    StatsQuery,
    StatsRow,
    format_rows,
    stats_body,
    stats_rows,
)
from vsa.services.indexer.mapping import counts_document, counts_mapping
from vsa.services.indexer.search import QueryError

HOUR = datetime(2026, 1, 1, 6, tzinfo=timezone.utc)


def test_count_document_fields_match_the_mapping() -> None:
    start = HOUR.timestamp()
    counts = Counts(
        count_id=make_count_id("gate", "walk", start),
        camera_id="gate",
        rule_id="walk",
        kind="line_count",
        target_id="walkway",
        period_start_ts=start,
        period_end_ts=start + 900,
        frame_seq=42,
        values={"a_to_b": 3, "b_to_a": 1, "total": 4},
    )
    doc = counts_document(counts, indexed_at=0.0)
    assert set(doc) == set(counts_mapping()["properties"])
    assert doc["period_start"] == int(start * 1000)
    assert doc["period_end"] == int(start * 1000) + 900_000
    assert doc["values"] == {"a_to_b": 3.0, "b_to_a": 1.0, "total": 4.0}
    assert all(isinstance(v, float) for v in doc["values"].values())  # one type per field


def test_the_body_filters_and_nests_camera_hour_rule() -> None:
    query = StatsQuery.parse(cameras=("gate",), rules=("walk",), since=HOUR, until=HOUR)
    body = stats_body(query)
    assert body["size"] == 0
    filters = body["query"]["bool"]["filter"]
    assert {"terms": {"camera_id": ["gate"]}} in filters
    assert {"terms": {"rule_id": ["walk"]}} in filters
    window = next(f["range"]["period_start"] for f in filters if "range" in f)
    assert window["gte"] == window["lt"] == int(HOUR.timestamp() * 1000)
    hours = body["aggs"]["cameras"]["aggs"]["hours"]
    assert hours["date_histogram"]["fixed_interval"] == "1h"
    numbers = hours["aggs"]["rules"]["aggs"]
    assert numbers["total"] == {"sum": {"field": "values.total"}}
    assert numbers["mean"]["weighted_avg"]["weight"]["field"] == "values.observed_s"
    with pytest.raises(QueryError, match="since must not be after until"):
        StatsQuery.parse(since=HOUR.replace(hour=7), until=HOUR)


def _rule(key: str, kind: str, docs: int, **values: float | None) -> dict[str, object]:
    numbers = {n: {"value": values.get(n)} for n in ("a_to_b", "b_to_a", "total", "max", "mean")}
    for name in ("a_to_b", "b_to_a", "total"):  # a sum over no field is 0, never null
        numbers[name]["value"] = values.get(name, 0.0)
    return {
        "key": key,
        "doc_count": docs,
        "kind": {"buckets": [{"key": kind}]},
        "target": {"buckets": [{"key": "zone-or-line"}]},
        **numbers,
    }


def test_rows_take_each_kind_s_own_numbers_and_print_one_line_each() -> None:
    response = {
        "aggregations": {
            "cameras": {
                "buckets": [
                    {
                        "key": "gate",
                        "hours": {
                            "buckets": [
                                {
                                    "key": HOUR.timestamp() * 1000,
                                    "rules": {
                                        "buckets": [
                                            _rule("occ", "occupancy", 4, max=5.0, mean=1.25),
                                            _rule("walk", "line_count", 4, a_to_b=7, total=9),
                                        ]
                                    },
                                }
                            ]
                        },
                    }
                ]
            }
        }
    }
    rows = stats_rows(response)
    assert rows == [
        StatsRow("gate", HOUR, "occ", "occupancy", "zone-or-line", 4, max=5.0, mean=1.25),
        StatsRow(
            "gate", HOUR, "walk", "line_count", "zone-or-line", 4, a_to_b=7, b_to_a=0.0, total=9
        ),
    ]
    lines = format_rows(rows)
    assert lines[1] == "gate  2026-01-01 06:00  occ  occupancy  zone-or-line  4  max=5 mean=1.25"
    assert lines[2].endswith("walk  line_count  zone-or-line  4  a_to_b=7 b_to_a=0 total=9")
    assert stats_rows({"aggregations": {"cameras": {"buckets": []}}}) == []
