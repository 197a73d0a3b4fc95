"""The local Kafka: one KRaft node, or a cluster of them, on 127.0.0.1, from Maven jars.

Every node is a broker and a KRaft controller at once (``process.roles=broker,controller``) and
every node is a voter of the controller quorum. For three nodes that is three JVMs rather than
four (one dedicated controller plus three brokers), which matters on a two-core machine, and
any one node, the active controller included, may be killed: the other two still form a quorum,
elect a controller and move partition leadership. A single dedicated controller would be a part
that can never be killed in a test. Production clusters usually run dedicated controllers; to a
client the two shapes look the same.

A single node keeps the layout it always had (``<state>/kafka``); node ``i`` of an ``n``-node
cluster lives in ``<state>/kafka-<n>/node-<i>`` with its own ports (:func:`kafka_node_ports`),
config, data, log and pid file; all nodes of a cluster are formatted with one cluster id kept in
``<state>/kafka-<n>/cluster.id``.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from vsa.devstack.errors import DevstackError
from vsa.devstack.health import Health
from vsa.devstack.maven import MavenDep, maven_fetch
from vsa.devstack.procs import is_ours, read_pid, spawn, tail_text, write_pid
from vsa.devstack.settings import MAX_BROKERS, DevstackSettings, NodePorts, kafka_node_ports
from vsa.devstack.tools import Java
from vsa.runtime.replication import replication_for
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


@dataclass(frozen=True)
class KafkaNode:
    """One node of the local Kafka: its KRaft ``node.id`` (from 1), ports and paths."""

    node_id: int
    ports: NodePorts
    paths: KafkaPaths
    #: How status and ``down`` name it: ``kafka`` alone, ``kafka-<id>`` in a cluster.
    name: str

    @property
    def bootstrap(self) -> str:
        """``host:port`` of this node's client listener."""
        return f"{HOST}:{self.ports.client}"

    @property
    def marker(self) -> str:
        """The argument that identifies this node's command line (its config file)."""
        return str(self.paths.server_properties)


def cluster_dir(settings: DevstackSettings, brokers: int | None = None) -> Path:
    """Folder of the ``brokers``-node Kafka (default: the configured count) under the state dir:
    ``kafka`` for one node (its layout before clusters existed), ``kafka-<n>`` for n nodes."""
    count = settings.brokers if brokers is None else brokers
    state = settings.state_path.resolve()
    return state / "kafka" if count == 1 else state / f"kafka-{count}"


def kafka_home(settings: DevstackSettings) -> Path:
    """The cached Kafka distribution (jars) every node runs from."""
    return settings.cache_dir.resolve() / f"kafka-{settings.kafka_version}"


def kafka_nodes(settings: DevstackSettings) -> tuple[KafkaNode, ...]:
    """The configured nodes, node.id 1 first (absolute paths, symlinks resolved)."""
    home, root = kafka_home(settings), cluster_dir(settings)
    if settings.brokers == 1:
        return (KafkaNode(1, kafka_node_ports(settings)[0], KafkaPaths(home, root), "kafka"),)
    return tuple(
        KafkaNode(i, ports, KafkaPaths(home, root / f"node-{i}"), f"kafka-{i}")
        for i, ports in enumerate(kafka_node_ports(settings), start=1)
    )


def kafka_paths(settings: DevstackSettings) -> KafkaPaths:
    """Paths of the first node (the only one of a single-broker stack)."""
    return kafka_nodes(settings)[0].paths


def bootstrap_servers(settings: DevstackSettings) -> str:
    """``host:port[,host:port...]`` of every node: clients reach the cluster while any is up."""
    return ",".join(node.bootstrap for node in kafka_nodes(settings))


def cmd_marker(settings: DevstackSettings) -> str:
    """The argument that identifies the first node's command line (its config file)."""
    return kafka_nodes(settings)[0].marker


def quorum_voters(nodes: Sequence[KafkaNode]) -> str:
    """``controller.quorum.voters``: ``<node.id>@127.0.0.1:<controller port>`` for every node."""
    return ",".join(f"{node.node_id}@{HOST}:{node.ports.controller}" for node in nodes)


def render_server_properties(settings: DevstackSettings, node: KafkaNode) -> str:
    """``server.properties`` of ``node`` in the configured cluster, on loopback, sized for frames.

    Topics are never created implicitly (``auto.create.topics.enable=false``): every topic is made
    by the topic admin with its own spec. Message size limits equal ``MAX_MESSAGE_BYTES``. The
    internal topics (consumer offsets, transactions) and any topic created without a
    replication factor follow :func:`~vsa.runtime.replication.replication_for`: 3 replicas and
    min.insync.replicas 2 from three nodes on, so losing one node loses no group's offsets.
    """
    nodes = kafka_nodes(settings)
    replication = replication_for(len(nodes))
    port, ctrl = node.ports.client, node.ports.controller
    props: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": quorum_voters(nodes),
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{ctrl}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(node.paths.data),
        "num.partitions": 1,
        "default.replication.factor": replication.factor,
        "min.insync.replicas": replication.min_insync_replicas,
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": replication.factor,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": replication.factor,
        "transaction.state.log.min.isr": replication.min_insync_replicas,
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
    home = kafka_home(settings)
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


