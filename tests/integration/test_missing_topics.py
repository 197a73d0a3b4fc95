"""Services and commands started before their topics exist, against the real local Kafka
(issue 15 point 2): one clear line naming the missing topics and the command that creates them,
readiness false meanwhile, and the service goes on by itself once the topics are created;
``vsa produce`` says so and exits; ``vsa topics list`` asks Kafka."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient

from vsa.runtime.kafka import Output, Producer, delete_topics, ensure_topics
from vsa.runtime.service import BatchLoop, BatchResult, LoopConfig
from vsa.runtime.settings import (
    KafkaSettings,
    OpenSearchSettings,
    TopicNames,
    TopicSpec,
    load_settings,
)
from vsa.runtime.topics import TopicsSettings

from .test_ingest_live import free_port, wait_for
from .test_tracker_service import scene_for

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(kafka: KafkaSettings, unique_name: str) -> Iterator[str]:
    """A topic prefix of this test; its topics (and the tracker's changelog, named after a group
    that starts with the same name) are deleted afterwards."""
    yield f"{unique_name}."
    admin = AdminClient(kafka.client_config())
    mine = [name for name in admin.list_topics(timeout=10).topics if name.startswith(unique_name)]
    if mine:
        delete_topics(kafka, mine)


def create_topics(kafka: KafkaSettings, prefix: str) -> None:
    """What ``vsa topics create --topic-prefix prefix`` creates (2 partitions: quicker)."""
    specs = load_settings(TopicsSettings, None, names=TopicNames(prefix=prefix), partitions=2)
    ensure_topics(kafka, specs.specs())


def read_values(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 60
) -> list[Message]:
    consumer = Consumer(
        {**kafka.client_config(), "group.id": f"reader-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            found.extend(m for m in consumer.consume(100, 0.5) if m.error() is None)
    finally:
        consumer.close()
    return found


def log_lines(text: str, name: str) -> list[dict[str, str]]:
    """The ``key=value`` fields of every log line of event ``name``."""
    found = []
    for line in text.splitlines():
        if f" event={name} " in line + " ":
            fields = {}
            for part in _split(line):
                key, _, value = part.partition("=")
                fields[key] = json.loads(value) if value.startswith('"') else value
            found.append(fields)
    return found


def _split(line: str) -> list[str]:
    """Split a key=value line on spaces outside double quotes."""
    parts, current, quoted = [], "", False
    for index, char in enumerate(line):
        if char == '"' and (index == 0 or line[index - 1] != "\\"):
            quoted = not quoted
        if char == " " and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


# ------------------------------------------------------------------ the batch loop, in process


def test_batch_loop_waits_not_ready_until_its_topics_exist(
    kafka: KafkaSettings, unique_name: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    src, dst, dlq = f"{prefix}in", f"{prefix}out", f"{prefix}dlq"
    config = LoopConfig(
        "test", f"{unique_name}-g", (src,), dlq, topic_prefix=prefix, also_needs=(dst,)
    )

    def copy(msgs: Sequence[Message]) -> BatchResult:
        return BatchResult(outputs=[Output(dst, m.key(), m.value() or b"") for m in msgs])

    loop = BatchLoop(config, kafka, copy)
    caplog.set_level("INFO", logger="vsa.topics")
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: "topics_missing" in loop.health.blockers, 30, "the blocker")
        reason = loop.health.blockers["topics_missing"]
        assert reason == (
            f"topics {src}, {dlq}, {dst} do not exist; "
            f"create them with: vsa topics create --topic-prefix {prefix}"
        )
        assert not loop.health.serving
        assert loop.health.alive
        ensure_topics(kafka, {src: TopicSpec(partitions=2), dst: TopicSpec(partitions=1)})
        wait_for(
            lambda: loop.health.blockers.get("topics_missing", "").startswith(
                f"topic {dlq} does not exist"
            ),
            30,
            "the blocker to name only the dead letters",
        )
        ensure_topics(kafka, {dlq: TopicSpec(partitions=1)})
        wait_for(lambda: loop.health.serving, 60, "readiness once the topics exist")
        producer = Producer(kafka, "test")
        for i in range(3):
            producer.produce(Output(src, f"cam-{i}", b"v%d" % i))
        producer.flush()
        assert sorted(m.value() for m in read_values(kafka, dst, 3)) == [b"v0", b"v1", b"v2"]
    finally:
        loop.stop.set()
        thread.join(30)
    assert not thread.is_alive()
    lines = [r for r in caplog.records if r.getMessage() == "topics_missing"]
    assert [r.topics for r in lines] == [f"{src},{dlq},{dst}", dlq]  # type: ignore[attr-defined]
    assert {r.create for r in lines} == {f"vsa topics create --topic-prefix {prefix}"}  # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records].count("topics_present") == 1


# ------------------------------------------------------------------ services as users run them


class ServiceProcess:
    """``python -m vsa <args>`` with its metrics port, output in a file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        service = args[0].upper()
        env = {
            **os.environ,
            **env,
            f"VSA_{service}_METRICS_PORT": str(self.port),
            f"VSA_{service}_METRICS_HOST": "127.0.0.1",
        }
        self.log = log
        with log.open("wb") as out:
            command = [sys.executable, "-m", "vsa", *args]
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def readyz(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())
        except OSError:
            return 0, {}

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-3000:]}")

    def wait_blocked(self, timeout_s: float = 90) -> str:
        """Waits for /readyz 503 with the ``topics_missing`` blocker; its reason."""

        def blocked() -> bool:
            status, body = self.readyz()
            return status == 503 and "topics_missing" in body.get("blocked", {})

        self.wait(blocked, timeout_s, "/readyz 503 with topics_missing")
        return str(self.readyz()[1]["blocked"]["topics_missing"])

    def wait_ready(self, timeout_s: float = 90) -> None:
        self.wait(lambda: self.readyz()[0] == 200, timeout_s, "/readyz 200")

    def stop(self, timeout_s: float = 60) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"still running after SIGTERM:\n{self.output()[-3000:]}") from None


