"""Issue 15 point 5: no credential ever reaches a log line, a metric label, a dead-letter header or
an answer, with every service running on the real stack.

Secrets are planted where operators put them: a camera URL with user:password (given to ingest
with --camera and published in camera-config with `vsa cameras add`, where the tracker and the
captioner follow it), the Kafka SASL password (KAFKA_SASL_PASSWORD; the shared broker is
PLAINTEXT, so it is loaded, registered and handed to librdkafka, which only warns that it is not
used), and the OpenSearch password (OPENSEARCH_PASSWORD, and user:password in OPENSEARCH_URL;
the local node has no security plugin and ignores them). A second camera whose URL also holds
the password points at a closed port, so ingest's error and reconnect path runs too.

Ingest, detector, tracker, captioner, indexer and the search API run as `vsa` processes, the
`vsa cameras`, `vsa search` and `vsa topics` tools as commands, until a caption of the live
camera is searchable; one undecodable message is then sent to each consumer's input, and the
test waits until each is dead-lettered. Every process's output (logs at DEBUG for ingest, the
service that handles the URL), every /metrics page, the search answers and every dead letter's
headers and key are then searched for each secret.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from vsa.runtime.kafka import Output, Producer, delete_topics, ensure_topics
from vsa.runtime.settings import KafkaSettings, OpenSearchSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.services.indexer.store import make_client

from .test_ingest_live import RtspCamera, free_port, needs_ffmpeg, needs_rtsp_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CAMERA_SECRET = "camPW-s3cret-7731"
SASL_SECRET = "saslPW-4711-x"
OS_SECRET = "osPW-0815-y"
OS_URL_SECRET = "osUrlPW-4242"
SECRETS = (CAMERA_SECRET, SASL_SECRET, OS_SECRET, OS_URL_SECRET)
#: Consumers and the input topic a poison message is sent to.
POISONED = {"detector": "frames", "tracker": "detections", "captioner": "keyframes"}
POISONED_INDEXER = "captions"
WAIT_S = 300.0
RULES = Path(__file__).resolve().parents[2] / "examples" / "vtest-rules.yaml"


@dataclass
class Proc:
    """A `vsa` process with its output in a file and, for a service, its metrics port."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None
    pages: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def http_text(url: str) -> tuple[int, str]:
    """Status and body of a GET; (0, '') when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:  # 4xx/5xx: the body is still an answer
        return int(exc.code), exc.read().decode(errors="replace")
    except OSError:
        return 0, ""


def metric_total(page: str, name: str, service: str) -> float:
    """Sum of the samples of ``name`` labelled ``service``."""
    pattern = re.compile(rf'^{re.escape(name)}\{{[^}}]*service="{service}"[^}}]*\}} (\S+)$', re.M)
    return sum(float(value) for value in pattern.findall(page))


@dataclass
class Pipeline:
    prefix: str
    index_prefix: str
    env: dict[str, str]
    tmp_path: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str, service: str | None = None) -> Proc:
        env = dict(self.env)
        port = None
        if service is not None:
            port = free_port()
            upper = service.upper()
            env[f"VSA_{upper}_METRICS_PORT"] = str(port)
            env[f"VSA_{upper}_METRICS_HOST"] = "127.0.0.1"
            env[f"VSA_{upper}_TOPICS__PREFIX"] = self.prefix
            env[f"VSA_{upper}_GROUP_ID"] = f"{self.prefix}{service}"
        log_path = self.tmp_path / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vsa", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = Proc(name, proc, log_path, port)
        self.procs.append(started)
        return started

    def run(self, name: str, *args: str) -> str:
        """A `vsa` command to its end; its output (stdout and stderr)."""
        done = subprocess.run(
            [sys.executable, "-m", "vsa", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            check=False,
        )
        out = done.stdout + done.stderr
        (self.tmp_path / f"{name}.log").write_text(out)
        assert done.returncode == 0, f"vsa {' '.join(args)} exited {done.returncode}: {out[-3000:]}"
        return out

    def metric(self, svc: Proc, name: str, service: str) -> float:
        return metric_total(http_text(f"http://127.0.0.1:{svc.port}/metrics")[1], name, service)

    def alive(self, *procs: Proc) -> None:
        for svc in procs:
            assert svc.proc.poll() is None, f"{svc.name} exited:\n{svc.output()[-5000:]}"

    def dead_lettered(self, svc: Proc) -> bool:
        self.alive(svc)
        return self.metric(svc, "vsa_dead_letters_total", svc.name) >= 1


@pytest.fixture
def pipeline(
    kafka: KafkaSettings, opensearch: OpenSearchSettings, unique_name: str, tmp_path: Path
) -> Iterator[Pipeline]:
    prefix = f"{unique_name}."
    names = TopicNames(prefix=prefix)
    ensure_topics(kafka, load_settings(TopicsSettings, None, names=names, partitions=1).specs())
    url = opensearch.url.replace("://", f"://admin:{OS_URL_SECRET}@", 1)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "vsa",
        "KAFKA_SASL_PASSWORD": SASL_SECRET,
        "OPENSEARCH_URL": url,
        "OPENSEARCH_USERNAME": "admin",
        "OPENSEARCH_PASSWORD": OS_SECRET,
        "VSA_TOPICS_NAMES__PREFIX": prefix,
        "VSA_INDEXER_INDEX__PREFIX": f"{unique_name}-",
        "VSA_SEARCH_INDEX__PREFIX": f"{unique_name}-",
        "VSA_API_TOPICS__PREFIX": prefix,
        "VSA_DETECTOR_BACKEND": '{"type": "onnxruntime", "intra_op_num_threads": 1}',
        "VSA_CAPTIONER_CAPTIONS_PER_MINUTE": "0",
        "VSA_TRACKER_DATADIR": str(tmp_path / "tracker-data"),
        "VSA_TRACKER_FRAMEWORK_LOG_LEVEL": "INFO",
        "VSA_LOG_LEVEL": "INFO",
    }
    line = Pipeline(prefix, f"{unique_name}-", env, tmp_path)
    try:
        yield line
    finally:
        for proc in reversed(line.procs):
            proc.stop()
        drop_everything_named(kafka, opensearch, unique_name)


def drop_everything_named(
    kafka: KafkaSettings, opensearch: OpenSearchSettings, unique_name: str
) -> None:
    """Delete the test's topics (the tracker's changelog included), indices and templates."""
    admin = AdminClient(kafka.client_config())
    mine = [name for name in admin.list_topics(timeout=10).topics if name.startswith(unique_name)]
    if mine:
        delete_topics(kafka, mine)
    client = make_client(opensearch, 30)
    pattern = f"{unique_name}-*"  # captions, alerts and what else the services keep
    for index in client.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True):
        client.indices.delete(index=index, ignore_unavailable=True)
    templates = client.indices.get_index_template(name=pattern, ignore=404)
    for template in templates.get("index_templates", []):
        client.indices.delete_index_template(name=template["name"], ignore=404)


def captions_indexed(opensearch: OpenSearchSettings, index: str) -> int:
    client = make_client(opensearch, 10)
    if not client.indices.exists(index=index):
        return 0
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def dead_letters(kafka: KafkaSettings, topic: str) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    """Keys and headers of every message in a dead-letter topic."""
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"secrets-check-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[tuple[bytes, list[tuple[str, bytes]]]] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not found:
            for msg in consumer.consume(100, 1.0):
                if msg.error() is None:
                    found.append((msg.key() or b"", list(msg.headers() or [])))
    finally:
        consumer.close()
    return found


@needs_ffmpeg
@needs_rtsp_server
@pytest.mark.timeout(1800)  # six services and the tools, each waited for by signal
def test_no_service_leaks_a_planted_secret(
    pipeline: Pipeline,
    kafka: KafkaSettings,
    opensearch: OpenSearchSettings,
    vtest: Path,
    tmp_path: Path,
) -> None:
    camera = RtspCamera(vtest, tmp_path)
    camera.start()
    try:
        _run_pipeline(pipeline, kafka, opensearch, camera)
    finally:
        camera.kill()
    texts = {p.name: p.output() for p in pipeline.procs}
    texts.update(
        {f"{p.name} {page}": body for p in pipeline.procs for page, body in p.pages.items()}
    )
    texts.update({path.stem: path.read_text() for path in tmp_path.glob("tool-*.log")})
    for name, text in texts.items():
        assert text.strip() or name.startswith("tool-"), f"{name}: nothing to search"
        for secret in SECRETS:
            where = text.find(secret)
            assert where < 0, f"{name} leaks {secret}: ...{text[max(0, where - 300) : where + 100]}"
    # the masked forms show the credentials were there to leak
    assert "rtsp://***@127.0.0.1" in texts["ingest"]


def _run_pipeline(
    line: Pipeline, kafka: KafkaSettings, opensearch: OpenSearchSettings, camera: RtspCamera
) -> None:
    live = camera.url.replace("rtsp://", f"rtsp://admin:{CAMERA_SECRET}@", 1)
    dead = f"rtsp://admin:{CAMERA_SECRET}@127.0.0.1:{free_port()}/gone"
    line.run(
        "tool-cameras-add",
        "cameras", "add", "gate", "--url", live, "--fps", "5",
        "--rules", str(RULES), "--topic-prefix", line.prefix,
    )  # fmt: skip
    line.run("tool-cameras-list", "cameras", "list", "--topic-prefix", line.prefix)
    line.env["VSA_LOG_LEVEL"] = "DEBUG"
    ingest = line.start(
        "ingest", "ingest", "--camera", f"gate={live},fps=5", "--camera", f"dead={dead}",
        "--no-progress", service="ingest",
    )  # fmt: skip
    line.env["VSA_LOG_LEVEL"] = "INFO"
    workers = [line.start(name, name, service=name) for name in POISONED]
    indexer = line.start("indexer", "indexer", service="indexer")
    index = f"{line.index_prefix}captions"

    def searchable() -> bool:
        line.alive(ingest, indexer, *workers)
        return captions_indexed(opensearch, index) > 0

    wait_for(searchable, WAIT_S, "a caption of the live camera indexed")
    api_port = free_port()
    api = line.start("search-api", "search-api", "--port", str(api_port))
    wait_for(lambda: http_text(f"http://127.0.0.1:{api_port}/healthz")[0] == 200, 120, "the API")
    for path in ("/search?q=a+person+walking", "/search", "/metrics"):
        status, body = http_text(f"http://127.0.0.1:{api_port}{path}")
        api.pages[path] = f"{status} {body}"
    assert api.pages["/search?q=a+person+walking"].startswith("200 ")
    assert json.loads(api.pages["/search?q=a+person+walking"][4:])  # an answer to search in
    line.run("tool-search", "search", "a person walking", "--timing")
    line.run("tool-topics-list", "topics", "list", "--topic-prefix", line.prefix)
    # one message no consumer can decode, on each consumer's input
    producer = Producer(kafka, "secrets-test")
    for topic in (*POISONED.values(), POISONED_INDEXER):
        producer.produce(Output(f"{line.prefix}{topic}", "gate", b"\x00 not a message"))
    producer.flush()
    for svc in (*workers, indexer):
        wait_for(partial(line.dead_lettered, svc), WAIT_S, f"{svc.name} dead-lettering")
    for svc in (ingest, *workers, indexer):
        svc.pages["/metrics"] = http_text(f"http://127.0.0.1:{svc.port}/metrics")[1]
        assert "vsa_" in svc.pages["/metrics"], svc.name
    assert metric_total(ingest.pages["/metrics"], "vsa_messages_out_total", "ingest") > 0
    for svc in (*workers, indexer):
        letters = dead_letters(kafka, TopicNames(prefix=line.prefix).dlq(svc.name))
        assert letters, f"dlq.{svc.name} is empty"
        svc.pages["dead letters"] = "\n".join(
            repr(key) + " " + " ".join(f"{k}={v!r}" for k, v in headers) for key, headers in letters
        )
    for proc in reversed(line.procs):
        proc.stop()
