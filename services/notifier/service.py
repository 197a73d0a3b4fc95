"""The notifier runner: alerts in, webhook posts and MQTT messages out, on the shared batch loop.

Per batch: parse each alert (a broken one goes to ``dlq.notifier``), skip those the camera/kind
filters leave out, and deliver the rest to every sink in order, retrying each failed try after a
back-off (the core's schedule). An alert that a sink still has not taken after ``max_tries``, or
that a sink refuses for good (HTTP 4xx), goes to ``dlq.notifier`` with the sink, endpoint, tries
and last answer as its error; the offsets are committed after that, as for every service.

While a sink fails, /readyz is 503 naming it, and waiting between tries beats the liveness
clock. SIGTERM during a back-off stops the wait: the batch is not committed, and its alerts are
sent again after the restart (receivers drop repeats by ``alert_id``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Message
from prometheus_client import Counter, Histogram

from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.service import BatchLoop, BatchResult, LoopConfig, StopFlag, TransientError, serve
from vsa.schemas import Alert, SchemaError

from .config import NotifierSettings
from .core import Attempt, RetryPolicy, StoppedError, alert_wanted, deliver

log = logging.getLogger("vsa.notifier")
SERVICE = "notifier"

_DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Sink(Protocol):
    """Where alerts go: one attempt per ``send``; ``endpoint`` names it without secrets."""

    name: str
    endpoint: str

    def send(self, alert: Alert, body: bytes) -> Attempt: ...


class NotificationError(Exception):
    """An alert that a sink did not take; its message is the dead letter's error."""


class NotifierMetrics:
    """The notifier's own metrics, in the service registry next to the runtime's."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.service, registry = metrics.service, metrics.registry
        self.deliveries = Counter(
            "vsa_notifier_deliveries",
            "Alerts per sink by outcome: delivered, failed (to the dead letters).",
            ["service", "sink", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "vsa_notifier_retries",
            "Failed tries that were tried again, per sink.",
            ["service", "sink"],
            registry=registry,
        )
        self.skipped = Counter(
            "vsa_notifier_skipped",
            "Alerts left out by the cameras/kinds filters.",
            ["service"],
            registry=registry,
        )
        self.seconds = Histogram(
            "vsa_notifier_delivery_seconds",
            "Time to deliver one alert to one sink, retries included, seconds.",
            ["service", "sink"],
            buckets=_DELIVERY_BUCKETS,
            registry=registry,
        )


@dataclass
class NotifierHandler:
    """The batch handler: parse, filter, deliver to every sink, report what failed."""

    settings: NotifierSettings
    sinks: Sequence[Sink]
    health: Health
    stop: StopFlag
    metrics: NotifierMetrics

    def __post_init__(self) -> None:
        retry = self.settings.retry
        self.policy = RetryPolicy(retry.max_tries, retry.backoff_s, retry.backoff_max_s)
        self.delivered = 0

    def __call__(self, msgs: Sequence[Message]) -> BatchResult:
        result = BatchResult()
        for msg in msgs:
            try:
                alert = Alert.from_bytes(msg.value() or b"")
            except SchemaError as exc:
                result.failures.append((msg, exc))
                continue
            if not alert_wanted(alert, self.settings.cameras, self.settings.kinds):
                self.metrics.skipped.labels(self.metrics.service).inc()
                continue
            errors = [self.notify(sink, alert) for sink in self.sinks]
            problems = [error for error in errors if error is not None]
            if problems:
                result.failures.append((msg, NotificationError("; ".join(problems))))
            else:
                self.delivered += 1
        return result

    def notify(self, sink: Sink, alert: Alert) -> str | None:
        """Deliver ``alert`` to ``sink`` with retries; the dead-letter reason if it failed."""
        started = time.monotonic()
        body = alert.to_bytes()

        def retrying(tries: int, attempt: Attempt, delay: float) -> None:
            self.metrics.retries.labels(self.metrics.service, sink.name).inc()
            self.health.block(sink.name, f"{sink.endpoint}: {attempt.detail}")
            event(
                log,
                "notification_retry",
                logging.WARNING,
                sink=sink.name,
                endpoint=sink.endpoint,
                camera_id=alert.camera_id,
                frame_seq=alert.frame_seq,
                alert_id=alert.alert_id,
                tries=tries,
                error=attempt.detail,
                retry_in_s=round(delay, 2),
            )

        try:
            report = deliver(
                sink.name, lambda: sink.send(alert, body), self.policy, self._wait, retrying
            )
        except StoppedError as exc:
            raise TransientError(str(exc)) from exc
        self.metrics.seconds.labels(self.metrics.service, sink.name).observe(
            time.monotonic() - started
        )
        outcome = "delivered" if report.delivered else "failed"
        self.metrics.deliveries.labels(self.metrics.service, sink.name, outcome).inc()
        self.health.unblock(sink.name)  # this alert is settled; the next one tries afresh
        return None if report.delivered else report.error(sink.endpoint)

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, beating the liveness clock; False as soon as a stop is asked."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            self.health.beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.2, left))
        return False


def build_sinks(settings: NotifierSettings) -> list[Sink]:
    """The configured sinks, webhook first; MQTT is connecting in the background on return."""
    sinks: list[Sink] = []
    if settings.webhook.url is not None:
        from .webhook import WebhookSink

        sinks.append(WebhookSink(settings.webhook))
    if settings.mqtt.host is not None:
        from .mqtt import MqttSink

        mqtt = MqttSink(settings.mqtt)
        mqtt.start()
        sinks.append(mqtt)
    return sinks


def build_loop(
    settings: NotifierSettings, sinks: Sequence[Sink], max_batches: int | None = None
) -> tuple[BatchLoop, NotifierHandler]:
    """The notifier's batch loop (not started) and its handler."""
    metrics, health, stop = ServiceMetrics(SERVICE), Health(), StopFlag()
    handler = NotifierHandler(settings, sinks, health, stop, NotifierMetrics(metrics))
    config = LoopConfig(
        SERVICE,
        settings.group_id or f"vsa-{SERVICE}",
        (settings.topics.name("alerts"),),
        settings.topics.dlq(SERVICE),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        max_batches=max_batches,
        idle_exit_s=settings.idle_exit_s,
        topic_prefix=settings.topics.prefix,
    )
    loop = BatchLoop(config, settings.kafka, handler, metrics=metrics, health=health, stop=stop)
    return loop, handler


def run(settings: NotifierSettings) -> int:
    """Run the notifier until SIGTERM/SIGINT (or ``idle_exit_s``)."""
    sinks = build_sinks(settings)
    loop, handler = build_loop(settings, sinks)
    event(
        log,
        "notifier_starting",
        topic=loop.config.topics[0],
        sinks=",".join(f"{s.name}={s.endpoint}" for s in sinks),
    )
    try:
        return serve(loop, settings.metrics_host, settings.metrics_port)
    finally:
        for sink in sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
        event(log, "notifier_stopped", delivered=handler.delivered)
