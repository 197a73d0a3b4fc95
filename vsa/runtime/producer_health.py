"""Readiness of a service that only produces (ingest), from its producer (issue 11).

A consumer's readiness comes from its group and its statistics (:mod:`vsa.runtime.service`);
ingest has no group. Its producer tells instead: librdkafka reports "all brokers down" through
the error callback, and acknowledgements stop while Kafka is away. :class:`ProducerHealth`
makes the service not ready for both (blockers ``kafka_brokers`` and ``kafka_produce``), logs
one line when Kafka goes away and one when an acknowledgement shows it back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaError

from vsa.runtime.logs import event
from vsa.runtime.metrics import Health

log = logging.getLogger("vsa.kafka")

BROKERS = "kafka_brokers"
PRODUCE = "kafka_produce"


class ProducerHealth:
    """Readiness from a producer's errors and acknowledgements.

    Args:
        health: the service's readiness.
        stall_s: messages queued this long without any acknowledgement: not ready.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self, health: Health, stall_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.health, self.stall_s, self.clock = health, stall_s, clock
        self._last_ack = clock()

    def on_error(self, err: KafkaError) -> None:
        """librdkafka's error callback (served from ``poll``)."""
        if err.code() != KafkaError._ALL_BROKERS_DOWN or BROKERS in self.health.blockers:
            return
        event(log, "kafka_unreachable", logging.WARNING, error=err.name(), detail=err.str())
        self.health.block(BROKERS, "all brokers down")

    def acked(self) -> None:
        """A message was acknowledged: Kafka is there."""
        self._last_ack = self.clock()
        if BROKERS in self.health.blockers or PRODUCE in self.health.blockers:
            event(log, "kafka_reachable")
            self.health.unblock(BROKERS)
            self.health.unblock(PRODUCE)

    def check(self, pending: int) -> None:
        """From the service loop: ``pending`` messages wait for acknowledgements."""
        if pending == 0:
            self._last_ack = self.clock()
            return
        waited = self.clock() - self._last_ack
        if waited >= self.stall_s and PRODUCE not in self.health.blockers:
            event(
                log,
                "outputs_unacknowledged",
                logging.WARNING,
                unacked=pending,
                waited_s=round(waited, 1),
            )
            self.health.block(PRODUCE, f"{pending} messages unacknowledged")
