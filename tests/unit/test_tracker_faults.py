"""The tracker's wait for its outputs' acknowledgements (issue 11): as long as Kafka takes,
not ready meanwhile, bounded after SIGTERM. No broker: a fake stands for the producer."""

from __future__ import annotations

import asyncio

from vsa.runtime.metrics import Health
from vsa.services.tracker.faults import OutputWait


class FakeProducer:
    """Stands for the tracker's producer: acknowledges after ``acks_after`` waits."""

    def __init__(self, acks_after: int | None) -> None:
        self.acks_after, self.waits = acks_after, 0

    def wait_acked(self, timeout_s: float) -> int:
        self.waits += 1
        return 0 if self.acks_after is not None and self.waits > self.acks_after else 5

    def raise_failures(self) -> None:
        return None


def test_outputs_are_waited_for_as_long_as_kafka_takes_not_ready_meanwhile() -> None:
    producer = FakeProducer(acks_after=6)
    health = Health()
    wait = OutputWait(producer, health, stall_s=0.0)  # type: ignore[arg-type]
    seen: list[set[str]] = []

    def stopping() -> bool:
        seen.append(set(health.blockers))
        return False

    assert asyncio.run(wait.wait(stopping))
    assert {"kafka_produce"} in seen  # not ready while waiting
    assert health.blockers == {}  # ready again once acknowledged
    assert wait.abandoned == 0


def test_a_stop_abandons_unacknowledged_outputs_after_the_flush_bound() -> None:
    producer = FakeProducer(acks_after=None)  # an outage that outlasts the stop
    wait = OutputWait(producer, Health(), stall_s=5.0, stop_flush_s=0.05)  # type: ignore[arg-type]
    assert not asyncio.run(wait.wait(lambda: True))
    assert wait.abandoned == 1
    assert producer.waits >= 2  # it waited the flush bound first
