"""Tracker service throughput end to end on the local Kafka, next to baselines in the same run.

A backlog of detections messages is produced first (``--cameras`` cameras, ``--frames`` frames
each, ``--objects`` objects per frame, every camera with a zone, a line and intrusion, crossing,
loitering and crowding rules, keyframes every 5 s), then a worker starts on it and the rate is
measured from the first output to the last (Kafka timestamps of the outputs), so start-up and
the group join are not counted. Rows:

- ``vsa tracker``: the service (``python -m vsa tracker``, RocksDB store, state written to the
  table and its changelog after every batch);
- ``Faust pass-through``: the same worker, agent loop and output producer with the handler
  replaced by a copy of each message to the tracks topic (no decoding, tracking or state):
  what consuming through Faust and producing cost per message;
- ``vsa tracker, 2 workers``: two workers of one app id share the 4 partitions (the backlog is
  produced once both are ready); on a 2-core machine that also runs the broker this shows
  whether a second process adds anything;
- ``confluent pass-through``: librdkafka consumer → producer → commit of the same messages in
  batches of 256, no Faust: the Kafka I/O floor of this machine;
- ``handler, no Kafka``: ``TrackerHandler.handle`` on the same bytes in batches of 256 with a
  dict as the table: the tracker's own work per message (decode, track, rules, keyframes,
  encode, state bytes).

For the workers, ``CPU µs/msg`` is the worker process's CPU time (user + system) over the
measured span divided by the messages: it does not depend on what else runs on the machine.
The machine's load average is printed at start and end: compare rows of one run. The
``where the time goes`` table splits the handler's work by stage (one thread, CPU time).

Usage::

    python benchmarks/tracker_service.py [--cameras 8] [--frames 750] [--objects 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from vsa.runtime.kafka import Output, Producer, consumer_config, delete_topics, ensure_topics
from vsa.runtime.settings import KafkaSettings, TopicNames, load_settings
from vsa.runtime.topics import TopicsSettings
from vsa.schemas import Detection, Detections, FrameRef

WIDTH, HEIGHT, FPS = 1920, 1080, 10.0
T0 = 1_767_225_600.0
PARTITIONS = 4
BATCH = 256

RULES: dict[str, Any] = {
    "zones": [{"zone_id": "z", "polygon": [[0.2, 0.2], [0.6, 0.2], [0.6, 0.8], [0.2, 0.8]]}],
    "lines": [{"line_id": "l", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
    "rules": [
        {"kind": "zone_intrusion", "rule_id": "in", "zone_id": "z", "min_dwell_s": 1},
        {"kind": "line_crossing", "rule_id": "cross", "line_id": "l"},
        {"kind": "loitering", "rule_id": "loiter", "zone_id": "z", "dwell_s": 5},
        {"kind": "crowding", "rule_id": "crowd", "zone_id": "z", "min_count": 5},
    ],
    "keyframe_interval_s": 5,
}


# --------------------------------------------------------------------------------- the input


def camera_messages(camera_id: str, objects: int, frames: int, seed: int) -> list[bytes]:
    """Seeded synthetic detections of one camera: constant-velocity objects bouncing in the
    image, 2 px jitter, 10 % missed boxes, one false positive per frame, scores in [0.3, 1]."""
    rng = np.random.default_rng(seed)
    size = np.array([40.0, 90.0])
    pos = rng.uniform(size, [WIDTH, HEIGHT] - size, (objects, 2))
    vel = rng.uniform(-150, 150, (objects, 2))
    out = []
    for seq in range(frames):
        pos = pos + vel / FPS
        vel = np.where((pos < size) | (pos > [WIDTH, HEIGHT] - size), -vel, vel)
        centre = pos[rng.random(objects) > 0.1] + rng.normal(0, 2, (1, 2))
        centre = np.vstack([centre, rng.uniform([0, 0], [WIDTH, HEIGHT], (1, 2))])
        xyxy = np.hstack([centre - size / 2, centre + size / 2]).tolist()
        scores = rng.uniform(0.3, 1.0, len(xyxy)).tolist()
        ref = FrameRef(topic="frames", partition=0, offset=seq, camera_id=camera_id, frame_seq=seq)
        boxes = [
            Detection(xyxy=tuple(b), class_id=0, class_name="person", score=s)
            for b, s in zip(xyxy, scores, strict=True)
        ]
        message = Detections(
            camera_id=camera_id,
            frame_seq=seq,
            frame=ref,
            capture_ts=T0 + seq / FPS,
            width=WIDTH,
            height=HEIGHT,
            model_id="bench",
            boxes=boxes,
        )
        out.append(message.to_bytes())
    return out


def backlog(cameras: int, objects: int, frames: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of every message, cameras interleaved frame by frame."""
    per_camera = [camera_messages(f"cam-{c}", objects, frames, seed=c) for c in range(cameras)]
    return [(f"cam-{c}".encode(), per_camera[c][i]) for i in range(frames) for c in range(cameras)]


