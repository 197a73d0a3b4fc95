"""Settings shared by every service: Kafka connection and security, topic names, the YAML loader.

Every service has one frozen pydantic-settings class with its own environment prefix
(``VSA_INGEST_``, ``VSA_DETECTOR_``...). Kafka and OpenSearch connection settings are shared and
read from the conventional variables (``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SASL_USERNAME``...,
``OPENSEARCH_URL``...), so one Secret can feed every pod. Precedence, highest first: explicit
arguments, environment variables, the optional YAML file, defaults.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from vsa.runtime.logs import event
from vsa.runtime.redact import register_model_secrets

_log = logging.getLogger("vsa.settings")

#: Largest message any vsa topic carries: room for a 4K JPEG at high quality. The same number is
#: set on the broker (message.max.bytes), on every topic (max.message.bytes), on producers
#: (message.max.bytes) and consumers (fetch.max.bytes, max.partition.fetch.bytes), so a frame that
#: one side accepts is never refused by another.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEFAULT_OPENSEARCH_URL = "http://127.0.0.1:19200"

# (settings class, YAML path) being loaded: nested settings built by default factories while the
# outer class loads must not read the outer class's file.
_yaml_path: contextvars.ContextVar[tuple[type[BaseSettings], Path] | None] = contextvars.ContextVar(
    "vsa_yaml", default=None
)


class ConfigError(Exception):
    """Raised for invalid configuration, with a message that names the file and the field."""


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning I/O and syntax errors into a :class:`ConfigError`."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc


class VsaSettings(BaseSettings):
    """Base of every settings class: frozen, unknown keys refused, env > YAML > defaults."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        loading = _yaml_path.get()
        if loading is None or loading[0] is not settings_cls:
            return (init_settings, env_settings, file_secret_settings)
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=loading[1])
        return (init_settings, env_settings, yaml_source, file_secret_settings)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


@contextlib.contextmanager
def _yaml_file(cls: type[BaseSettings], path: Path | None) -> Iterator[None]:
    token = _yaml_path.set((cls, path) if path is not None else None)
    try:
        yield
    finally:
        _yaml_path.reset(token)


def load_settings(
    cls: type[SettingsT], yaml_file: Path | None = None, **overrides: Any
) -> SettingsT:
    """Build settings from overrides, environment and an optional YAML file.

    Validation errors become a :class:`ConfigError` that names the file (or the environment) and
    every offending field, so a service can print one clear line and exit.
    """
    yaml_data = read_yaml(yaml_file) if yaml_file is not None else {}
    if not isinstance(yaml_data, dict):
        raise ConfigError(f"{yaml_file}: expected a mapping of settings at the top level")
    try:
        with _yaml_file(cls, yaml_file):
            settings = cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            f" (from {_blame(err['loc'], overrides, yaml_file, yaml_data)})"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from exc
    register_model_secrets(settings)  # masked in every log line from now on
    warn_unknown_env(cls)
    return settings


def unknown_env(
    cls: type[BaseSettings], environ: Mapping[str, str]
) -> list[tuple[str, str | None]]:
    """``(variable, suggestion or None)`` for each ``VSA_<SERVICE>_*`` variable that matches no
    setting of ``cls`` (only ``VSA_`` prefixes: ``KAFKA_*`` is shared with other programs)."""
    prefix = str(cls.model_config.get("env_prefix") or "").upper()
    if not prefix.startswith("VSA_"):
        return []
    known = [name.upper() for name in cls.model_fields]
    found = []
    for variable in sorted(environ):
        upper = variable.upper()
        key = upper[len(prefix) :].split("__", 1)[0]
        if not upper.startswith(prefix) or key in known:
            continue
        # compared without the prefix, which every name shares and would make all look alike
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        found.append((variable, prefix + close[0] if close else None))
    return found


def warn_unknown_env(cls: type[BaseSettings]) -> None:
    """One structured warning per unknown ``VSA_<SERVICE>_*`` variable, with a did-you-mean."""
    for variable, suggestion in unknown_env(cls, os.environ):
        event(
            _log,
            "unknown_setting_variable",
            logging.WARNING,
            variable=variable,
            settings=cls.__name__,
            did_you_mean=suggestion or "-",
        )


def _blame(
    loc: tuple[int | str, ...], overrides: dict[str, Any], yaml_file: Path | None, yaml_data: Any
) -> str:
    """Where a bad value came from: the command line (overrides win), the YAML file or the
    environment (the only other source a field can have)."""
    key = str(loc[0]) if loc else ""
    if key in overrides:
        return "command-line arguments"
    if yaml_file is not None and key in yaml_data:
        return str(yaml_file)
    return "environment"


