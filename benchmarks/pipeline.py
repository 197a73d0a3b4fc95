"""The whole pipeline on one machine, measured end to end (issue 12 point 5).

N cameras of one clip go through all five services as ``vsa`` processes (ingest, detector,
tracker, captioner, indexer; :class:`vsa.devstack.pipeline.ServicePipeline`) on the local Kafka
and OpenSearch (``vsa devstack up``, or ``KAFKA_BOOTSTRAP_SERVERS``/``OPENSEARCH_URL``), with
topics, groups and indices of the run's own (deleted afterwards). Usage::

    python benchmarks/pipeline.py --cameras 4 [--pace realtime|max] [--seconds 60]
        [--clip FILE] [--device cpu|cuda] [--variant NAME:VAR=VALUE;VAR=VALUE ...]

Pacing. ``realtime``: every camera is the file looped at its own frame rate (vtest.avi: 10
frames/s; a 30 frames/s 1080p H.264 file: 30), so the pipeline is offered ``cameras x fps``.
``max``: as fast as the pipeline takes them: ingest reads the files unpaced, and the benchmark
pauses it (SIGSTOP) while more than ``--inflight`` frames are on the frames topic without tracks
yet, and continues it (SIGCONT) below half of that: ingest never runs ahead of the slowest stage,
so it spends no CPU on frames nobody will process in the window. Its latencies are mostly that
window (``inflight / rate``); latencies of a load the pipeline keeps up with come from
``realtime`` with fewer cameras.

What it prints, measured over ``--seconds`` after ``--warmup`` (services started, first tracks
written):

- frames/s written to the frames topic and **frames/s end to end** (frames whose tracks were
  written: every frame passes ingest, detector and tracker; the captioner and indexer handle the
  tracker's keyframes and alerts, so they run on fewer messages);
- latency frame -> tracks and frame -> alert, p50 and p99: from the frame's capture time (set by
  ingest when it took the frame, wall clock) to when a reader of the tracks and alerts topics got
  the message (a fetch returns as soon as a message is there);
- per process (the five services, Kafka, OpenSearch): CPU in % of one core and in ms per frame
  end to end (/proc/<pid>/stat, user + system), GPU use in % (``nvidia-smi pmon``; "-" without a
  GPU), its input rate, its consumer lag at the start and end of the window and how fast that
  grew, and whether it was the bound.

The bound (:func:`find_bound`): the first service in pipeline order whose input lag grew over the
window by more than ``max(1, 5 % of its input rate)`` messages/s (it takes less than it is
given); else, when ``--pace max`` held ingest back for at least 10 % of the window, the service
with the most seconds of frames waiting for it (lag / input rate: the in-flight window sits in
front of the slowest stage); else ingest, when it wrote less than 95 % of the offered rate (it
cannot decode and encode fast enough) or, with ``--pace max``, was hardly ever held; else none:
the pipeline kept up with what it was offered. A service at or near 100 % of one core (Python,
one thread doing the work) or a machine near all its cores busy backs the verdict up; both are
printed.

Baselines in the same run: ingest alone for ``--baseline-s`` (same cameras and pacing, nothing
downstream; with ``--pace max`` that is ingest's own ceiling on this machine), and each
``--variant`` after the first is printed as a ratio against the first (variants set environment
variables of the services, e.g. ``'batch16:VSA_DETECTOR_MAX_BATCH=16'``, or run another checkout
with ``PYTHONPATH=...``).

Without a GPU the GPU column is "-". ``--device cuda`` runs the detector on the GPU path (torch
backend, nvJPEG), the captioner and the indexer's embedder on CUDA (fp16).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsa.demo import CPU_SERVICE_ENV
from vsa.devstack.usage import GpuSampler, machine_ticks, read_ticks

ROOT = Path(__file__).resolve().parents[1]
#: Services in pipeline order: each one's input topics (ingest has none: it reads the cameras).
STAGES = ("ingest", "detector", "tracker", "captioner", "indexer")
#: Lag growth (messages/s) below which a stage counts as keeping up, and the share of its
#: input rate that also counts as noise.
LAG_SLOPE_MIN = 1.0
LAG_SLOPE_SHARE = 0.05
#: --pace max: share of the window ingest was held back from which the pipeline, not ingest,
#: was the bound (the stage with the most seconds of frames waiting for it).
HELD_MIN_SHARE = 0.1
#: Seconds between two looks of the --pace max throttle at the frames in flight.
THROTTLE_EVERY_S = 0.1
#: Share of the offered rate below which ingest itself is the bound.
OFFERED_SHARE = 0.95
#: Environment of the CPU machine's run: the demo's (:data:`vsa.demo.CPU_SERVICE_ENV`: INT8
#: detector on one thread, batches of 8, the captioner's rate limit, the indexer's batches).
CPU_ENV: dict[str, dict[str, str]] = CPU_SERVICE_ENV
#: On a GPU box: the detector's GPU path (nvJPEG decode, FP16 network, GPU NMS) in batches of
#: 32, the captioner and the embedder on CUDA.
CUDA_ENV: dict[str, dict[str, str]] = {
    "detector": {
        "VSA_DETECTOR_MODEL": "yolov3-tiny",
        "VSA_DETECTOR_BACKEND": '{"type": "torch", "device": "cuda:0"}',
        "VSA_DETECTOR_MAX_BATCH": "32",
    },
    "captioner": {"VSA_CAPTIONER_CAPTIONS_PER_MINUTE": "20", "VSA_CAPTIONER_DEVICE": "cuda"},
    "indexer": {
        "VSA_INDEXER_MAX_BATCH": "64",
        "VSA_INDEXER_MAX_WAIT_MS": "500",
        "VSA_INDEXER_EMBEDDING__DEVICE": "cuda",
    },
}


# ----------------------------------------------------------------------------- pure parts


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``, linear between closest ranks (numpy's
    default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(t, y)`` points (units of y per unit of t); 0 for fewer than two
    distinct times. Used on lag samples, so a sawtooth of periodic commits averages out."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / var


@dataclass(frozen=True)
class StageLoad:
    """What one stage did over the window.

    Attributes:
        name: Service name (one of :data:`STAGES`).
        rate: Messages it took per second (ingest: frames it wrote).
        lag_slope: Growth of its consumer lag, messages per second (0 for ingest).
        lag_mean: Mean consumer lag over the window, messages (0 for ingest).
        cpu: CPU use, fraction of one core (1.0 = one core busy all the time).
    """

    name: str
    rate: float
    lag_slope: float = 0.0
    lag_mean: float = 0.0
    cpu: float = 0.0

    @property
    def lag_grows(self) -> bool:
        return self.lag_slope > max(LAG_SLOPE_MIN, LAG_SLOPE_SHARE * self.rate)

    @property
    def backlog_s(self) -> float:
        """Seconds of work waiting in front of it (mean lag / rate)."""
        if self.rate > 0:
            return self.lag_mean / self.rate
        return float("inf") if self.lag_mean > 0 else 0.0


def find_bound(stages: Sequence[StageLoad], offered: float | None, held: float | None) -> str:
    """Which stage bounded the run and why (see the module docstring): ``"<name>: <reason>"``,
    or ``"none: ..."`` when the pipeline kept up. ``stages`` in pipeline order, ingest first;
    ``offered`` frames/s the cameras were paced at (None: unpaced); ``held``: with ``--pace
    max``, the share of the window ingest was held back by the in-flight window (None: paced)."""
    for stage in stages[1:]:
        if stage.lag_grows:
            return f"{stage.name}: its lag grew {stage.lag_slope:.1f} msg/s"
    if held is not None and held >= HELD_MIN_SHARE:
        worst = max(stages[1:], key=lambda s: s.backlog_s)
        return (
            f"{worst.name}: ingest held {held:.0%} of the time, "
            f"{worst.backlog_s:.1f} s of frames waited for it"
        )
    ingest = stages[0]
    if offered is not None and ingest.rate < OFFERED_SHARE * offered:
        return f"ingest: wrote {ingest.rate:.1f} of {offered:.1f} frames/s offered"
    if held is not None:
        return "ingest: the pipeline took every frame it wrote"
    return "none: the pipeline kept up with the cameras"


# ------------------------------------------------------------------------------ sampling


#: Process name (a service, kafka, opensearch) -> its process ids (instances, nodes).
Pids = dict[str, tuple[int, ...]]


@dataclass
class Sample:
    """One look at the pipeline: topic ends, group commits, CPU ticks, at monotonic ``t``."""

    t: float
    ends: dict[str, int]  # logical topic -> messages written (sum over partitions)
    committed: dict[str, int]  # service -> messages its group committed on its inputs
    ticks: dict[str, int | None]  # process name -> CPU ticks
    machine: tuple[int, int]


class Latencies:
    """Reads the tracks and alerts topics from their ends, recording for each message the
    seconds from the frame's capture time to its arrival here (from ``start()`` on)."""

    def __init__(self, kafka: Any, topics: Mapping[str, str]) -> None:
        self.kafka, self.topics = kafka, dict(topics)  # logical -> real name
        self.seconds: dict[str, list[float]] = {name: [] for name in topics}
        self.counting = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Latencies:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        conf = {
            **self.kafka.client_config(),
            "group.id": f"bench-latency-{os.getpid()}",
            "enable.auto.commit": False,
            # librdkafka's fetch.wait.max.ms (500) stays: a fetch returns as soon as a message
            # is there (fetch.min.bytes 1), and shorter waits only make the broker busier
        }
        consumer = Consumer(conf)
        logical = {real: name for name, real in self.topics.items()}
        parts = []
        for real in logical:
            meta = consumer.list_topics(real, timeout=10).topics[real]
            parts += [TopicPartition(real, p, OFFSET_END) for p in meta.partitions]
        consumer.assign(parts)
        self._ready.set()
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    if msg.error() is not None or not self.counting:
                        continue
                    now, name = time.time(), logical[msg.topic() or ""]
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        doc = json.loads(msg.value() or b"")
                        ts = doc["capture_ts"] if name == "tracks" else doc["ts"]
                        self.seconds[name].append(now - float(ts))
        finally:
            consumer.close()