def write_rules(path: Path, cameras: int) -> Path:
    configs = [{"camera_id": f"cam-{c}", **RULES} for c in range(cameras)]
    path.write_text(yaml.safe_dump({"cameras": configs}), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ Kafka helpers


def drop(kafka: KafkaSettings, names: TopicNames) -> None:
    """Delete a run's topics, the state changelog Faust created included."""
    specs = load_settings(TopicsSettings, None, names=names).specs()
    delete_topics(kafka, [*specs, f"{names.prefix}tracker-camera-state-changelog"])


def create(kafka: KafkaSettings, prefix: str) -> TopicNames:
    names = TopicNames(prefix=prefix)
    specs = load_settings(TopicsSettings, None, names=names, partitions=PARTITIONS).specs()
    ensure_topics(kafka, specs)
    return names


def produce_all(kafka: KafkaSettings, topic: str, items: Sequence[tuple[bytes, bytes]]) -> None:
    producer = Producer(kafka, "bench-tracker", **{"linger.ms": 20})
    for key, value in items:
        producer.produce(Output(topic, key, value))
    producer.flush(120)


def output_span(
    kafka: KafkaSettings, topic: str, count: int, timeout_s: float, on_first: Callable[[], None]
) -> float:
    """Seconds from the first to the last of ``count`` messages of ``topic`` (their Kafka
    timestamps), reading until all arrived; ``on_first`` runs when the first one is read."""
    consumer = Consumer(consumer_config(kafka, "bench-reader", "bench-reader-unused"))
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    stamps: list[int] = []
    deadline = time.monotonic() + timeout_s
    while len(stamps) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(stamps)} of {count} messages on {topic} in {timeout_s} s")
        batch = [m.timestamp()[1] for m in consumer.consume(2000, 0.05) if m.error() is None]
        if batch and not stamps:
            on_first()
        stamps += batch
    consumer.close()
    return (max(stamps) - min(stamps)) / 1000


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------ the rows


@dataclass
class Row:
    label: str
    messages: int
    seconds: float
    cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def worker_env(
    kafka: KafkaSettings, names: TopicNames, rules: Path, datadir: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VSA_TRACKER_TOPICS__PREFIX": names.prefix,
        "VSA_TRACKER_GROUP_ID": f"{names.prefix}tracker",
        "VSA_TRACKER_DATADIR": str(datadir),
        "VSA_TRACKER_RULES_FILE": str(rules),
        "VSA_TRACKER_METRICS_PORT": "0",
        "VSA_TRACKER_FOLLOW_CAMERA_CONFIG": "false",
        "VSA_LOG_LEVEL": "WARNING",
    }