class KafkaSettings(VsaSettings):
    """How to reach Kafka. Read from ``KAFKA_*`` variables, shared by all services."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = Field(
        DEFAULT_BOOTSTRAP,
        description="Comma-separated host:port list. Set it to use an existing cluster; the "
        "default is the local devstack broker.",
        min_length=1,
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="librdkafka security.protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = (
        Field(None, description="SASL mechanism when security_protocol is SASL_*.")
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (masked in logs).")
    ssl_ca_location: str | None = Field(None, description="CA bundle path for SSL.")
    ssl_certificate_location: str | None = Field(None, description="Client certificate path.")
    ssl_key_location: str | None = Field(None, description="Client key path.")
    ssl_key_password: SecretStr | None = Field(None, description="Client key password.")
    client_id_prefix: str = Field("vsa", description="Prefix of every client.id.", min_length=1)
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="Further librdkafka properties passed through unchanged "
        '(KAFKA_EXTRA=\'{"socket.keepalive.enable": "true"}\').',
    )

    def client_config(self) -> dict[str, Any]:
        """librdkafka properties for connection and security (secrets revealed here only)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": (
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ),
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        conf.update(self.extra)
        return conf


class OpenSearchSettings(VsaSettings):
    """How to reach OpenSearch. Read from ``OPENSEARCH_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="OPENSEARCH_")

    url: str = Field(DEFAULT_OPENSEARCH_URL, description="Base URL, http(s)://host:port.")
    username: str | None = Field(None, description="Basic-auth user name.")
    password: SecretStr | None = Field(None, description="Basic-auth password (masked in logs).")
    verify_certs: bool = Field(True, description="Verify TLS certificates.")
    ca_certs: str | None = Field(None, description="CA bundle path for TLS.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class TopicSpec(BaseModel):
    """How one topic is created: partitions, replication, retention and cleanup policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int = Field(
        8, ge=1, le=10_000, description="Partitions; bounds consumer parallelism."
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Replicas of every partition. None: 3 on a cluster of 3 or more brokers, "
        "else 1 (vsa.runtime.replication).",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Replicas that must have a write before it is acknowledged (producers use "
        "acks=all). None: 2 when the replication factor is 3 or more, else 1.",
    )
    retention_ms: int = Field(
        3_600_000,
        ge=-1,
        description="How long messages are kept (-1: forever). Frames are large: "
        "keep this short and raise it only with the disk to match.",
    )
    compact: bool = Field(
        False, description="Log compaction (latest value per key) instead of delete."
    )


class TopicNames(BaseModel):
    """Names of the vsa topics. ``prefix`` lets several pipelines (or tests) share one cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = Field("", description="Prepended to every topic name, e.g. 'site-a.'.")
    frames: str = "frames"
    detections: str = "detections"
    tracks: str = "tracks"
    alerts: str = "alerts"
    keyframes: str = "keyframes"
    counts: str = "counts"
    captions: str = "captions"
    camera_config: str = "camera-config"
    dlq_prefix: str = "dlq."

    def name(self, topic: str) -> str:
        """Full name of a topic given by its field name (``frames``, ``camera_config``...)."""
        return self.prefix + str(getattr(self, topic))

    def dlq(self, service: str) -> str:
        """Dead-letter topic of a service."""
        return f"{self.prefix}{self.dlq_prefix}{service}"


class ServiceSettings(VsaSettings):
    """Fields every Kafka-fed service has; a service subclasses it with its own ``env_prefix``."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicNames = Field(default_factory=TopicNames)
    group_id: str | None = Field(
        None, description="Consumer group; default vsa-<service>. Pods of one service share it."
    )
    max_batch: int = Field(
        32,
        ge=1,
        le=4096,
        description="Most messages handled together. Higher: better throughput "
        "(GPU batching), more latency and memory per batch.",
    )
    max_wait_ms: int = Field(
        20,
        ge=0,
        le=10_000,
        description="Longest wait to fill a batch once one message is there. "
        "Higher: fuller batches, more latency.",
    )
    metrics_host: str = Field("0.0.0.0", description="Address of /metrics, /healthz, /readyz.")  # noqa: S104
    metrics_port: int = Field(
        9100, ge=0, le=65535, description="Port of the metrics server; 0: any."
    )
