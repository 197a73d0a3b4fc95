"""Session fixtures for integration tests: the real local Kafka and OpenSearch (or external ones).

The stack comes from ``vsa.devstack.up`` — the same code as ``vsa devstack up``:

* ``kafka_bootstrap`` starts (or reuses) only Kafka, ``opensearch_url`` only OpenSearch, so a
  Kafka-only test does not wait for OpenSearch; ``stack`` gives both as one ``StackInfo``.
* A part this session started is stopped at the end; one that was already running, or is
  external (``KAFKA_BOOTSTRAP_SERVERS`` / ``OPENSEARCH_URL``), is left alone.
  ``VSA_TEST_KEEP_STACK=1`` keeps what the session started running (faster reruns).
* ``kafka`` / ``opensearch`` are the same endpoints as ``KafkaSettings`` / ``OpenSearchSettings``.
* ``unique_name`` gives every test its own topic/index name, so tests never share data.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from vsa.devstack import StackInfo, down, up
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, load_settings


def _keep_stack() -> bool:
    return os.environ.get("VSA_TEST_KEEP_STACK", "") == "1"


@pytest.fixture(scope="session")
def kafka_stack() -> Iterator[StackInfo]:
    """Kafka only: started (or reused) once per session."""
    info = up(kafka=True, opensearch=False)
    yield info
    if info.started and not _keep_stack():
        down(kafka=True, opensearch=False)


@pytest.fixture(scope="session")
def opensearch_stack() -> Iterator[StackInfo]:
    """OpenSearch with k-NN only: started (or reused) once per session."""
    info = up(kafka=False, opensearch=True)
    yield info
    if info.started and not _keep_stack():
        down(kafka=False, opensearch=True)


@pytest.fixture(scope="session")
def stack(kafka_stack: StackInfo, opensearch_stack: StackInfo) -> StackInfo:
    """Both parts as one :class:`StackInfo`."""
    return StackInfo(kafka=kafka_stack.kafka, opensearch=opensearch_stack.opensearch)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_stack: StackInfo) -> str:
    """Kafka bootstrap servers (``host:port``) of the session's broker."""
    return kafka_stack.kafka_bootstrap


@pytest.fixture(scope="session")
def opensearch_url(opensearch_stack: StackInfo) -> str:
    """Base URL of the session's OpenSearch (``http://127.0.0.1:19200`` locally)."""
    return opensearch_stack.opensearch_url


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap: str) -> KafkaSettings:
    """Connection settings for the session's broker (security options from ``KAFKA_*``)."""
    return load_settings(KafkaSettings, bootstrap_servers=kafka_bootstrap)


@pytest.fixture(scope="session")
def opensearch(opensearch_url: str) -> OpenSearchSettings:
    """Connection settings for the session's OpenSearch (credentials from ``OPENSEARCH_*``)."""
    return load_settings(OpenSearchSettings, url=opensearch_url)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses, valid as a Kafka topic and an OpenSearch index:
    ``t-<test name, lowercased, [a-z0-9-] only, at most 40 chars>-<8 hex>``."""
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"t-{test or 'test'}-{uuid.uuid4().hex[:8]}"
