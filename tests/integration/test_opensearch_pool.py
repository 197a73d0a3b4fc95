"""The OpenSearch client keeps several connections: concurrent callers (the API serving the
console's thumbnails) reuse them instead of opening and dropping one per request."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from vsa.runtime.settings import OpenSearchSettings
from vsa.services.indexer.store import POOL_SIZE, make_client


def test_concurrent_requests_reuse_pooled_connections(
    opensearch: OpenSearchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(opensearch, timeout_s=30)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with ThreadPoolExecutor(max_workers=POOL_SIZE) as pool:
        answers = list(pool.map(lambda _: client.cluster.health()["status"], range(8 * POOL_SIZE)))
    assert len(answers) == 8 * POOL_SIZE
    assert set(answers) <= {"green", "yellow"}
    full = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert full == []
