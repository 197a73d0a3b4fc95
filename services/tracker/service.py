"""The tracker service: a Faust app, detections topic → per-camera state table → tracks, alerts
and keyframes topics.

One agent reads the detections topic (raw bytes, keyed by camera_id) through a stream with
automatic acks turned off (``stream.noack()``) into a bounded queue, and handles the queue in
batches of up to ``max_batch`` events or ``max_wait_ms``. Per batch (``handler.py`` says why
in this order):

1. the :class:`~.handler.TrackerHandler` applies every record to its camera's state (read from
   the table once per camera per batch) and plans the outputs and dead letters;
2. all of them are produced (an idempotent librdkafka producer, murmur2 keys, as every vsa
   producer; Faust's own aiokafka producer carries only the changelog) and the service waits
   until Kafka acknowledged every one;
3. only then each moved camera's new state is written to the table ``camera-state`` (key
   camera_id, value :meth:`CameraState.to_bytes`), which Faust also sends to the changelog
   topic ``<app id>-camera-state-changelog``;
4. only then the events are acknowledged; Faust commits acknowledged offsets every
   ``commit_interval_s``, after flushing its producer, so a committed offset never runs ahead
   of the changelog (nor of the outputs, acknowledged in step 2).

Faust's own batching (``Stream.take_events``) is not used: with it, in about one restart in
three of the kill -9 integration test, a record between two batches never reached the agent
(its camera missed a frame for good); with this queue and explicit acks the test passed every
time. An :class:`~.offsets.OffsetGuard` also checks that each partition's offsets arrive without
a hole, whatever skipped it, and repairs one (``_seek_gaps``):

- the events past the hole are neither applied nor acknowledged (Faust must never commit past
  the missing record), and they are *released*: taken out of the consumer's set of unacked
  messages, or Faust's ``wait_empty`` (on every rebalance and on SIGTERM) would wait for them
  for ever (the stream's iterator keeps a reference to the last event it handed out);
- the partition is paused in Faust before it is sought back to the missing offset, and resumed
  after the seek. Faust's fetch loop drops every fetched record whose offset is below the
  highest offset it delivered for the partition (its "read offset"); ``seek_wait`` lowers that
  read offset, but a fetched batch still being delivered raised it again at once, so all the
  records fetched again after the seek were dropped, the seek was retried in vain and the guard
  gave up on the missing record (a frame lost for the live worker). Records of a paused
  partition are not delivered at all, so the batch in flight can no longer undo the seek.

The table is partitioned like the detections topic (same partition count, keys hashed with
murmur2 by every producer), so a camera's state lives in its detections partition: the worker
that owns the partition owns the state, and a rebalance moves both together. A worker that gets
a partition recovers its states from the changelog (or its local RocksDB and the changelog's
tail) before the agent sees an event.

Kafka faults (``faults.py``): outputs are waited for however long a broker outage lasts (not
ready meanwhile, as while no broker answers a metadata probe); SIGTERM abandons a batch whose
outputs are not acknowledged within ``stop_flush_s`` (no state written, nothing acknowledged)
and exits 0. After the process was frozen past a third of the session timeout (SIGSTOP, a
paused VM) a batch is produced and its states written only once the group coordinator took a
commit from this worker for its partitions: a zombie whose cameras moved to another worker
drops the batch instead of writing stale states to the changelog the new owner recovers from.
Kafka refusing an output (a permanent error: too large, not authorised) is not a property of
one message: the process logs it and exits at once with status 3 (``os._exit``), acknowledging
and committing nothing, so the batch is redelivered to whoever gets the partition next. Faust's
exactly-once mode is not used (it has known duplicate bugs, see DESIGN.md); outputs are
idempotent instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import faust
from confluent_kafka.admin import AdminClient
from faust.streams import _current_event
from faust.types import TP

from vsa.runtime.freeze import FreezeWatch, freeze_threshold_s
from vsa.runtime.kafka import Producer
from vsa.runtime.logs import event
from vsa.runtime.metrics import Health, ServiceMetrics, serve_http
from vsa.runtime.repeats import quiet_repeats
from vsa.runtime.replication import Replication, replication_for
from vsa.runtime.service import StopFlag
from vsa.runtime.settings import MAX_MESSAGE_BYTES, ConfigError, KafkaSettings
from vsa.runtime.topic_check import TopicWait, admin_client

from .config import SERVICE, TrackerSettings
from .faults import (
    BrokerProbe,
    OutputWait,
    exit_when_stop_hangs,
    start_offset,
    still_owned,
)
from .handler import BatchPlan, Record, StateWrite, TrackerHandler
from .metrics import TrackerMetrics
from .offsets import OffsetGuard
from .rulebook import ConfigFollower, RuleBook

log = logging.getLogger("vsa.tracker")

TABLE_NAME = "camera-state"
#: Exit status after a failed produce (nothing committed; the batch will be redelivered).
EXIT_PRODUCE_FAILED = 3
#: Seconds a seek back to a missing offset may take before the agent goes on (it is retried).
SEEK_TIMEOUT_S = 10.0


def faust_broker(kafka: KafkaSettings) -> str:
    """Faust's broker URL list from the bootstrap servers (``kafka://h1:p;kafka://h2:p``)."""
    hosts = [h.strip() for h in kafka.bootstrap_servers.split(",") if h.strip()]
    return ";".join(f"kafka://{host}" for host in hosts)


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust credentials for SASL/SSL settings, or None for PLAINTEXT."""
    if kafka.security_protocol == "PLAINTEXT":
        return None
    import ssl

    context = ssl.create_default_context(cafile=kafka.ssl_ca_location)
    if kafka.ssl_certificate_location:
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        context.load_cert_chain(
            kafka.ssl_certificate_location, kafka.ssl_key_location, password=password
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        mechanism=kafka.sasl_mechanism or "PLAIN",
        ssl_context=context if kafka.security_protocol == "SASL_SSL" else None,
    )


class InputLayout(NamedTuple):
    """What the tracker learns from Kafka before it starts."""

    partitions: int  # of the detections topic (the table's changelog gets as many)
    replication: Replication  # of the changelog topic Faust creates


def needed_topics(settings: TrackerSettings) -> list[str]:
    """The topics the tracker reads and writes, detections first."""
    names = settings.topics
    wanted = [names.name(t) for t in ("detections", "tracks", "alerts", "counts", "keyframes")]
    return [*wanted, names.dlq(SERVICE)]


def wait_for_topics(settings: TrackerSettings, health: Health) -> bool:
    """Wait until every topic the tracker uses exists: not ready meanwhile, with one
    ``topics_missing`` line naming them and the command that creates them. False when SIGTERM
    or SIGINT came first (Faust's worker installs its own handlers later)."""
    stop = StopFlag()
    stop.install()
    client = admin_client(settings.kafka)
    return TopicWait(needed_topics(settings), settings.topics.prefix, health).wait(
        client, stop.is_set
    )


def check_topics(settings: TrackerSettings) -> InputLayout:
    """The detections topic's partition count and the changelog's replication (from the
    cluster's size unless set); ConfigError if a topic the service uses is missing.

    Auto topic creation is off: topics come from ``vsa topics create`` (Faust creates only its
    changelog topic, with the detections topic's partition count).
    """
    wanted = needed_topics(settings)
    admin = AdminClient(settings.kafka.client_config())
    metadata = admin.list_topics(timeout=15)
    missing = [name for name in wanted if name not in metadata.topics]
    if missing:
        raise ConfigError(
            f"topics missing: {', '.join(missing)} (create them with `vsa topics create`)"
        )
    return InputLayout(
        len(metadata.topics[wanted[0]].partitions),
        changelog_replication(settings, len(metadata.brokers)),
    )


def changelog_replication(settings: TrackerSettings, brokers: int) -> Replication:
    """The state changelog's replication on a cluster of ``brokers`` brokers (ConfigError when
    the settings cannot work there)."""
    try:
        return replication_for(brokers, settings.replication_factor, settings.min_insync_replicas)
    except ValueError as exc:
        raise ConfigError(f"tracker changelog: {exc}") from None


def build_app(settings: TrackerSettings, partitions: int, replication: Replication) -> faust.App:
    """The Faust app: broker, store, group timings; no web server (we serve our own metrics)."""
    store = "rocksdb://" if settings.store == "rocksdb" else "memory://"
    return faust.App(
        settings.service_group,
        broker=faust_broker(settings.kafka),
        broker_credentials=faust_credentials(settings.kafka),
        store=store,
        datadir=str(settings.datadir),
        topic_partitions=partitions,
        topic_replication_factor=replication.factor,
        topic_disable_leader=True,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        broker_client_id=f"{settings.kafka.client_id_prefix}-{SERVICE}",
        producer_max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
        producer_linger=settings.producer_linger_ms / 1000,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES + 64 * 1024,
        web_enabled=False,
        autodiscover=False,
    )


def rocksdb_options(settings: TrackerSettings) -> dict[str, int]:
    """RocksDB sizes of each state partition's database (Faust's RocksDBOptions keywords)."""
    return {
        "block_cache_size": settings.rocksdb_block_cache_mib << 20,
        "write_buffer_size": settings.rocksdb_write_buffer_mib << 20,
        "max_write_buffer_number": 2,
    }


@contextmanager
def event_context(source: Any) -> Iterator[None]:
    """Make ``source`` (a Faust event) the current event while writing the table.

    Faust picks the RocksDB partition and the changelog partition of a table write from the
    current event. A batch is written after the stream moved on, so the write names the event
    of the camera's last record itself (Faust has no public API for this).
    """
    token = _current_event.set(weakref.ref(source))
    try:
        yield
    finally:
        _current_event.reset(token)


class TrackerService:
    """The Faust app with its agent, table, handler, rules, metrics and health."""

    def __init__(
        self,
        settings: TrackerSettings,
        partitions: int,
        rulebook: RuleBook | None = None,
        metrics: ServiceMetrics | None = None,
        health: Health | None = None,
        replication: Replication | None = None,
    ) -> None:
        """``replication``: of the changelog topic; None takes a single broker's (unit tests)."""
        self.settings = settings
        self.metrics = metrics or ServiceMetrics(SERVICE)
        self.tracker_metrics = TrackerMetrics(self.metrics)
        self.health = health or Health()
        self.rulebook = rulebook or make_rulebook(settings, self.tracker_metrics)
        self.handler = TrackerHandler(
            settings.topics, self.rulebook.rules_for, settings.tracking, self.tracker_metrics
        )
        replication = replication or changelog_replication(settings, brokers=1)
        self.app = build_app(settings, partitions, replication)
        self.producer = Producer(
            settings.kafka,
            SERVICE,
            **{"linger.ms": settings.producer_linger_ms, "message.timeout.ms": 0},
        )
        self.outputs = OutputWait(self.producer, self.health, settings.produce_timeout_s)
        self.freezes = FreezeWatch(freeze_threshold_s(settings.session_timeout_s))
        self.stopping = False  # the agent was cancelled: shutting down
        self.probe = BrokerProbe(settings.kafka, self.detections_name, self.health)
        self.detections = self.app.topic(
            settings.topics.name("detections"), key_serializer="raw", value_serializer="raw"
        )
        self.table = self.app.Table(
            TABLE_NAME,
            key_type=bytes,
            value_type=bytes,
            default=None,
            partitions=partitions,
            options=rocksdb_options(settings),
            extra_topic_configs={"min.insync.replicas": str(replication.min_insync_replicas)},
        )
        self.app.agent(self.detections, name="track")(self._agent)
        self.app.timer(2.0, name="heartbeat")(self._beat)
        self.app.on_rebalance_complete.connect(self._on_ready)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.batches = 0
        self.guard: OffsetGuard[TP] = OffsetGuard()
        self.paused: set[TP] = set()  # partitions paused until a gap in them is sought back
        # Next offset to handle per detections partition, for vsa_consumer_lag (Faust's
        # aiokafka consumer has no librdkafka statistics to take it from).
        self.handled_to: dict[TP, int] = {}

    async def _agent(self, stream: faust.StreamT[bytes]) -> None:
        """Read events into a queue (acks off) and handle them in batches until cancelled."""
        assert isinstance(stream, faust.Stream)  # noack() is not in StreamT
        manual = stream.noack()  # an event is acked only after its outputs and state
        queue: asyncio.Queue[faust.EventT[Any]] = asyncio.Queue(4 * self.settings.max_batch)
        pump = asyncio.ensure_future(_pump(manual, queue))
        within = self.settings.max_wait_ms / 1000
        try:
            while not pump.done() and not self._should_stop():  # no new batch once stopping
                events = await _take(queue, self.settings.max_batch, within, idle_s=0.5)
                if events:
                    # The batch finishes even if the agent is cancelled meanwhile (shutdown).
                    batch = asyncio.ensure_future(self.run_batch(events, manual))
                    await _finish(batch, on_cancel=self._on_cancel)
                await self._seek_gaps()
            if pump.done():
                pump.result()  # the stream's error, if it ended with one
        finally:
            pump.cancel()

    async def run_batch(
        self, events: Sequence[faust.EventT[Any]], stream: faust.StreamT[Any] | None = None
    ) -> None:
        """Process, produce and wait for acks, write the states, then ack the events."""
        started = time.perf_counter()
        await self._expect_start(events)
        events = self._in_order(events)
        records = [_record(ev) for ev in events]
        self.metrics.count_in(self.detections_name, len(records))
        plan = self.handler.handle(records, self._load)
        processed = time.perf_counter()
        # Ownership is confirmed right before producing (a freeze during the handler counts)
        # and again before the states are written (a freeze while waiting for acks).
        if not await self._still_owned(events):
            return
        if not await self._produce(plan) or not await self._still_owned(events):
            self._drop(events)
            return
        produced = time.perf_counter()
        self._write_states(plan.writes)
        done = time.perf_counter()
        if stream is not None:
            for ev in events:
                await stream.ack(ev)
        for ev in events:
            tp, offset = ev.message.tp, ev.message.offset
            self.handled_to[tp] = max(self.handled_to.get(tp, 0), offset + 1)
        self._observe(plan, started, processed, produced, done)
        if log.isEnabledFor(logging.DEBUG):
            event(log, "batch_offsets", logging.DEBUG, offsets=_offset_ranges(records))
        self.batches += 1
        self.health.beat()

    async def _expect_start(self, events: Sequence[faust.EventT[Any]]) -> None:
        """Before the first record of a partition since it was assigned: make the guard expect
        the partition's start offset (``faults.start_offset``), so records Faust skipped before
        it are sought back instead of lost."""
        for tp in {ev.message.tp for ev in events}:
            if not self.guard.knows(tp):
                timeout = self.settings.session_timeout_s
                offset = await start_offset(self.app, tp.topic, tp.partition, timeout)
                if offset is not None:
                    self.guard.expect(tp, offset)

    async def _still_owned(self, events: Sequence[faust.EventT[Any]]) -> bool:
        """True unless the group rebalanced since the batch's records were fetched (Faust's
        generation moved on: the table may have changed under the batch), or the process was
        frozen since ownership was last confirmed and the group coordinator now refuses (or
        cannot take) a commit for the batch's partitions; such a batch is dropped
        (``faults.still_owned``)."""
        if not events:
            return True
        generation = self.app.consumer_generation_id
        rebalanced = any(ev.message.generation_id != generation for ev in events)
        if not rebalanced and not self.freezes.suspect():
            return True
        mark = self.freezes.mark()
        first: dict[tuple[str, int], int] = {}
        for ev in events:
            key = (ev.message.tp.topic, ev.message.tp.partition)
            first[key] = min(first.get(key, ev.message.offset), ev.message.offset)
        outcome = "rebalanced"
        if not rebalanced:
            outcome = await still_owned(self.app, first, self.settings.session_timeout_s)
        if outcome == "owned":
            self.freezes.confirmed(mark)
            return True
        where = ",".join(f"{t}[{p}]@{o}" for (t, p), o in first.items())
        self.freezes.stale(self.metrics.stale_batches, SERVICE, outcome, where)
        self._drop(events)
        return False

    def _drop(self, events: Sequence[faust.EventT[Any]]) -> None:
        """Neither apply nor acknowledge ``events``: release them from Faust's unacked set (its
        rebalance and shutdown wait for that set) and make the guard expect them again, so a
        worker that keeps the partition seeks back to them."""
        consumer = self.app.consumer
        for ev in events:
            consumer.unacked.discard(ev.message)
        for ev in sorted(events, key=lambda e: -int(e.message.offset)):
            self.guard.rewind(ev.message.tp, ev.message.offset)

    def _on_cancel(self) -> None:
        self.stopping = True

    def _should_stop(self) -> bool:
        return self.stopping or self.app_stopping()

    def app_stopping(self) -> bool:
        """Faust's app began to stop (SIGTERM, SIGINT) or crashed."""
        return bool(self.app.should_stop)

    def _in_order(self, events: Sequence[faust.EventT[Any]]) -> list[faust.EventT[Any]]:
        """The events the guard lets through; those past a hole are released (not acked) and
        their partition is paused until ``_seek_gaps`` has sought it back."""
        accepted = []
        consumer = self.app.consumer
        for ev in events:
            tp, offset = ev.message.tp, ev.message.offset
            if self.guard.check(tp, offset) != "gap":
                accepted.append(ev)
                continue
            if offset == self.guard.gaps[tp].lowest_dropped:
                event(
                    log,
                    "offset_gap",
                    logging.WARNING,
                    topic=tp.topic,
                    partition=tp.partition,
                    expected=self.guard.gaps[tp].expected,
                    got=offset,
                )
            self._pause(tp)
            consumer.unacked.discard(ev.message)
        return accepted

    def _pause(self, tp: TP) -> None:
        # Faust's own TP: its set of active partitions asserts the type (a message's tp is
        # aiokafka's TopicPartition, and resume_partitions adds what it is given unconverted).
        self.app.consumer.pause_partitions({TP(tp.topic, tp.partition)})
        self.paused.add(tp)

    async def _seek_gaps(self) -> None:
        """Seek partitions with a missing offset back to it (see ``offsets.py``), each paused
        while it is sought. Not during a rebalance or a shutdown: the rebalance seeks every
        partition to its committed offset (and ``_on_revoked`` clears the guard)."""
        consumer = self.app.consumer
        for tp in [tp for tp in self.paused if tp not in self.guard.gaps]:  # closed meanwhile
            self._resume(tp)
        for tp, offset, gave_up in self.guard.due_seeks():
            if not self._may_seek(tp):
                continue
            level = logging.ERROR if gave_up else logging.WARNING
            name = "offset_gap_given_up" if gave_up else "offset_gap_seek"
            event(log, name, level, topic=tp.topic, partition=tp.partition, offset=offset)
            outcome = "given_up" if gave_up else "sought"
            self.tracker_metrics.offset_gaps.labels(SERVICE, outcome).inc()
            self._pause(tp)
            try:
                await asyncio.wait_for(consumer.seek_wait({tp: offset}), SEEK_TIMEOUT_S)
            except asyncio.TimeoutError:
                event(log, "offset_gap_seek_timeout", logging.WARNING, partition=tp.partition)
            finally:
                self._resume(tp)

    def _resume(self, tp: TP) -> None:
        """Resume a partition this service paused, unless a rebalance or a shutdown owns the
        flow now (Faust resumes every partition it assigns)."""
        if self._may_seek(tp):
            self.app.consumer.resume_partitions({TP(tp.topic, tp.partition)})
            self.paused.discard(tp)

    def _may_seek(self, tp: TP) -> bool:
        consumer = self.app.consumer
        return (
            self.app.flow_control.is_active()
            and not self.app.rebalancing
            and not self.app.should_stop
            and tp in consumer.assignment()
        )

    async def _produce(self, plan: BatchPlan) -> bool:
        """Send outputs and dead letters; True once Kafka acknowledged every one, False when
        the worker is stopping and they were not acknowledged within ``stop_flush_s``.

        They go through an idempotent librdkafka producer (murmur2 keys, like every vsa
        producer); waiting for its acknowledgements runs in a thread, so the event loop (and
        the group heartbeats) go on meanwhile, for as long as Kafka is away.
        """
        try:
            for out in [*plan.outputs, *plan.dead_letters]:
                self.producer.produce(out)
            if not await self.outputs.wait(self._should_stop):
                return False
        except Exception as exc:  # nothing acknowledged or committed: exit, the batch comes back
            _die(exc)
        for topic, count in Counter(out.topic for out in plan.outputs).items():
            self.metrics.count_out(topic, count)
        for _ in plan.dead_letters:
            self.metrics.count_dead_letter(self.detections_name)
            self.metrics.count_error("dead_letter")
        return True

    def _load(self, record: Record) -> bytes | None:
        with event_context(record.source):
            data: bytes | None = self.table.get(record.key)
        return data

    def _write_states(self, writes: Sequence[StateWrite]) -> None:
        for write in writes:
            with event_context(write.record.source):
                self.table[write.key] = write.data

    def _observe(self, plan: BatchPlan, *marks: float) -> None:
        started, processed, produced, done = marks
        self.tracker_metrics.observe_stage("process", processed - started)
        self.tracker_metrics.observe_stage("produce", produced - processed)
        self.tracker_metrics.observe_stage("state", done - produced)
        self.metrics.observe_batch(sum(plan.outcomes.values()), done - started)
        event(
            log,
            "batch",
            logging.DEBUG,
            records=sum(plan.outcomes.values()),
            outputs=len(plan.outputs),
            dead_letters=len(plan.dead_letters),
            states=len(plan.writes),
            ms=round((done - started) * 1000, 2),
            **dict(plan.outcomes),
        )

    async def _beat(self) -> None:
        self.health.beat()
        if not self.probe.running:  # readiness while no broker answers
            asyncio.get_running_loop().run_in_executor(None, self.probe.check)
        self.tracker_metrics.cameras.labels(SERVICE).set(len(self.rulebook.cameras()))
        try:
            await self._report_lag()
        except Exception as exc:  # a metric must never stop the tracker
            event(log, "lag_unavailable", logging.DEBUG, error=str(exc))

    async def _report_lag(self) -> None:
        """vsa_consumer_lag per assigned detections partition: the partition's high watermark
        (from the last fetch) minus the next offset to handle (the fetch position until a
        batch of the partition was handled)."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic != self.detections_name:
                continue
            high = consumer.highwater(tp)
            done = self.handled_to.get(tp)
            if done is None:
                done = await consumer.position(tp)
            if high is not None and done is not None:
                self.metrics.set_lag(tp.topic, tp.partition, high - done)

    async def _on_ready(self, *_: Any, **__: Any) -> None:
        self.health.ready = True
        assignment = self.app.consumer.assignment()
        partitions = sorted(tp.partition for tp in assignment if tp.topic == self.detections_name)
        self.health.detail["partitions"] = partitions
        event(log, "partitions_ready", partitions=",".join(map(str, partitions)))

    async def _on_revoked(self, *_: Any, **__: Any) -> None:
        self.health.ready = False
        self.guard.forget()  # Faust seeks every partition to its committed offset
        self.paused.clear()  # and resumes every partition it assigns
        self.handled_to.clear()
        self.metrics.consumer_lag.clear()  # partitions may move to another worker

    @property
    def detections_name(self) -> str:
        return self.settings.topics.name("detections")


async def _pump(stream: faust.StreamT[Any], queue: asyncio.Queue[faust.EventT[Any]]) -> None:
    """Move the stream's events into the queue (bounded: back-pressure on the stream)."""
    async for ev in stream.events():
        await queue.put(ev)


async def _take(
    queue: asyncio.Queue[faust.EventT[Any]], max_items: int, within_s: float, idle_s: float
) -> list[faust.EventT[Any]]:
    """Up to ``max_items`` events: wait ``idle_s`` for the first, then ``within_s`` for more."""
    try:
        items = [await asyncio.wait_for(queue.get(), idle_s)]
    except asyncio.TimeoutError:
        return []
    deadline = time.monotonic() + within_s
    while len(items) < max_items:
        if not queue.empty():
            items.append(queue.get_nowait())
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            items.append(await asyncio.wait_for(queue.get(), remaining))
        except asyncio.TimeoutError:
            break
    return items


async def _finish(task: asyncio.Future[None], on_cancel: Callable[[], None]) -> None:
    """Await ``task`` to the end even when cancelled meanwhile (``on_cancel`` is called then, so
    the task can bound its waits); then re-raise the cancel."""
    cancelled = False
    while True:
        try:
            await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
            on_cancel()
    if cancelled:
        raise asyncio.CancelledError


def _offset_ranges(records: Sequence[Record]) -> str:
    """``p0:10-25,p3:7-9``: the offsets of a batch per partition (debug logs)."""
    ranges: dict[int, tuple[int, int]] = {}
    for r in records:
        low, high = ranges.get(r.partition, (r.offset, r.offset))
        ranges[r.partition] = (min(low, r.offset), max(high, r.offset))
    return ",".join(f"p{p}:{lo}-{hi}" for p, (lo, hi) in sorted(ranges.items()))


def _record(ev: faust.EventT[Any]) -> Record:
    message = ev.message
    raw = message.headers or []
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    headers = [
        (k, v.encode() if isinstance(v, str) else bytes(v)) for k, v in pairs if v is not None
    ]
    return Record(
        key=message.key,
        value=message.value,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        headers=headers,
        source=ev,
    )


def _die(exc: BaseException) -> None:
    event(
        log,
        "produce_failed_exiting",
        logging.CRITICAL,
        error_class=type(exc).__name__,
        error=str(exc)[:300],
    )
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_PRODUCE_FAILED)


