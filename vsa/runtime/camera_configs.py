"""Live view of the compacted camera-config topic: the latest valid config of every camera.

A background thread reads every partition from the beginning and keeps following it, so
changes apply while a service runs. A tombstone (null value) removes a camera's config; an
invalid config is logged with the camera and the field and the previous one stays in force.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from vsa.runtime.kafka import consumer_config
from vsa.runtime.logs import event
from vsa.runtime.settings import KafkaSettings
from vsa.schemas import CameraConfig, SchemaError

log = logging.getLogger("vsa.camera_configs")


class CameraConfigs:
    """Thread-safe map camera_id → :class:`CameraConfig`, fed from Kafka by :meth:`start`."""

    def __init__(self, kafka: KafkaSettings, topic: str, client_id: str) -> None:
        self.kafka, self.topic, self.client_id = kafka, topic, client_id
        self._configs: dict[str, CameraConfig] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invalid = 0

    def get(self, camera_id: str) -> CameraConfig | None:
        with self._lock:
            return self._configs.get(camera_id)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the topic (also used directly by tests and tools)."""
        camera_id = (key or b"").decode("utf-8", "replace")
        if value is None:
            with self._lock:
                self._configs.pop(camera_id, None)
            return
        try:
            config = CameraConfig.from_bytes(value)
        except SchemaError as exc:
            self.invalid += 1
            event(log, "camera_config_invalid", logging.ERROR, camera_id=camera_id, error=str(exc))
            return
        with self._lock:
            self._configs[config.camera_id] = config

    def start(self) -> None:
        """Follow the topic in a daemon thread (a missing topic is waited for)."""
        self._thread = threading.Thread(target=self._run, name="camera-configs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer = Consumer(consumer_config(self.kafka, self.client_id, f"{self.client_id}-cfg"))
        try:
            assigned = False
            while not self._stop.is_set():
                if not assigned:
                    assigned = self._assign(consumer)
                    if not assigned:
                        self._stop.wait(2.0)
                        continue
                for msg in consumer.consume(100, 0.5):
                    if msg.error() is None:
                        self.apply(msg.key(), msg.value())
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> bool:
        meta = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return False
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
