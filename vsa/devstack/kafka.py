"""The local Kafka broker: one KRaft node (broker + controller) on 127.0.0.1, from Maven jars."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from vsa.devstack.errors import DevstackError
from vsa.devstack.health import Health
from vsa.devstack.maven import MavenDep, maven_fetch
from vsa.devstack.procs import spawn, tail_text, write_pid
from vsa.devstack.settings import DevstackSettings
from vsa.devstack.tools import Java
from vsa.runtime.settings import MAX_MESSAGE_BYTES

log = logging.getLogger("vsa.devstack")

HOST = "127.0.0.1"
MAIN_CLASS = "kafka.Kafka"
#: Requests (a produce batch) may be several messages of MAX_MESSAGE_BYTES plus overhead.
SOCKET_REQUEST_MAX_BYTES = max(100 * 2**20, 4 * MAX_MESSAGE_BYTES)
_SLF4J_VERSION = "1.7.36"


@dataclass(frozen=True)
class KafkaPaths:
    """Where the broker's jars, config, data, log and pid file are."""

    home: Path
    state: Path

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def server_properties(self) -> Path:
        return self.state / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.state / "log4j.properties"

    @property
    def log(self) -> Path:
        return self.state / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.state / "kafka.pid"


def kafka_paths(settings: DevstackSettings) -> KafkaPaths:
    """The broker's paths under the cache and state folders (absolute, symlinks resolved)."""
    home = settings.cache_dir.resolve() / f"kafka-{settings.kafka_version}"
    return KafkaPaths(home=home, state=settings.state_path.resolve() / "kafka")


def bootstrap_servers(settings: DevstackSettings) -> str:
    """``host:port`` clients use for the local broker."""
    return f"{HOST}:{settings.kafka_port}"


def cmd_marker(settings: DevstackSettings) -> str:
    """The argument that identifies our broker's command line (its config file)."""
    return str(kafka_paths(settings).server_properties)


def render_server_properties(settings: DevstackSettings, data_dir: Path) -> str:
    """``server.properties`` of a single-node KRaft cluster on loopback, sized for video frames.

    Topics are never created implicitly (``auto.create.topics.enable=false``): every topic is made
    by the topic admin with its own spec. Message size limits equal ``MAX_MESSAGE_BYTES``.
    """
    port, ctrl = settings.kafka_port, settings.kafka_controller_port
    props: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.voters": f"1@{HOST}:{ctrl}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{ctrl}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 1,
        "group.initial.rebalance.delay.ms": 0,
        "message.max.bytes": MAX_MESSAGE_BYTES,
        "replica.fetch.max.bytes": MAX_MESSAGE_BYTES,
        "socket.request.max.bytes": SOCKET_REQUEST_MAX_BYTES,
    }
    lines = [f"{key}={value}" for key, value in props.items()]
    header = "# Written by vsa.devstack at every start; edit DevstackSettings instead.\n"
    return header + "\n".join(lines) + "\n"


def render_log4j_properties() -> str:
    """log4j 1 config: everything at INFO to stdout, which :func:`spawn` sends to kafka.log."""
    return (
        "log4j.rootLogger=INFO, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.org.apache.kafka.storage=WARN\n"
    )


def fetch_kafka(settings: DevstackSettings) -> Path:
    """Broker jars in the cache (fetched once with mvn, ~46 MB). Returns the Kafka home."""
    home = kafka_paths(settings).home
    deps = [
        MavenDep("org.apache.kafka", f"kafka_{settings.scala_version}", settings.kafka_version),
        MavenDep("org.slf4j", "slf4j-reload4j", _SLF4J_VERSION),
    ]
    maven_fetch(f"Kafka {settings.kafka_version}", deps, home, "libs", settings.fetch_timeout_s)
    return home


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (22 chars, no leading -)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def _java_argv(java: Java, paths: KafkaPaths, heap_mb: int | None) -> list[str]:
    heap = [f"-Xmx{heap_mb}m", f"-Xms{heap_mb}m"] if heap_mb else ["-Xmx256m"]
    return [
        str(java.executable), *heap, "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{paths.log4j_properties}", "-cp", f"{paths.libs}/*",
    ]  # fmt: skip


def _format_once(java: Java, paths: KafkaPaths) -> None:
    """Format the KRaft log dir unless it already is (data survives restarts)."""
    if (paths.data / "meta.properties").is_file():
        return
    cluster_id = new_cluster_id()
    log.info("formatting Kafka storage", extra={"dir": str(paths.data), "cluster_id": cluster_id})
    argv = [
        *_java_argv(java, paths, None), "kafka.tools.StorageTool", "format",
        "-t", cluster_id, "-c", str(paths.server_properties),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise DevstackError(
            f"formatting Kafka storage in {paths.data} failed (exit {proc.returncode}):\n"
            + tail_text(proc.stdout + proc.stderr, 20)
        )


def start_kafka(settings: DevstackSettings, java: Java) -> int:
    """Fetch once, write config, format storage once, start the broker detached; returns the pid.

    Does not wait: see :func:`kafka_health`. The pid file is written before returning.
    """
    paths = kafka_paths(settings)
    fetch_kafka(settings)
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.server_properties.write_text(render_server_properties(settings, paths.data), "utf-8")
    paths.log4j_properties.write_text(render_log4j_properties(), "utf-8")
    _format_once(java, paths)
    argv = [
        *_java_argv(java, paths, settings.kafka_heap_mb),
        MAIN_CLASS,
        str(paths.server_properties),
    ]
    pid = spawn(argv, paths.log, env=os.environ, cwd=paths.state)
    write_pid(paths.pid_file, pid)
    log.info("started Kafka", extra={"pid": pid, "bootstrap": bootstrap_servers(settings)})
    return pid


def kafka_health(client_config: dict[str, Any], timeout_s: float) -> Health:
    """Healthy when an AdminClient can list topics within ``timeout_s`` seconds."""
    conf = {**client_config, "log_level": 0, "socket.connection.setup.timeout.ms": 5000}
    try:
        metadata = AdminClient(conf).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        return Health(False, error.str() if isinstance(error, KafkaError) else str(exc))
    topics = [t for t in metadata.topics if not t.startswith("__")]
    return Health(True, f"{len(metadata.brokers)} broker(s), {len(topics)} topic(s)")
