"""The notifier on the real local Kafka, delivering to a real HTTP server started by the test
(which fails the first tries) and to a real mosquitto broker started by the test (own port, own
folder, stopped by pid)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from vsa.runtime.kafka import Output, Producer, ensure_topics
from vsa.runtime.service import BatchLoop
from vsa.runtime.settings import KafkaSettings, TopicNames, TopicSpec
from vsa.runtime.topic_admin import message_counts
from vsa.schemas import Alert, DeadLetter
from vsa.services.notifier.config import NotifierSettings
from vsa.services.notifier.service import NotifierHandler, build_loop, build_sinks

from ..unit.test_notifier import make_alert
from .test_indexer import committed, read_topic
from .test_ingest_live import wait_for

pytestmark = pytest.mark.integration

TOKEN = "tok-webhook-secret-42"
PASSWORD = "mqtt-secret-pw-42"
MOSQUITTO = shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/usr/local/sbin")
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="needs Debian's mosquitto")


@dataclass
class Receiver:
    """What the test's webhook got: every request, and per camera the answers to give
    (the last one repeats)."""

    script: dict[str, list[int]]
    requests: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            camera = headers.get("X-Vsa-Camera-Id", "")
            seen = sum(1 for _, h, _ in self.requests if h.get("X-Vsa-Camera-Id") == camera)
            answers = self.script.get(camera, [200])
            status = answers[min(seen, len(answers) - 1)]
            self.requests.append((status, headers, body))
            return status

    def delivered(self) -> list[bytes]:
        with self.lock:
            return [body for status, _, body in self.requests if status == 200]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    """A local HTTP server on a free port answering POSTs from its script."""
    got = Receiver(script={})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = got.answer(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield got, server.server_address[1]
    server.shutdown()
    server.server_close()


def topics(kafka: KafkaSettings, unique_name: str) -> TopicNames:
    names = TopicNames(prefix=f"{unique_name}.")
    ensure_topics(
        kafka,
        {
            names.name("alerts"): TopicSpec(partitions=2),
            names.dlq("notifier"): TopicSpec(partitions=1),
        },
    )
    return names


def publish(kafka: KafkaSettings, names: TopicNames, alerts: Sequence[Alert]) -> None:
    producer = Producer(kafka, "test-alerts")
    for alert in alerts:
        producer.produce(Output(names.name("alerts"), alert.camera_id, alert.to_bytes()))
    producer.flush(30)


def run_until(loop: BatchLoop, done: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    """Run the loop in a thread until ``done()``, then stop it (SIGTERM's path) and join."""
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_for(done, timeout_s, what)
    finally:
        loop.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def settings(
    kafka: KafkaSettings, names: TopicNames, unique_name: str, **fields: Any
) -> NotifierSettings:
    values: dict[str, Any] = {
        "kafka": kafka,
        "topics": names,
        "group_id": f"{unique_name}-notifier",
        "metrics_port": 0,
        "retry": {"max_tries": 3, "backoff_s": 0.05, "backoff_max_s": 0.2},
        **fields,
    }
    return NotifierSettings(**values)


def test_webhook_retries_then_delivers_and_dead_letters_what_it_cannot(
    kafka: KafkaSettings, unique_name: str, receiver: tuple[Receiver, int]
) -> None:
    got, port = receiver
    # gate: two 503s, then OK; dock: 500 on every try; lobby: 400 (a refusal: not retried)
    got.script = {"gate": [503, 503, 200], "dock": [500], "lobby": [400]}
    names = topics(kafka, unique_name)
    alerts = [
        make_alert("gate", "loitering", 1),
        make_alert("dock", "crowding", 2),
        make_alert("lobby", "crowding", 3),
        make_alert("yard", "line_crossing", 4),
    ]
    publish(kafka, names, alerts)
    url = f"http://127.0.0.1:{port}/hooks/{TOKEN}-in-path?x=1"
    config = settings(kafka, names, unique_name, webhook={"url": url, "token": TOKEN})
    loop, handler = build_loop(config, build_sinks(config))
    dlq = names.dlq("notifier")
    run_until(
        loop,
        lambda: committed(kafka, config.group_id or "", names.name("alerts")) == len(alerts),
        "every alert to be settled and committed",
    )
    assert sorted(got.delivered()) == sorted([alerts[0].to_bytes(), alerts[3].to_bytes()])
    tries = Counter(h["X-Vsa-Camera-Id"] for _, h, _ in got.requests)
    assert tries == {"gate": 3, "dock": 3, "lobby": 1, "yard": 1}
    for _, headers, body in got.requests:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["X-Vsa-Alert-Id"] == Alert.model_validate_json(body).alert_id
        assert headers["Content-Type"] == "application/json"
    assert message_counts(kafka, [dlq]) == {dlq: 2}
    dead = {m.key(): m for m in read_topic(kafka, dlq, 2)}
    assert set(dead) == {b"dock", b"lobby"}
    check_dead_letter(
        dead[b"dock"],
        alerts[1],
        f"webhook http://127.0.0.1:{port}: not delivered "
        "after 3 tries: HTTP 500 Internal Server Error",
    )
    check_dead_letter(
        dead[b"lobby"],
        alerts[2],
        f"webhook http://127.0.0.1:{port} refused the alert: HTTP 400 Bad Request (not retried)",
    )
    assert handler.delivered == 2
    assert not loop.health.blockers


def check_dead_letter(msg: Message, alert: Alert, error: str) -> None:
    meta = DeadLetter.from_headers(msg.headers())
    assert msg.value() == alert.to_bytes()
    assert meta.service == "notifier"
    assert meta.error_class == "NotificationError"
    assert meta.error_message == error
    assert TOKEN not in str(msg.headers())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mosquitto:
    """A mosquitto broker of the test's own: port, folder, process started and killed by pid."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def configure(self) -> None:
        passwords = self.folder / "passwords"
        subprocess.run(
            ["mosquitto_passwd", "-c", "-b", str(passwords), "vsa", PASSWORD], check=True
        )
        (self.folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {passwords}\nuser {getpass.getuser()}\npersistence false\n"
            f"log_dest file {self.folder / 'mosquitto.log'}\n",
            encoding="utf-8",
        )

    def start(self) -> None:
        self.process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.folder / "mosquitto.conf")])
        wait_for(self.listening, 20, "mosquitto to listen")

    def listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.configure()
    yield broker
    broker.stop()


def subscribe(broker: Mosquitto) -> tuple[Any, list[tuple[str, bytes]]]:
    """A paho client of the test's own, subscribed to every vsa alert topic."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-subscriber")
    client.username_pw_set("vsa", PASSWORD)
    client.on_connect = lambda c, *_: c.subscribe("vsa/alerts/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: received.append((msg.topic, msg.payload))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert subscribed.wait(20)
    return client, received


@needs_mosquitto
def test_mqtt_waits_for_the_broker_then_publishes(
    kafka: KafkaSettings, unique_name: str, mosquitto: Mosquitto
) -> None:
    names = topics(kafka, unique_name)
    alerts = [make_alert("gate", "loitering", 1), make_alert("dock", "crowding", 2)]
    publish(kafka, names, alerts)
    mqtt = {
        "host": "127.0.0.1",
        "port": mosquitto.port,
        "username": "vsa",
        "password": PASSWORD,
        "timeout_s": 1,
    }
    config = settings(
        kafka,
        names,
        unique_name,
        mqtt=mqtt,
        retry={"max_tries": 100, "backoff_s": 0.1, "backoff_max_s": 0.5},
    )
    sinks = build_sinks(config)
    loop, handler = build_loop(config, sinks)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        # the broker is not up yet: the first alert is retried and the service is not ready
        wait_for(lambda: retries(handler) >= 2, 60, "tries against the absent broker")
        assert "mqtt" in loop.health.blockers
        mosquitto.start()
        subscriber, received = subscribe(mosquitto)
        wait_for(lambda: len(received) == 2, 90, "both alerts on the broker")
        wait_for(
            lambda: committed(kafka, config.group_id or "", names.name("alerts")) == 2,
            30,
            "the offsets to be committed",
        )
        subscriber.loop_stop()
    finally:
        loop.stop.set()
        thread.join(timeout=60)
        for sink in sinks:
            sink.close()  # type: ignore[attr-defined]
    assert sorted(received) == sorted(
        [
            ("vsa/alerts/gate/loitering", alerts[0].to_bytes()),
            ("vsa/alerts/dock/crowding", alerts[1].to_bytes()),
        ]
    )
    assert message_counts(kafka, [names.dlq("notifier")]) == {names.dlq("notifier"): 0}
    assert "mqtt" not in loop.health.blockers


def retries(handler: NotifierHandler) -> float:
    return sum(
        s.value for s in handler.metrics.retries.collect()[0].samples if s.name.endswith("_total")
    )
