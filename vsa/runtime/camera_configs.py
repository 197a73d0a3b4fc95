"""The one follower of the compacted camera-config topic, and the latest valid config of every
camera built on it.

:class:`ConfigFollower` reads partitions from the beginning in a daemon thread and keeps following
them, so changes apply while a service runs; every record goes to a callback (the tracker compiles
rules from it, :class:`CameraConfigs` keeps the parsed configs). Two ways to read the topic:

* no ``group_id`` (tracker, captioner): every partition, assigned by hand — every process sees
  every camera;
* with ``group_id`` (ingest replicas): a consumer group, so Kafka shares the partitions among the
  processes of the group (cooperative-sticky: a rebalance moves only the partitions it must). Each
  assigned partition is read from the beginning; for a revoked or lost one ``on_revoke`` is called
  *before* the partition goes to another member, so the owner can stop its cameras first (one
  camera is never served by two members at once).

``synced`` is set once every partition assigned so far has been read to its end (or the topic did
not exist at the first look: nothing to wait for); :meth:`ConfigFollower.start_synced` is how a
service waits for it, bounded, before it handles its first message.

:class:`CameraConfigs` is the thread-safe camera_id → :class:`CameraConfig` map: a tombstone (null
value) removes a camera's config; an invalid config is logged with the camera and the field and
the previous one stays in force. :meth:`CameraConfigs.snapshot` gives only cameras of partitions
read up to their end since assignment, so a reader does not act on an old record that a later one
in the same partition overrides.

:func:`read_camera_configs` reads the whole topic once (``vsa cameras``) and
:func:`publish_camera_config` writes one camera's config or its tombstone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from vsa.runtime.kafka import Output, Producer, consumer_config
from vsa.runtime.logs import event
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import CameraConfig, SchemaError

log = logging.getLogger("vsa.camera_configs")

#: Called with (key, value, partition) of each record; value None is a tombstone.
RecordHook = Callable[[bytes | None, bytes | None, int], None]
#: Called with the camera_ids of revoked partitions; returns once they may run elsewhere.
RevokeHook = Callable[[set[str]], None]
#: Called with revoked or lost partition numbers, before they go to another member.
PartitionsHook = Callable[[set[int]], None]


class ConfigFollower:
    """Reads the camera-config topic into ``on_record``, from the beginning, in a daemon thread.

    Args:
        client_id: Kafka client id (the hand-assigning reader's group is ``{client_id}-cfg``,
            used for nothing but the name; it commits nothing).
        on_record: gets every record, in partition order, in the follower's thread.
        group_id: read as a member of this group (partitions shared); None: every partition.
        on_revoke: with ``group_id``, called with revoked/lost partitions before they move.

    A missing topic is waited for (checked every 2 s). A failure of the reader is logged
    (``camera_config_follower_failed``); the service keeps its last configs.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        client_id: str,
        on_record: RecordHook,
        group_id: str | None = None,
        on_revoke: PartitionsHook | None = None,
    ) -> None:
        self.kafka, self.topic, self.client_id = kafka, topic, client_id
        self.on_record, self.group_id, self.on_revoke = on_record, group_id, on_revoke
        self.synced = threading.Event()
        self._loading: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Follow the topic in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="camera-config", daemon=True)
        self._thread.start()

    def wait_synced(self, timeout_s: float) -> bool:
        """Block until the topic was read to its end (True) or ``timeout_s`` passed (False)."""
        return self.synced.wait(timeout_s)

    def start_synced(self, timeout_s: float) -> bool:
        """Start, then wait up to ``timeout_s`` (0: not at all) until synced; whether it is.

        Not synced in time is a warning, not an error: the service runs, and its first messages
        may see no config or an old one."""
        self.start()
        if timeout_s > 0 and not self.wait_synced(timeout_s):
            event(log, "camera_config_not_synced", logging.WARNING, waited_s=timeout_s)
        return self.synced.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def loading(self, partitions: set[int]) -> None:
        """Mark ``partitions`` as not yet read to their end (assigned from the beginning)."""
        with self._lock:
            self._loading |= partitions
            if not self._loading:
                self.synced.set()  # assigned nothing: nothing to wait for

    def loaded(self, partition: int) -> None:
        """``partition`` was read to its end; synced once no partition is left loading."""
        with self._lock:
            self._loading.discard(partition)
            if not self._loading:
                self.synced.set()

    def loading_partitions(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._loading)

    def _run(self) -> None:
        group = self.group_id or f"{self.client_id}-cfg"
        options: dict[str, object] = {"enable.partition.eof": True}
        if self.group_id:
            options["partition.assignment.strategy"] = "cooperative-sticky"
        consumer = Consumer(consumer_config(self.kafka, self.client_id, group, **options))
        try:
            assigned = self._subscribe(consumer) if self.group_id else False
            while not self._stop.is_set():
                if not assigned:
                    assigned = self._assign(consumer)
                    if not assigned:
                        self._stop.wait(2.0)
                        continue
                self._consume(consumer.consume(500, 0.5))
        except Exception:  # the service keeps its last configs; say loudly that they may be stale
            log.exception("camera_config_follower_failed")
        finally:
            consumer.close()

    def _consume(self, messages: Sequence[Message]) -> None:
        for msg in messages:
            error = msg.error()
            if error is None:
                self.on_record(msg.key(), msg.value(), msg.partition() or 0)
            elif error.code() == KafkaError._PARTITION_EOF:
                self.loaded(msg.partition() or 0)
            else:
                event(log, "camera_config_consume_error", logging.WARNING, error=error.str())

    def _assign(self, consumer: Consumer) -> bool:
        """Assign every partition from the beginning; False while the topic does not exist."""
        meta = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            self.synced.set()  # nothing to wait for; configs that appear later still apply
            return False
        partitions = sorted(meta.partitions)
        self.loading(set(partitions))
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        event(log, "camera_config_following", topic=self.topic, partitions=len(partitions))
        return True

    def _subscribe(self, consumer: Consumer) -> bool:
        consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        self.loading(numbers)
        consumer.incremental_assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(numbers)]
        )
        event(log, "camera_config_assigned", topic=self.topic, partitions=sorted(numbers))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        if self.on_revoke is not None:
            self.on_revoke(numbers)
        with self._lock:
            self._loading -= numbers


