"""The consume → process → produce → commit loop every Kafka-fed service runs.

Delivery: at-least-once. For each batch the loop

1. consumes up to ``max_batch`` messages (or what arrived within ``max_wait_ms``),
2. hands the good ones to the service's handler, which returns outputs and per-message failures,
3. produces the outputs and sends every failed or broken message to ``dlq.<service>``,
4. waits until Kafka acknowledged all of it, and only then
5. commits the offsets after the batch.

A crash anywhere before step 5 redelivers the batch; the outputs are idempotent (deterministic ids,
frame_seq checks downstream), so redelivery overwrites instead of duplicating. A handler that
raises for a whole batch is retried message by message, so one poison message goes to the dead
letters and the rest of the batch is still processed. Rebalances are safe by construction: nothing
is in flight while ``consume`` runs, which is where librdkafka calls the revoke callback.

Kafka faults (broker restarts, outages, coordinator moves) are ridden through, never fatal:

- step 4 waits as long as it takes (the producer never gives up on a retriable error); a delivery
  that failed anyway (a user's finite ``message.timeout.ms``) rewinds the batch to be handled
  again after a backoff; only a permanent delivery error (message too large, no rights) raises;
- commits are asynchronous and retried or dropped (:mod:`vsa.runtime.commits`), never raised;
- readiness (/readyz) is false while brokers or the group coordinator are unreachable, outputs
  wait for acknowledgements longer than ``produce_stall_s`` or commits fail; liveness stays true;
- a topic the service reads or writes that does not exist yet is waited for before the consumer
  joins its group (not ready, one ``topics_missing`` line naming the topics and the command that
  creates them, :mod:`vsa.runtime.topic_check`); the service starts once they exist;
- after the process was frozen (SIGSTOP, a paused VM) past a third of the session timeout, a
  batch is written only once the group coordinator took a synchronous commit of its first
  offsets from this member (:mod:`vsa.runtime.freeze`): a zombie whose partitions moved to
  another member drops the batch (``stale_batch_dropped``) instead of writing its outputs;
- SIGTERM during an outage waits at most ``stop_flush_s`` for acknowledgements and commits, then
  leaves without committing what was not acknowledged (the next owner redoes it) and exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from vsa.runtime.acks import AckWait
from vsa.runtime.commits import OffsetCommitter
from vsa.runtime.freeze import FreezeWatch, freeze_threshold_s
from vsa.runtime.kafka import DeliveryError, Headers, Output, Producer, consumer_config
from vsa.runtime.kafka import delivery_retriable as _retriable
from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.settings import KafkaSettings
from vsa.runtime.topic_check import TopicWait, create_command
from vsa.schemas import DeadLetter

log = logging.getLogger("vsa.service")


@dataclass
class BatchResult:
    """What a handler made of a batch: outputs to produce, and messages it could not process."""

    outputs: list[Output] = field(default_factory=list)
    failures: list[tuple[Message, BaseException]] = field(default_factory=list)


Handler = Callable[[Sequence[Message]], BatchResult]


class TransientError(Exception):
    """Raised by a handler that cannot make progress now because something it reads from is
    unreachable (the frames topic in an outage): the batch is handled again after a backoff and
    the service is not ready meanwhile; nothing goes to the dead letters."""


@dataclass(frozen=True)
class LoopConfig:
    """Knobs of the batch loop."""

    service: str
    group_id: str
    topics: tuple[str, ...]
    dlq_topic: str
    max_batch: int = 64
    max_wait_ms: int = 50
    produce_stall_s: float = 5.0  # outputs unacknowledged this long: not ready
    stop_flush_s: float = 10.0  # after SIGTERM: longest wait for acknowledgements and commits
    max_batches: int | None = None  # stop after this many non-empty batches (tests, tools)
    idle_exit_s: float | None = None  # stop after this long with no messages (tests, tools)
    topic_prefix: str = ""  # names the create command when topics are missing
    also_needs: tuple[str, ...] = ()  # topics written or read besides ``topics`` and the DLQ


class StopFlag:
    """Set by SIGTERM/SIGINT or code; the loop then finishes its batch, commits and closes."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self, *_: Any) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def install(self) -> None:
        """Route SIGTERM and SIGINT to this flag (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        event(log, "stop_requested", signal=signal.Signals(signum).name)
        self._event.set()


def dead_letter(service: str, topic: str, msg: Message, exc: BaseException) -> Output:
    """The dead-letter message for ``msg``: original key and bytes, error details in headers."""
    meta = DeadLetter.for_exception(
        service,
        exc,
        source_topic=str(msg.topic()),
        source_partition=max(msg.partition() or 0, 0),
        source_offset=max(msg.offset() or 0, 0),
        failed_ts=time.time(),
    )
    original: Headers = []
    for header in msg.headers() or []:
        name, value = header[0], header[1]
        if value is not None:
            original.append((name, value.encode() if isinstance(value, str) else bytes(value)))
    return Output(topic, msg.key(), msg.value() or b"", headers=original + meta.to_headers())


#: Seconds one wait for acknowledgements lasts before the loop looks at stop and health again.
ACK_POLL_S = 0.5
#: First delay before a batch whose outputs failed is handled again; doubles up to the max.
RETRY_BACKOFF_S = 0.5
RETRY_BACKOFF_MAX_S = 10.0
#: Seconds between two log lines of the same librdkafka error (it repeats every reconnect).
KAFKA_ERROR_LOG_EVERY_S = 30.0


class BatchLoop:
    """Runs a handler over batches from Kafka with commit-after-ack semantics."""

    def __init__(
        self,
        config: LoopConfig,
        kafka: KafkaSettings,
        handler: Handler,
        metrics: ServiceMetrics | None = None,
        health: Health | None = None,
        stop: StopFlag | None = None,
        producer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.metrics = metrics or ServiceMetrics(config.service)
        self.health = health or Health()
        self.stop = stop or StopFlag()
        # 0: never give up on a retriable delivery error; the loop waits (not ready) instead
        overrides = {"message.timeout.ms": 0, **(producer_overrides or {})}
        overrides.setdefault("error_cb", self._on_kafka_error)
        self.producer = Producer(kafka, config.service, **overrides)
        self.committer = OffsetCommitter(config.service, self.metrics, self.health)
        conf = consumer_config(
            kafka,
            config.service,
            config.group_id,
            stats_cb=self._on_stats,
            error_cb=self._on_kafka_error,
            on_commit=self.committer.on_commit,
        )
        self.consumer = Consumer(conf)
        self.committer.consumer = self.consumer
        session_s = float(conf["session.timeout.ms"]) / 1000
        self.freezes = FreezeWatch(freeze_threshold_s(session_s))
        self.batches = 0
        self._retries = 0
        self._errors_logged: dict[int, float] = {}

    def run(self) -> None:
        """Consume until stopped (signal, ``max_batches`` or ``idle_exit_s``); then close."""
        cfg = self.config
        try:
            if not self._wait_for_topics():
                return
            self.consumer.subscribe(
                list(cfg.topics),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            last_message = time.monotonic()
            while not self.stop.is_set():
                self.health.beat()
                msgs = self.consumer.consume(cfg.max_batch, cfg.max_wait_ms / 1000)
                if msgs:
                    self.process(msgs)
                    last_message = time.monotonic()
                elif (
                    cfg.idle_exit_s is not None
                    and time.monotonic() - last_message > cfg.idle_exit_s
                ):
                    break
                self.committer.tick()
                if cfg.max_batches is not None and self.batches >= cfg.max_batches:
                    break
        finally:
            self.close()

    def _wait_for_topics(self) -> bool:
        """Before joining the group: wait (not ready, one ``topics_missing`` line) until every
        topic the service reads or writes exists; False when stopped first (or ``idle_exit_s``
        passed). Subscribing to a missing topic would only log librdkafka errors, and the
        consumer would see the topic no sooner than its next metadata refresh (minutes)."""
        cfg = self.config
        needed = (*cfg.topics, cfg.dlq_topic, *cfg.also_needs)
        wait = TopicWait(needed, cfg.topic_prefix, self.health)
        return wait.wait(self.consumer, self.stop.is_set, cfg.idle_exit_s)

    def process(self, msgs: Sequence[Message]) -> None:
        """Handle one consumed batch end to end, committing only after Kafka acked all outputs."""
        started = time.perf_counter()
        good, broken = self._split_errors(msgs)
        try:
            result = self._handle(good)
        except TransientError as transient:
            self.metrics.batch_retries.labels(self.config.service, "handler_transient").inc()
            event(log, "batch_deferred", logging.WARNING, error=str(transient)[:300])
            self._retry_batch(msgs, "handler_transient")
            return
        if self.freezes.suspect() and not self._still_owned(msgs):
            return  # a zombie's batch: nothing of it is written or committed
        for out in result.outputs:
            self.producer.produce(out)
            self.metrics.count_out(out.topic)
        for msg, exc in broken + result.failures:
            self._send_dead_letter(msg, exc)
        outcome = self._await_acks()
        if outcome == "failed":
            self._retry_batch(msgs, "delivery_failed")
            return
        if outcome == "stopped":
            return  # not acknowledged: not committed; the next owner handles it again
        self._retries = 0
        self.health.unblock("batch_retry")
        self.committer.acked(_next_offsets(msgs))
        self.committer.tick()
        self.batches += 1
        self.metrics.observe_batch(len(good), time.perf_counter() - started)

    def _still_owned(self, msgs: Sequence[Message]) -> bool:
        """After a freeze (:mod:`vsa.runtime.freeze`): whether the group coordinator confirms
        that this member still owns the batch's partitions. A batch of partitions the group gave
        away while the process was frozen is dropped (their new owner handles them from the
        last committed offset; ``consume()`` then serves the loss); one whose owner could not be
        confirmed is handled again after a backoff."""
        mark = self.freezes.mark()
        outcome = self.committer.confirm_ownership(_first_offsets(msgs))
        if outcome == "owned":
            self.freezes.confirmed(mark)
            return True
        first = ",".join(f"{t}[{p}]@{o}" for (t, p), o in _first_offsets(msgs).items())
        self.freezes.stale(self.metrics.stale_batches, self.config.service, outcome, first)
        if outcome == "unknown":
            self._retry_batch(msgs, "ownership_unknown")
        return False

    def _await_acks(self) -> str:
        """Wait until Kafka acknowledged every queued output: ``"acked"``; ``"failed"`` when a
        delivery failed with a retriable error; ``"stopped"`` when a stop was requested and the
        acknowledgements did not come within ``stop_flush_s``. Permanent errors raise."""
        wait = AckWait(self.health, self.config.produce_stall_s, self.config.stop_flush_s)
        failures: list[tuple[str, KafkaError]] = []
        while True:
            remaining = self.producer.wait_acked(ACK_POLL_S)
            failures += self.producer.take_failures()
            if remaining == 0:
                wait.acknowledged()
                return self._check_failures(failures)
            if wait.waiting(remaining, self.stop.is_set()):
                return "stopped"

    def _check_failures(self, failures: list[tuple[str, KafkaError]]) -> str:
        if not failures:
            return "acked"
        topic, err = failures[0]
        if not all(_retriable(e) for _, e in failures):
            raise DeliveryError(
                f"{len(failures)} messages refused by Kafka, first: {topic}: {err.str()}"
            )
        self.metrics.batch_retries.labels(self.config.service, err.name()).inc()
        event(
            log,
            "delivery_failed",
            logging.WARNING,
            failed=len(failures),
            topic=topic,
            error=err.name(),
            detail=err.str(),
        )
        return "failed"

    def _retry_batch(self, msgs: Sequence[Message], reason: str) -> None:
        """Rewind the batch's partitions to its first offsets, so it is consumed and handled again
        (in order) after a backoff; nothing of it is committed."""
        self._retries += 1
        delay = min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S * 2 ** (self._retries - 1))
        self.health.block("batch_retry", f"{reason}; batch is retried")
        for (topic, partition), offset in _first_offsets(msgs).items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # no longer assigned: its new owner redoes it
                event(
                    log,
                    "batch_rewind_skipped",
                    logging.WARNING,
                    topic=topic,
                    partition=partition,
                    error=str(exc),
                )
        event(
            log,
            "batch_retry",
            logging.WARNING,
            reason=reason,
            attempt=self._retries,
            retry_in_s=round(delay, 2),
        )
        deadline = time.monotonic() + delay
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.health.beat()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _split_errors(
        self, msgs: Sequence[Message]
    ) -> tuple[list[Message], list[tuple[Message, BaseException]]]:
        good: list[Message] = []
        broken: list[tuple[Message, BaseException]] = []
        for msg in msgs:
            err = msg.error()
            if err is None:
                good.append(msg)
                self.metrics.count_in(msg.topic() or "")
            elif err.code() == KafkaError._PARTITION_EOF:
                continue
            elif err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                broken.append((msg, ValueError(f"message too large: {err.str()}")))
            elif err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:  # deleted while running
                topic = msg.topic() or ""
                event(
                    log,
                    "topic_missing",
                    logging.WARNING,
                    topic=topic,
                    create=create_command(self.config.topic_prefix),
                )
                self.metrics.count_error("consume")
            else:
                event(log, "consume_error", logging.WARNING, error=err.str(), fatal=err.fatal())
                self.metrics.count_error("consume")
                if err.fatal():
                    raise RuntimeError(f"fatal consumer error: {err.str()}")
        return good, broken

    def _handle(self, good: list[Message]) -> BatchResult:
        if not good:
            return BatchResult()
        try:
            return self.handler(good)
        except TransientError:
            raise
        except Exception:
            log.warning("batch_failed_retrying_one_by_one", exc_info=True)
        result = BatchResult()
        for msg in good:
            try:
                single = self.handler([msg])
            except TransientError:
                raise
            except Exception as exc:
                result.failures.append((msg, exc))
                continue
            result.outputs.extend(single.outputs)
            result.failures.extend(single.failures)
        return result

    def _send_dead_letter(self, msg: Message, exc: BaseException) -> None:
        self.producer.produce(dead_letter(self.config.service, self.config.dlq_topic, msg, exc))
        self.metrics.count_dead_letter(msg.topic() or "")
        self.metrics.count_error(type(exc).__name__)
        event(
            log,
            "dead_letter",
            logging.WARNING,
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            error_class=type(exc).__name__,
            error=str(exc)[:300],
        )

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka statistics (every 5 s, from ``consume()``): lag gauges, and readiness from
        the group coordinator's state (``up`` when connected) and whether any broker is up."""
        stats = json.loads(stats_json)
        self.metrics.set_lags(stats)
        coordinator = stats.get("cgrp", {}).get("state")
        if coordinator is None or coordinator == "up":
            self.health.unblock("kafka_group")
        else:
            self.health.block("kafka_group", f"group coordinator {coordinator}")
        brokers = stats.get("brokers", {}).values()
        if any(b.get("state") == "UP" for b in brokers):
            self.health.unblock("kafka_brokers")

    def _on_kafka_error(self, err: KafkaError) -> None:
        """Client-level errors (connection refused, all brokers down): logged once per kind per
        ``KAFKA_ERROR_LOG_EVERY_S``; all brokers down makes the service not ready at once."""
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.block("kafka_brokers", "all brokers down")
        if err.fatal():
            self.metrics.count_error("kafka_fatal")
        now = time.monotonic()
        if (
            now - self._errors_logged.get(err.code(), -KAFKA_ERROR_LOG_EVERY_S)
            >= KAFKA_ERROR_LOG_EVERY_S
        ):
            self._errors_logged[err.code()] = now
            event(
                log,
                "kafka_error",
                logging.WARNING,
                error=err.name(),
                detail=err.str(),
                fatal=err.fatal(),
            )

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.committer.assigned(partitions)
        self.health.ready = True
        self.health.detail["assigned"] = len(self.committer.owned)
        event(log, "partitions_assigned", partitions=_partition_names(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing is in flight here: process() waited for its acknowledgements before consume().
        self.committer.revoked(partitions)
        self.health.detail["assigned"] = len(self.committer.owned)
        event(log, "partitions_revoked", partitions=_partition_names(partitions))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group gave them away (session timed out): their offsets are no longer ours.
        self.committer.lost(partitions)
        self.health.detail["assigned"] = len(self.committer.owned)
        event(log, "partitions_lost", logging.WARNING, partitions=_partition_names(partitions))

    def close(self) -> None:
        """Wait (``stop_flush_s`` at most) for what is queued and its commit; leave the group."""
        try:
            if self._await_acks() == "acked":
                self.committer.tick(now=float("inf"))  # pending offsets go out with close()
        finally:
            self.freezes.stop()
            self._close_consumer()
            event(log, "stopped", service=self.config.service, batches=self.batches)

    def _close_consumer(self) -> None:
        """``Consumer.close`` waits for commits in flight, for the session timeout when
        the coordinator is unreachable: bounded to ``stop_flush_s`` so SIGTERM ends the process;
        the group then sees this member leave when its session times out."""
        closer = threading.Thread(
            target=self.consumer.close, name="vsa-consumer-close", daemon=True
        )
        closer.start()
        closer.join(self.config.stop_flush_s)
        if closer.is_alive():
            event(
                log,
                "consumer_close_timed_out",
                logging.WARNING,
                waited_s=self.config.stop_flush_s,
                pending_commits=len(self.committer.pending),
            )


def _next_offsets(msgs: Sequence[Message]) -> dict[tuple[str, int], int]:
    """Per partition, the offset after the last message of the batch (what a commit stores)."""
    next_offsets: dict[tuple[str, int], int] = {}
    for msg in msgs:
        err = msg.error()
        if err is None or err.code() != KafkaError._PARTITION_EOF:
            key = (msg.topic() or "", msg.partition() or 0)
            next_offsets[key] = max(next_offsets.get(key, 0), (msg.offset() or 0) + 1)
    return next_offsets


def _first_offsets(msgs: Sequence[Message]) -> dict[tuple[str, int], int]:
    """Per partition, the offset of the first message of the batch."""
    first: dict[tuple[str, int], int] = {}
    for msg in msgs:
        if msg.error() is None:
            key = (msg.topic() or "", msg.partition() or 0)
            first[key] = min(first.get(key, msg.offset() or 0), msg.offset() or 0)
    return first


def _partition_names(partitions: Sequence[TopicPartition]) -> list[str]:
    return [f"{p.topic}[{p.partition}]" for p in partitions]


def serve(loop: BatchLoop, metrics_host: str, metrics_port: int) -> int:
    """Run a service's batch loop as a process: metrics/health server, SIGTERM/SIGINT, exit code."""
    from vsa.runtime.metrics import serve_http

    server = serve_http(loop.metrics, loop.health, metrics_host, metrics_port)
    event(log, "metrics_listening", service=loop.config.service, port=server.server_address[1])
    loop.stop.install()
    try:
        loop.run()
    finally:
        server.shutdown()
    return 0
