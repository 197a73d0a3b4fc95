"""`vsa tracker` against the real local Kafka.

- the outputs equal the offline replay (`vsa track`) of the same input;
- bad input goes to dlq.tracker and the worker goes on; a camera config produced on the topic
  while the worker runs applies to the following frames;
- kill -9 in the middle of the stream, restart with an EMPTY data folder: the state comes back
  from the changelog topic, the tracks keep their ids, no alert is lost, and a redelivered alert
  has the same alert_id;
- two workers of one app share four cameras on four partitions: the cameras' tracks continue
  with the same ids when the second worker joins and when the first one leaves.

After a crash or a rebalance outputs are compared with the offline replay allowing duplicates
(at-least-once), never a second, different version of a frame or an alert. The workers run as
subprocesses (``python -m vsa tracker``) configured by environment variables, as in production,
with a 6 s session timeout so a killed member is noticed quickly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from vsa.runtime.kafka import Output, Producer, consumer_config, delete_topics, ensure_topics
from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import CameraConfig, DeadLetter, Detections
from vsa.services.tracker.golden import GOLDEN_DIR, read_detections
from vsa.services.tracker.replay import replay
from vsa.services.tracker.rules import compile_rules, load_camera_configs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
OUTPUT_TOPICS = ("tracks", "alerts", "keyframes")
SCENE = GOLDEN_DIR / "scene.detections.jsonl"
SCENE_RULES = GOLDEN_DIR / "scene.rules.yaml"


# ---------------------------------------------------------------------------- inputs, expected


def cameras_on_partitions(count: int, partitions: int = PARTITIONS) -> list[str]:
    """``count`` camera ids on distinct partitions (murmur2), 'lab' (the golden scene's) first."""
    chosen = {partition_for_key("lab", partitions): "lab"}
    index = 0
    while len(chosen) < min(count, partitions):
        chosen.setdefault(partition_for_key(f"cam-{index}", partitions), f"cam-{index}")
        index += 1
    return list(chosen.values())


def scene_for(camera_id: str) -> list[Detections]:
    """The golden scene (115 frames, frames 30 and 31 delivered twice) as seen by ``camera_id``."""
    return [
        message.model_copy(
            update={
                "camera_id": camera_id,
                "frame": message.frame.model_copy(update={"camera_id": camera_id}),
            }
        )
        for message in read_detections(SCENE)
    ]


def scene_config(camera_id: str) -> CameraConfig:
    """The golden scene's rules (zone, tripwire, 5 rules, keyframes every 2 s) for a camera."""
    (config,) = load_camera_configs(SCENE_RULES)
    return config.model_copy(update={"camera_id": camera_id})


def write_rules(path: Path, camera_ids: Sequence[str]) -> Path:
    configs = [scene_config(c).model_dump(mode="json") for c in camera_ids]
    path.write_text(yaml.safe_dump({"cameras": configs}), encoding="utf-8")
    return path


def interleave(scenes: Sequence[Sequence[Detections]]) -> list[Detections]:
    """Frames of several cameras in arrival order: one of each camera in turn."""
    longest = max(len(s) for s in scenes)
    return [s[i] for i in range(longest) for s in scenes if i < len(s)]


@dataclass
class Expected:
    """The offline replay's outputs (``vsa track``) per camera, as topic bytes."""

    tracks: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    alerts: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    keyframes: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))

    def frames(self) -> int:
        return sum(len(v) for v in self.tracks.values())


def expected_outputs(camera_ids: Sequence[str]) -> Expected:
    messages = interleave([scene_for(c) for c in camera_ids])
    rules = {c: compile_rules(scene_config(c), None) for c in camera_ids}
    expected = Expected()
    for topic, value in replay(messages, rules):
        getattr(expected, topic)[getattr(value, "camera_id")].append(value.to_bytes())  # noqa: B009
    return expected


# --------------------------------------------------------------------------------- Kafka helpers


