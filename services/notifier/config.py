"""Settings of the notifier service (``VSA_NOTIFIER_``): where alerts go and how hard to try."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from typing_extensions import Self

from vsa.runtime.settings import ServiceSettings
from vsa.schemas import ALERT_KINDS, AlertKind

#: Fields an MQTT topic template may use.
TOPIC_FIELDS = ("camera_id", "kind", "rule_id", "class_name")


class WebhookSettings(BaseModel):
    """An HTTP endpoint that gets each alert as a POST of its JSON (the alerts topic's model)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr | None = Field(
        None,
        description="http(s) URL that receives a POST per alert; unset: no webhook. A secret: "
        "many webhook URLs carry a token in their path; logs name only scheme, host and port.",
    )
    token: SecretStr | None = Field(
        None, description="Sent as 'Authorization: Bearer <token>' (masked in logs)."
    )
    timeout_s: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Seconds to connect and to wait for the answer; longer counts as a failed "
        "try (retried). Raise it for slow receivers, lower it to fail over sooner.",
    )
    verify_tls: bool = Field(True, description="Verify the https server's certificate.")
    ca_certs: Path | None = Field(None, description="CA bundle for https (default: system's).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class MqttSettings(BaseModel):
    """An MQTT broker that gets each alert as a message (payload: the alert's JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str | None = Field(None, description="Broker host name or address; unset: no MQTT.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 usually with TLS).")
    topic: str = Field(
        "vsa/alerts/{camera_id}/{kind}",
        min_length=1,
        max_length=512,
        description="Topic of each alert; may use {camera_id}, {kind}, {rule_id}, {class_name}.",
    )
    qos: Literal[0, 1] = Field(
        1,
        description="1: the broker acknowledges each alert (retried until it does); 0: sent "
        "once, unacknowledged.",
    )
    retain: bool = Field(False, description="Retained messages (last alert per topic).")
    username: str | None = Field(None, description="User name, if the broker asks for one.")
    password: SecretStr | None = Field(None, description="Password (masked in logs).")
    tls: bool = Field(False, description="Connect with TLS.")
    ca_certs: Path | None = Field(None, description="CA bundle for TLS (default: system's).")
    client_id: str = Field(
        "", max_length=128, description="MQTT client id; empty: vsa-notifier-<host>-<pid>."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive, seconds.")
    timeout_s: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Seconds to wait for the connection and for the broker's acknowledgement "
        "of one alert; longer counts as a failed try (retried).",
    )

    @field_validator("topic")
    @classmethod
    def _template(cls, value: str) -> str:
        for _, field, _, _ in string.Formatter().parse(value):
            if field is not None and field not in TOPIC_FIELDS:
                raise ValueError(f"unknown field {{{field}}}; known: {list(TOPIC_FIELDS)}")
        if "+" in value or "#" in value:
            raise ValueError("'+' and '#' are MQTT wildcards, not allowed in a topic")
        return value


class RetrySettings(BaseModel):
    """How a failed delivery is retried before the alert goes to the dead letters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tries: int = Field(
        5,
        ge=1,
        le=100,
        description="Tries per alert and sink (timeouts, refused connections, HTTP 408/425/429/"
        "5xx; other 4xx are not retried); then the alert goes to dlq.notifier.",
    )
    backoff_s: float = Field(
        0.5, ge=0, le=60, description="Wait before the second try; doubles each try after."
    )
    backoff_max_s: float = Field(30.0, ge=0, le=600, description="Longest wait between tries.")


class NotifierSettings(ServiceSettings):
    """Notifier settings (env prefix ``VSA_NOTIFIER_``, or a YAML file with the same keys).

    At least one sink: ``webhook.url`` or ``mqtt.host``."""

    model_config = SettingsConfigDict(env_prefix="VSA_NOTIFIER_")

    metrics_port: int = Field(
        9106, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz; 0: any."
    )
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    cameras: tuple[str, ...] = Field(
        (),
        max_length=10_000,
        description="Forward only the alerts of these camera ids; empty: every camera.",
    )
    kinds: tuple[AlertKind, ...] = Field(
        (), max_length=len(ALERT_KINDS), description="Forward only these alert kinds; empty: all."
    )
    idle_exit_s: float | None = Field(None, gt=0, description="Stop after this long idle (tools).")

    @model_validator(mode="after")
    def _a_sink(self) -> Self:
        if self.webhook.url is None and self.mqtt.host is None:
            raise ValueError(
                "no sink: set webhook.url (VSA_NOTIFIER_WEBHOOK__URL) or mqtt.host "
                "(VSA_NOTIFIER_MQTT__HOST)"
            )
        return self
