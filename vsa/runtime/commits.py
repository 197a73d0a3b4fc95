"""Offset commits of the batch loop: asynchronous, retried with backoff, never fatal, never a
zombie's.

Why asynchronous: a synchronous commit while the group coordinator is unreachable blocks for the
whole session timeout (45 s with librdkafka's default) and then fails with ``_WAIT_COORD``
(measured on librdkafka 2.16); the loop would stop serving SIGTERM, heartbeats of its liveness
and its readiness meanwhile. An
asynchronous commit returns at once; librdkafka holds it until a coordinator answers (it went out
0.5 s after the broker was back in the same measurement) and reports the outcome to
:meth:`OffsetCommitter.on_commit`, which the consumer serves from ``consume()``.

What happens to a failed commit (:func:`~vsa.runtime.kafka.commit_action`):

- coordinator unavailable, moving or loading, timeouts: the offsets stay pending and go out again
  after a backoff (0.5 s doubling to 10 s), readiness is false until one succeeds;
- the group moved on (unknown member, illegal generation, rebalance in progress): the offsets are
  dropped, the rebalance that follows decides who owns what;
- a lost or revoked partition's pending offsets are dropped at once (a revoked one gets one last
  asynchronous attempt while it is still owned), so a member whose session timed out never commits
  for partitions it no longer owns.

Dropping is safe because outputs are idempotent: the next owner starts from the last committed
offset and redoes at most the batches whose commit was dropped. Commits are cumulative, so the
next successful commit of a partition covers every earlier dropped one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from vsa.runtime.kafka import commit_action
from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics

log = logging.getLogger("vsa.service")

PartitionKey = tuple[str, int]
#: First retry delay of a failed commit, seconds; doubles per failure up to COMMIT_BACKOFF_MAX_S.
COMMIT_BACKOFF_S = 0.5
COMMIT_BACKOFF_MAX_S = 10.0
#: Health blocker name while commits fail.
BLOCKER = "kafka_commit"


class OffsetCommitter:
    """Pending offsets of acknowledged batches, committed asynchronously for owned partitions."""

    def __init__(self, service: str, metrics: ServiceMetrics, health: Health) -> None:
        self.service = service
        self.metrics = metrics
        self.health = health
        self.consumer: Consumer | None = None  # set once the consumer exists (it needs on_commit)
        self.owned: set[PartitionKey] = set()
        self.pending: dict[PartitionKey, int] = {}
        self.in_flight = False
        self.failures = 0
        self.next_attempt = 0.0
        self.committed = 0

    def acked(self, offsets: dict[PartitionKey, int]) -> None:
        """Offsets (next offset to read) whose outputs Kafka acknowledged; owned ones are kept."""
        for key, offset in offsets.items():
            if key in self.owned:
                self.pending[key] = max(self.pending.get(key, -1), offset)

    def tick(self, now: float | None = None) -> None:
        """Send the pending offsets unless a commit is in flight or backing off."""
        now = time.monotonic() if now is None else now
        if self.pending and not self.in_flight and now >= self.next_attempt:
            self._send(list(self.pending.items()))

    def _send(self, offsets: Sequence[tuple[PartitionKey, int]]) -> None:
        if self.consumer is None or not offsets:
            return
        parts = [TopicPartition(t, p, o) for (t, p), o in offsets]
        try:
            self.consumer.commit(offsets=parts, asynchronous=True)
        except KafkaException as exc:  # refused before it was sent (e.g. closed, bad state)
            self._failed(exc.args[0], parts)
            return
        self.in_flight = True

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit report (served from ``consume()``)."""
        self.in_flight = False
        if err is None:
            errors = [p.error for p in partitions if p.error is not None]
            if not errors:
                self._succeeded(partitions)
                return
            err = errors[0]
        self._failed(err, partitions)

    def _succeeded(self, partitions: Iterable[TopicPartition]) -> None:
        for part in partitions:
            key = (part.topic, part.partition)
            if key in self.pending and self.pending[key] <= part.offset:
                del self.pending[key]
        self.committed += 1
        if self.failures:
            event(log, "commit_recovered", service=self.service, failed_attempts=self.failures)
        self.failures = 0
        self.health.unblock(BLOCKER)

    def _failed(self, err: KafkaError, partitions: Sequence[TopicPartition]) -> None:
        action = commit_action(err)
        self.metrics.commit_failures.labels(self.service, err.name(), action).inc()
        if action == "fatal":
            raise RuntimeError(f"fatal Kafka error on commit: {err.str()}")
        self.failures += 1
        delay = min(COMMIT_BACKOFF_MAX_S, COMMIT_BACKOFF_S * 2 ** (self.failures - 1))
        if action == "abandon":
            for part in partitions:
                self.pending.pop((part.topic, part.partition), None)
        else:
            self.next_attempt = time.monotonic() + delay
            self.health.block(BLOCKER, f"commit failing: {err.str()}")
        event(
            log,
            "commit_failed",
            logging.WARNING,
            service=self.service,
            error=err.name(),
            detail=err.str(),
            action=action,
            attempt=self.failures,
            retry_in_s=round(delay, 2) if action == "retry" else None,
            partitions=_names(partitions),
        )

    def confirm_ownership(self, first: dict[PartitionKey, int]) -> str:
        """Ask the group coordinator whether this member still owns the partitions of a batch
        (after the process was frozen: :mod:`vsa.runtime.freeze`).

        The question is a synchronous commit of the offsets the batch starts at: everything
        before them was handled and acknowledged, and they are at or past what was committed,
        so nothing moves back. The coordinator takes it only from a member of the group's
        current generation, and while this thread holds the batch the client cannot join a
        new generation (its rebalance waits for ``consume()``), so a taken commit means no
        other member owns these partitions. Returns ``"owned"``; ``"lost"`` when the commit was
        refused as a former member's (or none of the partitions is assigned any more), and
        ``"unknown"`` when the coordinator could not be asked (unreachable: retry later). Blocks
        for one round trip, at most about the session timeout while the coordinator is away.
        """
        parts = [TopicPartition(t, p, o) for (t, p), o in first.items() if (t, p) in self.owned]
        if not parts:
            return "lost"
        if self.consumer is None:
            return "unknown"
        try:
            answered = self.consumer.commit(offsets=parts, asynchronous=False)
            errors = [p.error for p in answered or [] if p.error is not None]
        except KafkaException as exc:
            errors = [exc.args[0]]
        if not errors:
            return "owned"
        action = commit_action(errors[0])
        verdict = "lost" if action == "abandon" else "unknown"
        event(
            log,
            "ownership_check_failed",
            logging.WARNING,
            service=self.service,
            error=errors[0].name(),
            detail=errors[0].str(),
            verdict=verdict,
            partitions=_names(parts),
        )
        return verdict

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        self.owned.update((p.topic, p.partition) for p in partitions)

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Still owned during the callback: one last asynchronous attempt, then forget them."""
        keys = {(p.topic, p.partition) for p in partitions}
        self._send([(k, o) for k, o in self.pending.items() if k in keys])
        self._forget(keys)

    def lost(self, partitions: Sequence[TopicPartition]) -> None:
        """Taken away without a revoke (session timed out): commit nothing for them."""
        keys = {(p.topic, p.partition) for p in partitions}
        dropped = {k: o for k, o in self.pending.items() if k in keys}
        if dropped:
            self.metrics.commit_failures.labels(self.service, "partitions_lost", "abandon").inc()
            event(
                log,
                "commit_abandoned",
                logging.WARNING,
                service=self.service,
                reason="partitions_lost",
                partitions=_names(TopicPartition(t, p, o) for (t, p), o in dropped.items()),
            )
        self._forget(keys)

    def _forget(self, keys: set[PartitionKey]) -> None:
        self.owned -= keys
        for key in keys:
            self.pending.pop(key, None)
        if not self.pending:
            self.health.unblock(BLOCKER)


def _names(partitions: Iterable[TopicPartition]) -> str:
    return ",".join(f"{p.topic}[{p.partition}]@{p.offset}" for p in partitions)