class CameraConfigs:
    """Thread-safe map camera_id → :class:`CameraConfig`, fed by a :class:`ConfigFollower`.

    ``start``, ``start_synced`` and ``stop`` are the follower's (``self.follower``).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        client_id: str,
        group_id: str | None = None,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        self.topic, self.on_revoke = topic, on_revoke
        self.follower = ConfigFollower(
            kafka, topic, client_id, self.apply, group_id=group_id, on_revoke=self._revoked
        )
        self._configs: dict[str, CameraConfig] = {}
        self._partition_of: dict[str, int] = {}
        self._lock = threading.Lock()
        self.invalid = 0

    def start(self) -> None:
        self.follower.start()

    def start_synced(self, timeout_s: float) -> bool:
        return self.follower.start_synced(timeout_s)

    def stop(self) -> None:
        self.follower.stop()

    def get(self, camera_id: str) -> CameraConfig | None:
        with self._lock:
            return self._configs.get(camera_id)

    def snapshot(self) -> dict[str, CameraConfig]:
        """Configs of the cameras whose partition was read to its end since it was assigned."""
        loading = self.follower.loading_partitions()
        with self._lock:
            return {
                camera_id: config
                for camera_id, config in self._configs.items()
                if self._partition_of.get(camera_id) not in loading
            }

    def apply(self, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        """Apply one record of the topic (also used directly by tests and tools)."""
        camera_id = (key or b"").decode("utf-8", "replace")
        if value is None:
            with self._lock:
                self._configs.pop(camera_id, None)
                self._partition_of.pop(camera_id, None)
            return
        try:
            config = CameraConfig.from_bytes(value)
        except SchemaError as exc:
            self.invalid += 1
            event(log, "camera_config_invalid", logging.ERROR, camera_id=camera_id, error=str(exc))
            return
        with self._lock:
            self._configs[config.camera_id] = config
            if partition is not None:
                self._partition_of[config.camera_id] = partition

    def drop_partitions(self, partitions: set[int]) -> set[str]:
        """Forget the cameras of ``partitions`` (revoked); returns their camera_ids."""
        with self._lock:
            gone = {c for c, p in self._partition_of.items() if p in partitions}
            for camera_id in gone:
                self._configs.pop(camera_id, None)
                self._partition_of.pop(camera_id, None)
        return gone

    def _revoked(self, partitions: set[int]) -> None:
        cameras = self.drop_partitions(partitions)
        event(
            log,
            "camera_config_revoked",
            topic=self.topic,
            partitions=sorted(partitions),
            cameras=sorted(cameras),
        )
        if self.on_revoke is not None and cameras:
            self.on_revoke(cameras)


def read_camera_configs(
    kafka: KafkaSettings, topic: str, client_id: str, timeout_s: float = 30.0
) -> CameraConfigs:
    """Every camera's latest valid config, the topic read once to its end (no group, no
    commits); ``TimeoutError`` when that takes longer than ``timeout_s``. The caller checks
    that the topic exists: a missing one reads as empty."""
    configs = CameraConfigs(kafka, topic, client_id)
    try:
        configs.start()
        if not configs.follower.wait_synced(timeout_s):
            raise TimeoutError(f"{topic} was not read to its end within {timeout_s:g} s")
    finally:
        configs.stop()
    return configs


def publish_camera_config(
    kafka: KafkaSettings,
    topic: str,
    camera_id: str,
    config: CameraConfig | None,
    client_id: str,
    timeout_s: float = 30.0,
) -> None:
    """Write ``config`` as ``camera_id``'s record (None: a tombstone, which removes the camera)
    and wait until Kafka acknowledged it (``DeliveryError`` otherwise)."""
    producer = Producer(kafka, client_id)
    value = None if config is None else config.to_bytes()
    producer.produce(Output(topic, camera_id, value))  # type: ignore[arg-type]  # tombstone
    producer.flush(timeout_s)