@pytest.fixture
def started(
    kafka: KafkaSettings, unique_name: str, prefix: str, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts ``vsa <service> --topic-prefix <prefix> <args>`` in its own group, as a user would."""
    processes: list[ServiceProcess] = []

    def start(service: str, *args: str, **env: str) -> ServiceProcess:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            f"VSA_{service.upper()}_GROUP_ID": f"{unique_name}-{service}",
            **env,
        }
        argv = (service, "--topic-prefix", prefix, *args)
        process = ServiceProcess(argv, env, tmp_path / f"{service}-{len(processes)}.log")
        processes.append(process)
        return process

    yield start
    for process in processes:  # a failed test leaves nothing running
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)


def assert_said_once(process: ServiceProcess, topics: Sequence[str], prefix: str) -> None:
    """Exactly one ``topics_missing`` line, naming ``topics`` and the create command; no
    traceback and no raw librdkafka error."""
    text = process.output()
    [line] = log_lines(text, "topics_missing")
    assert line["topics"].split(",") == list(topics)
    assert line["create"] == f"vsa topics create --topic-prefix {prefix}"
    assert "Traceback" not in text
    assert "UNKNOWN_TOPIC_OR_PART" not in text
    assert "Unknown topic" not in text


def test_detector_waits_for_its_topics_then_detects(
    kafka: KafkaSettings,
    prefix: str,
    vtest: Path,
    started: Callable[..., ServiceProcess],
) -> None:
    detector = started("detector")
    reason = detector.wait_blocked()
    assert f"{prefix}frames" in reason
    assert f"vsa topics create --topic-prefix {prefix}" in reason
    create_topics(kafka, prefix)
    detector.wait_ready()
    produce = vsa(
        "produce", str(vtest), "--max-frames", "3", "--topic-prefix", prefix,
        "--camera-prefix", "gate", bootstrap=kafka.bootstrap_servers,
    )  # fmt: skip
    assert produce.returncode == 0, produce.stderr
    found = read_values(kafka, f"{prefix}detections", 3)
    assert sorted(json.loads(m.value())["frame_seq"] for m in found) == [0, 1, 2]
    assert {m.key() for m in found} == {b"gate-0"}
    assert detector.stop() == 0
    needed = [f"{prefix}frames", f"{prefix}dlq.detector", f"{prefix}detections"]
    assert_said_once(detector, needed, prefix)
    assert len(log_lines(detector.output(), "topics_present")) == 1


def test_tracker_waits_for_its_topics_then_gets_ready(
    kafka: KafkaSettings,
    prefix: str,
    tmp_path: Path,
    started: Callable[..., ServiceProcess],
) -> None:
    tracker = started(
        "tracker",
        VSA_TRACKER_DATADIR=str(tmp_path / "tracker"),
        VSA_TRACKER_STORE="memory",
        VSA_TRACKER_CAMERA_CONFIG_SYNC_S="0",
    )
    reason = tracker.wait_blocked()
    assert reason.startswith(f"topics {prefix}detections, {prefix}tracks")
    create_topics(kafka, prefix)
    tracker.wait_ready()
    producer = Producer(kafka, "test")
    for message in scene_for("lab")[:5]:
        producer.produce(Output(f"{prefix}detections", "lab", message.to_bytes()))
    producer.flush()
    tracks = read_values(kafka, f"{prefix}tracks", 5)
    assert sorted(json.loads(m.value())["frame_seq"] for m in tracks) == [0, 1, 2, 3, 4]
    assert tracker.stop() == 0
    from vsa.services.tracker.config import TrackerSettings
    from vsa.services.tracker.service import needed_topics

    settings = load_settings(TrackerSettings, None, topics={"prefix": prefix})
    assert_said_once(tracker, needed_topics(settings), prefix)


@pytest.mark.parametrize(
    ("service", "needed"),
    [
        ("captioner", ("keyframes", "dlq.captioner", "captions", "frames")),
        ("indexer", ("captions", "alerts", "counts", "dlq.indexer")),  # counts: on by default
    ],
)
def test_captioner_and_indexer_wait_for_their_topics(
    service: str,
    needed: tuple[str, ...],
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    unique_name: str,
    prefix: str,
    started: Callable[..., ServiceProcess],
) -> None:
    process = started(
        service, OPENSEARCH_URL=opensearch.url, VSA_INDEXER_INDEX__PREFIX=f"{unique_name}-"
    )
    process.wait_blocked()
    create_topics(kafka, prefix)
    process.wait_ready()
    assert process.stop() == 0
    if service == "indexer":  # the indices it created on the shared node
        request = urllib.request.Request(f"{opensearch.url}/{unique_name}-*", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()
    assert_said_once(process, [prefix + n for n in needed], prefix)


def test_ingest_from_camera_config_waits_for_its_topics(
    kafka: KafkaSettings,
    prefix: str,
    vtest: Path,
    started: Callable[..., ServiceProcess],
) -> None:
    from vsa.schemas import CameraConfig

    ingest = started("ingest", "--from-camera-config", "--no-progress")
    reason = ingest.wait_blocked()
    assert reason.startswith(f"topics {prefix}frames, {prefix}camera-config do not exist")
    create_topics(kafka, prefix)
    ingest.wait_ready()
    config = CameraConfig(camera_id="gate", source_url=str(vtest), fps_target=5)
    producer = Producer(kafka, "test")
    producer.produce(Output(f"{prefix}camera-config", "gate", config.to_bytes()))
    producer.flush()
    assert len(read_values(kafka, f"{prefix}frames", 3)) >= 3
    assert ingest.stop() == 0
    assert_said_once(ingest, [f"{prefix}frames", f"{prefix}camera-config"], prefix)


# ------------------------------------------------------------------ commands


def vsa(*args: str, bootstrap: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vsa", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_produce_into_a_missing_topic_is_one_line(
    kafka: KafkaSettings, unique_name: str, prefix: str, vtest: Path
) -> None:
    started = time.monotonic()
    result = vsa(
        "produce", str(vtest), "--topic-prefix", prefix, "--max-frames", "2",
        bootstrap=kafka.bootstrap_servers,
    )  # fmt: skip
    assert time.monotonic() - started < 15  # start-up included; not librdkafka's 30 s
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"vsa produce: topic {prefix}frames does not exist; "
        f"create it with: vsa topics create --topic-prefix {prefix}"
    )
    down = vsa("produce", str(vtest), "--max-frames", "2", bootstrap="127.0.0.1:1")
    assert down.returncode == 1
    [line] = down.stderr.strip().splitlines()
    assert "Kafka at 127.0.0.1:1 is unreachable" in line


def test_produce_old_prefix_spelling_is_the_camera_prefix(
    kafka: KafkaSettings, unique_name: str, prefix: str, vtest: Path
) -> None:
    create_topics(kafka, prefix)
    result = vsa(
        "produce", str(vtest), "--prefix", "door", "--max-frames", "2", "--topic-prefix", prefix,
        bootstrap=kafka.bootstrap_servers,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "vsa produce: --prefix is deprecated; use --camera-prefix" in result.stderr
    assert {m.key() for m in read_values(kafka, f"{prefix}frames", 2)} == {b"door-0"}


def test_topics_list_asks_kafka(kafka: KafkaSettings, unique_name: str, prefix: str) -> None:
    create_topics(kafka, prefix)
    delete_topics(kafka, [f"{prefix}dlq.indexer"])
    frames = f"{prefix}frames"
    producer = Producer(kafka, "test")
    for i in range(5):
        producer.produce(Output(frames, "cam-0", b"f%d" % i))
    producer.flush()
    group = f"{unique_name}-reader"
    consumer = Consumer(
        {**kafka.client_config(), "group.id": group, "auto.offset.reset": "earliest",
         "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([frames])
    taken: list[Message] = []
    deadline = time.monotonic() + 30
    while len(taken) < 3 and time.monotonic() < deadline:
        taken.extend(m for m in consumer.consume(1, 0.5) if m.error() is None)
    consumer.commit(taken[2], asynchronous=False)  # offset 3 of 5: 2 behind
    consumer.close()

    def listing() -> tuple[subprocess.CompletedProcess[str], dict[str, list[str]]]:
        result = vsa("topics", "list", "--topic-prefix", prefix, bootstrap=kafka.bootstrap_servers)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()[1:]
        return result, {
            line.split()[0]: line.split()[1:] for line in lines if line.startswith(prefix)
        }

    # the deleted topic leaves the brokers' metadata shortly after the delete returns
    wait_for(lambda: listing()[1][f"{prefix}dlq.indexer"][0] == "MISSING", 30, "the delete")
    result, rows = listing()
    assert rows[frames] == ["2", "5", f"{group}=2"]
    assert rows[f"{prefix}alerts"] == ["2", "0", "-"]
    assert rows[f"{prefix}dlq.indexer"] == ["MISSING", "-", "-"]
    planned = load_settings(TopicsSettings, None, names=TopicNames(prefix=prefix)).specs()
    assert set(rows) == set(planned)
    assert result.stdout.splitlines()[-1] == (
        f"1 of {len(planned)} topics missing; "
        f"create them with: vsa topics create --topic-prefix {prefix}"
    )
    down = vsa("topics", "list", "--topic-prefix", prefix, bootstrap="127.0.0.1:1")
    assert down.returncode == 1
    [line] = down.stderr.strip().splitlines()
    assert "Kafka at 127.0.0.1:1 is unreachable" in line
