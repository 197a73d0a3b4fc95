"""The indexer's batch handler: captions, alerts, counts and keyframes in, OpenSearch documents
out (keyframes only with ``index_objects``: one object document each of their objects, see
:mod:`.objects`).

For one batch from :class:`~vsa.runtime.service.BatchLoop` the handler decodes every message,
embeds all caption texts in one batched forward pass, writes everything in one bulk request and
returns only when OpenSearch has answered for every document:

- indexed: done (the loop then commits the offsets);
- rejected for good (mapping error): returned as a failure, so the loop dead-letters that message
  to ``dlq.indexer`` while the rest of the batch stays indexed;
- OpenSearch unreachable, throttling, 5xx: retried with back-off until it works, with /readyz
  reporting not ready meanwhile. The handler does not return in between, so nothing is
  committed early and nothing is lost. SIGTERM during an outage (or ``give_up_after_s``) raises
  :class:`OpenSearchUnavailableError`, which leaves the batch uncommitted for the next run.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import Message
from opensearchpy.exceptions import TransportError
from prometheus_client import Counter, Histogram

from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.service import BatchResult, StopFlag
from vsa.schemas import Alert, Caption, Counts, Keyframe, SchemaError

from .bulk import Backoff, DocumentRejectedError, classify_bulk_items, transient_request_status
from .embedder import Embedder
from .mapping import alert_document, caption_doc_id, caption_document, counts_document
from .objects import KeyframeObjects
from .settings import IndexerSettings, RetrySettings
from .store import Action, BulkResponseError, EngineUnavailableError, bulk, ensure_indices

log = logging.getLogger("vsa.indexer")

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Whether a failed OpenSearch request is worth waiting out (see transient_request_status);
    client-side errors (serialisation, configuration) are not."""
    if isinstance(exc, BulkResponseError):
        return True
    if isinstance(exc, TransportError):
        return transient_request_status(exc.status_code)
    return False


class IndexerStop(BaseException):
    """The indexer must stop with the batch in flight uncommitted.

    It derives from BaseException on purpose: the batch loop turns ordinary exceptions from a
    handler into per-message dead letters, and neither an outage nor a refused index setup is
    the fault of the messages.
    """


class OpenSearchUnavailableError(IndexerStop):
    """OpenSearch kept failing past ``give_up_after_s``, or a stop was requested meanwhile."""


class IndexSetupError(IndexerStop):
    """OpenSearch refused the index templates or indices (a configuration problem, e.g. an
    engine the cluster does not have)."""


@dataclass
class IndexerMetrics:
    """Indexer metrics, registered next to the loop's own metrics."""

    base: ServiceMetrics

    def __post_init__(self) -> None:
        r = self.base.registry
        self.documents = Counter(
            "vsa_indexer_documents",
            "Documents by index and result (indexed, rejected).",
            ["index", "result"],
            registry=r,
        )
        self.retries = Counter(
            "vsa_indexer_retries", "Failed OpenSearch attempts retried.", ["what"], registry=r
        )
        self.embed_seconds = Histogram(
            "vsa_indexer_embed_seconds", "Embedding time of one batch, seconds.", registry=r
        )
        self.bulk_seconds = Histogram(
            "vsa_indexer_bulk_seconds",
            "Bulk write time of one batch including retries, seconds.",
            registry=r,
        )