# ------------------------------------------------------------------------------- the run


@dataclass
class Variant:
    """A named set of environment variables for every service (``VAR=VALUE``) and instance
    counts per service (``@detector=2``: two detector processes in one group)."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``NAME`` or ``NAME:VAR=VALUE;@SERVICE=N;...`` (``;`` because JSON values hold
        commas)."""
        name, _, rest = text.partition(":")
        variant = cls(name)
        for item in filter(None, (part.strip() for part in rest.split(";"))):
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"--variant {text!r}: {item!r} is not VAR=VALUE")
            if key.startswith("@"):
                if key[1:] not in STAGES[1:] or not value.isdigit() or int(value) < 1:
                    raise SystemExit(f"--variant {text!r}: {item!r} is not @SERVICE=N")
                variant.instances[key[1:]] = int(value)
            else:
                variant.env[key] = value
        return variant


@dataclass
class Result:
    """One run (a variant, or the ingest-only baseline) and what it measured."""

    name: str
    seconds: float
    offered: float | None
    frames_fps: float
    tracks_fps: float
    latency: dict[str, dict[str, float | None]]
    stages: list[dict[str, Any]]
    bound: str
    machine_busy: float
    throttled_s: float = 0.0


def stack_endpoints() -> tuple[str, str, Pids]:
    """Kafka bootstrap, OpenSearch URL, and the stack's own process ids (none if external)."""
    from vsa.devstack import stack

    info = stack.up()
    pids: Pids = {
        c.name: tuple(n.pid for n in c.nodes if n.pid) or ((c.pid,) if c.pid else ())
        for c in stack.status().components
        if not c.external
    }
    return info.kafka_bootstrap, info.opensearch_url, pids


