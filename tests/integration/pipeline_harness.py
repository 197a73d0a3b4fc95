"""The whole vsa pipeline as `vsa` processes on a test's own Kafka broker, fed the sample clip as
cameras, and what came out of it (issue 11).

Shared by ``tests/integration/test_faults_*.py`` and ``benchmarks/faults.py`` (which puts the
checkout on ``sys.path``); :mod:`.fault_scenarios` builds the fault cases on it.

- :class:`OwnBroker`: a single KRaft broker of the caller only (own ports, own data folder, own
  pid), so a case can stop, kill and restart it while other tests use the session's broker.
- :func:`clip_frames`: the real clip ``vtest.avi`` decoded and JPEG-encoded by ingest's own
  functions, as cameras whose frames start at different points of the clip. Capture times are
  ``base_ts + pts``, not the wall clock, so every run of a session feeds byte-identical frames
  and an undisturbed run is a baseline to compare alert_ids and track ids with.
- :class:`Pipeline`: :class:`vsa.devstack.pipeline.ServicePipeline` (also the end-to-end
  benchmark's) with the harness's settings: the topics of one case (own prefix, 2 partitions, the
  cameras on different partitions), the example rules of ``examples/vtest-rules.yaml`` published
  for every camera on camera-config, and ``vsa detector|tracker|captioner|indexer`` processes
  (:class:`~vsa.devstack.pipeline.ServiceProc`) with their own groups, metrics ports and tracker
  data folders; the indexer writes to indices of the case's own prefix in the given OpenSearch.
- :class:`Feeder`: a paced, idempotent producer of frames (``message.timeout.ms=0``: it rides
  through an outage as ingest does; a frame "reached the frames topic" once acknowledged).
- :class:`OutputWatch`: one reader (no group, no commits) of every output topic plus the caption
  index, recording when each output arrived (recovery times) and what it was (the checks).
- :func:`compare`: the completeness and equality checks of a run against the undisturbed one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from vsa.devstack.health import wait_healthy
from vsa.devstack.kafka import bootstrap_servers, kafka_health, start_kafka
from vsa.devstack.pipeline import ServicePipeline, ServiceProc, free_port, wait_for
from vsa.devstack.procs import is_alive
from vsa.devstack.procs import stop as stop_process
from vsa.devstack.settings import DevstackSettings
from vsa.devstack.tools import find_java
from vsa.runtime.kafka import Output, Producer
from vsa.runtime.partition import partition_for_key
from vsa.runtime.settings import KafkaSettings, load_settings
from vsa.schemas import Alert, Caption, Detections, FrameMeta, Keyframe, Tracks
from vsa.services.ingest.config import CameraSpec
from vsa.services.ingest.sources import encode_jpeg, read_video

#: Output topics of each service (the indexer's output is the caption index).
OUTPUTS = {"detector": "detections", "tracker": "tracks", "captioner": "captions"}
PARTITIONS = 2
#: Frames per second of the clip (capture times step by 1 / CLIP_FPS).
CLIP_FPS = 10.0
#: Group session timeout of every service here: a stopped member is replaced this fast.
SESSION_TIMEOUT_S = 10

FrameKey = tuple[str, int]


# ------------------------------------------------------------------------------ small helpers


def cameras_on_partitions(count: int, partitions: int = PARTITIONS) -> tuple[str, ...]:
    """``count`` camera ids (``cam-<n>``) that land on different partitions."""
    chosen: dict[int, str] = {}
    n = 0
    while len(chosen) < count:
        camera = f"cam-{n}"
        chosen.setdefault(partition_for_key(camera, partitions), camera)
        n += 1
    return tuple(chosen[p] for p in sorted(chosen))


CAMERAS = cameras_on_partitions(2)


# ------------------------------------------------------------------------------- own broker


@dataclass
class OwnBroker:
    """A single KRaft broker of the caller only: own ports, own data folder, own pid."""

    settings: DevstackSettings
    pid: int | None = None

    @classmethod
    def in_folder(cls, state_dir: Path) -> OwnBroker:
        """A broker (not started) on free ports with its state under ``state_dir``."""
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        kafka_port, controller_port, os_port, os_transport = sorted(ports)
        settings = load_settings(
            DevstackSettings,
            None,
            kafka_port=kafka_port,
            kafka_controller_port=controller_port,
            opensearch_port=os_port,
            opensearch_transport_port=os_transport,
            state_dir=state_dir,
        )
        return cls(settings)

    @property
    def bootstrap(self) -> str:
        return bootstrap_servers(self.settings)

    def start(self) -> None:
        """Start it and wait until it answers (AssertionError if it does not)."""
        self.pid = start_kafka(self.settings, find_java())
        pid = self.pid
        result = wait_healthy(
            f"test broker {self.bootstrap}",
            lambda: kafka_health({"bootstrap.servers": self.bootstrap}, 2.0),
            self.settings.kafka_start_timeout_s,
            lambda: None if is_alive(pid) else "exited",
        )
        assert result.healthy, result.detail

    def stop(self) -> None:
        """SIGTERM by pid (SIGKILL only if it ignores that for the settings' stop timeout)."""
        if self.pid is not None:
            stop_process(self.pid, self.settings.stop_timeout_s)
            self.pid = None


@contextlib.contextmanager
def own_broker(state_dir: Path) -> Iterator[OwnBroker]:
    """A started :class:`OwnBroker`, stopped at the end."""
    broker = OwnBroker.in_folder(state_dir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# ------------------------------------------------------------------------- service processes


class ReadinessWatch:
    """Polls each running service's /readyz in a thread, recording (monotonic time, code)."""

    def __init__(self, services: Callable[[], Sequence[ServiceProc]], every_s: float = 0.5) -> None:
        self.services = services
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)

    def __enter__(self) -> ReadinessWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for svc in list(self.services()):
                if svc.alive:
                    self._poll(svc)
            self._stop.wait(self.every_s)

    @staticmethod
    def _poll(svc: ServiceProc) -> None:
        code, body = svc.get("/readyz")
        now = time.monotonic()
        svc.readiness.append((now, code))
        if code == 503:
            with contextlib.suppress(ValueError, AttributeError):
                for name in json.loads(body).get("blocked", {}):
                    svc.blockers.setdefault(name, now)


def codes_between(svc: ServiceProc, start: float, end: float) -> set[int]:
    """The /readyz codes a :class:`ReadinessWatch` saw for ``svc`` from ``start`` to ``end``."""
    return {code for t, code in svc.readiness if start <= t <= end}


# --------------------------------------------------------------------------------- the clip


@dataclass(frozen=True)
class ClipFrame:
    """One frame of one camera, exactly as ingest would publish it."""

    camera_id: str
    frame_seq: int
    jpeg: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    @property
    def key(self) -> FrameKey:
        return self.camera_id, self.frame_seq


def clip_frames(
    vtest: Path, per_camera: int, base_ts: float, cameras: Sequence[str] = CAMERAS
) -> list[ClipFrame]:
    """``per_camera`` frames for each camera, interleaved in capture order. Camera ``i`` starts
    ``i * per_camera`` frames into the clip (so the cameras see different scenes); its frame_seq
    counts from 0 and its capture time is ``base_ts + frame_seq / CLIP_FPS``."""
    needed = per_camera * len(cameras)
    spec = CameraSpec(camera_id=cameras[0], url=str(vtest))
    encoded: list[tuple[bytes, int, int]] = []
    for decoded in read_video(spec, timeout_s=30.0):
        assert decoded.frame is not None
        encoded.append(encode_jpeg(decoded.frame, spec))
        if len(encoded) == needed:
            break
    assert len(encoded) == needed, f"the clip has {len(encoded)} frames, {needed} wanted"
    frames = []
    for seq in range(per_camera):
        for index, camera_id in enumerate(cameras):
            jpeg, width, height = encoded[index * per_camera + seq]
            meta = FrameMeta(
                camera_id=camera_id,
                frame_seq=seq,
                capture_ts=base_ts + seq / CLIP_FPS,
                width=width,
                height=height,
                pts_s=seq / CLIP_FPS,
                source="file",
            )
            timestamp_ms = int(meta.capture_ts * 1000)
            frames.append(ClipFrame(camera_id, seq, jpeg, meta.to_headers(), timestamp_ms))
    return frames


class Feeder:
    """Produces frames to a topic at a steady rate from a thread, riding through outages.

    :meth:`feed` queues a segment; the thread produces queued frames ``rate_per_s`` per second
    (an idempotent producer that never gives up on a retriable error), so frames produced
    during a broker outage wait in the client and reach the topic when it is back.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, rate_per_s: float) -> None:
        self.topic, self.rate_per_s = topic, rate_per_s
        self.producer = Producer(kafka, "harness-feeder", **{"message.timeout.ms": 0})
        self.queued: list[ClipFrame] = []
        self.produced = 0
        self._lock = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()

    def feed(self, frames: Sequence[ClipFrame]) -> None:
        with self._lock:
            self.queued.extend(frames)
            self._lock.notify_all()

    def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            with self._lock:
                while not self._stop and self.produced >= len(self.queued):
                    self._lock.wait(0.5)
                    next_at = max(next_at, time.monotonic())
                if self._stop:
                    return
                frame = self.queued[self.produced]
            time.sleep(max(0.0, next_at - time.monotonic()))
            out = Output(self.topic, frame.camera_id, frame.jpeg, frame.headers, frame.timestamp_ms)
            self.producer.produce(out)
            self.produced += 1
            next_at += 1.0 / self.rate_per_s

    def fed(self) -> bool:
        """Every queued frame produced and acknowledged by Kafka."""
        return self.produced == len(self.queued) and self.producer.wait_acked(0.1) == 0

    def wait_fed(self, timeout_s: float = 180.0) -> None:
        wait_for(self.fed, timeout_s, f"{len(self.queued)} frames acknowledged")

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._thread.join(timeout=10)


# ----------------------------------------------------------------------------- what came out


@dataclass(frozen=True)
class Written:
    """One output message as the checks see it."""

    arrived: float  # monotonic, when the watch read it
    camera_id: str
    frame_seq: int
    content: Any  # what must equal the undisturbed run's (per topic, see _content)


def _content(topic: str, msg: Message) -> tuple[str, int, Any]:
    """(camera_id, frame_seq, comparable content) of a message, per logical topic (frames: the
    capture time, from the headers).

    Frame references (topic names, offsets) differ between runs and are left out; boxes are
    compared to 0.01 px."""
    value = msg.value() or b""
    if topic == "frames":
        meta = FrameMeta.from_headers(msg.headers())
        return meta.camera_id, meta.frame_seq, meta.capture_ts
    if topic == "detections":
        det = Detections.from_bytes(value)
        boxes = tuple((b.class_id, tuple(round(v, 2) for v in b.xyxy)) for b in det.boxes)
        return det.camera_id, det.frame_seq, boxes
    if topic == "tracks":
        tr = Tracks.from_bytes(value)
        objects = tuple(
            (o.track_id, o.state, tuple(round(v, 2) for v in o.xyxy)) for o in tr.tracks
        )
        return tr.camera_id, tr.frame_seq, objects
    if topic == "alerts":
        al = Alert.from_bytes(value)
        return al.camera_id, al.frame_seq, (al.alert_id, al.rule_id, al.kind, tuple(al.track_ids))
    if topic == "keyframes":
        kf = Keyframe.from_bytes(value)
        return kf.camera_id, kf.frame_seq, kf.reason
    cap = Caption.from_bytes(value)
    return cap.camera_id, cap.frame_seq, cap.text


WATCHED = ("frames", "detections", "tracks", "alerts", "keyframes", "captions")


class OutputWatch:
    """Reads every output topic of a pipeline from the start (assigned partitions, no group, no
    commits) and polls its caption index, from a thread; records arrival times and contents."""

    def __init__(self, pipeline: Pipeline, every_s: float = 0.5) -> None:
        self.pipeline = pipeline
        self.every_s = every_s
        self.outputs: dict[str, list[Written]] = {t: [] for t in WATCHED}
        self.indexed: dict[str, float] = {}  # caption _id -> when the watch first saw it
        self.positions: dict[tuple[str, int], int] = {}
        self._names = {pipeline.names.name(t): t for t in WATCHED}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="output-watch", daemon=True)

    def __enter__(self) -> OutputWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.pipeline.kafka.client_config(),
                "group.id": f"watch-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "log_level": 2,  # the outage's connection errors are expected here
            }
        )
        consumer.assign(
            [TopicPartition(n, p, OFFSET_BEGINNING) for n in self._names for p in range(PARTITIONS)]
        )
        next_index_poll = 0.0
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    self._take(msg)
                if time.monotonic() >= next_index_poll:
                    self._poll_index()
                    next_index_poll = time.monotonic() + self.every_s
        finally:
            consumer.close()

    def _take(self, msg: Message) -> None:
        if msg.error() is not None:
            return
        topic = self._names[msg.topic() or ""]
        camera_id, frame_seq, content = _content(topic, msg)
        with self._lock:
            self.outputs[topic].append(Written(time.monotonic(), camera_id, frame_seq, content))
            self.positions[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1

    def _poll_index(self) -> None:
        try:
            ids = self.pipeline.indexed_ids()
        except Exception:  # OpenSearch busy: the next poll tells
            return
        now = time.monotonic()
        with self._lock:
            for doc_id in ids:
                self.indexed.setdefault(doc_id, now)

    def keys(self, topic: str) -> set[FrameKey]:
        with self._lock:
            return {(o.camera_id, o.frame_seq) for o in self.outputs[topic]}

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.outputs[topic])

    def read_to(self, ends: dict[tuple[str, int], int], timeout_s: float = 60.0) -> None:
        """Wait until the watch has read every watched partition up to ``ends``."""

        def done() -> bool:
            with self._lock:
                return all(self.positions.get(tp, 0) >= end for tp, end in ends.items())

        wait_for(done, timeout_s, "output topics read to their end")

    def first_after(self, stage: str, since: float, camera_id: str | None = None) -> float | None:
        """Seconds from ``since`` to the first output of ``stage`` (a watched topic, or
        ``index``: a caption document) that arrived after it, of one camera or any; None when
        none did."""
        with self._lock:
            if stage == "index":
                times = [
                    t
                    for doc_id, t in self.indexed.items()
                    if t > since and (camera_id is None or doc_id.startswith(f"{camera_id}:"))
                ]
            else:
                times = [
                    o.arrived
                    for o in self.outputs[stage]
                    if o.arrived > since and camera_id in (None, o.camera_id)
                ]
        return min(times) - since if times else None

    def count_stage(self, stage: str) -> int:
        """Outputs of a stage so far (``index``: caption documents)."""
        with self._lock:
            return len(self.indexed) if stage == "index" else len(self.outputs[stage])

    def snapshot(self) -> Outcome:
        with self._lock:
            return Outcome({t: list(o) for t, o in self.outputs.items()}, set(self.indexed))


@dataclass
class Outcome:
    """Everything a run wrote: output messages in topic order, and the caption ids indexed."""

    outputs: dict[str, list[Written]]
    indexed: set[str]

    def sequences(self, topic: str) -> dict[str, list[int]]:
        """Per camera, the frame_seq of each message in the order it was written."""
        found: dict[str, list[int]] = defaultdict(list)
        for out in self.outputs[topic]:
            found[out.camera_id].append(out.frame_seq)
        return dict(found)

    def by_frame(self, topic: str) -> dict[FrameKey, set[Any]]:
        """The distinct contents written for each frame."""
        found: dict[FrameKey, set[Any]] = defaultdict(set)
        for out in self.outputs[topic]:
            found[(out.camera_id, out.frame_seq)].add(out.content)
        return dict(found)

    def alerts(self, cameras: set[str] | None = None) -> dict[str, set[Any]]:
        """alert_id -> the distinct alerts written under it (of ``cameras`` only, if given)."""
        found: dict[str, set[Any]] = defaultdict(set)
        for out in self.outputs["alerts"]:
            if cameras is None or out.camera_id in cameras:
                found[out.content[0]].add(out.content)
        return dict(found)

    def cameras(self) -> set[str]:
        """The cameras whose frames were on the frames topic."""
        return {out.camera_id for out in self.outputs["frames"]}

    def duplicates(self, topic: str) -> int:
        """Messages written again for a frame (or alert) already written."""
        if topic == "alerts":
            counts = Counter(out.content[0] for out in self.outputs[topic])
        else:
            counts = Counter((out.camera_id, out.frame_seq) for out in self.outputs[topic])
        return sum(n - 1 for n in counts.values())


def out_of_order(sequence: Sequence[int]) -> str | None:
    """Why a camera's write order is not that of at-least-once redelivery, or None.

    A redelivery rewinds and then goes on one frame at a time, so every step forward must be +1
    and the last write must be the highest frame. A zombie's late writes show as a step forward
    of more than one after its stale run, or as a stale run at the end."""
    for before, after in itertools.pairwise(sequence):
        if after > before + 1:
            return f"jumped from frame_seq {before} to {after}"
    if sequence and sequence[-1] != max(sequence):
        return f"ends at frame_seq {sequence[-1]}, below {max(sequence)}"
    return None


def missing(
    outcome: Outcome, baseline: Outcome, frames: Sequence[ClipFrame]
) -> dict[str, list[Any]]:
    """Per stage, what a run lost: fed frames not on the frames topic, frames of the topic
    without detections or tracks, keyframes and alert_ids of the undisturbed run not written,
    keyframes without a caption, captions not in the index."""
    on_topic = set(outcome.by_frame("frames"))
    keyframes = set(outcome.by_frame("keyframes"))
    captions = set(outcome.by_frame("captions"))
    return {
        "frames": sorted({f.key for f in frames} - on_topic),
        "detections": sorted(on_topic - set(outcome.by_frame("detections"))),
        "tracks": sorted(on_topic - set(outcome.by_frame("tracks"))),
        "keyframes": sorted(set(baseline.by_frame("keyframes")) - keyframes),
        "alerts": sorted(set(baseline.alerts()) - set(outcome.alerts())),
        "captions": sorted(keyframes - captions),
        "index": sorted({f"{c}:{s}" for c, s in captions} - outcome.indexed),
    }


def alert_differences(outcome: Outcome, baseline: Outcome) -> list[str]:
    """alert_ids of the undisturbed run's cameras not in both runs, and alert_ids written with
    more than one content."""
    cameras = baseline.cameras()
    alerts = outcome.alerts(cameras)
    clashes = [a for a, versions in outcome.alerts().items() if len(versions) > 1]
    return sorted(set(alerts) ^ set(baseline.alerts())) + sorted(clashes)


def compare(outcome: Outcome, baseline: Outcome, frames: Sequence[ClipFrame]) -> list[str]:
    """What differs from an undisturbed run of the same frames (empty: nothing). Cameras that
    the undisturbed run did not have (a live ingest camera) are checked for completeness and
    order only."""
    problems = [
        f"{stage}: missing {items[:10]} ({len(items)})"
        for stage, items in missing(outcome, baseline, frames).items()
        if items
    ]
    for topic in ("detections", "tracks"):
        for camera, seq in outcome.sequences(topic).items():
            if (why := out_of_order(seq)) is not None:
                problems.append(f"{topic} of {camera}: {why}")
    for topic in ("detections", "tracks", "keyframes"):
        mine, theirs = outcome.by_frame(topic), baseline.by_frame(topic)
        differ = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
        if differ:
            problems.append(
                f"{topic}: {len(differ)} frames differ from the undisturbed run, first {differ[:5]}"
            )
    cameras = baseline.cameras()
    mine_kf = {k for k in outcome.by_frame("keyframes") if k[0] in cameras}
    if new_keyframes := sorted(mine_kf - set(baseline.by_frame("keyframes"))):
        problems.append(f"keyframes not in the undisturbed run: {new_keyframes[:5]}")
    if alert_ids := alert_differences(outcome, baseline):
        problems.append(f"alert_ids differ from the undisturbed run (or clash): {alert_ids}")
    captions, keyframes = set(outcome.by_frame("captions")), set(outcome.by_frame("keyframes"))
    if extra := sorted(captions - keyframes):
        problems.append(f"captions without a keyframe: {extra[:10]}")
    return problems


# ------------------------------------------------------------------------------- the pipeline


#: Per-service settings of the harness: the INT8 detector on one thread in batches of 8, no
#: caption rate limit (the limiter is per process: a restarted captioner would pick other
#: keyframes), an indexer that writes small batches and makes them searchable at once.
SERVICE_ENV: dict[str, dict[str, str]] = {
    "detector": {
        "VSA_DETECTOR_MODEL": "yolov3-tiny-int8",
        "VSA_DETECTOR_BACKEND": '{"type": "onnxruntime", "intra_op_num_threads": 1}',
        "VSA_DETECTOR_MAX_BATCH": "8",
    },
    "tracker": {
        "VSA_TRACKER_HEARTBEAT_INTERVAL_S": "1",
        "VSA_TRACKER_REBALANCE_TIMEOUT_S": "20",
        "VSA_TRACKER_CAMERA_CONFIG_SYNC_S": "30",
    },
    "captioner": {"VSA_CAPTIONER_CAPTIONS_PER_MINUTE": "0"},
    "indexer": {
        "VSA_INDEXER_MAX_BATCH": "16",
        "VSA_INDEXER_MAX_WAIT_MS": "200",
        "VSA_INDEXER_REFRESH_INTERVAL": "200ms",
        "VSA_INDEXER_RETRY__MAX_BACKOFF_S": "5",
    },
}


class Pipeline(ServicePipeline):
    """One case's topics (2 partitions, :data:`CAMERAS`), rules, index names and service
    processes on a given broker, with :data:`SERVICE_ENV` and a group session timeout of
    :data:`SESSION_TIMEOUT_S`."""

    def __init__(self, bootstrap: str, opensearch_url: str, workdir: Path, name: str) -> None:
        super().__init__(
            bootstrap,
            opensearch_url,
            workdir,
            name,
            CAMERAS,
            partitions=PARTITIONS,
            service_env=SERVICE_ENV,
            session_timeout_s=SESSION_TIMEOUT_S,
        )
