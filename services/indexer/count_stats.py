"""Counts per camera per hour from the counts index (``vsa stats``).

:class:`StatsQuery` is the only way in (validated, bounded); :func:`stats_body` is the pure
request body, an aggregation per camera, per hour of ``period_start`` and per rule;
:func:`stats_rows` folds OpenSearch's answer into :class:`StatsRow` s; :class:`CountStats` does
the I/O. Line counts are summed over the hour's periods (``a_to_b``, ``b_to_a``, ``total``);
occupancy gives the hour's ``max`` and its ``mean`` weighted by each period's ``observed_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from pydantic import Field, field_validator

from vsa.schemas import CameraId
from vsa.schemas.common import Identifier

from .mapping import F_CAMERA, F_PERIOD_START, F_VALUES, ts_to_millis
from .search import MAX_FILTER_VALUES, WindowQuery, _utc, opensearch_answers
from .settings import SearchSettings

#: Most cameras, hours and rules one answer lists (OpenSearch's bucket limit is 65,535).
MAX_CAMERAS: Final = 1000
MAX_RULES: Final = 100
#: The line-count numbers, summed per hour.
SUMS: Final = ("a_to_b", "b_to_a", "total")


class StatsQuery(WindowQuery):
    """Which counts to aggregate: every filter given applies (camera AND rule AND time)."""

    cameras: tuple[CameraId, ...] = Field((), max_length=MAX_FILTER_VALUES)
    rules: tuple[Identifier, ...] = Field((), max_length=MAX_FILTER_VALUES)
    since: datetime | None = Field(None, description="Periods starting at or after (naive: UTC).")
    until: datetime | None = Field(None, description="Periods starting before (naive: UTC).")

    _utc_times = field_validator("since", "until")(_utc)


def _value(name: str) -> str:
    return f"{F_VALUES}.{name}"


def stats_body(query: StatsQuery) -> dict[str, Any]:
    """Search body: no hits, the filters, and camera -> hour -> rule buckets with the sums,
    maxima and weighted means of their periods' values."""
    clauses: list[dict[str, Any]] = []
    if query.cameras:
        clauses.append({"terms": {F_CAMERA: list(query.cameras)}})
    if query.rules:
        clauses.append({"terms": {"rule_id": list(query.rules)}})
    if query.since is not None or query.until is not None:
        window: dict[str, Any] = {"format": "epoch_millis"}
        if query.since is not None:
            window["gte"] = ts_to_millis(query.since.timestamp())
        if query.until is not None:
            window["lt"] = ts_to_millis(query.until.timestamp())
        clauses.append({"range": {F_PERIOD_START: window}})
    numbers: dict[str, Any] = {name: {"sum": {"field": _value(name)}} for name in SUMS}
    numbers["max"] = {"max": {"field": _value("max")}}
    numbers["mean"] = {
        "weighted_avg": {
            "value": {"field": _value("mean")},
            "weight": {"field": _value("observed_s"), "missing": 1},
        }
    }
    numbers["kind"] = {"terms": {"field": "kind", "size": 1}}
    numbers["target"] = {"terms": {"field": "target_id", "size": 1}}
    rules = {"terms": {"field": "rule_id", "size": MAX_RULES, "order": {"_key": "asc"}}}
    hours = {
        "date_histogram": {"field": F_PERIOD_START, "fixed_interval": "1h", "min_doc_count": 1}
    }
    cameras = {"terms": {"field": F_CAMERA, "size": MAX_CAMERAS, "order": {"_key": "asc"}}}
    return {
        "size": 0,
        "query": {"bool": {"filter": clauses}},
        "aggs": {
            "cameras": {
                **cameras,
                "aggs": {"hours": {**hours, "aggs": {"rules": {**rules, "aggs": numbers}}}},
            }
        },
    }


@dataclass(frozen=True)
class StatsRow:
    """One camera's counts of one rule during one hour (UTC). Line counts: ``a_to_b``,
    ``b_to_a``, ``total``; occupancy: ``max`` and ``mean`` objects; None where the kind has
    no such number. ``periods``: the count periods behind the row."""

    camera_id: str
    hour: datetime
    rule_id: str
    kind: str
    target_id: str
    periods: int
    a_to_b: float | None = None
    b_to_a: float | None = None
    total: float | None = None
    max: float | None = None
    mean: float | None = None


def _first_key(agg: dict[str, Any]) -> str:
    buckets = agg.get("buckets") or [{}]
    return str(buckets[0].get("key", ""))


def stats_rows(response: dict[str, Any]) -> list[StatsRow]:
    """The rows of an answer to :func:`stats_body`, by camera, hour and rule."""
    rows = []
    for camera in response.get("aggregations", {}).get("cameras", {}).get("buckets", []):
        for hour in camera["hours"]["buckets"]:
            start = datetime.fromtimestamp(hour["key"] / 1000, tz=timezone.utc)
            for rule in hour["rules"]["buckets"]:
                kind = _first_key(rule["kind"])
                numbers = {
                    name: rule[name]["value"]
                    for name in (*SUMS, "max", "mean")
                    if rule[name].get("value") is not None
                }
                if kind == "line_count":
                    numbers = {k: v for k, v in numbers.items() if k in SUMS}
                else:
                    numbers = {k: v for k, v in numbers.items() if k not in SUMS}
                rows.append(
                    StatsRow(
                        camera["key"],
                        start,
                        rule["key"],
                        kind,
                        _first_key(rule["target"]),
                        int(rule["doc_count"]),
                        **numbers,
                    )
                )
    return rows


class CountStats:
    """Aggregates the counts index named in ``settings`` (``index.counts_index``)."""

    def __init__(self, client: Any, settings: SearchSettings) -> None:
        self.client, self.settings = client, settings
        self.index = settings.index.counts_index

    def hourly(self, query: StatsQuery) -> list[StatsRow]:
        """Counts per camera per hour per rule; :class:`SearchUnavailableError` when
        OpenSearch cannot answer or the index is missing."""
        missing = (
            f"index {self.index} does not exist: no count was indexed yet (run vsa indexer "
            "with line_count or occupancy rules; its consume_counts is on by default)"
        )
        with opensearch_answers(self.settings, missing):
            response = self.client.search(
                index=self.index,
                body=stats_body(query),
                request_timeout=self.settings.request_timeout_s,
            )
        return stats_rows(response)


def format_rows(rows: list[StatsRow]) -> list[str]:
    """A plain table: one line per camera, hour (UTC) and rule."""
    lines = ["camera  hour (UTC)        rule  kind  target  periods  counts"]
    for row in rows:
        if row.kind == "line_count":
            counts = f"a_to_b={row.a_to_b or 0:.0f} b_to_a={row.b_to_a or 0:.0f} "
            counts += f"total={row.total or 0:.0f}"
        else:
            mean = "-" if row.mean is None else f"{row.mean:.2f}"
            high = "-" if row.max is None else f"{row.max:.0f}"
            counts = f"max={high} mean={mean}"
        lines.append(
            f"{row.camera_id}  {row.hour:%Y-%m-%d %H:00}  {row.rule_id}  {row.kind}  "
            f"{row.target_id}  {row.periods}  {counts}"
        )
    return lines
