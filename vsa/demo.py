"""``vsa demo``: the main job. The whole pipeline on the local stack with sample cameras.

It starts the local Kafka and OpenSearch, creates the topics, publishes the example alert rules
(``examples/vtest-rules.yaml``) for every camera on the camera-config topic, and runs the five
services as separate processes — ingest (several cameras from the real clip, looped in real
time), detector, tracker, captioner and indexer — exactly as they run in production. A live
table shows every stage's messages and rate, alerts are printed as they arrive, and at the end
a few plain-language searches show what landed in OpenSearch. Ctrl-C stops every process
cleanly; running it again continues where the last run stopped (same topics, same groups).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from confluent_kafka import Consumer, TopicPartition

from vsa.assets import cache_dir, fetch_vtest
from vsa.progress import LiveTable, RateMeter
from vsa.runtime.kafka import Output, Producer, consumer_config, ensure_topics
from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import Alert, CameraConfig

PREFIX = "demo."
INDEX_PREFIX = "vsa-demo-"
RULES = Path(__file__).resolve().parents[1] / "examples" / "vtest-rules.yaml"
STAGES = (  # (stage, topic field, process that writes it)
    ("frames", "frames", "ingest"),
    ("detections", "detections", "detector"),
    ("tracks", "tracks", "tracker"),
    ("alerts", "alerts", "tracker"),
    ("keyframes", "keyframes", "tracker"),
    ("captions", "captions", "captioner"),
)
QUERIES = (
    "people walking left",
    "a crowd of people in the plaza centre",
    "someone loitering in the plaza",
    "a person in white",
)


@dataclass
class Services:
    """The service processes of the demo, their logs and how to stop them."""

    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "vsa", *args],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
        )

    def state(self, name: str) -> str:
        proc = self.procs.get(name)
        if proc is None:
            return "-"
        code = proc.poll()
        return "running" if code is None else f"exited {code}"

    def stop(self, names: list[str], timeout_s: float = 30) -> None:
        """SIGTERM (finish the batch in flight, commit, close), then wait; SIGKILL if stuck."""
        for name in names:
            if name in self.procs and self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        for name in names:
            if name in self.procs:
                try:
                    self.procs[name].wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.procs[name].kill()


def service_env(kafka: KafkaSettings, opensearch_url: str, state: Path) -> dict[str, str]:
    """Environment for every service: endpoints, topic prefix, index prefix, tuned for 2 cores."""
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "OPENSEARCH_URL": opensearch_url,
            "VSA_TRACKER_DATADIR": str(state / "tracker"),
            "VSA_LOG_LEVEL": "INFO",
        }
    )
    for service in ("INGEST", "DETECTOR", "TRACKER", "CAPTIONER", "INDEXER"):
        env[f"VSA_{service}_TOPICS__PREFIX"] = PREFIX
        env[f"VSA_{service}_METRICS_PORT"] = "0"
    env.update(
        {
            "VSA_DETECTOR_MODEL": "yolov3-tiny-int8",
            "VSA_DETECTOR_MAX_BATCH": "8",
            "VSA_CAPTIONER_CAPTIONS_PER_MINUTE": "20",
            "VSA_INDEXER_INDEX__PREFIX": INDEX_PREFIX,
            "VSA_SEARCH_INDEX__PREFIX": INDEX_PREFIX,
            "VSA_INDEXER_MAX_BATCH": "32",
            "VSA_INDEXER_MAX_WAIT_MS": "500",
        }
    )
    return env


def publish_rules(kafka: KafkaSettings, names: TopicNames, cameras: list[str]) -> None:
    """The example rules for every camera, on the compacted camera-config topic."""
    base = yaml.safe_load(RULES.read_text())
    producer = Producer(kafka, "demo")
    for camera_id in cameras:
        config = CameraConfig.from_dict({**base, "camera_id": camera_id})
        producer.produce(Output(names.name("camera_config"), camera_id, config.to_bytes()))
    producer.flush()


def topic_totals(consumer: Consumer, topics: list[str]) -> dict[str, int]:
    """Messages in each topic: the sum of its partitions' end offsets."""
    totals = {}
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=5).topics[topic]
        totals[topic] = sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            for p in meta.partitions
        )
    return totals


def indexed_count(opensearch_url: str) -> int:
    """Documents in the demo's captions index (0 until it exists)."""
    try:
        url = f"{opensearch_url}/{INDEX_PREFIX}captions/_count"  # http(s) only: a settings check
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
            return int(json.load(resp)["count"])
    except (OSError, ValueError, KeyError):
        return 0


def follow_alerts(
    kafka: KafkaSettings, topic: str, table: LiveTable, stop: threading.Event
) -> None:
    """Print alerts as they arrive (from the end of the topic at start)."""
    consumer = Consumer(
        consumer_config(
            kafka,
            "demo-alerts",
            f"vsa-demo-alerts-{os.getpid()}",
            **{"auto.offset.reset": "latest"},
        )
    )
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            for msg in consumer.consume(50, 0.3):
                if msg.error() is None:
                    alert = Alert.from_bytes(msg.value() or b"")
                    details = ", ".join(f"{k}={v}" for k, v in sorted(alert.details.items()))
                    table.message(
                        f"ALERT {alert.camera_id} {alert.kind} rule={alert.rule_id} "
                        f"tracks={alert.track_ids} {details}"
                    )
    finally:
        consumer.close()


