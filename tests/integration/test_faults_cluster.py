"""One broker of a three-node Kafka killed -9 under a running detector and tracker (issue 11,
points 5 and 6).

The test runs its own cluster, from the same code as ``vsa devstack up --brokers 3`` (own free
ports, own data folders under tmp_path, stopped by pid at the end), never the session's stack.

- every topic of the pipeline and the tracker's changelog have 3 replicas and
  min.insync.replicas 2;
- while real frames from the sample clip stream in at the clip's own rate, the broker that leads
  the camera's frames partition is killed -9: another broker leads that partition, the detector
  and the tracker keep running, and every frame that reached the frames topic gets its
  detections and its tracks message;
- the killed node, started again by ``up`` while the stream is read to its end, rejoins the
  in-sync replicas of every partition it holds; SIGTERM then ends both services with exit 0.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from vsa.devstack import DevstackSettings, StackInfo, down, up
from vsa.devstack.kafka import kafka_nodes
from vsa.devstack.procs import port_in_use, read_pid
from vsa.runtime.kafka import ensure_topics
from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import Detections, FrameMeta, Tracks
from vsa.services.ingest.config import CameraSpec, IngestSettings
from vsa.services.ingest.service import IngestService

from .test_ingest_live import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BROKERS = 3
PARTITIONS = 2
#: Frames of the one camera, pushed at the clip's rate (10 frames/s): the stream goes on during
#: the failover (a killed broker is fenced after broker.session.timeout.ms, 9 s) and after it.
FRAMES = 150
CAMERA = "cam-cluster"


@dataclass(frozen=True)
class PartitionState:
    leader: int
    replicas: list[int]
    isr: list[int]


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below the kernel's ephemeral range:
    a port from that range (what binding port 0 gives) may be taken by any outgoing connection
    on the machine in the seconds before the broker binds it."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(max(1024, ephemeral_low - 3000), ephemeral_low - count)
        if not any(port_in_use(base + k) for k in range(count)):
            return base
    raise AssertionError(f"no {count} consecutive free ports below {ephemeral_low}")


@pytest.fixture
def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DevstackSettings, StackInfo]]:
    """A three-node cluster of this test only; every node is stopped by its pid file at the end."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)  # never an external cluster
    base = free_port_block(2 * BROKERS + 2)
    opensearch_port, transport_port = base + 2 * BROKERS, base + 2 * BROKERS + 1  # never bound
    settings = load_settings(
        DevstackSettings,
        None,
        brokers=BROKERS,
        kafka_port=base,
        kafka_controller_port=base + 1,
        opensearch_port=opensearch_port,
        opensearch_transport_port=transport_port,
        state_dir=tmp_path / "cluster",
        kafka_heap_mb=256,
    )
    try:
        yield settings, up(kafka=True, opensearch=False, settings=settings)
    finally:
        down(kafka=True, opensearch=False, settings=settings)


class ClusterView:
    """One admin client and one consumer on the test's cluster, for metadata and watermarks."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.admin = AdminClient(kafka.client_config())
        self.consumer = Consumer({**kafka.client_config(), "group.id": "cluster-view"})

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topic: str) -> dict[int, PartitionState]:
        """Leader, replicas and ISR per partition, from a fresh metadata request (a partition
        whose metadata says it has no leader right now shows leader -1)."""
        meta = self.admin.list_topics(topic, timeout=10).topics[topic]
        return {
            p.id: PartitionState(p.leader if p.error is None else -1, p.replicas, p.isrs)
            for p in meta.partitions.values()
        }

    def partitions_now(self, topic: str) -> dict[int, PartitionState]:
        """:meth:`partitions`, or nothing when the metadata request fails: while a broker is
        killed, a request the client had sent to it times out (the test waits on, not fails)."""
        try:
            return self.partitions(topic)
        except KafkaException:
            return {}

    def min_insync(self, topics: list[str], wait_s: float = 30.0) -> dict[str, str]:
        """min.insync.replicas of each topic. A topic created a moment ago may be unknown to the
        broker that gets the request for a while (the controller's metadata reaches each broker
        on its own; a CI run saw UNKNOWN_TOPIC_OR_PART 3 s after creation): asked again until
        ``wait_s`` passed."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self._min_insync(topics)
            except KafkaException as exc:
                unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
                if not unknown or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _min_insync(self, topics: list[str]) -> dict[str, str]:
        resources = [ConfigResource("TOPIC", name) for name in topics]
        found = {}
        for resource, future in self.admin.describe_configs(resources).items():
            found[resource.name] = future.result(timeout=30)["min.insync.replicas"].value
        return found

    def assert_replicated(self, topics: list[str]) -> None:
        """Every partition of ``topics`` has a replica on each broker; min.insync.replicas 2."""
        for topic in topics:
            wait_for(lambda t=topic: bool(self.partitions_now(t)), 30, f"metadata of {topic}")
            for partition, state in self.partitions(topic).items():
                assert len(state.replicas) == BROKERS, (topic, partition, state)
        assert set(self.min_insync(topics).values()) == {"2"}, self.min_insync(topics)

    def messages_in(self, topic: str) -> int:
        """Messages in ``topic`` now (high minus low watermark over its partitions)."""
        total = 0
        for partition in self.partitions(topic):
            low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            total += high - low
        return total

    def rejoined(self, topics: list[str], node_id: int) -> bool:
        """Whether ``node_id`` is back in the ISR of every partition it is a replica of."""
        states = [self.partitions_now(topic) for topic in topics]
        return all(states) and all(
            node_id in state.isr
            for by_partition in states
            for state in by_partition.values()
            if node_id in state.replicas
        )


