"""The indexer process: batch loop + handler + OpenSearch client + embedder, wired together."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.service import BatchLoop, LoopConfig, StopFlag, serve
from vsa.runtime.settings import ConfigError

from .embedder import Embedder, make_embedder
from .handler import (
    IndexerHandler,
    IndexerMetrics,
    IndexerStop,
    IndexSetupError,
    Retrier,
    is_transient,
)
from .settings import IndexerSettings
from .store import make_client

log = logging.getLogger("vsa.indexer")

SERVICE = "indexer"


@dataclass
class Indexer:
    """A ready-to-run indexer; ``loop.run()`` consumes until stopped."""

    settings: IndexerSettings
    loop: BatchLoop
    handler: IndexerHandler
    client: Any

    def ensure_indices(self, retry: bool = True) -> bool:
        """Write templates and create the indices; with ``retry`` wait for OpenSearch (back-off,
        not ready meanwhile), else one attempt. Returns True when it worked."""
        if retry:
            self.handler.retrier.call("ensure_indices", self.handler.ensure_indices)
            self.handler.retrier.succeeded()
            return True
        try:
            self.handler.ensure_indices()
        except Exception as exc:
            if not is_transient(exc):
                raise
            event(log, "ensure_indices_failed", logging.WARNING, error=str(exc)[:300])
            return False
        return True


def build_indexer(
    settings: IndexerSettings,
    *,
    embedder: Embedder | None = None,
    client: Any = None,
    idle_exit_s: float | None = None,
    max_batches: int | None = None,
) -> Indexer:
    """Wire the indexer. ``idle_exit_s`` / ``max_batches`` stop the loop by themselves (tests,
    benchmarks); ``embedder`` and ``client`` may be shared between several indexers."""
    metrics = ServiceMetrics(SERVICE)
    health, stop = Health(), StopFlag()
    retrier = Retrier(settings.retry, health, stop, IndexerMetrics(metrics))
    client = client or make_client(settings.opensearch, settings.retry.request_timeout_s)
    handler = IndexerHandler(
        settings, client, embedder or make_embedder(settings.embedding), retrier
    )
    topics = [settings.topics.name("captions")]
    if settings.consume_alerts:
        topics.append(settings.topics.name("alerts"))
    if settings.consume_counts:
        topics.append(settings.topics.name("counts"))
    if settings.index_objects:
        topics.append(settings.topics.name("keyframes"))
    config = LoopConfig(
        service=SERVICE,
        group_id=settings.group_id or f"vsa-{SERVICE}",
        topics=tuple(topics),
        dlq_topic=settings.topics.dlq(SERVICE),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        max_batches=max_batches,
        idle_exit_s=idle_exit_s,
        topic_prefix=settings.topics.prefix,
    )
    loop = BatchLoop(config, settings.kafka, handler, metrics=metrics, health=health, stop=stop)
    return Indexer(settings, loop, handler, client)


def run_indexer(settings: IndexerSettings, idle_exit_s: float | None = None) -> int:
    """``vsa indexer``: serve metrics/health, consume until SIGTERM; exit 0, or 1 after giving up
    on OpenSearch (``retry.give_up_after_s``). The batch in flight is never committed early."""
    indexer = build_indexer(settings, idle_exit_s=idle_exit_s)
    indexer.loop.stop.install()
    event(
        log,
        "indexer_starting",
        topics=list(indexer.loop.config.topics),
        captions_index=settings.index.captions_index,
        engine=settings.hnsw.engine,
        opensearch=settings.opensearch.url,
    )
    try:
        # One attempt now; if OpenSearch is not up yet the first batch waits for it (with
        # /readyz not ready) instead of the process blocking before its metrics server is up.
        indexer.ensure_indices(retry=False)
        return serve(indexer.loop, settings.metrics_host, settings.metrics_port)
    except IndexSetupError as exc:
        raise ConfigError(str(exc)) from exc
    except IndexerStop as exc:
        stopped = indexer.loop.stop.is_set()
        event(log, "indexer_stopped_uncommitted", logging.ERROR, stopped=stopped, reason=str(exc))
        return 0 if stopped else 1
