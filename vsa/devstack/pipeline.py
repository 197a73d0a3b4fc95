"""The vsa pipeline as ``vsa <service>`` processes on a given Kafka and OpenSearch, with topics,
consumer groups, metrics ports and indices of its own (one prefix per run).

Shared by the fault-injection harness (``tests/integration/pipeline_harness.py``) and the
end-to-end benchmark (``benchmarks/pipeline.py``):

- :class:`ServiceProc`: one service process, its log, metrics port and /readyz answers.
- :class:`ServicePipeline`: a run's topics (own prefix, ``partitions`` each), the example rules
  of ``examples/vtest-rules.yaml`` published for every camera on camera-config, the service
  processes (own groups, metrics ports, tracker data folders, caption indices), the offsets
  their groups committed, and the clean-up of the run's indices.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

from vsa.runtime.kafka import Output, Producer, ensure_topics
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import CameraConfig

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "vtest-rules.yaml"
#: The four services downstream of ingest, in pipeline order.
SERVICES = ("detector", "tracker", "captioner", "indexer")
#: Input topics of each service's consumer group (what "settled" and lag compare offsets on).
INPUTS: dict[str, tuple[str, ...]] = {
    "detector": ("frames",),
    "tracker": ("detections",),
    "captioner": ("keyframes",),
    "indexer": ("captions", "alerts"),
}
#: SIGTERM must end a service within this long, outage or not (Kubernetes' default grace).
STOP_BOUND_S = 30.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> None:
    """Poll ``check`` until it is true; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(every_s)


def http_status(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET; 503 is a status (urllib raises it), 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (loopback)
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:  # an OSError too: before it
        return int(exc.code), bytes(exc.read())
    except OSError:
        return 0, b""


@dataclass
class ServiceProc:
    """A `vsa <service>` subprocess, its log file, metrics port and /readyz answers over time."""

    name: str
    service: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    readiness: list[tuple[float, int]] = field(default_factory=list)
    #: blocker names /readyz gave with its 503s (``blocked`` of its JSON body), when first seen
    blockers: dict[str, float] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def get(self, path: str, tries: int = 1) -> tuple[int, bytes]:
        """GET from the service's metrics server, asking again ``tries - 1`` times while
        nothing answers (a busy process)."""
        for _ in range(tries - 1):
            status, body = http_status(f"http://127.0.0.1:{self.port}{path}", 5.0)
            if status:
                return status, body
        return http_status(f"http://127.0.0.1:{self.port}{path}")

    def ready_code(self) -> int:
        """/readyz's status code; 0 when nothing answered."""
        return self.get("/readyz")[0]

    def is_ready(self) -> bool:
        return self.ready_code() == 200

    def readiness_body(self) -> dict[str, Any]:
        """/readyz's JSON body (empty when nothing answered)."""
        body = self.get("/readyz", tries=3)[1]
        try:
            found = json.loads(body)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels`` (0 when absent)."""
        total = 0.0
        for line in self.get("/metrics", tries=5)[1].decode().splitlines():
            match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
            if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, bound_s: float = STOP_BOUND_S, send: bool = True) -> tuple[int, float]:
        """SIGTERM (unless ``send`` is false: already sent); the exit code and the seconds it
        took (SIGKILL past the bound: code -9). Sent once: a second SIGTERM that lands while
        Python finalises (handlers back to default) would kill the process with -15."""
        started = time.monotonic()
        if send and self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=bound_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9, time.monotonic() - started
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL (also continues a stopped process first, so it can die)."""
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=30)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


def terminate_all(
    services: Sequence[ServiceProc], bound_s: float = STOP_BOUND_S
) -> dict[str, tuple[int, float]]:
    """SIGTERM to every one of ``services`` at once; each one's exit code and the seconds from
    the signal to its exit (SIGKILL past ``bound_s``: code -9)."""
    sent = time.monotonic()
    for svc in services:
        svc.proc.send_signal(signal.SIGTERM)
    took: dict[str, tuple[int, float]] = {}
    while len(took) < len(services) and time.monotonic() - sent < bound_s:
        for svc in services:
            if svc.name not in took and (code := svc.proc.poll()) is not None:
                took[svc.name] = (code, time.monotonic() - sent)
        time.sleep(0.05)
    for svc in services:
        if svc.name not in took:  # past the bound: killed
            svc.kill()
            took[svc.name] = (-9, time.monotonic() - sent)
    return took


