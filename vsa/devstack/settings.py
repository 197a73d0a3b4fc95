"""Settings of the local stack (``VSA_DEVSTACK_*``) and the paths derived from them.

Layout, with the defaults (``<cache>`` is ``$XDG_CACHE_HOME/vsa`` or ``~/.cache/vsa``)::

    <cache>/kafka-<v>/libs/*.jar            broker jars from Maven Central (fetched once)
    <cache>/opensearch-<v>-artifacts/       distribution zip, k-NN zip, lang-painless jars
    <state>/kafka/                          server.properties, data/, kafka.log, kafka.pid
    <state>/kafka-<n>/node-<i>/             the same for node i of an n-node cluster (brokers=n)
    <state>/opensearch/                     opensearch.log, opensearch.pid
    <opensearch_dir>/opensearch-<v>/        installed OpenSearch home (with k-NN)
    <opensearch_dir>/data, logs, tmp        OpenSearch's own files

``<state>`` defaults to ``<cache>/state``. OpenSearch refuses to run as root, so when the stack is
started by root it runs as ``opensearch_user`` and ``<opensearch_dir>`` defaults to
``/var/lib/vsa-devstack`` (root's home is not reachable by other users); otherwise it defaults to
``<state>/opensearch``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vsa.runtime.settings import VsaSettings

#: Default home of the OpenSearch part when the stack is started by root.
ROOT_OPENSEARCH_DIR = Path("/var/lib/vsa-devstack")

_VERSION_PATTERN = r"^\d+\.\d+\.\d+$"
#: Most Kafka nodes the local stack runs (all are controller voters).
MAX_BROKERS = 5
#: Node i's ports are the configured ones plus PORT_STRIDE * i (so the default client and
#: controller ports, one apart, interleave: 19092-19097 for three nodes).
PORT_STRIDE = 2


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vsa`` when that variable is set, else ``~/.cache/vsa``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "vsa"


@dataclass(frozen=True)
class NodePorts:
    """The two loopback ports of one Kafka node."""

    client: int  # PLAINTEXT listener: clients and the other brokers
    controller: int  # CONTROLLER listener: the KRaft quorum


def kafka_node_ports(settings: DevstackSettings) -> tuple[NodePorts, ...]:
    """Ports of each Kafka node: node i (from 0) adds ``PORT_STRIDE * i`` to the configured ones,
    so the first node keeps them (19092/19093, then 19094/19095, 19096/19097 by default)."""
    return tuple(
        NodePorts(
            settings.kafka_port + PORT_STRIDE * i,
            settings.kafka_controller_port + PORT_STRIDE * i,
        )
        for i in range(settings.brokers)
    )


def _port(default: int, what: str) -> Any:
    return Field(default, ge=1024, le=65535, description=f"Loopback TCP port of {what}.")


class DevstackSettings(VsaSettings):
    """Where and how the local Kafka broker and OpenSearch node run. Env prefix ``VSA_DEVSTACK_``.

    The stack listens on 127.0.0.1 only. External endpoints are not configured here: when
    ``KAFKA_BOOTSTRAP_SERVERS`` or ``OPENSEARCH_URL`` is set, that part is not started at all.
    """

    model_config = SettingsConfigDict(env_prefix="VSA_DEVSTACK_")

    brokers: int = Field(
        1,
        ge=1,
        le=MAX_BROKERS,
        description="Kafka nodes, each a broker and a KRaft controller (all of them voters). 1: "
        "the demo's single broker. 3: the production shape, where topics get replication factor "
        "3 and min.insync.replicas 2 and any one node may be killed. Node i (from 0) listens on "
        f"kafka_port + {PORT_STRIDE}*i and kafka_controller_port + {PORT_STRIDE}*i.",
    )
    kafka_port: int = _port(19092, "the (first) Kafka broker (clients connect here)")
    kafka_controller_port: int = _port(19093, "the (first) KRaft controller listener")
    opensearch_port: int = _port(19200, "the OpenSearch HTTP API")
    opensearch_transport_port: int = _port(19300, "OpenSearch's node-to-node transport")

    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Downloads (broker jars, OpenSearch zips); kept between runs, safe to delete.",
    )
    state_dir: Path | None = Field(
        None,
        description="Pid files, logs and Kafka's data. Default: <cache_dir>/state. Delete it "
        "(stack down) to start from empty topics.",
    )
    opensearch_dir: Path | None = Field(
        None,
        description="OpenSearch home, data and logs. Must be reachable by the user OpenSearch runs "
        "as. Default: /var/lib/vsa-devstack when run by root, else <state_dir>/opensearch.",
    )
    opensearch_user: str = Field(
        "vsa-devstack",
        min_length=1,
        description="System user OpenSearch runs as when the stack is started by root (OpenSearch "
        "refuses to run as root); created on first use.",
    )

    kafka_version: str = Field(
        "3.9.2", pattern=_VERSION_PATTERN, description="Apache Kafka version (Maven Central)."
    )
    scala_version: str = Field(
        "2.13", pattern=r"^\d+\.\d+$", description="Scala build of the broker (kafka_<scala>)."
    )
    opensearch_version: str = Field(
        "2.19.1",
        pattern=_VERSION_PATTERN,
        description="OpenSearch version; the distribution zip and opensearch-knn <v>.0 must both "
        "exist on Maven Central (2.19.1 is the only one that has both).",
    )

    kafka_heap_mb: int = Field(
        512, ge=128, le=65536, description="Broker JVM max heap (MiB). Raise for many big frames."
    )
    opensearch_heap_mb: int = Field(
        512,
        ge=256,
        le=65536,
        description="OpenSearch JVM heap (MiB, min = max). Lucene k-NN graphs live on the heap: "
        "raise it for large vector indices.",
    )

    kafka_start_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="Seconds to wait for Kafka to answer after starting it."
    )
    opensearch_start_timeout_s: float = Field(
        180.0,
        gt=0,
        le=3600,
        description="Seconds to wait for OpenSearch to be green/yellow with k-NN "
        "(~30 s on 2 cores).",
    )
    stop_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Seconds between SIGTERM and SIGKILL when stopping."
    )
    fetch_timeout_s: float = Field(
        1800.0, gt=0, le=7200, description="Seconds one Maven download may take before giving up."
    )

    @model_validator(mode="after")
    def _ports_distinct(self) -> DevstackSettings:
        ports = {
            "opensearch_port": self.opensearch_port,
            "opensearch_transport_port": self.opensearch_transport_port,
        }
        for index, node in enumerate(kafka_node_ports(self)):
            suffix = "" if index == 0 else f" (node {index + 1})"
            ports[f"kafka_port{suffix}"] = node.client
            ports[f"kafka_controller_port{suffix}"] = node.controller
        if len(set(ports.values())) != len(ports):
            listed = ", ".join(f"{k}={v}" for k, v in ports.items())
            raise ValueError(f"the ports must differ, got {listed}")
        if (highest := max(ports.values())) > 65535:
            raise ValueError(f"port {highest} is past 65535: lower kafka_port or brokers")
        return self

    @property
    def state_path(self) -> Path:
        """Directory of pid files, logs and Kafka's data."""
        return self.state_dir if self.state_dir is not None else self.cache_dir / "state"

    @property
    def opensearch_path(self) -> Path:
        """Directory of the OpenSearch home, data and logs."""
        if self.opensearch_dir is not None:
            return self.opensearch_dir
        if os.geteuid() == 0:
            return ROOT_OPENSEARCH_DIR
        return self.state_path / "opensearch"

    @property
    def knn_version(self) -> str:
        """Version of the opensearch-knn plugin that matches ``opensearch_version``."""
        return f"{self.opensearch_version}.0"
