"""The alert history: the alerts index the indexer keeps (one document per alert, ``_id`` =
``alert_id``), listed newest first with filters (``vsa alerts list``).

:class:`AlertQuery` is the only way in (validated, bounded, no query DSL from users);
:func:`alerts_body` is the pure request body; :class:`AlertHistory` does the I/O and turns each
document back into the topic's ``Alert``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import Field, field_validator

from vsa.schemas import ALERT_KINDS, Alert, AlertKind, CameraId, SchemaError

from .mapping import F_CAMERA, F_TIME, alert_from_document
from .search import MAX_FILTER_VALUES, WindowQuery, _utc, opensearch_answers, terms_and_window
from .settings import SearchSettings

#: Most alerts one listing returns (OpenSearch's default result window is 10,000).
MAX_ALERTS: Final = 1000


class AlertQuery(WindowQuery):
    """Which alerts to list: every filter given applies (camera AND kind AND time); a list
    filter matches any of its values."""

    cameras: tuple[CameraId, ...] = Field((), max_length=MAX_FILTER_VALUES)
    kinds: tuple[AlertKind, ...] = Field((), max_length=len(ALERT_KINDS))
    since: datetime | None = Field(None, description="Alerts at or after (naive: UTC).")
    until: datetime | None = Field(None, description="Alerts at or before (naive: UTC).")
    limit: int = Field(20, ge=1, le=MAX_ALERTS, description="Newest alerts to return.")

    _utc_times = field_validator("since", "until")(_utc)


def alerts_body(query: AlertQuery) -> dict[str, Any]:
    """Search body: the filters (no scoring), newest first, ``alert_id`` breaking ties so the
    order is the same on every call."""
    terms = ((F_CAMERA, query.cameras), ("kind", query.kinds))
    clauses = terms_and_window(terms, query.since, query.until)
    return {
        "size": query.limit,
        "query": {"bool": {"filter": clauses}},
        "sort": [{F_TIME: {"order": "desc"}}, {"alert_id": {"order": "asc"}}],
    }


class AlertHistory:
    """Lists alerts from the alerts index named in ``settings`` (``index.alerts_index``)."""

    def __init__(self, client: Any, settings: SearchSettings) -> None:
        self.client, self.settings = client, settings
        self.index = settings.index.alerts_index
        self.skipped = 0  # documents that are not valid alerts

    def list(self, query: AlertQuery) -> list[Alert]:
        """The newest ``query.limit`` matching alerts, newest first;
        :class:`SearchUnavailableError` when OpenSearch cannot answer or the index is missing."""
        missing = (
            f"index {self.index} does not exist: no alert was indexed yet (run vsa indexer; "
            "its consume_alerts is on by default)"
        )
        with opensearch_answers(self.settings, missing):
            response = self.client.search(
                index=self.index,
                body=alerts_body(query),
                request_timeout=self.settings.request_timeout_s,
            )
        alerts = []
        for hit in response["hits"]["hits"]:
            try:
                alerts.append(alert_from_document(hit["_source"]))
            except (SchemaError, ValueError, TypeError):
                self.skipped += 1
        return alerts