def prepare(args: argparse.Namespace) -> tuple[KafkaSettings, str, TopicNames, list[str], Path]:
    """Clip, stack, topics and rules; returns what the services need."""
    from vsa.devstack import stack

    clip = fetch_vtest()
    print(f"sample clip: {clip}")
    print("starting the local stack (Kafka + OpenSearch; the first run downloads them)...")
    info = stack.up()
    print(stack.format_status(stack.status()))
    kafka = load_settings(KafkaSettings, None, bootstrap_servers=info.kafka_bootstrap)
    names = TopicNames(prefix=PREFIX)
    topics = load_settings(TopicsSettings, None, names=names, partitions=4)
    created = ensure_topics(kafka, topics.specs())
    cameras = [f"cam-{i}" for i in range(args.cameras)]
    publish_rules(kafka, names, cameras)
    print(
        f"topics '{PREFIX}*' ready ({len(created)} created); rules from {RULES.name} "
        f"published for {len(cameras)} cameras"
    )
    return kafka, info.opensearch_url, names, cameras, clip


def start_services(
    services: Services, env: dict[str, str], cameras: list[str], clip: Path, fps: float
) -> None:
    for name in ("detector", "tracker", "captioner", "indexer"):
        services.start(name, [name], env)
    camera_flags = [f"--camera={c}={clip},loop=true,realtime=true,fps={fps}" for c in cameras]
    services.start("ingest", ["ingest", *camera_flags, "--no-progress"], env)


@dataclass
class Baseline:
    """Topic end offsets and indexed documents when the demo started: rows count from here."""

    topics: dict[str, int]
    docs: int
    started: float = field(default_factory=time.monotonic)


def monitor(
    services: Services,
    kafka: KafkaSettings,
    names: TopicNames,
    opensearch_url: str,
    seconds: float,
    stop: threading.Event,
    baseline: Baseline | None = None,
) -> Baseline:
    """The live table, until ``seconds`` passed or Ctrl-C; rows count from ``baseline``."""
    table = LiveTable(
        ("stage", "topic / index", "messages", "per second", "written by", "process"),
        title="vsa demo: the whole pipeline (Ctrl-C stops it)",
    )
    alerts_stop = threading.Event()
    threading.Thread(
        target=follow_alerts, daemon=True, args=(kafka, names.name("alerts"), table, alerts_stop)
    ).start()
    consumer = Consumer(consumer_config(kafka, "demo-monitor", "vsa-demo-monitor"))
    topics = [names.name(topic_field) for _, topic_field, _ in STAGES]
    base = baseline or Baseline(topic_totals(consumer, topics), indexed_count(opensearch_url))
    start, start_docs = base.topics, base.docs
    rates, started = RateMeter(), time.monotonic()
    final = False
    while not final:
        final = stop.is_set() or time.monotonic() - started >= seconds
        totals = topic_totals(consumer, topics)
        rows = []
        for (stage, _, writer), topic in zip(STAGES, topics, strict=True):
            count = totals[topic] - start[topic]
            rows.append(
                (
                    stage,
                    topic,
                    count,
                    f"{rates.rate(stage, count):.1f}",
                    writer,
                    services.state(writer),
                )
            )
        docs = indexed_count(opensearch_url) - start_docs
        rows.append(
            (
                "indexed",
                f"{INDEX_PREFIX}captions",
                docs,
                f"{rates.rate('indexed', docs):.1f}",
                "indexer",
                services.state("indexer"),
            )
        )
        footer = f"{time.monotonic() - base.started:5.0f} s  logs: {services.log_dir}"
        table.draw(rows, footer, final=final)
        if not final:
            stop.wait(1.0)
    alerts_stop.set()
    consumer.close()
    return base


def show_searches(opensearch_url: str) -> None:
    """A few plain-language searches over what the pipeline indexed."""
    from vsa.services.indexer.cli import make_searcher
    from vsa.services.indexer.search import SearchQuery

    searcher = make_searcher(
        None, opensearch={"url": opensearch_url}, index={"prefix": INDEX_PREFIX}
    )
    for text in QUERIES:
        print(f"\nsearch: {text!r}")
        try:
            hits = searcher.search(SearchQuery.parse(text=text, k=3))
        except Exception as exc:
            print(f"  search failed: {exc}")
            continue
        for hit in hits:
            print(f"  {hit.score:.3f}  {hit.camera_id}  frame {hit.frame_seq}  {hit.caption[:110]}")
        if not hits:
            print("  no hits yet")


def demo_main(args: argparse.Namespace) -> int:
    kafka, opensearch_url, names, cameras, clip = prepare(args)
    state = cache_dir() / "demo"
    services = Services(state / "logs")
    services.log_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start_services(services, service_env(kafka, opensearch_url, state), cameras, clip, args.fps)
    try:
        base = monitor(services, kafka, names, opensearch_url, args.duration, stop)
        print("\nstopping ingest, letting the pipeline drain...")
        services.stop(["ingest"])
        if not stop.is_set():
            monitor(services, kafka, names, opensearch_url, args.drain, stop, base)
    finally:
        services.stop(["detector", "tracker", "captioner", "indexer", "ingest"])
    failed = {
        n: services.state(n) for n in services.procs if services.state(n) not in ("exited 0",)
    }
    show_searches(opensearch_url)
    print(
        f"\nservice logs: {services.log_dir}; the local stack keeps running "
        "(vsa devstack down stops it)"
    )
    if failed:
        print(f"services that did not stop cleanly: {failed}")
    return 1 if failed else 0