def run_worker(
    label: str, argv: list[str], env: dict[str, str], output: str, kafka: KafkaSettings, n: int
) -> Row:
    """Start a worker on the backlog, measure its output span and CPU time, stop it."""
    proc = subprocess.Popen([sys.executable, *argv], env=env)
    first: list[float] = []
    try:
        span = output_span(kafka, output, n, 600, lambda: first.append(cpu_seconds(proc.pid)))
        cpu = cpu_seconds(proc.pid) - first[0]
    finally:
        proc.terminate()
        proc.wait(60)
    return Row(label, n, span, cpu)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready_partitions(port: int) -> list[int]:
    """The detections partitions a worker is ready with (its /readyz), [] if not ready."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return list(json.loads(resp.read()).get("partitions", []))
    except OSError:
        return []


def two_workers(
    kafka: KafkaSettings, items: Sequence[tuple[bytes, bytes]], rules: Path, tmp: Path
) -> Row:
    """Two workers of one app share the partitions; the backlog is produced once both are
    ready (so no rebalance happens while measuring)."""
    names = create(kafka, f"bench-{uuid.uuid4().hex[:8]}.")
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vsa", "tracker"],
            env={
                **worker_env(kafka, names, rules, tmp / f"data-2w-{i}"),
                "VSA_TRACKER_METRICS_PORT": str(port),
            },
        )
        for i, port in enumerate(ports)
    ]
    try:
        deadline = time.monotonic() + 120
        while sorted(ready_partitions(ports[0]) + ready_partitions(ports[1])) != [0, 1, 2, 3]:
            if time.monotonic() > deadline:
                raise TimeoutError("the two workers did not split the partitions")
            time.sleep(0.5)
        produce_all(kafka, names.name("detections"), items)
        first: list[float] = []
        span = output_span(
            kafka,
            names.name("tracks"),
            len(items),
            600,
            lambda: first.append(sum(cpu_seconds(p.pid) for p in procs)),
        )
        cpu = sum(cpu_seconds(p.pid) for p in procs) - first[0]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    drop(kafka, names)
    return Row("vsa tracker, 2 workers of one app (4 partitions)", len(items), span, cpu)


def confluent_passthrough(kafka: KafkaSettings, names: TopicNames, n: int) -> Row:
    consumer = Consumer(consumer_config(kafka, "bench-pass", f"{names.prefix}pass"))
    consumer.subscribe([names.name("detections")])
    producer = Producer(kafka, "bench-pass")
    done, started = 0, 0.0
    while done < n:
        batch = [m for m in consumer.consume(BATCH, 1.0) if m.error() is None]
        if not batch:
            continue
        started = started or time.perf_counter()
        for m in batch:
            producer.produce(Output(names.name("tracks"), m.key(), m.value() or b""))
        producer.flush(60)
        ends = {(str(m.topic()), m.partition() or 0): (m.offset() or 0) + 1 for m in batch}
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        consumer.commit(offsets=offsets, asynchronous=False)
        done += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return Row("confluent pass-through (librdkafka, no Faust)", n, elapsed)


def handler_row(items: Sequence[tuple[bytes, bytes]], rules: Path) -> Row:
    """``TrackerHandler.handle`` in batches with a dict as the table (CPU time, this thread)."""
    from vsa.services.tracker.handler import Record, TrackerHandler

    handler = TrackerHandler(TopicNames(), rule_book(rules).rules_for)
    records = [Record(k, v, "detections", 0, i) for i, (k, v) in enumerate(items)]
    table: dict[bytes, bytes] = {}
    started = time.process_time()
    for i in range(0, len(records), BATCH):
        plan = handler.handle(records[i : i + BATCH], lambda r: table.get(r.key or b""))
        table.update((w.key, w.data) for w in plan.writes)
    elapsed = time.process_time() - started
    return Row("handler, no Kafka (decode, track, rules, encode, state)", len(records), elapsed)


def rule_book(rules: Path) -> Any:
    from vsa.services.tracker.rulebook import RuleBook

    book = RuleBook(["person"])
    book.load_file(rules)
    return book


def best_of(runs: int, work: Callable[[], object]) -> float:
    """Least CPU seconds of ``runs`` calls (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def stage_rows(items: Sequence[tuple[bytes, bytes]], rules: Path) -> list[Row]:
    """The handler's work split by stage, each the best of 3 passes over the same messages."""
    from vsa.services.tracker.camera import CameraState, process

    book = rule_book(rules)
    messages = [Detections.from_bytes(v) for _, v in items]

    def track(with_rules: bool) -> list[Any]:
        states: dict[str, CameraState] = {}
        outputs = []
        for m in messages:
            rules_ = book.rules_for(m.camera_id) if with_rules else None
            states[m.camera_id], out = process(states.get(m.camera_id, CameraState()), m, rules_)
            outputs.append(out)
        return outputs

    outputs = track(True)
    states = [CameraState()]
    for m in messages[: len(messages) // 2]:
        states[0] = process(states[0], m, book.rules_for(m.camera_id))[0]
    n = len(items)
    core = best_of(3, lambda: track(False))
    full = best_of(3, lambda: track(True))
    return [
        Row("decode: Detections.from_bytes (pydantic)", n, best_of(3, lambda: decode_all(items))),
        Row("process() without rules: tracking core + output documents", n, core),
        Row("rules, alerts, keyframe decision (process() with rules - without)", n, full - core),
        Row("encode: tracks, alert, keyframe JSON", n, best_of(3, lambda: encode(outputs))),
        Row("state to_bytes + from_bytes (paid once per camera per batch)", n, serde(states[0], n)),
    ]


def decode_all(items: Sequence[tuple[bytes, bytes]]) -> None:
    for _, value in items:
        Detections.from_bytes(value)


def encode(outputs: Sequence[Any]) -> None:
    """What the handler produces per frame (see ``TrackerHandler.encode``)."""
    for out in outputs:
        out.tracks_json()
        for alert in out.alerts:
            alert.to_bytes()
        out.keyframe_json()


def serde(state: Any, n: int) -> float:
    from vsa.services.tracker.camera import CameraState

    return best_of(3, lambda: [CameraState.from_bytes(state.to_bytes()) for _ in range(n)])


# ------------------------------------------------------------------------- Faust pass-through


def passthrough_worker() -> int:
    """``vsa tracker`` with the handler replaced by a copy of each record to the tracks topic."""
    from vsa.cli import main
    from vsa.runtime.kafka import Output as Out
    from vsa.services.tracker import handler as module

    def handle(self: Any, records: Sequence[Any], load: Any) -> Any:
        plan = module.BatchPlan()
        plan.outputs = [Out(self.tracks_topic, r.key, r.value or b"") for r in records]
        plan.outcomes["applied"] = len(records)
        return plan

    module.TrackerHandler.handle = handle  # type: ignore[method-assign]
    return main(["tracker"])


# ------------------------------------------------------------------------------------- main


def measure_workers(
    kafka: KafkaSettings,
    items: Sequence[tuple[bytes, bytes]],
    rules: Path,
    tmp: Path,
    workers2: bool = True,
) -> list[Row]:
    rows = []
    variants = [
        ("vsa tracker (Faust, RocksDB, state per batch)", ["-m", "vsa", "tracker"]),
        ("Faust pass-through (same worker, no tracking)", [__file__, "--passthrough"]),
    ]
    for index, (label, argv) in enumerate(variants):
        names = create(kafka, f"bench-{uuid.uuid4().hex[:8]}.")
        produce_all(kafka, names.name("detections"), items)
        env = worker_env(kafka, names, rules, tmp / f"data-{index}")
        rows.append(run_worker(label, argv, env, names.name("tracks"), kafka, len(items)))
        drop(kafka, names)
    if workers2:
        rows.append(two_workers(kafka, items, rules, tmp))
    names = create(kafka, f"bench-{uuid.uuid4().hex[:8]}.")
    produce_all(kafka, names.name("detections"), items)
    rows.append(confluent_passthrough(kafka, names, len(items)))
    drop(kafka, names)
    return rows


def print_table(rows: Sequence[Row], base: Row) -> None:
    print("| run | messages | msgs/s | µs/msg (wall) | CPU µs/msg | vs service |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        cpu = f"{row.cpu_seconds / row.messages * 1e6:.0f}" if row.cpu_seconds else ""
        print(
            f"| {row.label} | {row.messages:,} | {row.rate:,.0f} | "
            f"{1e6 / row.rate:.0f} | {cpu} | {row.rate / base.rate:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--frames", type=int, default=750, help="Frames per camera.")
    parser.add_argument("--objects", type=int, default=20, help="Objects per frame.")
    parser.add_argument(
        "--stage-messages", type=int, default=2000, help="Messages of the stage breakdown."
    )
    parser.add_argument("--no-two-workers", action="store_true", help="Skip the 2-worker row.")
    parser.add_argument("--passthrough", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.passthrough:
        sys.exit(passthrough_worker())
    kafka = load_settings(KafkaSettings)
    items = backlog(args.cameras, args.objects, args.frames)
    where = kafka.bootstrap_servers
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, Kafka at {where}")
    print(f"load average {os.getloadavg()[0]:.2f} at start")
    print(
        f"{len(items):,} detections messages: {args.cameras} cameras x {args.frames} frames, "
        f"{args.objects} objects per frame (+1 false positive), {PARTITIONS} partitions\n"
    )
    with tempfile.TemporaryDirectory(prefix="vsa-bench-tracker-") as tmp:
        rules = write_rules(Path(tmp) / "rules.yaml", args.cameras)
        rows = measure_workers(kafka, items, rules, Path(tmp), not args.no_two_workers)
        rows.append(handler_row(items, rules))
        stages = stage_rows(items[: args.stage_messages], rules)
    print_table(rows, rows[0])
    count = min(len(items), args.stage_messages)
    print(f"\nwhere the handler's time goes ({count:,} messages, best of 3, one thread, CPU):\n")
    print("| stage | µs/msg |")
    print("| --- | ---: |")
    for stage in stages:
        print(f"| {stage.label} | {stage.seconds / stage.messages * 1e6:.0f} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
