"""confluent-kafka clients configured the vsa way: idempotent producer, manual commits, big frames.

- Producers are idempotent (``acks=all``), partition keys with murmur2 like the Java client and
  aiokafka (so the tracker's Faust tables co-partition with what our producers wrote), and block
  with back-pressure instead of failing when the local queue is full.
- Consumers never auto-commit; the service loop commits after outputs are acknowledged.
- Message size limits are all derived from :data:`MAX_MESSAGE_BYTES`.
- Topics get their replication from the cluster's size unless a spec fixes it (RF 3 and
  ``min.insync.replicas`` 2 from three brokers on): with ``acks=all`` an acknowledged message
  survives the loss of one broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import Producer as _Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from vsa.runtime.logs import event
from vsa.runtime.repeats import client_logger
from vsa.runtime.replication import Replication, replication_for
from vsa.runtime.settings import MAX_MESSAGE_BYTES, ConfigError, KafkaSettings, TopicSpec

log = logging.getLogger("vsa.kafka")

Headers = list[tuple[str, bytes]]


class DeliveryError(Exception):
    """Kafka did not acknowledge produced messages; nothing derived from them may be committed."""


#: Delivery errors that no retry can mend (the message or the client's rights are wrong); every
#: other delivery error (timeouts, leader moves, a topic not created yet) is worth a retry.
PERMANENT_DELIVERY_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_REQUIRED_ACKS,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.UNSUPPORTED_VERSION,
        KafkaError.POLICY_VIOLATION,
        KafkaError._INVALID_ARG,
        KafkaError._FATAL,
    }
)

#: Commit errors that mean the group moved on without this member (session timed out, a
#: rebalance started, another instance took its place): the offsets are not this member's to
#: commit any more, so they are dropped; the next owner starts from the last committed offset.
MEMBERSHIP_COMMIT_ERRORS = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError._ASSIGNMENT_LOST,
        KafkaError._STATE,
    }
)


def delivery_retriable(err: KafkaError) -> bool:
    """Whether producing again may succeed (a broker outage, a leader move, a slow topic)."""
    return not err.fatal() and err.code() not in PERMANENT_DELIVERY_ERRORS


def commit_action(err: KafkaError) -> str:
    """What a batch loop does with a failed commit: ``"fatal"`` (the client is unusable),
    ``"abandon"`` (no longer this member's offsets, or nothing to commit) or ``"retry"``
    (coordinator unavailable, moving or loading; timeouts; anything else)."""
    if err.fatal():
        return "fatal"
    if err.code() in MEMBERSHIP_COMMIT_ERRORS or err.code() == KafkaError._NO_OFFSET:
        return "abandon"
    return "retry"


@dataclass(frozen=True)
class Output:
    """One message to produce."""

    topic: str
    key: str | bytes | None
    value: bytes
    headers: Headers | None = None
    timestamp_ms: int | None = None


def producer_config(kafka: KafkaSettings, client_id: str, **overrides: Any) -> dict[str, Any]:
    """librdkafka producer properties: idempotent, murmur2 partitioning, frame-sized messages."""
    conf = kafka.client_config()
    conf.update(
        {
            "client.id": f"{kafka.client_id_prefix}-{client_id}",
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "message.max.bytes": MAX_MESSAGE_BYTES + 64 * 1024,
            "linger.ms": 5,
            "queue.buffering.max.kbytes": 256 * 1024,
            "queue.buffering.max.messages": 100_000,
            "logger": client_logger(),  # repeated connection errors: one line per 30 s
        }
    )
    conf.update(overrides)
    return conf


#: Group session timeout and heartbeat interval of vsa's consumers unless KAFKA_EXTRA sets them.
CONSUMER_GROUP_TIMING = {"session.timeout.ms": 10_000, "heartbeat.interval.ms": 3_000}


def consumer_config(
    kafka: KafkaSettings, client_id: str, group_id: str, **overrides: Any
) -> dict[str, Any]:
    """librdkafka consumer properties: manual commits, earliest reset, frame-sized fetches."""
    fetch_max = 2 * MAX_MESSAGE_BYTES
    conf = kafka.client_config()
    conf.update(
        {
            "client.id": f"{kafka.client_id_prefix}-{client_id}",
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": fetch_max,
            "max.partition.fetch.bytes": MAX_MESSAGE_BYTES + 64 * 1024,
            "receive.message.max.bytes": fetch_max + 1024 * 1024,
            "queued.max.messages.kbytes": 128 * 1024,
            "statistics.interval.ms": 5000,
            "logger": client_logger(),
        }
    )
    # After a broker outage longer than the session timeout librdkafka drops its member id and
    # joins again as a new member, and the group waits for the old one to expire: recovery
    # takes a whole session timeout (librdkafka's 45 s default: a detector resumed 46 s after
    # the broker was back). 10 s (Kafka's default before 3.0) bounds that and the fail-over
    # after a crash; heartbeats run in librdkafka's own thread, not the handler's.
    # KAFKA_EXTRA may set both.
    for key, value in CONSUMER_GROUP_TIMING.items():
        conf.setdefault(key, value)
    conf.update(overrides)
    return conf


class Producer:
    """An idempotent producer that tracks delivery reports.

    :meth:`produce` never raises for a full local queue: it serves delivery reports until there
    is room (back-pressure on the caller). :meth:`flush` waits for every acknowledgement and raises
    :class:`DeliveryError` if any message was refused, so callers commit only after it returns.
    """

    def __init__(self, kafka: KafkaSettings, client_id: str, **overrides: Any) -> None:
        self._producer = _Producer(producer_config(kafka, client_id, **overrides))
        self._failures: list[tuple[str, KafkaError]] = []
        self.delivered = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append((str(msg.topic()), err))
        else:
            self.delivered += 1

    def produce(self, out: Output, on_delivery: Callable[[Any, Any], None] | None = None) -> None:
        """Queue one message; waits (serving callbacks) while librdkafka's queue is full."""
        kwargs: dict[str, Any] = {"headers": out.headers}
        if out.timestamp_ms is not None:
            kwargs["timestamp"] = out.timestamp_ms
        callback = on_delivery or self._on_delivery
        while True:
            try:
                self._producer.produce(
                    out.topic, out.value, out.key, on_delivery=callback, **kwargs
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery callbacks; returns how many were served."""
        return int(self._producer.poll(timeout_s))

    def pending(self) -> int:
        """Messages queued or in flight, not yet acknowledged."""
        return len(self._producer)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every queued message to be acknowledged; raise if any was not."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise DeliveryError(f"{remaining} messages not acknowledged within {timeout_s:.0f} s")
        self.raise_failures()

    def wait_acked(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for acknowledgements; the messages still unacknowledged
        (failed deliveries are in :meth:`take_failures`, never raised here)."""
        return int(self._producer.flush(timeout_s))

    def take_failures(self) -> list[tuple[str, KafkaError]]:
        """(topic, error) of every delivery that failed since the last call or check."""
        failures, self._failures = self._failures, []
        return failures

    def raise_failures(self) -> None:
        """Raise :class:`DeliveryError` for deliveries that failed since the last check."""
        if failures := self.take_failures():
            topic, err = failures[0]
            raise DeliveryError(
                f"{len(failures)} messages refused by Kafka, first: {topic}: {err.str()}"
            )

    @property
    def raw(self) -> _Producer:
        return self._producer


def topic_config(spec: TopicSpec, replication: Replication | None = None) -> dict[str, str]:
    """Broker-side topic properties for a :class:`TopicSpec` (and its resolved replication)."""
    config = {
        "cleanup.policy": "compact" if spec.compact else "delete",
        "retention.ms": str(spec.retention_ms),
        "max.message.bytes": str(MAX_MESSAGE_BYTES),
    }
    if replication is not None:
        config["min.insync.replicas"] = str(replication.min_insync_replicas)
    return config


def spec_replication(spec: TopicSpec, brokers: int) -> Replication:
    """The replication of a topic made from ``spec`` on a cluster of ``brokers`` brokers
    (ConfigError when the spec's numbers cannot work there)."""
    try:
        return replication_for(brokers, spec.replication_factor, spec.min_insync_replicas)
    except ValueError as exc:
        raise ConfigError(f"topic replication: {exc}") from None


def count_brokers(kafka: KafkaSettings, timeout_s: float = 30.0) -> int:
    """Brokers the cluster reports now (the ones registered and not fenced)."""
    return len(AdminClient(kafka.client_config()).list_topics(timeout=timeout_s).brokers)


def ensure_topics(
    kafka: KafkaSettings, specs: Mapping[str, TopicSpec], timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    A spec without a replication factor gets one from the number of brokers the cluster reports
    now (:func:`~vsa.runtime.replication.replication_for`: 3 replicas and min.insync.replicas 2
    from three brokers on, else 1). Existing topics are left as they are (a partition-count
    mismatch is logged, never changed: adding partitions moves keys and breaks per-camera
    ordering).
    """
    admin = AdminClient(kafka.client_config())
    metadata = admin.list_topics(timeout=timeout_s)
    existing, brokers = metadata.topics, len(metadata.brokers)
    for name, spec in specs.items():
        if name in existing and len(existing[name].partitions) != spec.partitions:
            event(
                log,
                "topic_partitions_differ",
                logging.WARNING,
                topic=name,
                existing=len(existing[name].partitions),
                configured=spec.partitions,
            )
    replication = {name: spec_replication(spec, brokers) for name, spec in specs.items()}
    missing = [
        NewTopic(
            name,
            spec.partitions,
            replication[name].factor,
            config=topic_config(spec, replication[name]),
        )
        for name, spec in specs.items()
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_metadata(admin, created, timeout_s)
    for name in created:
        event(
            log,
            "topic_created",
            topic=name,
            partitions=specs[name].partitions,
            replication_factor=replication[name].factor,
            min_insync_replicas=replication[name].min_insync_replicas,
            brokers=brokers,
        )
    return created


def _wait_for_metadata(admin: AdminClient, names: Sequence[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(_has_leaders(topics.get(n)) for n in names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics not visible in metadata after {timeout_s} s: {list(names)}")


def _has_leaders(meta: Any) -> bool:
    """True once a new topic is in metadata and every partition has a leader to talk to."""
    if meta is None or meta.error is not None or not meta.partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in meta.partitions.values())


def delete_topics(kafka: KafkaSettings, names: Iterable[str], timeout_s: float = 30.0) -> None:
    """Delete topics (tests and `vsa topics delete`); missing topics are ignored."""
    admin = AdminClient(kafka.client_config())
    for _name, future in admin.delete_topics(list(names), request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
