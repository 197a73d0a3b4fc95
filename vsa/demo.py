"""``vsa demo``: the main job. The whole pipeline on the local stack with sample cameras.

It starts the local Kafka and OpenSearch, creates the topics, publishes the example alert rules
(``examples/vtest-rules.yaml``) for every camera on the camera-config topic, and runs the five
services as separate processes — ingest (several cameras from the real clip, looped in real
time), detector, tracker, captioner and indexer — exactly as they run in production. A live
table shows every stage's messages and rate and, under it, one row per camera (frames,
detections, objects and tracks per second over the last 5 s, alerts, the most frequent
classes); alerts are printed as they arrive, the end of the run prints each camera's totals, and
a few plain-language searches show what landed in OpenSearch. The web console (``vsa console``:
search, live alerts, cameras) runs next to the pipeline; its address is under the live table, and
it stays up after the run until Ctrl-C. Ctrl-C stops every process cleanly; running it again
continues where the last run stopped (same topics, same groups).
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
from confluent_kafka import Consumer, Message, TopicPartition

from vsa.assets import cache_dir, fetch_vtest
from vsa.demo_cameras import CameraCounter, Tally, detections_tally, render_live, render_totals
from vsa.demo_console import DemoConsole
from vsa.progress import LiveTable, RateMeter
from vsa.runtime.kafka import Output, Producer, consumer_config, ensure_topics
from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import Alert, CameraConfig, Detections, SchemaError

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
#: Topics the per-camera view reads, and what one record of each (but detections) counts as.
CAMERA_TOPICS = ("frames", "detections", "tracks", "alerts")
ONE_RECORD = {"frames": Tally(frames=1), "tracks": Tally(tracks=1), "alerts": Tally(alerts=1)}
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


#: The services' settings for the whole pipeline on one small CPU machine (the demo's 2 cores,
#: and benchmarks/pipeline.py's CPU run): the INT8 detector on one intra-op thread in batches of
#: 8 (two threads spinning next to the other services made it 2.4x slower end to end,
#: BENCHMARKS.md), the captioner's rate limit, the indexer's batches.
CPU_SERVICE_ENV: dict[str, dict[str, str]] = {
    "detector": {
        "VSA_DETECTOR_MODEL": "yolov3-tiny-int8",
        "VSA_DETECTOR_BACKEND": '{"type": "onnxruntime", "intra_op_num_threads": 1}',
        "VSA_DETECTOR_MAX_BATCH": "8",
    },
    "captioner": {"VSA_CAPTIONER_CAPTIONS_PER_MINUTE": "20"},
    "indexer": {"VSA_INDEXER_MAX_BATCH": "32", "VSA_INDEXER_MAX_WAIT_MS": "500"},
}


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
    for settings in CPU_SERVICE_ENV.values():
        env.update(settings)
    env.update(
        {
            "VSA_INDEXER_INDEX__PREFIX": INDEX_PREFIX,
            "VSA_SEARCH_INDEX__PREFIX": INDEX_PREFIX,
            "VSA_API_TOPICS__PREFIX": PREFIX,
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


def end_offsets(consumer: Consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    """Each partition's end offset (the offset the next message will get), by (topic, partition)."""
    ends = {}
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=5).topics[topic]
        for p in meta.partitions:
            ends[topic, p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
    return ends


def topic_totals(ends: dict[tuple[str, int], int]) -> dict[str, int]:
    """Messages in each topic: the sum of its partitions' end offsets."""
    totals: dict[str, int] = {}
    for (topic, _), end in ends.items():
        totals[topic] = totals.get(topic, 0) + end
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


def camera_tally(logical_topic: str, msg: Message) -> tuple[str, Tally]:
    """What one record adds to its camera's counts. Frames, tracks and alerts are counted by
    their key (the camera id), without reading the JPEG or the JSON; detections are decoded for
    their boxes' classes (a message that does not parse counts with no objects)."""
    camera_id = (msg.key() or b"?").decode("utf-8", "replace")
    if logical_topic != "detections":
        return camera_id, ONE_RECORD[logical_topic]
    try:
        detections = Detections.from_bytes(msg.value() or b"")
    except SchemaError:
        return camera_id, Tally(detections=1)
    return detections.camera_id, detections_tally(box.class_name for box in detections.boxes)


def follow_cameras(
    kafka: KafkaSettings,
    names: TopicNames,
    start: dict[tuple[str, int], int],
    counter: CameraCounter,
    stop: threading.Event,
) -> None:
    """Count every camera's frames, detections, tracks and alerts from the ``start`` offsets on
    (``{(topic, partition): offset}``, the demo's baseline).

    The partitions are assigned, not subscribed, and nothing is committed: no consumer group
    joins or rebalances, so the pipeline's own groups are not disturbed. After ``stop`` it reads
    what is left (at most 5 s), so the end-of-run totals include the last messages.
    """
    logical = {names.name(name): name for name in CAMERA_TOPICS}
    consumer = Consumer(consumer_config(kafka, "demo-cameras", f"vsa-demo-cameras-{os.getpid()}"))
    consumer.assign([TopicPartition(t, p, start[t, p]) for t, p in start if t in logical])
    deadline = None
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = consumer.consume(500, 0.3 if deadline is None else 1.0)
            for msg in batch:
                topic = logical.get(msg.topic() or "")
                if msg.error() is None and topic is not None:
                    counter.add(*camera_tally(topic, msg))
            if deadline is None and stop.is_set():
                deadline = time.monotonic() + 5
            elif deadline is not None and not batch:
                break
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


def start_console(services: Services, env: dict[str, str], port: int) -> DemoConsole:
    """``vsa console`` on ``port`` (0: any free one) over the demo's topics and index."""
    log = services.log_dir / "console.log"
    offset = log.stat().st_size if log.exists() else 0
    services.start("console", ["console", "--port", str(port)], env)
    return DemoConsole(log, offset, lambda: services.state("console"))


def stage_topics(names: TopicNames) -> list[str]:
    """The topic names of :data:`STAGES`, in order."""
    return [names.name(topic_field) for _, topic_field, _ in STAGES]


@dataclass
class Baseline:
    """Partition end offsets and indexed documents when the demo started: counts start here."""

    offsets: dict[tuple[str, int], int]
    docs: int
    started: float = field(default_factory=time.monotonic)

    @property
    def topics(self) -> dict[str, int]:
        """Messages in each topic when the demo started."""
        return topic_totals(self.offsets)

    @classmethod
    def take(cls, kafka: KafkaSettings, names: TopicNames, opensearch_url: str) -> Baseline:
        consumer = Consumer(consumer_config(kafka, "demo-monitor", "vsa-demo-monitor"))
        try:
            return cls(end_offsets(consumer, stage_topics(names)), indexed_count(opensearch_url))
        finally:
            consumer.close()


@dataclass
class CameraView:
    """The per-camera part of the display, counted by a :func:`follow_cameras` thread."""

    cameras: list[str]
    counter: CameraCounter = field(default_factory=CameraCounter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, kafka: KafkaSettings, names: TopicNames, base: Baseline) -> None:
        args = (kafka, names, base.offsets, self.counter, self._stop)
        self._thread = threading.Thread(target=follow_cameras, args=args, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop counting once the last records are read (at most ~6 s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def live(self) -> list[str]:
        window, span_s = self.counter.window()
        return render_live(self.cameras, window, span_s, self.counter.totals())

    def summary(self) -> list[str]:
        return render_totals(self.cameras, self.counter.totals(), self.counter.elapsed_s())


def stage_rows(
    services: Services, totals: dict[str, int], base: Baseline, docs: int, rates: RateMeter
) -> list[tuple[object, ...]]:
    """One row per stage (``totals`` in :data:`STAGES` order), then indexed documents: messages
    since ``base``, rate, the process that writes them and its state."""
    start = base.topics
    rows: list[tuple[object, ...]] = []
    for (stage, _, writer), topic in zip(STAGES, totals, strict=True):
        count = totals[topic] - start[topic]
        rate = f"{rates.rate(stage, count):.1f}"
        rows.append((stage, topic, count, rate, writer, services.state(writer)))
    docs -= base.docs
    rate = f"{rates.rate('indexed', docs):.1f}"
    rows.append(
        ("indexed", f"{INDEX_PREFIX}captions", docs, rate, "indexer", services.state("indexer"))
    )
    return rows


def monitor(
    services: Services,
    kafka: KafkaSettings,
    names: TopicNames,
    opensearch_url: str,
    seconds: float,
    stop: threading.Event,
    base: Baseline,
    view: CameraView,
    console: DemoConsole | None = None,
) -> None:
    """The live tables, until ``seconds`` passed or Ctrl-C; counts start at ``base``."""
    table = LiveTable(
        ("stage", "topic / index", "messages", "per second", "written by", "process"),
        title="vsa demo: the whole pipeline (Ctrl-C stops it)",
    )
    alerts_stop = threading.Event()
    threading.Thread(
        target=follow_alerts, daemon=True, args=(kafka, names.name("alerts"), table, alerts_stop)
    ).start()
    consumer = Consumer(consumer_config(kafka, "demo-monitor", "vsa-demo-monitor"))
    topics = stage_topics(names)
    rates, started = RateMeter(), time.monotonic()
    final = False
    while not final:
        final = stop.is_set() or time.monotonic() - started >= seconds
        totals = topic_totals(end_offsets(consumer, topics))
        rows = stage_rows(services, totals, base, indexed_count(opensearch_url), rates)
        footer = [f"{time.monotonic() - base.started:5.0f} s  logs: {services.log_dir}"]
        if console is not None:
            footer += console.footer()
        table.draw(rows, "\n".join(["", *view.live(), *footer]), final=final)
        if not final:
            stop.wait(1.0)
    alerts_stop.set()
    consumer.close()


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


#: The pipeline's processes (the console is not one: it stays up after the run).
PIPELINE = ("ingest", "detector", "tracker", "captioner", "indexer")


def demo_main(args: argparse.Namespace) -> int:
    kafka, opensearch_url, names, cameras, clip = prepare(args)
    state = cache_dir() / "demo"
    services = Services(state / "logs")
    services.log_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    base = Baseline.take(kafka, names, opensearch_url)
    view = CameraView(cameras)
    view.start(kafka, names, base)
    env = service_env(kafka, opensearch_url, state)
    console = start_console(services, env, args.console_port) if args.console else None
    try:
        start_services(services, env, cameras, clip, args.fps)
        try:
            monitor(
                services, kafka, names, opensearch_url, args.duration, stop, base, view, console
            )
            print("\nstopping ingest, letting the pipeline drain...")
            services.stop(["ingest"])
            if not stop.is_set():
                monitor(
                    services, kafka, names, opensearch_url, args.drain, stop, base, view, console
                )
        finally:
            services.stop(["detector", "tracker", "captioner", "indexer", "ingest"])
            view.stop()
        return report(services, view, opensearch_url, console, stop)
    finally:
        services.stop(["console"])


def report(
    services: Services,
    view: CameraView,
    opensearch_url: str,
    console: DemoConsole | None,
    stop: threading.Event,
) -> int:
    """After the run: each camera's totals, a few searches, the console until Ctrl-C; 1 when a
    service did not stop cleanly."""
    print("\n" + "\n".join(view.summary()))
    failed = {n: services.state(n) for n in PIPELINE if services.state(n) != "exited 0"}
    show_searches(opensearch_url)
    print(
        f"\nservice logs: {services.log_dir}; the local stack keeps running "
        "(vsa devstack down stops it)"
    )
    if failed:
        print(f"services that did not stop cleanly: {failed}")
    if console is not None and not stop.is_set():
        console.keep_up(stop)
    return 1 if failed else 0