def service_env(args: argparse.Namespace, variant: Variant) -> dict[str, dict[str, str]]:
    base = CUDA_ENV if args.device == "cuda" else CPU_ENV
    env = {service: dict(values) for service, values in base.items()}
    for service in STAGES:
        env.setdefault(service, {}).update(variant.env)
    return env


def camera_flags(args: argparse.Namespace, cameras: Sequence[str]) -> list[str]:
    realtime = "true" if args.pace == "realtime" else "false"
    return [f"--camera={c}={args.clip},loop=true,realtime={realtime}" for c in cameras]


def clip_fps(clip: Path) -> float:
    import av

    with av.open(str(clip)) as container:
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else 25.0


class Throttle:
    """``--pace max``: SIGSTOP ingest while more than ``inflight`` frames wait for tracks,
    SIGCONT below half of that. Counts the seconds ingest was held."""

    def __init__(self, pid: int, inflight: int) -> None:
        self.pid, self.inflight = pid, inflight
        self.stopped_since: float | None = None
        self.held_s = 0.0

    def update(self, waiting: int) -> None:
        now = time.monotonic()
        if self.stopped_since is None and waiting > self.inflight:
            os.kill(self.pid, signal.SIGSTOP)
            self.stopped_since = now
        elif self.stopped_since is not None and waiting < self.inflight // 2:
            os.kill(self.pid, signal.SIGCONT)
            self.held_s += now - self.stopped_since
            self.stopped_since = None

    def restart_count(self) -> None:
        """Count held seconds from now on (the window's own)."""
        self.held_s = 0.0
        if self.stopped_since is not None:
            self.stopped_since = time.monotonic()

    def release(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
        if self.stopped_since is not None:
            self.held_s += time.monotonic() - self.stopped_since
            self.stopped_since = None


class Offsets:
    """Messages written per topic and committed per group, through one admin client (a
    consumer per question would cost this machine more CPU than the answer is worth)."""

    TOPICS = ("frames", "detections", "tracks", "alerts", "keyframes", "captions")

    def __init__(self, pipe: Any) -> None:
        from vsa.runtime.topic_check import admin_client

        self.pipe = pipe
        self.admin = admin_client(pipe.kafka)
        self.metadata = self.admin.list_topics(timeout=10)

    def ends(self, topics: Sequence[str] = TOPICS) -> dict[str, int]:
        """Logical topic -> messages written (high watermarks summed over partitions)."""
        from vsa.runtime.topic_admin import watermarks

        real = {self.pipe.names.name(t): t for t in topics}
        totals = dict.fromkeys(topics, 0)
        for (name, _), (_, high) in watermarks(self.admin, self.metadata, real).items():
            totals[real[name]] += high
        return totals

    def committed(self, services: Sequence[str]) -> dict[str, int]:
        """Service -> offsets its group committed, summed over its input partitions."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        from vsa.devstack.pipeline import INPUTS

        totals: dict[str, int] = {}
        for service in services:
            inputs = {self.pipe.names.name(t) for t in INPUTS[service]}
            request = [ConsumerGroupTopicPartitions(self.pipe.group(service))]
            futures = self.admin.list_consumer_group_offsets(request, request_timeout=10)
            total = 0
            for future in futures.values():
                with contextlib.suppress(Exception):  # no commit yet: 0
                    for tp in future.result().topic_partitions or []:
                        if tp.topic in inputs and tp.offset >= 0:
                            total += tp.offset
            totals[service] = total
        return totals


def take_sample(
    offsets: Offsets, pids: Mapping[str, tuple[int, ...]], services: Sequence[str]
) -> Sample:
    from vsa.devstack.pipeline import INPUTS

    ends = offsets.ends()
    committed = offsets.committed([s for s in services if s in INPUTS])
    ticks = {name: read_ticks(ids) if ids else None for name, ids in pids.items()}
    return Sample(time.monotonic(), ends, committed, ticks, machine_ticks())


def watch_window(
    offsets: Offsets,
    pids: Mapping[str, tuple[int, ...]],
    services: Sequence[str],
    seconds: float,
    throttle: Throttle | None,
) -> list[Sample]:
    """Samples every ~2 s for ``seconds`` (the throttle looks every :data:`THROTTLE_EVERY_S`)."""
    samples = [take_sample(offsets, pids, services)]
    end = samples[0].t + seconds
    next_sample = samples[0].t + 2.0
    while time.monotonic() < end:
        if throttle is not None:
            ends = offsets.ends(("frames", "tracks"))
            throttle.update(ends["frames"] - ends["tracks"])
        time.sleep(THROTTLE_EVERY_S if throttle is not None else 0.5)
        if time.monotonic() >= next_sample:
            samples.append(take_sample(offsets, pids, services))
            next_sample += 2.0
    samples.append(take_sample(offsets, pids, services))
    return samples


def stage_loads(samples: Sequence[Sample], services: Sequence[str]) -> list[StageLoad]:
    from vsa.devstack.pipeline import INPUTS

    first, last = samples[0], samples[-1]
    span = last.t - first.t
    loads = []
    for name in services:
        cpu = _cpu(first.ticks.get(name), last.ticks.get(name), span)
        if name not in INPUTS:  # ingest: what it wrote
            rate = (last.ends["frames"] - first.ends["frames"]) / span
            loads.append(StageLoad(name, rate, cpu=cpu))
            continue
        # ends are read just before commits: a commit can pass the end read a moment earlier
        lags = [
            (s.t, max(0, sum(s.ends[t] for t in INPUTS[name]) - s.committed[name])) for s in samples
        ]
        rate = (last.committed[name] - first.committed[name]) / span
        mean = sum(lag for _, lag in lags) / len(lags)
        loads.append(StageLoad(name, rate, slope(lags), mean, cpu))
    return loads


def _cpu(before: int | None, after: int | None, span: float) -> float:
    if before is None or after is None or span <= 0:
        return 0.0
    return (after - before) / os.sysconf("SC_CLK_TCK") / span


def run_pipeline(
    args: argparse.Namespace, variant: Variant, endpoints: tuple[str, str, Pids]
) -> Result:
    """One variant: start everything, warm up, measure, stop, clean up."""
    from vsa.devstack.pipeline import ServicePipeline, wait_for

    bootstrap, opensearch_url, stack_pids = endpoints
    cameras = [f"cam-{i}" for i in range(args.cameras)]
    workdir = Path(tempfile.mkdtemp(prefix="vsa-bench-pipeline-"))
    pipe = ServicePipeline(
        bootstrap,
        opensearch_url,
        workdir,
        "bench-pipeline",
        cameras,
        partitions=args.partitions,
        service_env=service_env(args, variant),
    )
    print(f"[{variant.name}] logs in {workdir}", flush=True)
    throttle: Throttle | None = None
    try:
        pipe.create()
        for service in STAGES[1:]:
            for instance in range(variant.instances.get(service, 1)):
                pipe.start(service, str(instance + 1))
        for svc in list(pipe.services):
            pipe.wait_ready(svc, 300)
        offsets = Offsets(pipe)
        ingest = pipe.start("ingest", args=[*camera_flags(args, cameras), "--no-progress"])
        # --pace max: held back from its first frame on (unpaced, ingest writes hundreds of
        # frames per second; a backlog made before the window would be drained in it)
        throttle = Throttle(ingest.proc.pid, args.inflight) if args.pace == "max" else None

        def tracked() -> bool:
            ends = offsets.ends(("frames", "tracks"))
            if throttle is not None:
                throttle.update(ends["frames"] - ends["tracks"])
            return ends["tracks"] > 0

        wait_for(tracked, 300, "first tracks", THROTTLE_EVERY_S)
        pids: Pids = {**stack_pids}
        for svc in pipe.services:
            pids[svc.service] = (*pids.get(svc.service, ()), svc.proc.pid)
        return measure(args, variant.name, offsets, pids, throttle)
    finally:
        if throttle is not None:
            throttle.release()
        pipe.close()
        _drop_topics(pipe)


def measure(
    args: argparse.Namespace,
    name: str,
    offsets: Offsets,
    pids: Pids,
    throttle: Throttle | None,
) -> Result:
    """Warm up, then watch the window with latency and GPU samplers running."""
    pipe = offsets.pipe
    names = {"tracks": pipe.names.name("tracks"), "alerts": pipe.names.name("alerts")}
    with Latencies(pipe.kafka, names) as latencies, GpuSampler() as gpu:
        if throttle is not None:
            watch_window(offsets, pids, STAGES, args.warmup, throttle)
        else:
            time.sleep(args.warmup)
        latencies.counting = True
        if throttle is not None:
            throttle.restart_count()
        samples = watch_window(offsets, pids, STAGES, args.seconds, throttle)
        latencies.counting = False
    return summarise(args, name, samples, latencies, gpu, pids, throttle)


def summarise(
    args: argparse.Namespace,
    name: str,
    samples: Sequence[Sample],
    latencies: Latencies,
    gpu: GpuSampler,
    pids: Mapping[str, tuple[int, ...]],
    throttle: Throttle | None,
) -> Result:
    first, last = samples[0], samples[-1]
    span = last.t - first.t
    loads = stage_loads(samples, STAGES)
    tracks_fps = (last.ends["tracks"] - first.ends["tracks"]) / span
    stages = []
    for load in loads:
        stages.append({**asdict(load), "gpu": gpu.mean(pids.get(load.name, ()))})
    for other in ("kafka", "opensearch"):
        cpu = _cpu(first.ticks.get(other), last.ticks.get(other), span)
        stages.append(
            {"name": other, "rate": None, "cpu": cpu, "gpu": gpu.mean(pids.get(other, ()))}
        )
    busy = (last.machine[0] - first.machine[0]) / max(1, last.machine[1] - first.machine[1])
    return Result(
        name=name,
        seconds=span,
        offered=args.offered,
        frames_fps=loads[0].rate,
        tracks_fps=tracks_fps,
        latency={
            topic: {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": float(len(v))}
            for topic, v in latencies.seconds.items()
        },
        stages=stages,
        bound=find_bound(loads, args.offered, None if throttle is None else throttle.held_s / span),
        machine_busy=busy,
        throttled_s=throttle.held_s if throttle is not None else 0.0,
    )


def run_ingest_only(args: argparse.Namespace, endpoints: tuple[str, str, Pids]) -> Result:
    """The baseline: ingest alone (same cameras and pacing, unthrottled), nothing downstream."""
    from vsa.devstack.pipeline import ServicePipeline

    bootstrap, opensearch_url, stack_pids = endpoints
    cameras = [f"cam-{i}" for i in range(args.cameras)]
    workdir = Path(tempfile.mkdtemp(prefix="vsa-bench-ingest-"))
    pipe = ServicePipeline(
        bootstrap, opensearch_url, workdir, "bench-ingest", cameras, partitions=args.partitions
    )
    try:
        pipe.create()
        ingest = pipe.start("ingest", args=[*camera_flags(args, cameras), "--no-progress"])
        time.sleep(min(5.0, args.baseline_s / 3))
        pids = {"ingest": (ingest.proc.pid,), **stack_pids}
        samples = watch_window(Offsets(pipe), pids, ("ingest",), args.baseline_s, None)
        first, last = samples[0], samples[-1]
        span = last.t - first.t
        rate = (last.ends["frames"] - first.ends["frames"]) / span
        cpu = _cpu(first.ticks["ingest"], last.ticks["ingest"], span)
        stages = [{"name": "ingest", "rate": rate, "cpu": cpu, "gpu": None}]
        for other in ("kafka", "opensearch"):
            c = _cpu(first.ticks.get(other), last.ticks.get(other), span)
            stages.append({"name": other, "rate": None, "cpu": c, "gpu": None})
        busy = (last.machine[0] - first.machine[0]) / max(1, last.machine[1] - first.machine[1])
        return Result(
            "ingest only (baseline)", span, args.offered, rate, 0.0, {}, stages, "-", busy
        )
    finally:
        pipe.close()
        _drop_topics(pipe)


def _drop_topics(pipe: Any) -> None:
    from vsa.runtime.kafka import delete_topics
    from vsa.runtime.settings import load_settings
    from vsa.runtime.topics import TopicsSettings

    specs = load_settings(TopicsSettings, None, names=pipe.names, partitions=pipe.partitions)
    with contextlib.suppress(Exception):
        delete_topics(pipe.kafka, list(specs.specs()))


# ------------------------------------------------------------------------------ printing


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ms(result: Result, topic: str) -> str:
    """``p50 / p99 (n)`` latency of a topic in ms, and how many messages it is from."""
    found = result.latency.get(topic, {})
    p50, p99, count = found.get("p50"), found.get("p99"), found.get("n") or 0
    if p50 is None or p99 is None:
        return "-"
    return f"{p50 * 1000:,.0f} / {p99 * 1000:,.0f} ({count:.0f})"


def render(results: Sequence[Result], baseline: Result | None) -> list[str]:
    """The summary table (one row per run, ratios against the first variant and against the
    ingest-only baseline) and, per run, the per-process table."""
    first = next((r for r in results if r is not baseline), None)
    lines = [
        "| run | offered f/s | frames f/s | end to end f/s | vs first | vs ingest only "
        "| frame->tracks p50/p99 ms (n) | frame->alert p50/p99 ms (n) | bound | machine CPU busy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for r in results:
        vs_first = r.tracks_fps / first.tracks_fps if first and first.tracks_fps else None
        vs_base = r.tracks_fps / baseline.frames_fps if baseline and baseline.frames_fps else None
        e2e = r.tracks_fps if r is not baseline else None
        lines.append(
            f"| {r.name} | {_fmt(r.offered)} | {_fmt(r.frames_fps)} | {_fmt(e2e)} "
            f"| {_fmt(vs_first if r is not baseline else None, 2)} "
            f"| {_fmt(vs_base if r is not baseline else None, 3)} | {_ms(r, 'tracks')} "
            f"| {_ms(r, 'alerts')} | {r.bound} | {r.machine_busy * 100:.0f} % |"
        )
    for r in results:
        lines += [
            "",
            f"{r.name}: per process over {r.seconds:.0f} s"
            + (f" (ingest held {r.throttled_s:.0f} s)" if r.throttled_s else ""),
            "",
        ]
        lines += [
            "| process | in msg/s | CPU % of a core | CPU ms per frame | GPU % | lag mean "
            "| lag growth msg/s | bound |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        per = r.tracks_fps or r.frames_fps
        for s in r.stages:
            bound = "**yes**" if r.bound.split(":")[0] == s["name"] else ""
            lines.append(
                f"| {s['name']} | {_fmt(s.get('rate'))} | {s['cpu'] * 100:.0f} "
                f"| {_fmt(s['cpu'] * 1000 / per if per else None)} | {_fmt(s.get('gpu'), 0)} "
                f"| {_fmt(s.get('lag_mean'), 0)} | {_fmt(s.get('lag_slope'))} | {bound} |"
            )
    return lines


def machine_line() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return (
        f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cameras", type=int, default=4, help="Cameras (copies of the clip).")
    parser.add_argument("--clip", type=Path, help="Video file; default: the sample vtest.avi.")
    parser.add_argument("--pace", choices=("realtime", "max"), default="realtime")
    parser.add_argument("--inflight", type=int, default=200, help="--pace max: frames in flight.")
    parser.add_argument("--seconds", type=float, default=60.0, help="Measured window.")
    parser.add_argument("--warmup", type=float, default=20.0, help="Seconds before the window.")
    parser.add_argument("--baseline-s", type=float, default=20.0, help="Ingest-only run; 0: none.")
    parser.add_argument("--partitions", type=int, default=4, help="Partitions of every topic.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--variant",
        action="append",
        type=Variant.parse,
        help="NAME[:VAR=VALUE;...] environment of the services; repeat: ratios vs the first.",
    )
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clip is None:
        from vsa.assets import fetch_vtest

        args.clip = fetch_vtest()
    fps = clip_fps(args.clip)
    args.offered = args.cameras * fps if args.pace == "realtime" else None
    variants = args.variant or [Variant("default")]
    print(f"machine: {machine_line()}; clip {args.clip.name} at {fps:g} frames/s", flush=True)
    endpoints = stack_endpoints()
    results: list[Result] = []
    baseline = run_ingest_only(args, endpoints) if args.baseline_s > 0 else None
    if baseline is not None:
        results.append(baseline)
    for variant in variants:
        results.append(run_pipeline(args, variant, endpoints))
        print("\n".join(render(results, baseline)), flush=True)
    print(f"\nafter: load {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
