"""``up`` / ``down`` / ``status`` of the local stack: the functions behind ``vsa devstack``.

Two parts: Kafka (one node, or ``brokers`` nodes forming one KRaft cluster) and OpenSearch (one
node). Each part is one or more processes with a pid file, a log and ports of their own.
External endpoints win: with ``KAFKA_BOOTSTRAP_SERVERS`` set no broker is started and that
cluster is used (and checked); likewise ``OPENSEARCH_URL`` for OpenSearch. These functions print
nothing; progress goes to the ``vsa.devstack`` logger and results come back as objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from vsa.devstack import kafka as kafka_mod
from vsa.devstack import opensearch as os_mod
from vsa.devstack.errors import DevstackError
from vsa.devstack.health import Health, ProcessEndedError, wait_healthy
from vsa.devstack.java_runtime import bundled_java
from vsa.devstack.procs import (
    describe_listener,
    exit_code,
    file_lock,
    is_alive,
    is_ours,
    owned_pid,
    port_in_use,
    read_pid,
    stop_all,
    tail_file,
)
from vsa.devstack.settings import DevstackSettings
from vsa.devstack.tools import Java, find_java
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, load_settings

log = logging.getLogger("vsa.devstack")

ComponentName = Literal["kafka", "opensearch"]
#: Seconds one health probe may take in :func:`status` (no waiting there).
STATUS_PROBE_TIMEOUT_S = 3.0
#: Seconds one health probe may take while :func:`up` waits: short for our own processes, so a
#: process that dies is noticed quickly; longer for a remote cluster.
WAIT_PROBE_TIMEOUT_S = 2.0
EXTERNAL_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NodeStatus:
    """One process of a part (a Kafka node, the OpenSearch node) and its state.

    ``detail`` says more for Kafka nodes of a cluster: registered with the cluster or not.
    """

    name: str
    address: str
    pid: int | None
    running: bool
    detail: str
    log_path: Path | None


@dataclass(frozen=True)
class Endpoint:
    """One part of a running stack: where clients connect and who runs it.

    ``address`` is ``host:port[,...]`` for Kafka (every node) and a base URL for OpenSearch.
    ``external`` means it came from the environment and is not managed here; ``started`` that
    this ``up`` call started (some of) its processes. ``pid`` and ``log_path`` are the first
    process's; ``nodes`` lists every process (empty for an external part).
    """

    name: ComponentName
    address: str
    external: bool
    started: bool
    pid: int | None
    log_path: Path | None
    nodes: tuple[NodeStatus, ...] = ()


@dataclass(frozen=True)
class StackInfo:
    """What :func:`up` brought up; a part not asked for is None."""

    kafka: Endpoint | None
    opensearch: Endpoint | None

    @property
    def kafka_bootstrap(self) -> str:
        """Kafka bootstrap servers (DevstackError if Kafka was not requested)."""
        if self.kafka is None:
            raise DevstackError("Kafka was not brought up (up(kafka=False))")
        return self.kafka.address

    @property
    def opensearch_url(self) -> str:
        """OpenSearch base URL (DevstackError if OpenSearch was not requested)."""
        if self.opensearch is None:
            raise DevstackError("OpenSearch was not brought up (up(opensearch=False))")
        return self.opensearch.address

    @property
    def kafka_external(self) -> bool:
        """Whether Kafka is an external cluster (``KAFKA_BOOTSTRAP_SERVERS``)."""
        return self.kafka is not None and self.kafka.external

    @property
    def opensearch_external(self) -> bool:
        """Whether OpenSearch is an external cluster (``OPENSEARCH_URL``)."""
        return self.opensearch is not None and self.opensearch.external

    @property
    def started(self) -> tuple[ComponentName, ...]:
        """Names of the parts this call started itself."""
        return tuple(e.name for e in (self.kafka, self.opensearch) if e is not None and e.started)


@dataclass(frozen=True)
class ComponentStatus:
    """State of one part right now: ``running`` (a process of ours is alive) and ``healthy``
    (for Kafka: every node runs and every broker is registered). ``nodes``: one entry per node
    of a Kafka cluster (empty for a single process)."""

    name: ComponentName
    address: str
    external: bool
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log_path: Path | None
    nodes: tuple[NodeStatus, ...] = ()


@dataclass(frozen=True)
class StackStatus:
    """State of both parts, Kafka first."""

    components: tuple[ComponentStatus, ...]

    @property
    def healthy(self) -> bool:
        """Whether every part is healthy."""
        return all(c.healthy for c in self.components)

    def component(self, name: ComponentName) -> ComponentStatus:
        """The status of one part by name."""
        return next(c for c in self.components if c.name == name)


@dataclass(frozen=True)
class _Process:
    """One process of a part: how to find it (pid file + marker argument) and start it."""

    name: str
    address: str
    pid_file: Path
    log_path: Path
    marker: str
    ports: tuple[tuple[int, str], ...]  # (port, the setting that moves it)
    start: Callable[[Java], int]


@dataclass(frozen=True)
class _Component:
    """How to find, start and probe one part (bound to one settings object)."""

    name: ComponentName
    label: str
    env_var: str
    local_address: str
    procs: tuple[_Process, ...]
    timeout_s: float
    preflight: Callable[[], object]
    probe: Callable[[str, bool, float], Health]


def _probe_kafka(address: str, external: bool, timeout_s: float) -> Health:
    """An external cluster must answer; each local node must answer and list all nodes."""
    if not external:
        return kafka_mod.nodes_health(address.split(","), timeout_s)
    conf = load_settings(KafkaSettings).client_config()
    conf["bootstrap.servers"] = address
    return kafka_mod.kafka_health(conf, timeout_s)


def _probe_opensearch(address: str, external: bool, timeout_s: float) -> Health:
    conn = load_settings(OpenSearchSettings) if external else None
    return os_mod.opensearch_health(address, conn, timeout_s)


def _node_process(settings: DevstackSettings, node: kafka_mod.KafkaNode) -> _Process:
    shift = node.ports.client - settings.kafka_port
    hint = "=<port>" + ("" if shift == 0 else f" ({node.name} listens on that + {shift})")
    return _Process(
        name=node.name, address=node.bootstrap, pid_file=node.paths.pid_file,
        log_path=node.paths.log, marker=node.marker,
        ports=((node.ports.client, f"VSA_DEVSTACK_KAFKA_PORT{hint}"),
               (node.ports.controller, f"VSA_DEVSTACK_KAFKA_CONTROLLER_PORT{hint}")),
        start=lambda java: kafka_mod.start_kafka(settings, java, node),
    )  # fmt: skip


def _kafka_component(settings: DevstackSettings) -> _Component:
    return _Component(
        name="kafka", label="Kafka", env_var="KAFKA_BOOTSTRAP_SERVERS",
        local_address=kafka_mod.bootstrap_servers(settings),
        procs=tuple(_node_process(settings, n) for n in kafka_mod.kafka_nodes(settings)),
        timeout_s=settings.kafka_start_timeout_s, preflight=lambda: None,
        probe=_probe_kafka,
    )  # fmt: skip


def _opensearch_component(settings: DevstackSettings) -> _Component:
    paths = os_mod.opensearch_paths(settings)
    proc = _Process(
        name="opensearch", address=os_mod.opensearch_url(settings), pid_file=paths.pid_file,
        log_path=paths.log, marker=os_mod.cmd_marker(settings),
        ports=((settings.opensearch_port, "VSA_DEVSTACK_OPENSEARCH_PORT=<port>"),
               (settings.opensearch_transport_port,
                "VSA_DEVSTACK_OPENSEARCH_TRANSPORT_PORT=<port>")),
        start=lambda java: os_mod.start_opensearch(settings, java),
    )  # fmt: skip
    return _Component(
        name="opensearch", label="OpenSearch", env_var="OPENSEARCH_URL",
        local_address=proc.address, procs=(proc,),
        timeout_s=settings.opensearch_start_timeout_s,
        preflight=lambda: os_mod.preflight(settings), probe=_probe_opensearch,
    )  # fmt: skip


def external_address(name: ComponentName) -> str | None:
    """The endpoint from the environment that replaces a local part, or None."""
    if name == "kafka":
        return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    if os.environ.get("OPENSEARCH_URL"):
        return load_settings(OpenSearchSettings).url
    return None


def _check_ports_free(comp: _Component, proc: _Process) -> None:
    for port, setting in proc.ports:
        if port_in_use(port):
            owner = describe_listener(port)
            raise DevstackError(
                f"cannot start {comp.label}: port {port} on 127.0.0.1 is already in use"
                + (f" ({owner})" if owner else "")
                + f". Stop that process or pick another port with {setting}"
            )


def _refuse_other_kafka(settings: DevstackSettings) -> None:
    """A Kafka of another node count running from this state dir shares the first ports."""
    for size in kafka_mod.layout_sizes(settings):
        if size == settings.brokers:
            continue
        pids = kafka_mod.running_pids(kafka_mod.nodes_of_layout(settings, size))
        if pids:
            listed = ", ".join(f"{name} pid {pid}" for name, pid in pids.items())
            raise DevstackError(
                f"Kafka already runs here with {size} node(s) ({listed}), not "
                f"{settings.brokers}: use that count (--brokers {size} / "
                f"VSA_DEVSTACK_BROKERS={size}) or stop it first with `vsa devstack down`"
            )


class _Bringup:
    """The processes one :func:`up` call found running and started, per part."""

    def __init__(self) -> None:
        self.external: dict[ComponentName, str] = {}
        self.pids: dict[str, int] = {}  # process name -> pid, found or started
        self.started: dict[str, int] = {}  # the ones this call started

    def endpoint(self, comp: _Component) -> Endpoint:
        if comp.name in self.external:
            return Endpoint(comp.name, self.external[comp.name], True, False, None, None)
        nodes = tuple(
            NodeStatus(p.name, p.address, self.pids[p.name], True, "", p.log_path)
            for p in comp.procs
        )
        started = any(p.name in self.started for p in comp.procs)
        first = comp.procs[0]
        return Endpoint(
            comp.name, comp.local_address, False, started, nodes[0].pid, first.log_path, nodes
        )

    def find(self, comp: _Component) -> None:
        """Note the external endpoint or our running processes of ``comp``."""
        external = external_address(comp.name)
        if external is not None:
            log.info(
                "using external %s", comp.label, extra={"address": external, "from": comp.env_var}
            )
            self.external[comp.name] = external
            return
        for proc in comp.procs:
            pid = owned_pid(proc.pid_file, proc.marker)
            if pid is not None:
                log.info("%s already running", proc.name, extra={"pid": pid})
                self.pids[proc.name] = pid

    def start_missing(self, comps: list[_Component], cache_dir: Path) -> None:
        """Check everything that could stop a start first (ports, users, Java), then start,
        noting each started process at once (so a failure later can stop it again)."""
        missing = [
            (comp, [p for p in comp.procs if p.name not in self.pids])
            for comp in comps
            if comp.name not in self.external
        ]
        missing = [(comp, procs) for comp, procs in missing if procs]
        for comp, procs in missing:
            for proc in procs:
                _check_ports_free(comp, proc)
            comp.preflight()
        if not missing:
            return
        java = find_java(bundled_java(cache_dir))
        procs = [proc for _, group in missing for proc in group]
        # in parallel: each Kafka node formats its storage with a JVM of its own first
        with ThreadPoolExecutor(len(procs), thread_name_prefix="devstack-start") as pool:
            futures = [(proc, pool.submit(proc.start, java)) for proc in procs]
        failures = []
        for proc, future in futures:
            if (error := future.exception()) is not None:
                failures.append(error)
            else:
                self.pids[proc.name] = self.started[proc.name] = future.result()
        if failures:
            raise failures[0]

    def stop_started(self, comps: list[_Component], stop_timeout_s: float) -> None:
        """Stop (together) and forget what this call started."""
        stop_all(list(self.started.values()), stop_timeout_s)
        for proc in (p for comp in comps for p in comp.procs if p.name in self.started):
            proc.pid_file.unlink(missing_ok=True)


class _Liveness:
    """Called while waiting: None while every process of a part runs, else how one ended
    (that process is then in ``ended``)."""

    def __init__(self, comp: _Component, pids: dict[str, int]) -> None:
        self.watched = [(proc, pids[proc.name]) for proc in comp.procs]
        self.ended: _Process | None = None

    def __call__(self) -> str | None:
        for proc, pid in self.watched:
            if not is_alive(pid):
                self.ended = proc
                code = exit_code(pid)
                return "exited" + (f" with status {code}" if code is not None else "")
        return None


def _failure(comp: _Component, end: Endpoint, detail: str, log_path: Path | None) -> DevstackError:
    if end.external:
        return DevstackError(
            f"external {comp.label} at {end.address} (from {comp.env_var}) is not usable: {detail}"
        )
    log_path = log_path or comp.procs[0].log_path
    logs = f"Last lines of {log_path}:\n{tail_file(log_path, 20)}"
    if not end.started:
        return DevstackError(
            f"{comp.label} (pid {end.pid}) runs but is not healthy ({detail}); stop it with "
            f"`vsa devstack down` and retry. {logs}"
        )
    return DevstackError(f"{comp.label} failed to start: {detail}. {logs}")


def _wait(comp: _Component, end: Endpoint, timeout_s: float) -> None:
    what = f"{comp.label} at {end.address}"
    probe_timeout = EXTERNAL_PROBE_TIMEOUT_S if end.external else WAIT_PROBE_TIMEOUT_S
    probe_timeout = min(probe_timeout, timeout_s)
    alive = None if end.external else _Liveness(comp, {n.name: n.pid or 0 for n in end.nodes})
    try:
        result = wait_healthy(
            what, lambda: comp.probe(end.address, end.external, probe_timeout), timeout_s, alive
        )
    except ProcessEndedError as exc:
        ended = alive.ended if alive is not None else None
        who = f"{ended.name}: " if ended is not None and len(comp.procs) > 1 else ""
        detail = f"{who}the process {exc.detail} during start"
        raise _failure(comp, end, detail, ended.log_path if ended else None) from None
    if not result.healthy:
        reason = f"no healthy answer within {timeout_s:.0f} s (last check: {result.detail})"
        raise _failure(comp, end, reason, None)


def _selected(settings: DevstackSettings, kafka: bool, opensearch: bool) -> list[_Component]:
    pairs = ((kafka, _kafka_component), (opensearch, _opensearch_component))
    return [make(settings) for wanted, make in pairs if wanted]


def _running_layout(settings: DevstackSettings) -> DevstackSettings:
    """The configured node count, unless nothing of it runs and a Kafka of another count does
    (``up --brokers 3`` then a plain ``status`` or ``vsa demo``)."""
    if kafka_mod.running_pids(kafka_mod.kafka_nodes(settings)):
        return settings
    for size in kafka_mod.layout_sizes(settings):
        if kafka_mod.running_pids(kafka_mod.nodes_of_layout(settings, size)):
            return settings.model_copy(update={"brokers": size})
    return settings


def up(
    timeout_s: float | None = None,
    *,
    kafka: bool = True,
    opensearch: bool = True,
    settings: DevstackSettings | None = None,
) -> StackInfo:
    """Bring up the requested parts and wait until each is healthy; idempotent.

    Downloads once (cached), reuses running processes, starts what is missing (all processes
    start in parallel: both parts, every Kafka node; a node of a cluster that died is started
    again), and uses external endpoints from the environment instead of starting anything. Kafka
    is healthy once all ``settings.brokers`` brokers are registered. ``timeout_s``: seconds to
    wait for each part to become healthy after it is started (downloads not counted); None uses
    the settings' ``*_start_timeout_s``. On failure the processes this call started are stopped
    again and :class:`DevstackError` says why, with the end of the log of the node that failed.
    Without a node count set (``brokers`` left at its default) a Kafka of any count that runs
    from this state dir is used; with one set, a Kafka of another count is refused.
    """
    settings = settings if settings is not None else load_settings(DevstackSettings)
    if "brokers" not in settings.model_fields_set:
        settings = _running_layout(settings)
    comps = _selected(settings, kafka, opensearch)
    bringup = _Bringup()
    with file_lock(settings.state_path / "devstack.lock"):
        try:
            for comp in comps:
                bringup.find(comp)
            if kafka and "kafka" not in bringup.external:
                _refuse_other_kafka(settings)
            bringup.start_missing(comps, settings.cache_dir)
            for comp in comps:
                wait_s = comp.timeout_s if timeout_s is None else timeout_s
                _wait(comp, bringup.endpoint(comp), wait_s)
        except BaseException:
            bringup.stop_started(comps, settings.stop_timeout_s)
            raise
    ends = {comp.name: bringup.endpoint(comp) for comp in comps}
    return StackInfo(kafka=ends.get("kafka"), opensearch=ends.get("opensearch"))


def _kafka_processes(settings: DevstackSettings) -> list[_Process]:
    """Every Kafka node of every layout under the state dir (a cluster of another size too)."""
    return [
        _node_process(settings, node)
        for size in kafka_mod.layout_sizes(settings)
        for node in kafka_mod.nodes_of_layout(settings, size)
    ]


def _stop(procs: list[_Process], timeout_s: float) -> list[str]:
    """Stop our live processes among ``procs`` together; ``"<name> (pid N[, killed])"`` each."""
    found = [(p, pid) for p in procs if (pid := owned_pid(p.pid_file, p.marker)) is not None]
    if not found:
        return []
    for proc, pid in found:
        log.info("stopping %s", proc.name, extra={"pid": pid})
    killed = stop_all([pid for _, pid in found], timeout_s)
    for proc, _ in found:
        proc.pid_file.unlink(missing_ok=True)
    return [f"{p.name} (pid {pid}{', killed' if pid in killed else ''})" for p, pid in found]


def down(
    *, kafka: bool = True, opensearch: bool = True, settings: DevstackSettings | None = None
) -> list[str]:
    """Stop the processes ``up`` started (found by pid file and checked by command line).

    Every Kafka node under the state dir is stopped, whatever ``brokers`` says now; the nodes of
    a cluster are signalled together. External endpoints and processes this stack did not
    start are never touched. Data stays: the next ``up`` finds the same topics and indices.
    Returns what was stopped, OpenSearch first, one ``"<name> (pid N)"`` per process (``"...,
    killed)"`` when SIGTERM was not enough).
    """
    settings = settings if settings is not None else load_settings(DevstackSettings)
    stopped: list[str] = []
    with file_lock(settings.state_path / "devstack.lock"):
        if opensearch:
            stopped += _stop(list(_opensearch_component(settings).procs), settings.stop_timeout_s)
        if kafka:
            stopped += _stop(_kafka_processes(settings), settings.stop_timeout_s)
    log.info("stack down", extra={"stopped": ", ".join(stopped) or "nothing"})
    return stopped


def fetch(
    *, kafka: bool = True, opensearch: bool = True, settings: DevstackSettings | None = None
) -> list[Path]:
    """Download (and install) the parts without starting them; returns their cached folders.

    Ignores ``KAFKA_BOOTSTRAP_SERVERS`` / ``OPENSEARCH_URL``: asking to fetch means fetch. Useful
    to warm a cache (CI image, before going offline). OpenSearch's install needs Java.
    """
    settings = settings if settings is not None else load_settings(DevstackSettings)
    folders: list[Path] = []
    with file_lock(settings.state_path / "devstack.lock"):
        if kafka:
            folders.append(kafka_mod.fetch_kafka(settings))
        if opensearch:
            folders.append(
                os_mod.install_opensearch(settings, find_java(bundled_java(settings.cache_dir)))
            )
    return folders


def _process_status(proc: _Process) -> NodeStatus:
    pid = read_pid(proc.pid_file)
    if pid is None or not is_ours(pid, proc.marker):
        detail = "not running" + (" (stale pid file)" if pid is not None else "")
        return NodeStatus(proc.name, proc.address, None, False, detail, proc.log_path)
    return NodeStatus(proc.name, proc.address, pid, True, "running", proc.log_path)


def _cluster_status(settings: DevstackSettings, comp: _Component) -> ComponentStatus:
    """Kafka of several nodes: each node's process and registration, and the whole."""
    nodes = [_process_status(p) for p in comp.procs]
    live = [n for n in nodes if n.running]
    if not live:
        return ComponentStatus(
            comp.name, comp.local_address, False, None, False, False, "not running",
            None, tuple(nodes),
        )  # fmt: skip
    address = ",".join(n.address for n in live)
    view = kafka_mod.describe_cluster({"bootstrap.servers": address}, STATUS_PROBE_TIMEOUT_S)
    health = kafka_mod.cluster_health(view, settings.brokers)
    ids = view.broker_ids if isinstance(view, kafka_mod.ClusterView) else frozenset()
    node_ids = [n.node_id for n in kafka_mod.kafka_nodes(settings)]
    for i, (node, node_id) in enumerate(zip(nodes, node_ids, strict=True)):
        if node.running:
            state = "registered" if node_id in ids else "not registered"
            nodes[i] = replace(node, detail=f"{state}, node.id {node_id}")
    return ComponentStatus(
        comp.name, comp.local_address, False, live[0].pid, True,
        health.healthy and len(live) == len(nodes), health.detail, None, tuple(nodes),
    )  # fmt: skip


