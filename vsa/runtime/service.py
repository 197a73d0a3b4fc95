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
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from vsa.runtime.kafka import Headers, Output, Producer, consumer_config
from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import DeadLetter

log = logging.getLogger("vsa.service")


@dataclass
class BatchResult:
    """What a handler made of a batch: outputs to produce, and messages it could not process."""

    outputs: list[Output] = field(default_factory=list)
    failures: list[tuple[Message, BaseException]] = field(default_factory=list)


Handler = Callable[[Sequence[Message]], BatchResult]


@dataclass(frozen=True)
class LoopConfig:
    """Knobs of the batch loop."""

    service: str
    group_id: str
    topics: tuple[str, ...]
    dlq_topic: str
    max_batch: int = 64
    max_wait_ms: int = 50
    flush_timeout_s: float = 120.0
    max_batches: int | None = None  # stop after this many non-empty batches (tests, tools)
    idle_exit_s: float | None = None  # stop after this long with no messages (tests, tools)


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
        self.producer = Producer(kafka, config.service, **(producer_overrides or {}))
        self.consumer = Consumer(
            consumer_config(
                kafka, config.service, config.group_id, stats_cb=self.metrics.update_lag_from_stats
            )
        )
        self.batches = 0

    def run(self) -> None:
        """Consume until stopped (signal, ``max_batches`` or ``idle_exit_s``); then close."""
        cfg = self.config
        self.consumer.subscribe(
            list(cfg.topics), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        last_message = time.monotonic()
        try:
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
                if cfg.max_batches is not None and self.batches >= cfg.max_batches:
                    break
        finally:
            self.close()

    def process(self, msgs: Sequence[Message]) -> None:
        """Handle one consumed batch end to end, committing only after Kafka acked all outputs."""
        started = time.perf_counter()
        good, broken = self._split_errors(msgs)
        result = self._handle(good)
        for out in result.outputs:
            self.producer.produce(out)
            self.metrics.count_out(out.topic)
        for msg, exc in broken + result.failures:
            self._send_dead_letter(msg, exc)
        self.producer.flush(self.config.flush_timeout_s)
        self._commit(msgs)
        self.batches += 1
        self.metrics.observe_batch(len(good), time.perf_counter() - started)

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
        except Exception:
            log.warning("batch_failed_retrying_one_by_one", exc_info=True)
        result = BatchResult()
        for msg in good:
            try:
                single = self.handler([msg])
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

    def _commit(self, msgs: Sequence[Message]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        for msg in msgs:
            err = msg.error()
            if err is None or err.code() != KafkaError._PARTITION_EOF:
                key = (msg.topic() or "", msg.partition() or 0)
                next_offsets[key] = max(next_offsets.get(key, 0), (msg.offset() or 0) + 1)
        if next_offsets:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
                asynchronous=False,
            )

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.health.ready = True
        self.health.detail["assigned"] = len(partitions)
        event(
            log, "partitions_assigned", partitions=[f"{p.topic}[{p.partition}]" for p in partitions]
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing is in flight here: process() flushed and committed before consume() returned.
        event(
            log, "partitions_revoked", partitions=[f"{p.topic}[{p.partition}]" for p in partitions]
        )

    def close(self) -> None:
        """Flush what is queued and leave the group (triggers a rebalance right away)."""
        try:
            self.producer.flush(self.config.flush_timeout_s)
        finally:
            self.consumer.close()
            event(log, "stopped", service=self.config.service, batches=self.batches)


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