def make_rulebook(settings: TrackerSettings, metrics: TrackerMetrics | None = None) -> RuleBook:
    """The rule book with the rules file loaded (ConfigError if it is invalid)."""
    on_invalid = None
    if metrics is not None:
        on_invalid = lambda _camera: metrics.config_invalid.labels(SERVICE).inc()  # noqa: E731
    book = RuleBook(
        settings.known_classes or None,
        settings.anchor,
        settings.keyframe_interval_s,
        on_invalid=on_invalid,
    )
    if settings.rules_file is not None:
        count = book.load_file(settings.rules_file)
        event(log, "rules_file_loaded", path=str(settings.rules_file), cameras=count)
    return book


def follow_camera_config(settings: TrackerSettings, book: RuleBook) -> ConfigFollower | None:
    """Start following the camera-config topic and wait (bounded) until it was read to its end."""
    if not settings.follow_camera_config:
        return None
    follower = ConfigFollower(
        settings.kafka,
        settings.topics.name("camera_config"),
        f"{settings.service_group}-{os.getpid()}",
        book.apply_record,
    )
    follower.start()
    if settings.camera_config_sync_s > 0 and not follower.wait_synced(
        settings.camera_config_sync_s
    ):
        event(
            log, "camera_config_not_synced", logging.WARNING, waited_s=settings.camera_config_sync_s
        )
    return follower


