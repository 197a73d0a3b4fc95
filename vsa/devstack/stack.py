"""``up`` / ``down`` / ``status`` of the local stack: the functions behind ``vsa devstack``.

External endpoints win: with ``KAFKA_BOOTSTRAP_SERVERS`` set no broker is started and that
cluster is used (and checked); likewise ``OPENSEARCH_URL`` for OpenSearch. These functions print
nothing; progress goes to the ``vsa.devstack`` logger and results come back as objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vsa.devstack import kafka as kafka_mod
from vsa.devstack import opensearch as os_mod
from vsa.devstack.errors import DevstackError
from vsa.devstack.health import Health, ProcessEndedError, wait_healthy
from vsa.devstack.procs import (
    describe_listener,
    exit_code,
    file_lock,
    is_alive,
    is_ours,
    owned_pid,
    port_in_use,
    read_pid,
    stop,
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
class Endpoint:
    """One part of a running stack: where clients connect and who runs it.

    ``address`` is ``host:port[,...]`` for Kafka and a base URL for OpenSearch. ``external`` means
    it came from the environment and is not managed here; ``started`` that this ``up`` call
    started the process (a later ``down`` stops it).
    """

    name: ComponentName
    address: str
    external: bool
    started: bool
    pid: int | None
    log_path: Path | None


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
    """State of one part right now: ``running`` (our process is alive) and ``healthy``."""

    name: ComponentName
    address: str
    external: bool
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log_path: Path | None


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
class _Component:
    """How to find, start and probe one part (bound to one settings object)."""

    name: ComponentName
    label: str
    env_var: str
    local_address: str
    pid_file: Path
    log_path: Path
    marker: str
    ports: tuple[tuple[int, str], ...]
    timeout_s: float
    preflight: Callable[[], object]
    start: Callable[[Java], int]
    probe: Callable[[str, bool, float], Health]


def _probe_kafka(address: str, external: bool, timeout_s: float) -> Health:
    conf = load_settings(KafkaSettings).client_config() if external else {}
    conf["bootstrap.servers"] = address
    return kafka_mod.kafka_health(conf, timeout_s)


def _probe_opensearch(address: str, external: bool, timeout_s: float) -> Health:
    conn = load_settings(OpenSearchSettings) if external else None
    return os_mod.opensearch_health(address, conn, timeout_s)


def _components(settings: DevstackSettings) -> tuple[_Component, _Component]:
    k_paths, o_paths = kafka_mod.kafka_paths(settings), os_mod.opensearch_paths(settings)
    kafka = _Component(
        name="kafka", label="Kafka", env_var="KAFKA_BOOTSTRAP_SERVERS",
        local_address=kafka_mod.bootstrap_servers(settings),
        pid_file=k_paths.pid_file, log_path=k_paths.log, marker=kafka_mod.cmd_marker(settings),
        ports=((settings.kafka_port, "VSA_DEVSTACK_KAFKA_PORT"),
               (settings.kafka_controller_port, "VSA_DEVSTACK_KAFKA_CONTROLLER_PORT")),
        timeout_s=settings.kafka_start_timeout_s, preflight=lambda: None,
        start=lambda java: kafka_mod.start_kafka(settings, java), probe=_probe_kafka,
    )  # fmt: skip
    opensearch = _Component(
        name="opensearch", label="OpenSearch", env_var="OPENSEARCH_URL",
        local_address=os_mod.opensearch_url(settings),
        pid_file=o_paths.pid_file, log_path=o_paths.log, marker=os_mod.cmd_marker(settings),
        ports=((settings.opensearch_port, "VSA_DEVSTACK_OPENSEARCH_PORT"),
               (settings.opensearch_transport_port, "VSA_DEVSTACK_OPENSEARCH_TRANSPORT_PORT")),
        timeout_s=settings.opensearch_start_timeout_s,
        preflight=lambda: os_mod.preflight(settings),
        start=lambda java: os_mod.start_opensearch(settings, java), probe=_probe_opensearch,
    )  # fmt: skip
    return kafka, opensearch


def external_address(name: ComponentName) -> str | None:
    """The endpoint from the environment that replaces a local part, or None."""
    if name == "kafka":
        return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    if os.environ.get("OPENSEARCH_URL"):
        return load_settings(OpenSearchSettings).url
    return None


def _check_ports_free(comp: _Component) -> None:
    for port, env_name in comp.ports:
        if port_in_use(port):
            owner = describe_listener(port)
            raise DevstackError(
                f"cannot start {comp.label}: port {port} on 127.0.0.1 is already in use"
                + (f" ({owner})" if owner else "")
                + f". Stop that process or pick another port with {env_name}=<port>"
            )


def _existing(comp: _Component) -> Endpoint | None:
    """The external endpoint or our running process for ``comp``; None when it must start."""
    external = external_address(comp.name)
    if external is not None:
        log.info("using external %s", comp.label, extra={"address": external, "from": comp.env_var})
        return Endpoint(comp.name, external, True, False, None, None)
    pid = owned_pid(comp.pid_file, comp.marker)
    if pid is not None:
        log.info("%s already running", comp.label, extra={"pid": pid})
        return Endpoint(comp.name, comp.local_address, False, False, pid, comp.log_path)
    return None


def _start_missing(comps: list[_Component], ends: dict[ComponentName, Endpoint]) -> None:
    """Check everything that could stop a start first (ports, users, Java), then start, adding
    each started part to ``ends`` at once (so a failure later can stop it again)."""
    missing = [c for c in comps if c.name not in ends]
    for comp in missing:
        _check_ports_free(comp)
        comp.preflight()
    if not missing:
        return
    java = find_java()
    for comp in missing:
        pid = comp.start(java)
        ends[comp.name] = Endpoint(comp.name, comp.local_address, False, True, pid, comp.log_path)


def _still_running(pid: int) -> Callable[[], str | None]:
    def check() -> str | None:
        if is_alive(pid):
            return None
        code = exit_code(pid)
        return "exited" + (f" with status {code}" if code is not None else "")

    return check


def _failure(comp: _Component, end: Endpoint, detail: str) -> DevstackError:
    if end.external:
        return DevstackError(
            f"external {comp.label} at {end.address} (from {comp.env_var}) is not usable: {detail}"
        )
    logs = f"Last lines of {comp.log_path}:\n{tail_file(comp.log_path, 20)}"
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
    alive = _still_running(end.pid) if end.pid is not None else None
    try:
        result = wait_healthy(
            what, lambda: comp.probe(end.address, end.external, probe_timeout), timeout_s, alive
        )
    except ProcessEndedError as exc:
        raise _failure(comp, end, f"the process {exc.detail} during start") from None
    if not result.healthy:
        reason = f"no healthy answer within {timeout_s:.0f} s (last check: {result.detail})"
        raise _failure(comp, end, reason)


def _stop_component(comp: _Component, pid: int, timeout_s: float) -> str:
    """Stop one part; returns ``"<name> (pid N)"``, plus ``", killed"`` when SIGKILL was needed."""
    log.info("stopping %s", comp.label, extra={"pid": pid})
    forced = stop(pid, timeout_s)
    comp.pid_file.unlink(missing_ok=True)
    return f"{comp.name} (pid {pid}{', killed' if forced else ''})"


def _selected(settings: DevstackSettings, kafka: bool, opensearch: bool) -> list[_Component]:
    k_comp, o_comp = _components(settings)
    return [c for c, wanted in ((k_comp, kafka), (o_comp, opensearch)) if wanted]


def up(
    timeout_s: float | None = None,
    *,
    kafka: bool = True,
    opensearch: bool = True,
    settings: DevstackSettings | None = None,
) -> StackInfo:
    """Bring up the requested parts and wait until each is healthy; idempotent.

    Downloads once (cached), reuses a running healthy stack, starts what is missing (both start
    in parallel), and uses external endpoints from the environment instead of starting anything.
    ``timeout_s``: seconds to wait for each part to become healthy after it is started
    (downloads not counted); None uses the settings' ``*_start_timeout_s``. On failure the parts
    this call started are stopped again and :class:`DevstackError` says why, with the log's end.
    """
    settings = settings if settings is not None else load_settings(DevstackSettings)
    comps = _selected(settings, kafka, opensearch)
    ends: dict[ComponentName, Endpoint] = {}
    with file_lock(settings.state_path / "devstack.lock"):
        try:
            for comp in comps:
                if (found := _existing(comp)) is not None:
                    ends[comp.name] = found
            _start_missing(comps, ends)
            for comp in comps:
                _wait(comp, ends[comp.name], comp.timeout_s if timeout_s is None else timeout_s)
        except BaseException:
            for comp in comps:
                end = ends.get(comp.name)
                if end is not None and end.started and end.pid is not None:
                    _stop_component(comp, end.pid, settings.stop_timeout_s)
            raise
    return StackInfo(kafka=ends.get("kafka"), opensearch=ends.get("opensearch"))


def down(
    *, kafka: bool = True, opensearch: bool = True, settings: DevstackSettings | None = None
) -> list[str]:
    """Stop the processes ``up`` started (found by pid file and checked by command line).

    External endpoints and processes this stack did not start are never touched. Data stays:
    the next ``up`` finds the same topics and indices. Returns what was stopped, one
    ``"<name> (pid N)"`` per process (``"..., killed)"`` when SIGTERM was not enough).
    """
    settings = settings if settings is not None else load_settings(DevstackSettings)
    stopped: list[str] = []
    with file_lock(settings.state_path / "devstack.lock"):
        for comp in reversed(_selected(settings, kafka, opensearch)):
            pid = owned_pid(comp.pid_file, comp.marker)
            if pid is not None:
                stopped.append(_stop_component(comp, pid, settings.stop_timeout_s))
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
            folders.append(os_mod.install_opensearch(settings, find_java()))
    return folders


def _component_status(comp: _Component) -> ComponentStatus:
    external = external_address(comp.name)
    if external is not None:
        health = comp.probe(external, True, STATUS_PROBE_TIMEOUT_S)
        return ComponentStatus(
            comp.name, external, True, None, False, health.healthy, health.detail, None
        )
    pid = read_pid(comp.pid_file)
    if pid is None or not is_ours(pid, comp.marker):
        detail = "not running" + (" (stale pid file)" if pid is not None else "")
        return ComponentStatus(
            comp.name, comp.local_address, False, None, False, False, detail, comp.log_path
        )
    health = comp.probe(comp.local_address, False, STATUS_PROBE_TIMEOUT_S)
    return ComponentStatus(
        comp.name, comp.local_address, False, pid, True, health.healthy, health.detail,
        comp.log_path,
    )  # fmt: skip


def status(settings: DevstackSettings | None = None) -> StackStatus:
    """Endpoints and health of both parts, checked once now (a few seconds at most)."""
    settings = settings if settings is not None else load_settings(DevstackSettings)
    return StackStatus(tuple(_component_status(c) for c in _components(settings)))


def format_status(stack_status: StackStatus) -> str:
    """A small table for people: one line per part, then where the logs are."""
    rows = [("PART", "ADDRESS", "STATE", "PID", "DETAIL")]
    for c in stack_status.components:
        state = "healthy" if c.healthy else ("unhealthy" if c.running or c.external else "down")
        state += " (external)" if c.external else ""
        rows.append((c.name, c.address, state, str(c.pid or "-"), c.detail))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(r[i].ljust(w) for i, w in enumerate(widths)), r[-1]]) for r in rows]
    lines += [f"{c.name} log: {c.log_path}" for c in stack_status.components if c.log_path]
    return "\n".join(lines)