def _component_status(comp: _Component) -> ComponentStatus:
    external = external_address(comp.name)
    if external is not None:
        health = comp.probe(external, True, STATUS_PROBE_TIMEOUT_S)
        return ComponentStatus(
            comp.name, external, True, None, False, health.healthy, health.detail, None
        )
    proc = _process_status(comp.procs[0])
    if not proc.running:
        return ComponentStatus(
            comp.name, comp.local_address, False, None, False, False, proc.detail, proc.log_path
        )
    health = comp.probe(comp.local_address, False, STATUS_PROBE_TIMEOUT_S)
    return ComponentStatus(
        comp.name, comp.local_address, False, proc.pid, True, health.healthy, health.detail,
        proc.log_path,
    )  # fmt: skip


def status(settings: DevstackSettings | None = None) -> StackStatus:
    """Endpoints and health of both parts (each Kafka node of a cluster), checked once now (a
    few seconds at most)."""
    settings = settings if settings is not None else load_settings(DevstackSettings)
    kafka_settings = _running_layout(settings)
    kafka = _kafka_component(kafka_settings)
    if external_address("kafka") is None and kafka_settings.brokers > 1:
        kafka_status = _cluster_status(kafka_settings, kafka)
    else:
        kafka_status = _component_status(kafka)
    return StackStatus((kafka_status, _component_status(_opensearch_component(settings))))


def _state_word(c: ComponentStatus) -> str:
    state = "healthy" if c.healthy else ("unhealthy" if c.running or c.external else "down")
    return state + (" (external)" if c.external else "")


def format_status(stack_status: StackStatus) -> str:
    """A small table for people: one line per part (and per node of a Kafka cluster, indented
    under it), then where the logs are."""
    rows = [("PART", "ADDRESS", "STATE", "PID", "DETAIL")]
    logs: list[tuple[str, Path]] = []
    for c in stack_status.components:
        rows.append((c.name, c.address, _state_word(c), str(c.pid or "-"), c.detail))
        for n in c.nodes:
            state = "running" if n.running else "down"
            rows.append((f"  {n.name}", n.address, state, str(n.pid or "-"), n.detail))
        logs += [(n.name, n.log_path) for n in c.nodes if n.log_path is not None]
        if c.log_path is not None and not c.nodes:
            logs.append((c.name, c.log_path))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(r[i].ljust(w) for i, w in enumerate(widths)), r[-1]]) for r in rows]
    lines += [f"{name} log: {path}" for name, path in logs]
    return "\n".join(lines)