Key = tuple[str, int]  # (camera_id, frame_seq)


def frame_key(msg: Message) -> Key:
    meta = FrameMeta.from_headers(msg.headers())
    return meta.camera_id, meta.frame_seq


def detections_key(msg: Message) -> Key:
    found = Detections.from_bytes(msg.value() or b"")
    return found.camera_id, found.frame_seq


def tracks_key(msg: Message) -> Key:
    tracks = Tracks.from_bytes(msg.value() or b"")
    return tracks.camera_id, tracks.frame_seq


def read_keys(
    kafka: KafkaSettings,
    topic: str,
    key_of: Callable[[Message], Key],
    done: Callable[[set[Key]], bool],
    stall_s: float = 60.0,
) -> set[Key]:
    """The keys of ``topic``'s messages, read from the start until ``done(keys)``, or until no
    new key came for ``stall_s`` seconds (a service behind on a busy machine is still making
    progress; the caller compares and reports what is missing)."""
    consumer = Consumer({**kafka.client_config(), "group.id": f"check-{time.monotonic_ns()}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen: set[Key] = set()
    deadline = time.monotonic() + stall_s
    try:
        while not done(seen) and time.monotonic() < deadline:
            before = len(seen)
            seen.update(key_of(m) for m in consumer.consume(500, 0.5) if m.error() is None)
            if len(seen) > before:
                deadline = time.monotonic() + stall_s
    finally:
        consumer.close()
    return seen


@dataclass
class Worker:
    """A `vsa <service>` subprocess of this test, its log and its /readyz."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status) == 200
        except OSError:  # 503 (HTTPError) or nothing listening yet
            return False

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def assert_running(self) -> None:
        assert self.proc.poll() is None, f"{self.name} died:\n{self.log_tail()}"

    def terminate(self) -> int:
        """SIGTERM and the exit code (SIGKILL and -9 after 30 s)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            return -9


def start_worker(command: str, env: dict[str, str], tmp_path: Path, prefix: str) -> Worker:
    port, upper = free_port(), command.upper()
    worker_env = {
        **os.environ,
        **env,
        f"VSA_{upper}_METRICS_PORT": str(port),
        f"VSA_{upper}_METRICS_HOST": "127.0.0.1",
        f"VSA_{upper}_TOPICS__PREFIX": prefix,
        f"VSA_{upper}_GROUP_ID": f"{prefix}{command}",
    }
    log_path = tmp_path / f"{command}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vsa", command],
            env=worker_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Worker(command, proc, port, log_path)


class FrameStream(threading.Thread):
    """Ingest of the sample clip as one camera at its own rate, in a thread."""

    def __init__(self, kafka: KafkaSettings, names: TopicNames, vtest: Path) -> None:
        super().__init__(daemon=True)
        camera = CameraSpec(camera_id=CAMERA, url=str(vtest), realtime=True)
        self.settings = load_settings(
            IngestSettings,
            None,
            kafka=kafka,
            topics=names,
            cameras=(camera,),
            max_frames=FRAMES,
            metrics_port=0,
        )
        self.published = -1
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.published = IngestService(self.settings).run().published
        except BaseException as exc:  # reported by the test
            self.error = exc


def kill_node(settings: DevstackSettings, node_id: int) -> int:
    """SIGKILL the node with ``node_id`` of this test's cluster, by its pid file; its pid."""
    node = next(n for n in kafka_nodes(settings) if n.node_id == node_id)
    pid = read_pid(node.paths.pid_file)
    assert pid is not None, node
    os.kill(pid, signal.SIGKILL)
    return pid


def started_workers(bootstrap: str, prefix: str, tmp_path: Path) -> tuple[Worker, Worker]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "VSA_DETECTOR_BACKEND": '{"type": "onnxruntime", "intra_op_num_threads": 1}',
        "VSA_TRACKER_SESSION_TIMEOUT_S": "6",
        "VSA_TRACKER_HEARTBEAT_INTERVAL_S": "1",
        "VSA_TRACKER_CAMERA_CONFIG_SYNC_S": "0",
        "VSA_TRACKER_DATADIR": str(tmp_path / "tracker-data"),
    }
    detector = start_worker("detector", env, tmp_path, prefix)
    tracker = start_worker("tracker", env, tmp_path, prefix)
    return detector, tracker


