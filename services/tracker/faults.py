"""How the tracker rides through Kafka faults (issue 11), apart from Faust's own reconnects.

- :class:`OutputWait`: a batch's outputs are waited for as long as Kafka takes (the producer has
  ``message.timeout.ms=0``: it never gives up on a retriable error), so a broker outage of any
  length stalls the tracker instead of ending it; the worker is not ready while outputs wait
  longer than ``produce_stall_s``. On SIGTERM the wait lasts at most ``stop_flush_s``, then the
  batch is abandoned: no state written, nothing acknowledged, so nothing committed (whoever
  owns the partition next handles it again) and the worker exits 0.
- :class:`BrokerProbe`: Faust's aiokafka client offers no statistics to read the brokers' state
  from, so a metadata request every few seconds tells; the worker is not ready while no broker
  answers (blocker ``kafka_brokers``), with one ``kafka_unreachable`` line and one
  ``kafka_reachable`` line when it answers again.
- :func:`exit_when_stop_hangs`: Faust's shutdown waits for a commit in flight, which aiokafka
  retries while the coordinator is away; past ``STOP_BOUND_S`` after SIGTERM the process leaves
  with status 0 anyway (``stop_timed_out``).
- :func:`still_owned`: after the process was frozen (:mod:`vsa.runtime.freeze`), whether the
  group still lets this worker commit for a batch's partitions; a zombie's batch is then
  neither produced nor written to the table (whose changelog the partition's new owner
  recovers from).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import faust
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from vsa.runtime.acks import AckWait
from vsa.runtime.kafka import Producer
from vsa.runtime.logs import event
from vsa.runtime.metrics import Health
from vsa.runtime.repeats import client_logger
from vsa.runtime.settings import KafkaSettings

log = logging.getLogger("vsa.tracker")

#: Seconds one wait for acknowledgements lasts before the wait looks at the clock and stop.
ACK_POLL_S = 0.5
#: After SIGTERM, the longest wait for a batch's outputs before it is abandoned, seconds.
STOP_FLUSH_S = 10.0
#: After SIGTERM, the longest the whole shutdown may take before the process leaves anyway
#: (within Kubernetes' default grace period of 30 s).
STOP_BOUND_S = 20.0
BROKERS_BLOCKER = "kafka_brokers"


class OutputWait:
    """Waits for a producer's acknowledgements, however long, with readiness and a stop bound
    (:class:`~vsa.runtime.acks.AckWait`).

    Args:
        producer: the tracker's output producer (``message.timeout.ms=0``).
        health: the worker's readiness.
        stall_s: outputs unacknowledged this long make the worker not ready.
        stop_flush_s: after a stop was requested, the longest wait before giving up.
    """

    def __init__(
        self,
        producer: Producer,
        health: Health,
        stall_s: float,
        stop_flush_s: float = STOP_FLUSH_S,
    ) -> None:
        self.producer, self.health = producer, health
        self.stall_s, self.stop_flush_s = stall_s, stop_flush_s
        self.abandoned = 0

    async def wait(self, stopping: Callable[[], bool]) -> bool:
        """True once every queued output is acknowledged; False when ``stopping()`` has been
        true for ``stop_flush_s`` first. DeliveryError when Kafka refused an output."""
        loop = asyncio.get_running_loop()
        wait = AckWait(self.health, self.stall_s, self.stop_flush_s)
        while True:
            remaining = await loop.run_in_executor(None, self.producer.wait_acked, ACK_POLL_S)
            self.producer.raise_failures()
            if remaining == 0:
                wait.acknowledged()
                return True
            if wait.waiting(remaining, stopping()):
                self.abandoned += 1
                return False


class BrokerProbe:
    """Whether any broker answers a metadata request for the detections topic."""

    def __init__(self, kafka: KafkaSettings, topic: str, health: Health, timeout_s: float = 3.0):
        conf: dict[str, Any] = {**kafka.client_config(), "logger": client_logger()}
        self.admin = AdminClient(conf)
        self.topic, self.health, self.timeout_s = topic, health, timeout_s
        self.running = False

    def check(self) -> bool:
        """Ask once (blocks up to ``timeout_s``: run it in an executor); update readiness."""
        self.running = True
        try:
            self.admin.list_topics(topic=self.topic, timeout=self.timeout_s)
        except KafkaException as exc:
            if BROKERS_BLOCKER not in self.health.blockers:
                event(log, "kafka_unreachable", logging.WARNING, error=str(exc.args[0])[:200])
            self.health.block(BROKERS_BLOCKER, "no broker answers")
            return False
        finally:
            self.running = False
        if BROKERS_BLOCKER in self.health.blockers:
            event(log, "kafka_reachable")
            self.health.unblock(BROKERS_BLOCKER)
        return True


def exit_when_stop_hangs(stopping: Callable[[], bool], bound_s: float = STOP_BOUND_S) -> None:
    """Start a daemon thread that ends the process with status 0 when a stop has begun and the
    process is still running ``bound_s`` later.

    Faust's shutdown waits for a commit in flight, and aiokafka retries a commit for as long as
    the group coordinator is unreachable: in a broker outage SIGTERM never ended the worker.
    Nothing is lost by leaving then: batches whose outputs were not acknowledged were neither
    written nor acknowledged, and offsets not committed are only read again."""

    def watch() -> None:
        while not stopping():
            time.sleep(0.5)
        time.sleep(bound_s)
        event(
            log,
            "stop_timed_out",
            logging.WARNING,
            waited_s=bound_s,
            note="Faust's shutdown waits for Kafka; leaving without it",
        )
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=watch, name="vsa-stop-bound", daemon=True).start()


async def start_offset(app: faust.App, topic: str, partition: int, timeout_s: float) -> int | None:
    """Where a partition just assigned starts: its committed offset, or the first offset Kafka
    still has when nothing was committed; None when Kafka did not answer within ``timeout_s``.

    The tracker's offset guard expects it first: Faust skips records that arrive while its
    flow control is suspended or from an older generation (after a rebalance, or a restart
    right after the table recovery), and a skipped first record would otherwise go unnoticed
    (with an empty data folder after kill -9: 55 frames of a camera never tracked)."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    tp = AioTopicPartition(topic, partition)
    try:
        consumer = thread._ensure_consumer()
        committed = await asyncio.wait_for(thread.call_thread(consumer.committed, tp), timeout_s)
        if committed is not None:
            return int(committed)
        first = await asyncio.wait_for(
            thread.call_thread(consumer.beginning_offsets, [tp]), timeout_s
        )
        return int(first[tp])
    except (asyncio.TimeoutError, KafkaError) as exc:
        event(
            log,
            "start_offset_unknown",
            logging.WARNING,
            topic=topic,
            partition=partition,
            error=type(exc).__name__,
        )
        return None