@pytest.fixture
def names(kafka: KafkaSettings, unique_name: str) -> Iterator[TopicNames]:
    """The pipeline's topics under a test-unique prefix; deleted afterwards (with the changelog)."""
    names = TopicNames(prefix=f"{unique_name}.")
    specs = load_settings(TopicsSettings, None, names=names, partitions=PARTITIONS).specs()
    ensure_topics(kafka, specs)
    yield names
    delete_topics(kafka, [*specs, f"{unique_name}.tracker-camera-state-changelog"])


def produce(kafka: KafkaSettings, topic: str, items: Sequence[tuple[bytes, bytes | None]]) -> None:
    producer = Producer(kafka, "test-tracker")
    for key, value in items:
        producer.produce(Output(topic, key, value))  # type: ignore[arg-type]
    producer.flush(30)


def produce_detections(
    kafka: KafkaSettings, names: TopicNames, messages: Sequence[Detections]
) -> None:
    items = [(m.camera_id.encode(), m.to_bytes()) for m in messages]
    produce(kafka, names.name("detections"), items)


def header_list(raw: Any) -> list[tuple[str, bytes]]:
    """A record's headers as (name, bytes) pairs."""
    pairs = raw.items() if isinstance(raw, dict) else (raw or [])
    return [(k, v if isinstance(v, bytes) else str(v or "").encode()) for k, v in pairs]