def test_a_broker_killed_in_a_three_node_cluster_loses_nothing(
    cluster: tuple[DevstackSettings, StackInfo], vtest: Path, tmp_path: Path
) -> None:
    settings, info = cluster
    assert info.kafka is not None
    assert len(info.kafka.nodes) == BROKERS
    kafka = load_settings(KafkaSettings, None, bootstrap_servers=info.kafka_bootstrap)
    prefix = f"cluster-{time.monotonic_ns()}."
    names = TopicNames(prefix=prefix)
    specs = load_settings(TopicsSettings, None, names=names, partitions=PARTITIONS).specs()
    ensure_topics(kafka, specs)
    view = ClusterView(kafka)
    try:
        view.assert_replicated(list(specs))
    except BaseException:
        view.close()  # its consumer would retry the test's stopped cluster for the rest of the run
        raise
    frames_topic = names.name("frames")
    camera_partition = partition_for_key(CAMERA, PARTITIONS)

    detector, tracker = started_workers(info.kafka_bootstrap, prefix, tmp_path)
    services = (detector, tracker)
    stream = FrameStream(kafka, names, vtest)
    try:
        for svc in services:
            wait_for(svc.ready, 120, f"{svc.name} ready")
        changelog = f"{prefix}tracker-camera-state-changelog"
        view.assert_replicated([changelog])
        stream.start()
        detections_topic = names.name("detections")
        wait_for(lambda: view.messages_in(detections_topic) > 0, 60, "first detections")
        victim = view.partitions(frames_topic)[camera_partition].leader
        assert victim > 0, victim
        killed_pid = kill_node(settings, victim)
        killed_at = time.monotonic()

        after: list[PartitionState] = []

        def moved() -> bool:
            state = view.partitions_now(frames_topic).get(camera_partition)
            if state is not None and state.leader not in (-1, victim):
                after.append(state)
            return bool(after)

        wait_for(moved, 60, f"a new leader of {frames_topic}-{camera_partition}")
        moved_s = time.monotonic() - killed_at
        assert victim not in after[0].isr, after[0]
        for svc in services:
            svc.assert_running()

        # the killed node starts again (the same `up`) while the stream is read to its end
        with ThreadPoolExecutor(1) as pool:
            restart = pool.submit(up, kafka=True, opensearch=False, settings=settings)
            stream.join(timeout=120)
            assert stream.error is None, stream.error
            assert stream.published == FRAMES
            wanted = read_keys(kafka, frames_topic, frame_key, lambda got: len(got) >= FRAMES)
            detected = read_keys(kafka, detections_topic, detections_key, wanted.issubset)
            tracked = read_keys(kafka, names.name("tracks"), tracks_key, wanted.issubset)
            again = restart.result(timeout=settings.kafka_start_timeout_s + 60)
        assert again.started == ("kafka",)
        assert again.kafka is not None
        assert killed_pid not in {n.pid for n in again.kafka.nodes}
        replicated = [*specs, changelog]
        wait_for(partial(view.rejoined, replicated, victim), 60, f"node {victim} back in ISR")
        rejoined_s = time.monotonic() - killed_at
        for svc in services:
            svc.assert_running()
        stopped = {svc.name: svc.terminate() for svc in services}
    finally:
        view.close()
        for svc in services:
            if svc.proc.poll() is None:
                svc.proc.kill()
                svc.proc.wait(timeout=30)
    assert len(wanted) == FRAMES
    assert sorted(wanted - detected) == [], detector.log_tail()
    assert sorted(wanted - tracked) == [], tracker.log_tail()
    assert stopped == {"detector": 0, "tracker": 0}, (detector.log_tail(), tracker.log_tail())
    print(
        f"node {victim} killed: {frames_topic}-{camera_partition} led by another broker after "
        f"{moved_s:.1f} s, node back in every ISR {rejoined_s:.1f} s after the kill"
    )