class Retrier:
    """Waits out OpenSearch failures: back-off, logs, readiness, stop requests, give-up."""

    def __init__(
        self,
        retry: RetrySettings,
        health: Health,
        stop: StopFlag,
        metrics: IndexerMetrics,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry
        self.health = health
        self.stop = stop
        self.metrics = metrics
        self.sleep = sleep
        self.backoff = Backoff(retry.min_backoff_s, retry.max_backoff_s)
        self.failing_since: float | None = None

    def call(self, what: str, op: Callable[[], T], documents: int = 0) -> T:
        """Run ``op`` until it does not raise a transient OpenSearch error."""
        while True:
            try:
                result = op()
            except (TransportError, BulkResponseError) as exc:
                if not is_transient(exc):
                    raise
                self.failed(what, f"{type(exc).__name__}: {exc}", documents)
                continue
            return result

    def failed(self, what: str, error: str, documents: int = 0) -> None:
        """One failed attempt: mark not ready, log, wait (or raise when stopping/giving up)."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        failing_s = now - self.failing_since
        self.health.ready = False
        self.health.detail["opensearch"] = f"failing for {failing_s:.0f} s: {error[:200]}"
        self.metrics.retries.labels(what).inc()
        delay = self.backoff.next_delay()
        event(
            log,
            "opensearch_retry",
            logging.WARNING,
            what=what,
            attempt=self.backoff.attempt,
            failing_s=round(failing_s, 1),
            retry_in_s=round(delay, 2),
            documents=documents,
            error=error[:300],
        )
        give_up = self.retry.give_up_after_s
        if give_up is not None and failing_s + delay > give_up:
            raise OpenSearchUnavailableError(f"OpenSearch failing for {failing_s:.0f} s: {error}")
        self._wait(delay)

    def _wait(self, delay_s: float) -> None:
        """Sleep in short slices so a stop request (SIGTERM) is seen within 0.2 s."""
        left = delay_s
        while left > 0:
            if self.stop.is_set():
                raise OpenSearchUnavailableError("stop requested while OpenSearch was failing")
            self.health.beat()  # alive and waiting, not stuck
            step = min(left, 0.2)
            self.sleep(step)
            left -= step

    def succeeded(self) -> None:
        """Back to normal after an attempt that worked."""
        if self.failing_since is not None:
            event(
                log,
                "opensearch_recovered",
                failed_s=round(time.monotonic() - self.failing_since, 1),
            )
            self.health.detail.pop("opensearch", None)
            self.health.ready = True
        self.failing_since = None
        self.backoff.reset()


@dataclass
class Decoded:
    """A batch decoded: the messages that became documents, and those that could not."""

    captions: list[tuple[Message, Caption]] = field(default_factory=list)
    alerts: list[tuple[Message, Alert]] = field(default_factory=list)
    counts: list[tuple[Message, Counts]] = field(default_factory=list)
    keyframes: list[tuple[Message, Keyframe]] = field(default_factory=list)
    failures: list[tuple[Message, BaseException]] = field(default_factory=list)


class IndexerHandler:
    """The BatchLoop handler of ``vsa indexer``."""

    def __init__(
        self,
        settings: IndexerSettings,
        client: Any,
        embedder: Embedder,
        retrier: Retrier,
        objects: KeyframeObjects | None = None,
    ) -> None:
        self.settings = settings
        self.objects = objects or KeyframeObjects(settings)
        self.client = client
        self.embedder = embedder
        self.retrier = retrier
        self.metrics = retrier.metrics
        self.indices_ready = False
        self.captions_topic = settings.topics.name("captions")
        self.alerts_topic = settings.topics.name("alerts")
        self.counts_topic = settings.topics.name("counts")
        self.keyframes_topic = settings.topics.name("keyframes")
        # One writer: bulk requests go out one at a time and in order, while embedding goes on.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexer-bulk")

    def __call__(self, msgs: Sequence[Message]) -> BatchResult:
        decoded = self.decode(msgs)
        sources = [msg for msg, _ in decoded.captions] + [msg for msg, _ in decoded.alerts]
        sources += [msg for msg, _ in decoded.counts]
        objects = self.objects.actions(decoded.keyframes) if decoded.keyframes else []
        sources += [decoded.keyframes[position][0] for position, _ in objects]
        actions, rejected = self.embed_and_write(decoded, [action for _, action in objects])
        failures = list(decoded.failures)
        failed: set[int] = set()
        for position, reason in sorted(rejected.items()):
            if id(sources[position]) not in failed:  # a keyframe's objects: one dead letter
                failed.add(id(sources[position]))
                failures.append((sources[position], DocumentRejectedError(reason)))
        self._count(actions, rejected)
        return BatchResult(failures=failures)

    def embed_and_write(
        self, decoded: Decoded, extra: Sequence[Action] = ()
    ) -> tuple[list[Action], dict[int, str]]:
        """Embed the captions ``write_chunk`` at a time and hand each chunk's actions to the
        writer thread, which bulk-writes it while the next chunk is embedded; the alerts,
        counts and ``extra`` actions (object documents) go with the last chunk. Returns every
        action and the rejected positions, once every chunk is written; the first error of a
        write is raised after the writes already started have finished (the rest are
        cancelled), so the batch is never committed on a partial write."""
        chunk = self.settings.write_chunk
        captions = decoded.captions
        actions: list[Action] = []
        writes: list[tuple[int, Future[dict[int, str]]]] = []
        try:
            for start in range(0, max(len(captions), 1), chunk):
                if any(w.done() and w.exception() is not None for _, w in writes):
                    break  # a write failed for good: stop embedding, raise it below
                part = self.caption_actions(captions[start : start + chunk])
                if start + chunk >= len(captions):
                    part += self.alert_actions(decoded.alerts)
                    part += self.count_actions(decoded.counts)
                    part += extra
                if part:
                    writes.append((len(actions), self._writer.submit(self.write, part)))
                    actions += part
        finally:
            rejected = self._collect(writes)
        return actions, rejected

    def _collect(self, writes: list[tuple[int, Future[dict[int, str]]]]) -> dict[int, str]:
        rejected: dict[int, str] = {}
        error: BaseException | None = None
        for offset, write in writes:
            if error is not None:
                write.cancel()
                if write.cancelled():
                    continue
            try:
                rejected.update({offset + p: r for p, r in write.result().items()})
            except BaseException as exc:  # re-raised below, once no write is in flight
                error = error or exc
        if error is not None:
            raise error
        return rejected

    def decode(self, msgs: Sequence[Message]) -> Decoded:
        """Parse every message by its topic; undecodable ones become failures (dead letters)."""
        decoded = Decoded()
        for msg in msgs:
            try:
                if msg.topic() == self.captions_topic:
                    decoded.captions.append((msg, Caption.from_bytes(msg.value() or b"")))
                elif msg.topic() == self.alerts_topic:
                    decoded.alerts.append((msg, Alert.from_bytes(msg.value() or b"")))
                elif msg.topic() == self.counts_topic:
                    decoded.counts.append((msg, Counts.from_bytes(msg.value() or b"")))
                elif msg.topic() == self.keyframes_topic and self.settings.index_objects:
                    decoded.keyframes.append((msg, Keyframe.from_bytes(msg.value() or b"")))
                else:
                    raise ValueError(f"indexer does not read topic {msg.topic()!r}")
            except (SchemaError, ValueError) as exc:
                decoded.failures.append((msg, exc))
        return decoded

    def caption_actions(self, captions: Sequence[tuple[Message, Caption]]) -> list[Action]:
        """Bulk ``index`` actions of captions, embedded in one batched run."""
        if not captions:
            return []
        started = time.perf_counter()
        vectors = self.embedder.encode([caption.text for _, caption in captions])
        self.metrics.embed_seconds.observe(time.perf_counter() - started)
        now = time.time()
        index = self.settings.index.captions_index
        actions: list[Action] = []
        for (_, caption), vector in zip(captions, vectors, strict=True):
            doc_id = caption_doc_id(caption.camera_id, caption.frame_seq)
            meta = {"index": {"_index": index, "_id": doc_id}}
            actions.append((meta, caption_document(caption, vector, now)))
        return actions

    def alert_actions(self, alerts: Sequence[tuple[Message, Alert]]) -> list[Action]:
        """Bulk ``index`` actions of alerts (alert history; no embedding)."""
        now = time.time()
        index = self.settings.index.alerts_index
        return [
            ({"index": {"_index": index, "_id": alert.alert_id}}, alert_document(alert, now))
            for _, alert in alerts
        ]

    def count_actions(self, counts: Sequence[tuple[Message, Counts]]) -> list[Action]:
        """Bulk ``index`` actions of count periods (no embedding)."""
        now = time.time()
        index = self.settings.index.counts_index
        return [
            ({"index": {"_index": index, "_id": c.count_id}}, counts_document(c, now))
            for _, c in counts
        ]

    def write(self, actions: Sequence[Action]) -> dict[int, str]:
        """Bulk-write until every action is indexed or rejected; returns rejected positions."""
        started = time.perf_counter()
        rejected: dict[int, str] = {}
        pending = list(range(len(actions)))
        timeout = self.settings.retry.request_timeout_s
        while pending:
            batch = [actions[i] for i in pending]
            send = functools.partial(self._bulk, batch, timeout)
            items = self.retrier.call("bulk", send, documents=len(batch))
            outcome = classify_bulk_items(items)
            rejected.update({pending[pos]: reason for pos, reason in outcome.rejected.items()})
            retry = [pending[pos] for pos in sorted(outcome.retry)]
            if retry:
                self.indices_ready = False
                first = next(iter(outcome.retry.values()))
                self.retrier.failed("bulk_items", first, documents=len(retry))
            pending = retry
        self.retrier.succeeded()
        self.metrics.bulk_seconds.observe(time.perf_counter() - started)
        return rejected

    def ensure_indices(self) -> None:
        """Templates and indices, once per process and again after every failure (OpenSearch
        may have come back empty). Transient errors propagate (to be retried); a refusal
        raises :class:`IndexSetupError`."""
        try:
            ensure_indices(self.client, self.settings)
        except EngineUnavailableError as exc:
            raise IndexSetupError(str(exc)) from exc
        except TransportError as exc:
            if is_transient(exc):
                raise
            raise IndexSetupError(f"OpenSearch refused the index setup: {exc}") from exc
        self.indices_ready = True

    def _bulk(self, batch: list[Action], timeout: float) -> list[dict[str, Any]]:
        try:
            if not self.indices_ready:
                self.ensure_indices()
            return bulk(self.client, batch, timeout)
        except (TransportError, BulkResponseError):
            self.indices_ready = False
            raise

    def _count(self, actions: Sequence[Action], rejected: dict[int, str]) -> None:
        for position, (meta, _) in enumerate(actions):
            result = "rejected" if position in rejected else "indexed"
            self.metrics.documents.labels(meta["index"]["_index"], result).inc()
        for position, reason in rejected.items():
            meta, source = actions[position]
            event(
                log,
                "document_rejected",
                logging.WARNING,
                index=meta["index"]["_index"],
                doc_id=meta["index"]["_id"],
                camera_id=source.get("camera_id"),
                frame_seq=source.get("frame_seq"),
                error=reason[:300],
            )