class TopicReader:
    """Reads topics from their beginning, accumulating values, until a condition holds."""

    def __init__(self, kafka: KafkaSettings, topics: Sequence[str]) -> None:
        self.consumer = Consumer(consumer_config(kafka, "test-reader", "test-reader-unused"))
        assignment = []
        for topic in topics:
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self.consumer.assign(assignment)
        self.values: dict[str, list[bytes]] = defaultdict(list)
        self.headers: dict[str, list[list[tuple[str, bytes]]]] = defaultdict(list)

    def poll_until(
        self, done: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            for msg in self.consumer.consume(1000, poll_s):
                if msg.error() is None:
                    self.values[str(msg.topic())].append(bytes(msg.value() or b""))
                    self.headers[str(msg.topic())].append(header_list(msg.headers()))

    def read_to_end(self, timeout_s: float = 60) -> None:
        """Read every assigned partition up to its end offset (high watermark) as of now: what
        the topics hold at this moment is all in ``values`` afterwards (late duplicates too)."""
        ends = {}
        for tp in self.consumer.assignment():
            _, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            ends[(tp.topic, tp.partition)] = high

        def behind() -> list[tuple[str, int]]:
            positions = self.consumer.position([TopicPartition(t, p) for t, p in ends])
            return [
                (tp.topic, tp.partition)
                for tp in positions
                if ends[(tp.topic, tp.partition)] > max(tp.offset, 0)
            ]

        self.poll_until(lambda: not behind(), timeout_s, "the topics' end offsets")

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Outputs:
    """The tracker's outputs read back, grouped: every copy of every message."""

    tracks: dict[tuple[str, int], set[bytes]]
    keyframes: dict[tuple[str, int], set[bytes]]
    alerts: dict[str, set[bytes]]
    copies: int

    @property
    def distinct(self) -> int:
        """Distinct messages (frames' tracks and keyframes, alerts by id)."""
        return len(self.tracks) + len(self.keyframes) + len(self.alerts)


def group_outputs(reader: TopicReader, names: TopicNames) -> Outputs:
    def by_frame(values: list[bytes]) -> dict[tuple[str, int], set[bytes]]:
        grouped: dict[tuple[str, int], set[bytes]] = defaultdict(set)
        for value in values:
            doc = json.loads(value)
            grouped[(doc["camera_id"], doc["frame_seq"])].add(value)
        return grouped

    alerts: dict[str, set[bytes]] = defaultdict(set)
    for value in reader.values[names.name("alerts")]:
        alerts[json.loads(value)["alert_id"]].add(value)
    copies = sum(len(reader.values[names.name(t)]) for t in OUTPUT_TOPICS)
    return Outputs(
        by_frame(reader.values[names.name("tracks")]),
        by_frame(reader.values[names.name("keyframes")]),
        alerts,
        copies,
    )


def distinct_frames(reader: TopicReader, names: TopicNames) -> int:
    seen = {
        (doc["camera_id"], doc["frame_seq"])
        for doc in map(json.loads, reader.values[names.name("tracks")])
    }
    return len(seen)


def assert_same_as_replay(outputs: Outputs, expected: Expected) -> None:
    """Every frame's tracks and keyframe equal the replay's (duplicates allowed, never two
    different versions); every alert_id of the replay is there, each with the replay's content,
    and there is no other alert_id."""

    def frame_key(value: bytes) -> tuple[str, int]:
        doc = json.loads(value)
        return doc["camera_id"], doc["frame_seq"]

    for topic in ("tracks", "keyframes"):
        got: dict[tuple[str, int], set[bytes]] = getattr(outputs, topic)
        want = {frame_key(v): v for values in getattr(expected, topic).values() for v in values}
        assert set(got) == set(want), f"{topic}: frames differ"
        for key, copies in got.items():
            assert copies == {want[key]}, f"{topic} of {key}: differs from the offline replay"
    want_alerts = {json.loads(v)["alert_id"]: v for vs in expected.alerts.values() for v in vs}
    assert set(outputs.alerts) == set(want_alerts), "alert ids differ from the offline replay"
    for alert_id, copies in outputs.alerts.items():
        assert copies == {want_alerts[alert_id]}, f"alert {alert_id}: differs from the replay"


# ------------------------------------------------------------------------------ the worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TrackerWorker:
    """A ``python -m vsa tracker`` subprocess with its log file and metrics port."""

    def __init__(self, env: dict[str, str], log: Path, argv: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.log = log
        env = {
            **env,
            "VSA_TRACKER_METRICS_PORT": str(self.port),
            "VSA_TRACKER_METRICS_HOST": "127.0.0.1",
        }
        with log.open("ab") as out:
            command = [sys.executable, *(argv or ("-m", "vsa", "tracker"))]
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except OSError:
            return 0, b""

    def readiness(self) -> dict[str, Any] | None:
        """/readyz's JSON when ready, else None."""
        status, body = self._get("/readyz")
        return json.loads(body) if status == 200 else None

    def wait_ready(self, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited: {self.log.read_text()[-3000:]}"
            ready = self.readiness()
            if ready is not None:
                return ready
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout_s} s: {self.log.read_text()[-3000:]}")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of a metric whose labels include ``labels``."""
        return sum(self.samples(name, **labels))

    def samples(self, name: str, **labels: str) -> list[float]:
        """The values of a metric's samples whose labels include ``labels``."""
        _, body = self._get("/metrics")
        values = []
        for line in body.decode().splitlines():
            match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
            if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
                values.append(float(match.group(2)))
        return values

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM: the exit status; fails if the worker is still running after ``timeout_s``
        (a worker must end in bounded time, e.g. Faust must not wait for an event for ever)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            tail = self.log.read_text()[-3000:]
            message = f"worker still running {timeout_s} s after SIGTERM: {tail}"
            raise AssertionError(message) from None

    def wait_caught_up(self, topic: str, partitions: int, timeout_s: float = 60) -> None:
        """Wait until ``vsa_consumer_lag`` is 0 on ``partitions`` partitions of ``topic``: every
        record fetched was handled, so its outputs are in Kafka (refreshed every 2 s)."""
        deadline = time.monotonic() + timeout_s
        lags: list[float] = []
        while time.monotonic() < deadline:
            lags = self.samples("vsa_consumer_lag", topic=topic)
            if len(lags) == partitions and not any(lags):
                return
            time.sleep(0.2)
        raise AssertionError(f"lag of {topic} not 0 on {partitions} partitions: {lags}")

    def assert_no_gap_given_up(self) -> None:
        """No skipped offset was given up (the worker would have gone on without a record);
        from the metric while the worker runs, and from its log."""
        if self.proc.poll() is None:
            given_up = self.metric("vsa_tracker_offset_gaps_total", outcome="given_up")
            assert given_up == 0, f"{given_up} offset gaps given up"
        assert "offset_gap_given_up" not in self.log.read_text()

    def gaps_sought(self) -> float:
        return self.metric("vsa_tracker_offset_gaps_total", outcome="sought")

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye."""
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def start_worker(
    kafka: KafkaSettings, names: TopicNames, unique_name: str, tmp_path: Path
) -> Iterator[Callable[..., TrackerWorker]]:
    """Start tracker workers of one app id (``start_worker(datadir_name, **env)``); all are
    killed at the end."""
    workers: list[TrackerWorker] = []
    base = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VSA_TRACKER_TOPICS__PREFIX": names.prefix,
        "VSA_TRACKER_GROUP_ID": f"{unique_name}.tracker",
        "VSA_TRACKER_SESSION_TIMEOUT_S": "6",
        "VSA_TRACKER_HEARTBEAT_INTERVAL_S": "1",
        "VSA_TRACKER_REBALANCE_TIMEOUT_S": "20",
        "VSA_TRACKER_CAMERA_CONFIG_SYNC_S": "15",
        "VSA_TRACKER_FRAMEWORK_LOG_LEVEL": os.environ.get(
            "VSA_TRACKER_FRAMEWORK_LOG_LEVEL", "WARNING"
        ),
    }

    def start(datadir: str = "data", argv: Sequence[str] = (), **env: str) -> TrackerWorker:
        settings = {**base, "VSA_TRACKER_DATADIR": str(tmp_path / datadir), **env}
        worker = TrackerWorker(settings, tmp_path / f"worker-{len(workers)}.log", argv)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.proc.poll() is None:
            worker.kill()


# ------------------------------------------------------------------------------------- tests


def test_outputs_equal_the_offline_replay(
    kafka: KafkaSettings, names: TopicNames, start_worker: Callable[..., TrackerWorker]
) -> None:
    """Two cameras, rules from the camera-config topic: tracks, alerts and keyframes are exactly
    what `vsa track` gives for the same input (same track ids, same alert_ids, same order)."""
    cameras = cameras_on_partitions(2)
    configs = [(c.encode(), scene_config(c).to_bytes()) for c in cameras]
    produce(kafka, names.name("camera_config"), configs)
    worker = start_worker(VSA_TRACKER_STORE="rocksdb")
    worker.wait_ready()
    produce_detections(kafka, names, interleave([scene_for(c) for c in cameras]))
    expected = expected_outputs(cameras)
    reader = TopicReader(kafka, [names.name(t) for t in OUTPUT_TOPICS])
    total = sum(sum(len(getattr(expected, t)[c]) for c in cameras) for t in OUTPUT_TOPICS)
    reader.poll_until(lambda: sum(map(len, reader.values.values())) >= total, 60, "outputs")
    for topic in OUTPUT_TOPICS:
        for camera in cameras:
            got = [
                v for v in reader.values[names.name(topic)] if json.loads(v)["camera_id"] == camera
            ]
            assert got == getattr(expected, topic)[camera], f"{topic} of {camera}"
    assert sum(len(v) for v in expected.alerts.values()) == 22  # 11 per camera
    changelog = f"{names.prefix}tracker-camera-state-changelog"
    topics = AdminClient(kafka.client_config()).list_topics(changelog, timeout=10).topics
    assert len(topics[changelog].partitions) == PARTITIONS  # co-partitioned with detections
    assert worker.metric("vsa_tracker_frames_total", outcome="already_applied") == 4  # 30, 31
    # Everything handled: the lag of each assigned detections partition drops to 0 (it is
    # refreshed every 2 s).
    worker.wait_caught_up(names.name("detections"), PARTITIONS, 10)
    worker.assert_no_gap_given_up()
    assert worker.stop() == 0
    reader.close()


def test_malformed_detections_go_to_the_dead_letters_and_configs_apply_live(
    kafka: KafkaSettings, names: TopicNames, start_worker: Callable[..., TrackerWorker]
) -> None:
    """A broken message goes to dlq.tracker (original bytes, error headers) and the worker goes
    on; a camera config produced while it runs applies to the following frames."""
    scene = scene_for("lab")
    worker = start_worker(VSA_TRACKER_STORE="memory")
    worker.wait_ready()
    bad = [(b"lab", b'{"not": "detections"'), (b"lab", b'{"schema_version": 1}')]
    produce(kafka, names.name("detections"), [(b"lab", m.to_bytes()) for m in scene[:20]])
    produce(kafka, names.name("detections"), bad)
    produce(kafka, names.name("detections"), [(b"lab", m.to_bytes()) for m in scene[20:40]])
    reader = TopicReader(kafka, [*(names.name(t) for t in OUTPUT_TOPICS), names.dlq("tracker")])
    reader.poll_until(lambda: distinct_frames(reader, names) >= 38, 60, "38 frames tracked")
    reader.poll_until(lambda: len(reader.values[names.dlq("tracker")]) >= 2, 30, "dead letters")
    assert reader.values[names.dlq("tracker")] == [value for _, value in bad]
    meta = DeadLetter.from_headers(reader.headers[names.dlq("tracker")][0])
    assert (meta.service, meta.error_class, meta.source_topic) == (
        "tracker",
        "SchemaError",
        names.name("detections"),
    )
    assert worker.metric("vsa_dead_letters_total") == 2
    assert reader.values[names.name("alerts")] == []  # no rules yet

    produce(kafka, names.name("camera_config"), [(b"lab", scene_config("lab").to_bytes())])
    deadline = time.monotonic() + 30
    while worker.metric("vsa_tracker_cameras_with_rules") < 1:  # the config applied
        assert time.monotonic() < deadline, "the camera config did not apply in 30 s"
        time.sleep(0.2)
    produce(kafka, names.name("detections"), [(b"lab", m.to_bytes()) for m in scene[40:]])
    reader.poll_until(lambda: distinct_frames(reader, names) >= 115, 60, "all frames tracked")
    rules = {json.loads(v)["rule_id"] for v in reader.values[names.name("alerts")]}
    assert rules, "no alert after the config arrived"
    assert rules <= {r.rule_id for r in scene_config("lab").rules}
    assert worker.proc.poll() is None
    assert worker.stop() == 0
    reader.close()


def test_kill_9_and_restart_with_an_empty_datadir(
    kafka: KafkaSettings,
    names: TopicNames,
    start_worker: Callable[..., TrackerWorker],
    tmp_path: Path,
) -> None:
    cameras = cameras_on_partitions(4)
    rules = str(write_rules(tmp_path / "rules.yaml", cameras))
    stream = interleave([scene_for(c) for c in cameras])  # 468 messages, 460 frames
    expected = expected_outputs(cameras)
    reader = TopicReader(kafka, [names.name(t) for t in OUTPUT_TOPICS])
    # Commits are rare, so the restarted worker is handed frames its recovered state holds.
    first = start_worker("data-1", VSA_TRACKER_RULES_FILE=rules, VSA_TRACKER_COMMIT_INTERVAL_S="30")
    first.wait_ready()
    produce_detections(kafka, names, stream[:160])
    reader.poll_until(lambda: distinct_frames(reader, names) >= 152, 60, "the first frames")
    produce_detections(kafka, names, stream[160:])  # a burst: the worker is busy with it
    reader.poll_until(
        lambda: distinct_frames(reader, names) >= 200, 60, "a part of the burst", 0.005
    )
    first.kill()
    killed_at = distinct_frames(reader, names)

    second = start_worker("data-2", VSA_TRACKER_RULES_FILE=rules)  # empty: changelog recovery
    second.wait_ready(90)
    reader.poll_until(
        lambda: distinct_frames(reader, names) >= expected.frames(), 90, "every frame tracked"
    )
    # Every record handled, then everything the topics hold read: late duplicates included.
    second.wait_caught_up(names.name("detections"), PARTITIONS)
    reader.read_to_end()
    outputs = group_outputs(reader, names)
    assert killed_at < expected.frames(), "the worker finished before it was killed"
    assert_same_as_replay(outputs, expected)
    # The restarted worker was handed frames the recovered state already held (no commit
    # since the start): it skipped them, which it can only do with the state from the changelog.
    assert second.metric("vsa_tracker_frames_total", outcome="already_applied") > 8
    assert second.metric("vsa_tracker_frames_total", outcome="applied") > 0
    print(f"killed after {killed_at} frames; {outputs.copies} messages for {outputs.distinct} ")
    second.assert_no_gap_given_up()
    assert second.stop() == 0
    second.assert_no_gap_given_up()  # the log, to the end
    reader.close()


def test_two_workers_share_the_cameras_across_rebalances(
    kafka: KafkaSettings,
    names: TopicNames,
    start_worker: Callable[..., TrackerWorker],
    tmp_path: Path,
) -> None:
    cameras = cameras_on_partitions(4)
    assert len(cameras) == 4
    rules = str(write_rules(tmp_path / "rules.yaml", cameras))
    stream = interleave([scene_for(c) for c in cameras])  # 468 messages
    expected = expected_outputs(cameras)
    reader = TopicReader(kafka, [names.name(t) for t in OUTPUT_TOPICS])

    def tracked(count: int, what: str) -> None:
        reader.poll_until(lambda: distinct_frames(reader, names) >= count, 90, what)

    one = start_worker("data-1", VSA_TRACKER_RULES_FILE=rules)
    assert one.wait_ready()["partitions"] == [0, 1, 2, 3]
    half, three_quarters = len(stream) // 2, len(stream) * 3 // 4
    produce_detections(kafka, names, stream[:half])
    tracked(half - 8, "the first half")

    two = start_worker("data-2", VSA_TRACKER_RULES_FILE=rules)
    shared = _wait_split(one, two)
    assert shared[0]
    assert shared[1]
    produce_detections(kafka, names, stream[half:three_quarters])
    tracked(three_quarters - 8, "the third quarter")
    assert two.metric("vsa_tracker_frames_total", outcome="applied") > 0

    one.assert_no_gap_given_up()
    assert one.stop() == 0  # graceful: commits and leaves the group
    one.assert_no_gap_given_up()
    assert two.wait_ready(60)
    produce_detections(kafka, names, stream[three_quarters:])
    tracked(expected.frames(), "every frame")
    # Every record handled, then everything the topics hold read (the tracks were waited for;
    # the keyframes and alerts of the last frames may still be unread).
    two.wait_caught_up(names.name("detections"), PARTITIONS)
    reader.read_to_end()
    assert_same_as_replay(group_outputs(reader, names), expected)
    two.assert_no_gap_given_up()
    assert two.stop() == 0
    two.assert_no_gap_given_up()
    reader.close()


def _wait_split(one: TrackerWorker, two: TrackerWorker) -> tuple[list[int], list[int]]:
    """Wait until both workers are ready with the partitions split between them."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        a, b = one.readiness() or {}, two.readiness() or {}
        mine, theirs = list(a.get("partitions", [])), list(b.get("partitions", []))
        if mine and theirs and sorted(mine + theirs) == [0, 1, 2, 3]:
            return mine, theirs
        time.sleep(0.2)
    raise AssertionError(f"partitions not split: {one.readiness()} {two.readiness()}")


# Runs `vsa tracker` with a stream pump that loses its 30th event, as Faust's fetch loop can
# around a seek: the offset guard must notice the gap and seek back to it.
LOSSY_WORKER = """
import sys
import vsa.services.tracker.service as service

async def lossy_pump(stream, queue):
    count = 0
    async for ev in stream.events():
        count += 1
        if count != 30:
            await queue.put(ev)

service._pump = lossy_pump
from vsa.cli import main
sys.exit(main(["tracker"]))
"""


def test_a_record_the_stream_skips_is_fetched_again(
    kafka: KafkaSettings, names: TopicNames, start_worker: Callable[..., TrackerWorker]
) -> None:
    cameras = cameras_on_partitions(2)
    configs = [(c.encode(), scene_config(c).to_bytes()) for c in cameras]
    produce(kafka, names.name("camera_config"), configs)
    worker = start_worker(argv=["-c", LOSSY_WORKER], VSA_TRACKER_MAX_BATCH="16")
    worker.wait_ready()
    produce_detections(kafka, names, interleave([scene_for(c) for c in cameras]))
    expected = expected_outputs(cameras)
    reader = TopicReader(kafka, [names.name(t) for t in OUTPUT_TOPICS])
    reader.poll_until(lambda: distinct_frames(reader, names) >= expected.frames(), 60, "frames")
    worker.wait_caught_up(names.name("detections"), PARTITIONS)
    reader.read_to_end()
    assert_same_as_replay(group_outputs(reader, names), expected)
    assert worker.gaps_sought() >= 1
    worker.assert_no_gap_given_up()  # the seek brought the missing record back
    assert worker.stop() == 0
    reader.close()


def test_a_camera_whose_frame_seq_restarts_is_tracked_again(
    kafka: KafkaSettings,
    names: TopicNames,
    start_worker: Callable[..., TrackerWorker],
    tmp_path: Path,
) -> None:
    """The demo's case. The tracker ran and stopped, keeping its state (data folder and
    changelog); an hour later ingest found no frame of the camera left (retention deleted them)
    and numbered it from 0 again. The restarted tracker tracks those frames (it used to skip
    every one as a redelivery), exactly as the offline replay does, with new track ids."""
    rules = str(write_rules(tmp_path / "rules.yaml", ["lab"]))
    first_run = scene_for("lab")
    second_run = [m.model_copy(update={"capture_ts": m.capture_ts + 3600}) for m in first_run]
    reader = TopicReader(kafka, [names.name(t) for t in OUTPUT_TOPICS])
    tracks = names.name("tracks")

    def tracked(count: int, what: str) -> None:
        reader.poll_until(lambda: len(set(reader.values[tracks])) >= count, 90, what)

    one = start_worker(VSA_TRACKER_RULES_FILE=rules)
    one.wait_ready()
    produce_detections(kafka, names, first_run)
    tracked(115, "the first run")
    assert one.stop() == 0
    produce_detections(kafka, names, second_run)
    two = start_worker(VSA_TRACKER_RULES_FILE=rules)  # the same data folder, as in the demo
    two.wait_ready(90)
    tracked(230, "the second run")
    two.wait_caught_up(names.name("detections"), PARTITIONS)
    reader.read_to_end()
    rulebook = {"lab": compile_rules(scene_config("lab"), None)}
    expected = list(replay([*first_run, *second_run], rulebook))
    for topic in OUTPUT_TOPICS:
        got = list(dict.fromkeys(reader.values[names.name(topic)]))  # first copies, in order
        assert got == [m.to_bytes() for t, m in expected if t == topic], topic
    assert len({json.loads(v)["alert_id"] for v in reader.values[names.name("alerts")]}) == 22
    assert two.metric("vsa_tracker_frames_total", outcome="restarted") == 1
    assert two.metric("vsa_tracker_frames_total", outcome="applied") == 114
    assert "camera_sequence_restarted" in two.log.read_text()
    assert two.stop() == 0
    reader.close()
