"""The live alert stream: alerts from the alerts topic to every open server-sent-events client.

One reader per process follows the alerts topic as a bystander
(:class:`~vsa.runtime.tail.TopicTail`: partitions assigned by hand from their end at start, no
consumer group, no commits), in a daemon thread, and hands each alert to the clients whose
filters it passes. A client is an ``asyncio.Queue`` on the server's event loop, fed with
``call_soon_threadsafe``; a client slower than the alerts loses the newest alerts past
``stream_queue`` (counted), never blocking the reader or the other clients. The latest
``stream_recent`` alerts are kept, so a client that reconnects with ``Last-Event-ID`` (the
alert_id it saw last) gets what it missed while they are still kept.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from vsa.runtime.logs import event
from vsa.runtime.settings import KafkaSettings
from vsa.runtime.tail import TopicMissingError, TopicTail
from vsa.schemas import Alert, SchemaError
from vsa.services.indexer.alert_history import AlertQuery

log = logging.getLogger("vsa.api.live")

#: What a client's queue gets after the last alert when the feed stops.
CLOSED = None


class TooManyClientsError(Exception):
    """The feed serves ``max_clients`` streams already."""


def wanted(alert: Alert, filters: AlertQuery) -> bool:
    """Whether ``alert`` passes a stream's camera and kind filters (empty: everything)."""
    return (not filters.cameras or alert.camera_id in filters.cameras) and (
        not filters.kinds or alert.kind in filters.kinds
    )


def missed_since(recent: list[Alert], last_id: str | None, filters: AlertQuery) -> list[Alert]:
    """The kept alerts after the one with ``last_id`` that pass ``filters``; none when there is
    no ``last_id`` or it is no longer kept (the client then starts from now)."""
    if last_id is None:
        return []
    ids = [alert.alert_id for alert in recent]
    if last_id not in ids:
        return []
    after = len(ids) - 1 - ids[::-1].index(last_id)  # an alert may come twice (redelivery)
    return [alert for alert in recent[after + 1 :] if wanted(alert, filters)]


@dataclass(eq=False)
class Client:
    """One open stream: its filters and its queue on the server's event loop."""

    filters: AlertQuery
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Alert | None]
    on_drop: Callable[[], None] = field(default=lambda: None)

    def offer(self, alert: Alert | None) -> None:
        """Queue ``alert`` (runs on the event loop); full: drop it, counted. The end of the
        stream (:data:`CLOSED`) always gets in, in place of the oldest alert queued."""
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.on_drop()
            if alert is CLOSED:  # make room: the stream must learn that it ends
                self.queue.get_nowait()
                self.queue.put_nowait(CLOSED)


class AlertFeed:
    """Follows the alerts topic and fans alerts out to :class:`Client` queues.

    Args:
        queue_size: alerts buffered per client.
        recent: latest alerts kept for reconnecting clients.
        max_clients: open streams at most; :meth:`subscribe` refuses more.
        on_alert: called with every alert read (metrics, the cameras' counts).
        on_drop: called for every alert a slow client lost (metrics).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        queue_size: int = 256,
        recent: int = 100,
        max_clients: int = 100,
        on_alert: Callable[[Alert], None] = lambda alert: None,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self.kafka, self.topic = kafka, topic
        self.queue_size, self.max_clients = queue_size, max_clients
        self.on_alert, self.on_drop = on_alert, on_drop
        self.following = threading.Event()
        self.skipped = 0
        self._recent: deque[Alert] = deque(maxlen=recent)
        self._clients: set[Client] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._problem: str | None = "not started"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and end every open stream (again: nothing more happens)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for client in self._clients:
                try:
                    client.loop.call_soon_threadsafe(client.offer, CLOSED)
                except RuntimeError:  # its event loop is closed: the stream is gone already
                    continue

    def problem(self) -> str | None:
        """Why the feed is not following the topic now, or None."""
        return self._problem

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def subscribe(self, filters: AlertQuery, last_event_id: str | None = None) -> Client:
        """A new client on the running event loop, with the kept alerts it missed queued first.
        :class:`TooManyClientsError` past ``max_clients``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Alert | None] = asyncio.Queue(self.queue_size)
        client = Client(filters, loop, queue, self.on_drop)
        with self._lock:
            if len(self._clients) >= self.max_clients:
                raise TooManyClientsError(f"{self.max_clients} live streams are open already")
            for alert in missed_since(list(self._recent), last_event_id, filters):
                client.offer(alert)
            self._clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)

    def publish(self, alert: Alert) -> None:
        """Keep ``alert`` and hand it to every client that wants it (any thread)."""
        with self._lock:
            self._recent.append(alert)
            for client in self._clients:
                if wanted(alert, client.filters):
                    client.loop.call_soon_threadsafe(client.offer, alert)

    def _run(self) -> None:
        tail: TopicTail | None = None
        try:
            while not self._stop.is_set():
                if tail is None:
                    tail = self._open()
                    if tail is None:
                        self._stop.wait(2.0)
                        continue
                for record in tail.poll(0.5):
                    self._take(record.value, record.partition, record.offset)
        except Exception as exc:  # the API keeps serving; readiness says the stream is down
            self._problem = f"alerts reader failed: {type(exc).__name__}: {exc}"
            log.exception("api_alerts_reader_failed")
        finally:
            if tail is not None:
                tail.close()

    def _open(self) -> TopicTail | None:
        tail = TopicTail(self.kafka, self.topic, "api-alerts")
        try:
            partitions = tail.start(timeout_s=5.0)
        except Exception as exc:  # missing topic, or Kafka not answering: try again later
            tail.close()
            missing = isinstance(exc, TopicMissingError)
            self._problem = (
                f"alerts topic {self.topic} does not exist yet"
                if missing
                else f"Kafka did not answer: {exc}"
            )
            return None
        self._problem = None
        self.following.set()
        event(log, "api_alerts_following", topic=self.topic, partitions=partitions)
        return tail

    def _take(self, value: bytes | None, partition: int, offset: int) -> None:
        if value is None:
            return
        try:
            alert = Alert.from_bytes(value)
        except SchemaError as exc:
            self.skipped += 1
            event(
                log,
                "api_alert_skipped",
                logging.WARNING,
                partition=partition,
                offset=offset,
                error=str(exc)[:300],
            )
            return
        self.on_alert(alert)
        self.publish(alert)