class ServicePipeline:
    """One run's topics, rules, index names and service processes on a given Kafka.

    Args:
        bootstrap: Kafka bootstrap servers.
        opensearch_url: Where the indexer writes (indices of the run's own prefix).
        workdir: Service logs and tracker data folders go here.
        name: Start of the run's topic prefix (``<name>-<random>.``) and index prefix.
        cameras: Camera ids the example rules are published for.
        partitions: Partitions of every topic. More lets more instances of a service share
            the work (and Faust's tracker run more partitions); one camera stays on one.
        service_env: Per service, environment variables on top of the run's own (model,
            batch sizes, devices); a process's ``start(**extra)`` wins over these.
        session_timeout_s: Consumer group session timeout of every service (and the tracker's),
            so a stopped member is replaced this fast; None leaves the services' defaults.
    """

    def __init__(
        self,
        bootstrap: str,
        opensearch_url: str,
        workdir: Path,
        name: str,
        cameras: Sequence[str],
        *,
        partitions: int = 2,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        session_timeout_s: int | None = None,
    ) -> None:
        token = uuid.uuid4().hex[:8]
        self.kafka = load_settings(KafkaSettings, None, bootstrap_servers=bootstrap)
        self.opensearch_url = opensearch_url
        self.workdir = workdir
        self.cameras = tuple(cameras)
        self.partitions = partitions
        self.service_env = {k: dict(v) for k, v in (service_env or {}).items()}
        self.session_timeout_s = session_timeout_s
        self.prefix = f"{name}-{token}."
        self.index_prefix = f"{name}-{token}-".lower()
        self.names = TopicNames(prefix=self.prefix)
        self.services: list[ServiceProc] = []
        self._client: Any = None
        self._started: Counter[str] = Counter()
        workdir.mkdir(parents=True, exist_ok=True)

    # -- set-up

    def create(self, rules: Path = RULES) -> None:
        """Topics (``partitions`` each) and the rules of ``rules`` for every camera on
        camera-config."""
        specs = load_settings(TopicsSettings, None, names=self.names, partitions=self.partitions)
        ensure_topics(self.kafka, specs.specs())
        base = yaml.safe_load(rules.read_text())
        producer = Producer(self.kafka, "pipeline-rules")
        for camera_id in self.cameras:
            config = CameraConfig.from_dict({**base, "camera_id": camera_id})
            topic = self.names.name("camera_config")
            producer.produce(Output(topic, camera_id, config.to_bytes()))
        producer.flush()

    def group(self, service: str) -> str:
        return f"{self.prefix}{service}"

    def env(self, service: str, instance: str, port: int) -> dict[str, str]:
        """The environment of one service process (as in production: variables only)."""
        upper = service.upper()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "OPENSEARCH_URL": self.opensearch_url,
            "VSA_LOG_LEVEL": "INFO",
            f"VSA_{upper}_TOPICS__PREFIX": self.prefix,
            f"VSA_{upper}_GROUP_ID": self.group(service),
            f"VSA_{upper}_METRICS_HOST": "127.0.0.1",
            f"VSA_{upper}_METRICS_PORT": str(port),
        }
        if self.session_timeout_s is not None:
            session = {
                "session.timeout.ms": str(self.session_timeout_s * 1000),
                "heartbeat.interval.ms": "1000",
            }
            env["KAFKA_EXTRA"] = json.dumps(session)
            if service == "tracker":
                env["VSA_TRACKER_SESSION_TIMEOUT_S"] = str(self.session_timeout_s)
        env.update(self.service_env.get(service, {}))
        if service == "tracker":
            env["VSA_TRACKER_DATADIR"] = str(self.workdir / f"tracker-{instance}")
        if service == "indexer":
            env["VSA_INDEXER_INDEX__PREFIX"] = self.index_prefix
        return env

    def start(
        self, service: str, instance: str = "1", args: Sequence[str] = (), **extra: str
    ) -> ServiceProc:
        """Start ``vsa <service> <args>`` (not waiting for it to be ready)."""
        self._started[f"{service}-{instance}"] += 1
        run = self._started[f"{service}-{instance}"]
        name = f"{service}-{instance}" + (f"-run{run}" if run > 1 else "")
        port = free_port()
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vsa", service, *args],
                env={**self.env(service, instance, port), **extra},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        svc = ServiceProc(name, service, proc, port, log_path)
        self.services.append(svc)
        return svc

    def start_all(self, timeout_s: float = 180.0) -> dict[str, ServiceProc]:
        """One instance of each service downstream of ingest, waited for until ready."""
        started = {service: self.start(service) for service in SERVICES}
        for svc in started.values():
            self.wait_ready(svc, timeout_s)
        return started

    def wait_ready(self, svc: ServiceProc, timeout_s: float = 180.0) -> None:
        def ready() -> bool:
            assert svc.alive, f"{svc.name} exited {svc.proc.poll()}:\n{svc.log()[-3000:]}"
            return svc.is_ready()

        wait_for(ready, timeout_s, f"{svc.name} ready")

    def running(self) -> list[ServiceProc]:
        return [svc for svc in self.services if svc.alive]

    # -- reading

    def end_offsets(self, topics: Sequence[str]) -> dict[tuple[str, int], int]:
        """High watermark of each partition of the given logical topics."""
        consumer = Consumer({**self.kafka.client_config(), "group.id": "pipeline-ends"})
        try:
            ends = {}
            for topic in topics:
                name = self.names.name(topic)
                for p in range(self.partitions):
                    ends[(name, p)] = consumer.get_watermark_offsets(
                        TopicPartition(name, p), timeout=10
                    )[1]
            return ends
        finally:
            consumer.close()

    def committed(self, service: str) -> dict[tuple[str, int], int]:
        """The offsets a service's group committed on its input topics (-1: none)."""
        parts = [
            TopicPartition(self.names.name(t), p)
            for t in INPUTS[service]
            for p in range(self.partitions)
        ]
        consumer = Consumer({**self.kafka.client_config(), "group.id": self.group(service)})
        try:
            return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, 10)}
        finally:
            consumer.close()

    def settled(self) -> bool:
        """Every group committed its input topics up to their end: nothing left to redo."""
        for service in SERVICES:
            ends = self.end_offsets(INPUTS[service])
            committed = self.committed(service)
            if any(committed.get(tp, -1) < end for tp, end in ends.items() if end > 0):
                return False
        return True

    def client(self) -> Any:
        if self._client is None:
            from vsa.services.indexer.store import make_client

            self._client = make_client(OpenSearchSettings(url=self.opensearch_url), 30)
        return self._client

    @property
    def captions_index(self) -> str:
        return f"{self.index_prefix}captions"

    def indexed_ids(self) -> set[str]:
        """The _ids of the caption index (empty until it exists)."""
        client = self.client()
        if not client.indices.exists(index=self.captions_index):
            return set()
        client.indices.refresh(index=self.captions_index)
        body = {"query": {"match_all": {}}, "_source": False, "size": 10_000}
        hits = client.search(index=self.captions_index, body=body)["hits"]["hits"]
        return {str(hit["_id"]) for hit in hits}

    # -- end

    def stop_all(self, bound_s: float = STOP_BOUND_S) -> dict[str, tuple[int, float]]:
        """SIGTERM every running service at once; each one's (exit code, seconds)."""
        return terminate_all(self.running(), bound_s)

    def close(self) -> None:
        """Kill what still runs; drop the run's indices and templates."""
        for svc in self.services:
            if svc.alive:
                svc.kill()
        with contextlib.suppress(Exception):
            client = self.client()
            pattern = f"{self.index_prefix}*"
            for name in client.indices.get(index=pattern, ignore_unavailable=True):
                client.indices.delete(index=name, ignore_unavailable=True)
            templates = client.indices.get_index_template(name=pattern, ignore=[404])
            for template in templates.get("index_templates", []):
                client.indices.delete_index_template(name=template["name"], ignore=[404])
