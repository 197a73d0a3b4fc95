"""Pure parts of riding through Kafka faults (issue 11): the freeze watch, the filter of
repeated client log lines, the ownership check after a freeze and a producing service's
readiness. No broker: fakes stand for the Kafka clients."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from vsa.runtime.commits import OffsetCommitter
from vsa.runtime.freeze import FreezeWatch, freeze_threshold_s
from vsa.runtime.metrics import Health, ServiceMetrics
from vsa.runtime.producer_health import ProducerHealth
from vsa.runtime.repeats import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_gap_between_ticks_is_a_freeze_until_ownership_is_confirmed() -> None:
    clock = Clock()
    watch = FreezeWatch(threshold_s=3.0, clock=clock, start=False)
    for _ in range(20):  # a watch thread ticking every 0.2 s
        clock.now += 0.2
        watch.tick()
    assert not watch.suspect()
    clock.now += 12.0  # SIGSTOP for 12 s: the next look (before the thread ticks) sees it
    assert watch.suspect()
    mark = watch.mark()
    clock.now += 0.2
    watch.tick()  # the thread's tick after the continue does not count it again
    assert watch.freezes == 1
    assert watch.longest_s == pytest.approx(12.0)
    watch.confirmed(mark)
    assert not watch.suspect()


def test_a_freeze_during_the_ownership_check_stays_suspect() -> None:
    clock = Clock()
    watch = FreezeWatch(threshold_s=3.0, clock=clock, start=False)
    clock.now += 10.0
    mark = watch.mark()
    clock.now += 10.0  # frozen again while asking the coordinator
    watch.tick()
    watch.confirmed(mark)
    assert watch.suspect()


def test_freeze_threshold_is_a_third_of_the_session_timeout() -> None:
    assert freeze_threshold_s(45.0) == 15.0
    assert freeze_threshold_s(1.5) == 1.0


def record(name: str, message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_repeated_client_lines_pass_once_per_period_with_the_count() -> None:
    clock = Clock()
    repeat = RepeatFilter(every_s=30.0, prefixes=("aiokafka",), clock=clock)
    line = "Unable connect to node with id {}: [Errno 111] Connect call failed ('127.0.0.1', {})"
    assert repeat.filter(record("aiokafka", line.format(1, 33129)))
    passed = []
    for n in range(50):  # other ports and ids are the same kind of line
        clock.now += 0.1
        passed.append(repeat.filter(record("aiokafka", line.format(n, 40000 + n))))
    assert not any(passed)
    assert repeat.filter(record("aiokafka", "Marking the coordinator dead"))  # another kind
    clock.now += 30.0
    again = record("aiokafka", line.format(1, 33129))
    assert repeat.filter(again)
    assert again.repeated == 50  # type: ignore[attr-defined]
    for _ in range(3):  # vsa's own events are never filtered
        assert repeat.filter(record("vsa.tracker", "alert"))


class FakeConsumer:
    """Stands for a confluent Consumer's synchronous commit."""

    def __init__(self, error: int | None = None) -> None:
        self.error = error
        self.commits: list[list[tuple[str, int, int]]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        assert not asynchronous
        self.commits.append([(p.topic, p.partition, p.offset) for p in offsets])
        if self.error is not None:
            raise KafkaException(KafkaError(self.error))
        return offsets


def committer(consumer: FakeConsumer, owned: list[tuple[str, int]]) -> OffsetCommitter:
    committer = OffsetCommitter("detector", ServiceMetrics("detector"), Health())
    committer.consumer = consumer  # type: ignore[assignment]
    committer.assigned([TopicPartition(t, p) for t, p in owned])
    return committer


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "owned"),
        (KafkaError.UNKNOWN_MEMBER_ID, "lost"),  # the session expired while frozen
        (KafkaError.ILLEGAL_GENERATION, "lost"),  # the group rebalanced without it
        (KafkaError._ASSIGNMENT_LOST, "lost"),  # the client noticed first
        (KafkaError._WAIT_COORD, "unknown"),  # coordinator unreachable: ask again later
        (KafkaError.REQUEST_TIMED_OUT, "unknown"),
    ],
)
def test_ownership_is_asked_with_a_commit_of_the_batch_start(
    error: int | None, outcome: str
) -> None:
    consumer = FakeConsumer(error)
    check = committer(consumer, [("frames", 0), ("frames", 1)])
    assert check.confirm_ownership({("frames", 0): 40, ("frames", 1): 7}) == outcome
    assert consumer.commits == [[("frames", 0, 40), ("frames", 1, 7)]]


def test_partitions_no_longer_assigned_are_lost_without_asking() -> None:
    consumer = FakeConsumer()
    check = committer(consumer, [("frames", 0)])
    assert check.confirm_ownership({("frames", 1): 7}) == "lost"
    assert check.confirm_ownership({("frames", 0): 3, ("frames", 1): 7}) == "owned"
    assert consumer.commits == [[("frames", 0, 3)]]  # only what is still assigned


def test_a_producing_service_is_not_ready_while_kafka_is_away() -> None:
    clock = Clock()
    health = Health(ready=True)
    kafka = ProducerHealth(health, stall_s=5.0, clock=clock)
    kafka.check(pending=3)
    clock.now += 4.0
    kafka.check(pending=3)
    assert health.serving  # a slow acknowledgement is not an outage
    kafka.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    clock.now += 2.0
    kafka.check(pending=12)
    assert set(health.blockers) == {"kafka_brokers", "kafka_produce"}
    assert not health.serving
    kafka.acked()  # Kafka is back
    assert health.blockers == {}
    clock.now += 60.0
    kafka.check(pending=0)  # nothing waiting: the clock starts again
    clock.now += 1.0
    kafka.check(pending=1)
    assert health.serving
