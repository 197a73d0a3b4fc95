"""Live view of the compacted camera-config topic: the latest valid config of every camera.

A background thread reads partitions from the beginning and keeps following them, so changes
apply while a service runs. A tombstone (null value) removes a camera's config; an invalid config
is logged with the camera and the field and the previous one stays in force.

Two ways to read the topic:

* no ``group_id`` (tracker, captioner): every partition, assigned by hand — every process sees
  every camera;
* with ``group_id`` (ingest replicas): a consumer group, so Kafka shares the partitions among the
  processes of the group (cooperative-sticky: a rebalance moves only the partitions it must). Each
  assigned partition is read from the beginning; a revoked or lost one drops its cameras, and
  ``on_revoke`` is called with them *before* the partition goes to another member, so the owner
  can stop those cameras first (one camera is never served by two members at once).

:meth:`snapshot` gives only cameras of partitions read up to their end since assignment, so a
reader does not act on an old record that a later one in the same partition overrides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from vsa.runtime.kafka import consumer_config
from vsa.runtime.logs import event
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import CameraConfig, SchemaError

log = logging.getLogger("vsa.camera_configs")

#: Called with the camera_ids of revoked partitions; returns once they may run elsewhere.
RevokeHook = Callable[[set[str]], None]


class CameraConfigs:
    """Thread-safe map camera_id → :class:`CameraConfig`, fed from Kafka by :meth:`start`."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        client_id: str,
        group_id: str | None = None,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        self.kafka, self.topic, self.client_id = kafka, topic, client_id
        self.group_id, self.on_revoke = group_id, on_revoke
        self._configs: dict[str, CameraConfig] = {}
        self._partition_of: dict[str, int] = {}
        self._loading: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invalid = 0

    def get(self, camera_id: str) -> CameraConfig | None:
        with self._lock:
            return self._configs.get(camera_id)

    def snapshot(self) -> dict[str, CameraConfig]:
        """Configs of the cameras whose partition was read to its end since it was assigned."""
        with self._lock:
            return {
                camera_id: config
                for camera_id, config in self._configs.items()
                if self._partition_of.get(camera_id) not in self._loading
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

    def loading(self, partitions: set[int]) -> None:
        """Hide ``partitions`` from :meth:`snapshot` until :meth:`loaded` (read to the end)."""
        with self._lock:
            self._loading |= partitions

    def loaded(self, partition: int) -> None:
        with self._lock:
            self._loading.discard(partition)

    def drop_partitions(self, partitions: set[int]) -> set[str]:
        """Forget the cameras of ``partitions`` (revoked); returns their camera_ids."""
        with self._lock:
            gone = {c for c, p in self._partition_of.items() if p in partitions}
            for camera_id in gone:
                self._configs.pop(camera_id, None)
                self._partition_of.pop(camera_id, None)
            self._loading -= partitions
        return gone

    def start(self) -> None:
        """Follow the topic in a daemon thread (a missing topic is waited for)."""
        self._thread = threading.Thread(target=self._run, name="camera-configs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        group = self.group_id or f"{self.client_id}-cfg"
        consumer = Consumer(
            consumer_config(self.kafka, self.client_id, group, **self._group_options())
        )
        try:
            assigned = self._subscribe(consumer) if self.group_id else False
            while not self._stop.is_set():
                if not assigned:
                    assigned = self._assign(consumer)
                    if not assigned:
                        self._stop.wait(2.0)
                        continue
                for msg in consumer.consume(100, 0.5):
                    self._on_message(msg)
        finally:
            consumer.close()

    def _group_options(self) -> dict[str, object]:
        options: dict[str, object] = {"enable.partition.eof": True}
        if self.group_id:
            options["partition.assignment.strategy"] = "cooperative-sticky"
        return options

    def _on_message(self, msg: Message) -> None:
        error = msg.error()
        if error is None:
            self.apply(msg.key(), msg.value(), msg.partition())
        elif error.code() == KafkaError._PARTITION_EOF:
            self.loaded(msg.partition() or 0)

    def _assign(self, consumer: Consumer) -> bool:
        meta = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return False
        self.loading(set(meta.partitions))
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions])
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
        cameras = self.drop_partitions(numbers)
        event(
            log,
            "camera_config_revoked",
            topic=self.topic,
            partitions=sorted(numbers),
            cameras=sorted(cameras),
        )
        if self.on_revoke is not None and cameras:
            self.on_revoke(cameras)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