async def still_owned(app: faust.App, offsets: dict[tuple[str, int], int], timeout_s: float) -> str:
    """Whether the group coordinator still lets this worker commit ``offsets`` (per detections
    partition, the first offset of the batch in hand): ``"owned"``, ``"lost"`` (the group moved
    on without this member: a zombie) or ``"unknown"`` (no answer within ``timeout_s``).

    The table's changelog writes of earlier batches are flushed first, and everything before
    the batch's first offsets was applied and acknowledged, so the commit moves nothing past
    what is done. Through the aiokafka consumer Faust runs in its own thread (Faust's own
    ``commit`` ends the worker on any refusal)."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    parts = {AioTopicPartition(t, p): o for (t, p), o in offsets.items()}
    try:
        await asyncio.wait_for(app.producer.flush(), timeout_s)
        consumer = thread._ensure_consumer()
        await asyncio.wait_for(thread.call_thread(consumer.commit, parts), timeout_s)
    except (CommitFailedError, IllegalStateError) as exc:
        _report("lost", exc, parts)
        return "lost"
    except (asyncio.TimeoutError, KafkaError) as exc:
        _report("unknown", exc, parts)
        return "unknown"
    return "owned"


def _report(outcome: str, exc: BaseException, parts: Iterable[AioTopicPartition]) -> None:
    event(
        log,
        "ownership_check_failed",
        logging.WARNING,
        outcome=outcome,
        error=type(exc).__name__,
        detail=str(exc)[:200],
        partitions=",".join(f"{tp.topic}[{tp.partition}]" for tp in parts),
    )
