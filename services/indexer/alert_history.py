"""The alert history: the alerts index the indexer keeps (one document per alert, ``_id`` =
``alert_id``), listed newest first with filters (``vsa alerts list``).

:class:`AlertQuery` is the only way in (validated, bounded, no query DSL from users);
:func:`alerts_body` is the pure request body; :class:`AlertHistory` does the I/O and turns each
document back into the topic's ``Alert``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
from opensearchpy.exceptions import NotFoundError, OpenSearchException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Self

from vsa.runtime.redact import mask_url
from vsa.schemas import Alert, AlertKind, CameraId, SchemaError
from vsa.schemas.codec import describe_validation_error

from .mapping import F_CAMERA, F_TIME, alert_from_document, ts_to_millis
from .search import MAX_FILTER_VALUES, QueryError, SearchUnavailableError, _utc
from .settings import SearchSettings

#: Most alerts one listing returns (OpenSearch's default result window is 10,000).
MAX_ALERTS: Final = 1000


class AlertQuery(BaseModel):
    """Which alerts to list: every filter given applies (camera AND kind AND time); a list
    filter matches any of its values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cameras: tuple[CameraId, ...] = Field((), max_length=MAX_FILTER_VALUES)
    kinds: tuple[AlertKind, ...] = Field((), max_length=4)
    since: datetime | None = Field(None, description="Alerts at or after (naive: UTC).")
    until: datetime | None = Field(None, description="Alerts at or before (naive: UTC).")
    limit: int = Field(20, ge=1, le=MAX_ALERTS, description="Newest alerts to return.")

    _utc_times = field_validator("since", "until")(_utc)

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be after until")
        return self

    @classmethod
    def parse(cls, **fields: Any) -> AlertQuery:
        """Validate, turning pydantic's error into a one-line :class:`QueryError`."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise QueryError(describe_validation_error(exc)[0]) from exc


def alerts_body(query: AlertQuery) -> dict[str, Any]:
    """Search body: the filters (no scoring), newest first, ``alert_id`` breaking ties so the
    order is the same on every call."""
    clauses: list[dict[str, Any]] = []
    if query.cameras:
        clauses.append({"terms": {F_CAMERA: list(query.cameras)}})
    if query.kinds:
        clauses.append({"terms": {"kind": list(query.kinds)}})
    if query.since is not None or query.until is not None:
        window: dict[str, Any] = {"format": "epoch_millis"}
        if query.since is not None:
            window["gte"] = ts_to_millis(query.since.timestamp())
        if query.until is not None:
            window["lte"] = ts_to_millis(query.until.timestamp())
        clauses.append({"range": {F_TIME: window}})
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
        try:
            response = self.client.search(
                index=self.index,
                body=alerts_body(query),
                request_timeout=self.settings.request_timeout_s,
            )
        except OpenSearchConnectionError as exc:
            where = f"OpenSearch at {mask_url(self.settings.opensearch.url)}"
            raise SearchUnavailableError(f"{where} is unreachable; retry later") from exc
        except NotFoundError as exc:
            raise SearchUnavailableError(
                f"index {self.index} does not exist: no alert was indexed yet (run vsa indexer; "
                "its consume_alerts is on by default)"
            ) from exc
        except OpenSearchException as exc:
            raise SearchUnavailableError(f"OpenSearch failed: {type(exc).__name__}: {exc}") from exc
        alerts = []
        for hit in response["hits"]["hits"]:
            try:
                alerts.append(alert_from_document(hit["_source"]))
            except (SchemaError, ValueError, TypeError):
                self.skipped += 1
        return alerts
