"""Bulk-response classification, back-off and the retry policy (pure: scripted failures)."""

from __future__ import annotations

import pytest
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import RequestError, TransportError

from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.service import StopFlag
from vsa.services.indexer.bulk import (
    Backoff,
    classify_bulk_items,
    item_error,
    transient_request_status,
)
from vsa.services.indexer.handler import (
    IndexerMetrics,
    OpenSearchUnavailableError,
    Retrier,
    is_transient,
)
from vsa.services.indexer.settings import RetrySettings


def item(status: int, error: dict[str, object] | None = None) -> dict[str, object]:
    result: dict[str, object] = {"_id": "x", "status": status}
    if error is not None:
        result["error"] = error
    return {"index": result}


MAPPING_ERROR = {
    "type": "mapper_parsing_exception",
    "reason": "failed to parse field [capture_time]",
    "caused_by": {"type": "illegal_argument_exception", "reason": "too big"},
}


def test_classify_sorts_indexed_rejected_and_retry() -> None:
    items = [
        item(201),
        item(400, MAPPING_ERROR),
        item(429, {"type": "es_rejected_execution_exception", "reason": "queue full"}),
        item(200),
        item(503, {"type": "unavailable_shards_exception", "reason": "no primary"}),
        item(404, {"type": "index_not_found_exception", "reason": "no such index"}),
    ]
    outcome = classify_bulk_items(items)
    assert outcome.indexed == [0, 3]
    assert set(outcome.rejected) == {1}
    assert set(outcome.retry) == {2, 4, 5}
    assert "mapper_parsing_exception" in outcome.rejected[1]
    assert "caused by illegal_argument_exception: too big" in outcome.rejected[1]


def test_item_error_without_details() -> None:
    assert item_error(item(201)) == (201, None)
    assert item_error(item(409)) == (409, "status 409: status 409")


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        ("N/A", True),
        (None, True),
        (500, True),
        (503, True),
        (429, True),
        (401, True),
        (400, False),
        (413, False),
    ],
)
def test_transient_request_status(status: object, transient: bool) -> None:
    assert transient_request_status(status) is transient


def test_is_transient_by_exception() -> None:
    assert is_transient(OSConnectionError("N/A", "refused", None))
    assert is_transient(TransportError(502, "bad_gateway", {}))
    assert not is_transient(RequestError(400, "illegal_argument_exception", {}))
    assert not is_transient(ValueError("bug"))


def test_backoff_grows_to_the_cap_with_jitter_and_resets() -> None:
    high = Backoff(0.5, 4.0, rng=lambda: 1.0)
    assert [high.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    low = Backoff(0.5, 4.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(4)] == [0.25, 0.5, 1.0, 2.0]
    high.reset()
    assert high.next_delay() == 0.5
    assert Backoff(1, 30).next_delay() <= 1.0


def make_retrier(**retry: float | None) -> tuple[Retrier, Health, StopFlag, list[float]]:
    slept: list[float] = []
    health, stop = Health(ready=True), StopFlag()
    metrics = IndexerMetrics(ServiceMetrics("indexer-test"))
    settings = RetrySettings(min_backoff_s=0.01, max_backoff_s=0.02, **retry)  # type: ignore[arg-type]
    return Retrier(settings, health, stop, metrics, sleep=slept.append), health, stop, slept


def test_retrier_waits_out_transient_failures_and_recovers() -> None:
    retrier, health, _, slept = make_retrier()
    failures = [OSConnectionError("N/A", "refused", None)] * 3

    def op() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert retrier.call("bulk", op, documents=4) == "ok"
    assert not health.ready  # still marked failing until the caller confirms success
    assert "refused" in health.detail["opensearch"]
    assert slept
    assert retrier.metrics.retries.labels("bulk")._value.get() == 3
    retrier.succeeded()
    assert health.ready
    assert "opensearch" not in health.detail
    assert retrier.failing_since is None


def test_retrier_raises_permanent_errors_at_once() -> None:
    retrier, health, _, slept = make_retrier()

    def op() -> None:
        raise RequestError(400, "parse_exception", {})

    with pytest.raises(RequestError):
        retrier.call("bulk", op)
    assert health.ready
    assert slept == []


def test_retrier_gives_up_after_the_bound() -> None:
    retrier, _, _, _ = make_retrier(give_up_after_s=0.05)

    def op() -> None:
        raise OSConnectionError("N/A", "refused", None)

    with pytest.raises(OpenSearchUnavailableError, match="failing for"):
        retrier.call("bulk", op)


def test_retrier_stops_when_asked() -> None:
    retrier, _, stop, _ = make_retrier(give_up_after_s=None)
    stop.set()

    def op() -> None:
        raise OSConnectionError("N/A", "refused", None)

    with pytest.raises(OpenSearchUnavailableError, match="stop requested"):
        retrier.call("bulk", op)