def cluster_id(settings: DevstackSettings) -> str:
    """The configured cluster's id: made once, kept in ``<cluster dir>/cluster.id``, so every node
    (and a node whose data was wiped) is formatted into the same cluster. Safe to call from
    several threads at once: the first file to be linked in place wins."""
    id_file = cluster_dir(settings) / "cluster.id"
    id_file.parent.mkdir(parents=True, exist_ok=True)
    if not id_file.exists():
        draft = id_file.with_name(f"cluster.id.{uuid.uuid4().hex}")
        draft.write_text(new_cluster_id() + "\n", "ascii")
        with contextlib.suppress(FileExistsError):
            os.link(draft, id_file)  # atomic; fails when another caller was first
        draft.unlink()
    return id_file.read_text("ascii").strip()


def _format_once(java: Java, paths: KafkaPaths, cluster: str) -> None:
    """Format the KRaft log dir unless it already is (data survives restarts)."""
    if (paths.data / "meta.properties").is_file():
        return
    log.info("formatting Kafka storage", extra={"dir": str(paths.data), "cluster_id": cluster})
    argv = [
        *_java_argv(java, paths, None), "kafka.tools.StorageTool", "format",
        "-t", cluster, "-c", str(paths.server_properties),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise DevstackError(
            f"formatting Kafka storage in {paths.data} failed (exit {proc.returncode}):\n"
            + tail_text(proc.stdout + proc.stderr, 20)
        )


def start_kafka(settings: DevstackSettings, java: Java, node: KafkaNode | None = None) -> int:
    """Fetch once, write config, format storage once, start one node detached; returns the pid.

    ``node``: one of :func:`kafka_nodes` (default: the first, the only one of a single broker).
    Does not wait: see :func:`kafka_health`. The pid file is written before returning.
    """
    node = node if node is not None else kafka_nodes(settings)[0]
    paths = node.paths
    fetch_kafka(settings)
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.server_properties.write_text(render_server_properties(settings, node), "utf-8")
    paths.log4j_properties.write_text(render_log4j_properties(), "utf-8")
    _format_once(java, paths, cluster_id(settings))
    argv = [
        *_java_argv(java, paths, settings.kafka_heap_mb),
        MAIN_CLASS,
        str(paths.server_properties),
    ]
    pid = spawn(argv, paths.log, env=os.environ, cwd=paths.state)
    write_pid(paths.pid_file, pid)
    log.info("started Kafka", extra={"node": node.name, "pid": pid, "bootstrap": node.bootstrap})
    return pid


@dataclass(frozen=True)
class ClusterView:
    """What one metadata request says: the brokers registered (and not fenced), the topics."""

    broker_ids: frozenset[int]
    topics: int


def describe_cluster(client_config: dict[str, Any], timeout_s: float) -> ClusterView | str:
    """The cluster as its metadata shows it now, or the error as text."""
    conf = {**client_config, "log_level": 0, "socket.connection.setup.timeout.ms": 5000}
    try:
        metadata = AdminClient(conf).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        return error.str() if isinstance(error, KafkaError) else str(exc)
    topics = [t for t in metadata.topics if not t.startswith("__")]
    return ClusterView(frozenset(metadata.brokers), len(topics))


def cluster_health(view: ClusterView | str, brokers: int) -> Health:
    """Healthy once ``brokers`` brokers are registered (a node that is up but not yet
    registered cannot lead or follow partitions)."""
    if isinstance(view, str):
        return Health(False, view)
    registered = len(view.broker_ids)
    if registered < brokers:
        return Health(False, f"{registered} of {brokers} brokers registered")
    return Health(True, f"{registered} broker(s), {view.topics} topic(s)")


def kafka_health(client_config: dict[str, Any], timeout_s: float, brokers: int = 1) -> Health:
    """Healthy when an AdminClient lists topics within ``timeout_s`` seconds and at least
    ``brokers`` brokers are registered."""
    return cluster_health(describe_cluster(client_config, timeout_s), brokers)


def nodes_health(addresses: Sequence[str], timeout_s: float) -> Health:
    """Healthy when every node answers at its own address and each lists all of them.

    Asking each node itself matters after a restart: the cluster's metadata keeps listing a
    killed broker until the controller fences it (``broker.session.timeout.ms``, 9 s), and a
    restarted broker answers clients only once it is registered and unfenced again.
    """
    result = Health(False, "no node")
    for address in addresses:
        result = kafka_health({"bootstrap.servers": address}, timeout_s, len(addresses))
        if not result.healthy:
            detail = result.detail if len(addresses) == 1 else f"{address}: {result.detail}"
            return Health(False, detail)
    return result


def layout_sizes(settings: DevstackSettings) -> list[int]:
    """Node counts of the Kafka layouts under the state dir, and the configured one."""
    sizes = {settings.brokers}
    for folder in settings.state_path.resolve().glob("kafka*"):
        suffix = folder.name.removeprefix("kafka").removeprefix("-")
        if not suffix:
            sizes.add(1)
        elif suffix.isdigit() and 2 <= int(suffix) <= MAX_BROKERS:
            sizes.add(int(suffix))
    return sorted(sizes)


def nodes_of_layout(settings: DevstackSettings, brokers: int) -> tuple[KafkaNode, ...]:
    """The nodes of the ``brokers``-node layout (paths; ports as configured now)."""
    return kafka_nodes(settings.model_copy(update={"brokers": brokers}))


def running_pids(nodes: Sequence[KafkaNode]) -> dict[str, int]:
    """Node name -> pid of each node whose pid file names our live process (no side effects)."""
    found = {}
    for node in nodes:
        pid = read_pid(node.paths.pid_file)
        if pid is not None and is_ours(pid, node.marker):
            found[node.name] = pid
    return found