def quiet_framework(level: str) -> None:
    """Faust, mode and aiokafka log at ``level`` and above (their INFO is rebalance chatter),
    each kind of repeated line at most once per 30 s (aiokafka logs every reconnect attempt,
    dozens a second while Kafka is away)."""
    for name in ("faust", "mode", "aiokafka"):
        logging.getLogger(name).setLevel(level)
    quiet_repeats(("faust", "mode", "aiokafka"))


def run_tracker(settings: TrackerSettings) -> int:
    """Run the service until SIGTERM/SIGINT; the process exit code."""
    quiet_framework(settings.framework_log_level)
    metrics, health = ServiceMetrics(SERVICE), Health()
    server = serve_http(metrics, health, settings.metrics_host, settings.metrics_port)
    if not wait_for_topics(settings, health):
        server.shutdown()
        event(log, "tracker_stopped", batches=0)
        return 0
    partitions, replication = check_topics(settings)
    service = TrackerService(
        settings, partitions, replication=replication, metrics=metrics, health=health
    )
    follower = follow_camera_config(settings, service.rulebook)
    event(
        log,
        "tracker_starting",
        app_id=settings.service_group,
        partitions=partitions,
        changelog_replicas=replication.factor,
        changelog_min_insync=replication.min_insync_replicas,
        store=settings.store,
        datadir=str(settings.datadir),
        metrics_port=server.server_address[1],
        cameras_with_rules=len(service.rulebook.cameras()),
    )
    worker = faust.Worker(service.app, quiet=True, override_logging=False, redirect_stdouts=False)
    exit_when_stop_hangs(service.app_stopping)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        server.shutdown()
        if follower is not None:
            follower.stop()
        if not service.outputs.abandoned:  # every batch waited for its outputs: a no-op
            service.producer.wait_acked(10)
    event(log, "tracker_stopped", batches=service.batches)
    return code
