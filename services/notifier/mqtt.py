"""The MQTT sink: one publish of an alert's JSON per attempt (the core retries).

The paho client keeps its connection in a background thread and reconnects by itself (1 s
doubling to 30 s). An attempt waits up to ``timeout_s`` for the connection, publishes on the
topic from the template (``vsa/alerts/{camera_id}/{kind}`` by default) and, with QoS 1, waits
up to ``timeout_s`` for the broker's PUBACK; no connection or no PUBACK in time is a failed try.
A PUBACK that comes after the try gave up means the broker gets the alert twice (paho resends
unacknowledged QoS 1 messages itself): subscribers can drop repeats by the payload's alert_id.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from vsa.schemas import Alert

from .config import MqttSettings
from .core import Attempt, mqtt_topic

#: Seconds between reconnection attempts: the first wait, doubled up to the last.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


class MqttSink:
    """Publishes alerts to the broker of ``settings`` (``host`` must be set)."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings) -> None:
        if settings.host is None:
            raise ValueError("mqtt.host is not set")
        self.settings = settings
        self.endpoint = f"{'mqtts' if settings.tls else 'mqtt'}://{settings.host}:{settings.port}"
        self._connected = threading.Event()
        self._last_problem = "not connected yet"
        client_id = settings.client_id or f"vsa-notifier-{socket.gethostname()}-{os.getpid()}"
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else None
            self._client.username_pw_set(settings.username, password)
        if settings.tls:
            self._client.tls_set(ca_certs=str(settings.ca_certs) if settings.ca_certs else None)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)

    def start(self) -> None:
        """Connect in the background (and keep reconnecting)."""
        self._client.connect_async(
            self.settings.host or "", self.settings.port, self.settings.keepalive_s
        )
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self._last_problem = f"broker refused the connection: {reason}"
            return
        self._connected.set()

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        self._last_problem = f"disconnected: {reason}"

    def send(self, alert: Alert, body: bytes) -> Attempt:
        """One publish (and, with QoS 1, the wait for its PUBACK)."""
        timeout = self.settings.timeout_s
        if not self._connected.wait(timeout):
            return Attempt("retry", f"no connection within {timeout:g} s ({self._last_problem})")
        topic = mqtt_topic(self.settings.topic, alert)
        info = self._client.publish(topic, body, qos=self.settings.qos, retain=self.settings.retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return Attempt("retry", f"publish failed: {paho.error_string(info.rc)}")
        if self.settings.qos == 0:
            return Attempt("delivered", f"published on {topic} (QoS 0)")
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            return Attempt("retry", f"publish failed: {exc}")
        if not info.is_published():
            return Attempt("retry", f"no PUBACK within {timeout:g} s")
        return Attempt("delivered", f"acknowledged on {topic}")
