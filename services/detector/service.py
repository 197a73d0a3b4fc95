"""The detector runner: frames topic → :class:`~.core.FrameDetector` → detections topic.

It runs on the shared :class:`~vsa.runtime.service.BatchLoop`, which batches across cameras (up
to ``max_batch`` frames or ``max_wait_ms``), produces, waits for Kafka's acknowledgements and
only then commits. Per batch the handler

1. reads each record's :class:`~vsa.schemas.FrameMeta` from its headers (missing or garbled
   headers, or an empty value: that record fails and goes to ``dlq.detector``),
2. decodes and checks every JPEG (corrupt, or a size other than the headers say: that record
   fails), and runs the rest through the model in one backend call,
3. returns one :class:`~vsa.schemas.Detections` per good frame, keyed by camera_id.

The model is loaded and warmed up before the consumer joins its group; a model that cannot be
loaded stops the service with a :class:`~vsa.runtime.settings.ConfigError` naming the file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from confluent_kafka import Message
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from vsa.runtime.kafka import Output
from vsa.runtime.logs import event
from vsa.runtime.metrics import ServiceMetrics
from vsa.runtime.service import BatchLoop, BatchResult, LoopConfig, StopFlag
from vsa.runtime.settings import ConfigError
from vsa.schemas import Detections, FrameMeta, SchemaError

from .config import DetectorSettings
from .core import DetectorCore, FrameInput
from .jpeg import FrameError
from .loading import load_service_core

log = logging.getLogger("vsa.detector")

SERVICE = "detector"
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class DetectorMetrics:
    """The detector's own metrics, in the service's registry next to the runtime's."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        registry, self.service = metrics.registry, metrics.service
        self.stage_seconds = Histogram(
            "vsa_detector_stage_seconds",
            "Time of one batch in each stage (decode, preprocess, infer, postprocess), seconds.",
            ["service", "stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        )
        self.frames = PromCounter(
            "vsa_detector_frames",
            "Frames handled, by outcome (detected, rejected).",
            ["service", "outcome"],
            registry=registry,
        )
        self.objects = PromCounter(
            "vsa_detector_objects",
            "Objects detected, by class name.",
            ["service", "class_name"],
            registry=registry,
        )

    def observe(self, detections: Sequence[Detections]) -> None:
        """Count a batch's frames and objects and observe its stage times."""
        self.frames.labels(self.service, "detected").inc(len(detections))
        for stage in ("decode", "preprocess", "infer", "postprocess"):
            seconds = sum(d.timings.get(stage, 0.0) for d in detections) / 1000
            self.stage_seconds.labels(self.service, stage).observe(seconds)
        classes = Counter(box.class_name for d in detections for box in d.boxes)
        for name, count in classes.items():
            self.objects.labels(self.service, name).inc(count)


def frame_input(msg: Message) -> FrameInput:
    """The frame of a frames-topic record.

    Raises:
        SchemaError: missing or garbled ``vsa-*`` headers.
        FrameError: the record has no value.
    """
    meta = FrameMeta.from_headers(msg.headers())
    value = msg.value()
    if not value:
        raise FrameError(f"camera {meta.camera_id} frame_seq {meta.frame_seq}: empty record")
    ref = meta.frame_ref(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0))
    return FrameInput(meta, ref, bytes(value))


class DetectorHandler:
    """The :data:`~vsa.runtime.service.Handler` of the detector: records in, outputs and
    per-record failures out. ``totals`` counts frames, boxes and rejections since start."""

    def __init__(
        self, core: DetectorCore, output_topic: str, metrics: DetectorMetrics | None = None
    ) -> None:
        self.core = core
        self.output_topic = output_topic
        self.metrics = metrics
        self.totals: Counter[str] = Counter()
        self.partitions: set[int] = set()

    def __call__(self, msgs: Sequence[Message]) -> BatchResult:
        result = BatchResult()
        frames: list[tuple[Message, FrameInput]] = []
        for msg in msgs:
            try:
                frames.append((msg, frame_input(msg)))
            except (SchemaError, FrameError) as exc:
                self._reject(result, msg, exc, None)
        outcomes = self.core.detect([frame for _, frame in frames])
        detected: list[Detections] = []
        for (msg, frame), outcome in zip(frames, outcomes, strict=True):
            if isinstance(outcome, FrameError):
                self._reject(result, msg, outcome, frame.meta)
                continue
            detected.append(outcome)
            result.outputs.append(Output(self.output_topic, outcome.camera_id, outcome.to_bytes()))
            self.partitions.add(frame.ref.partition)
        self._account(detected)
        return result

    def _account(self, detected: Sequence[Detections]) -> None:
        self.totals["frames"] += len(detected)
        self.totals["boxes"] += sum(len(d.boxes) for d in detected)
        if self.metrics is not None and detected:
            self.metrics.observe(detected)
        if detected:
            event(
                log,
                "batch_detected",
                logging.DEBUG,
                frames=len(detected),
                boxes=sum(len(d.boxes) for d in detected),
                cameras=",".join(sorted({d.camera_id for d in detected})),
                first_frame_seq=detected[0].frame_seq,
            )

    def _reject(
        self, result: BatchResult, msg: Message, exc: Exception, meta: FrameMeta | None
    ) -> None:
        result.failures.append((msg, exc))
        self.totals["rejected"] += 1
        if self.metrics is not None:
            self.metrics.frames.labels(self.metrics.service, "rejected").inc()
        event(
            log,
            "frame_rejected",
            logging.WARNING,
            camera_id=meta.camera_id if meta else None,
            frame_seq=meta.frame_seq if meta else None,
            partition=msg.partition(),
            offset=msg.offset(),
            error=str(exc)[:300],
        )


def with_appearance(core: DetectorCore, settings: DetectorSettings) -> DetectorCore:
    """``core`` with the appearance embedder behind it (``appearance_vectors``)."""
    from vsa.services.appearance.embedder import AppearanceError, build_appearance_embedder

    from .appearance import AppearanceCore

    try:
        embedder = build_appearance_embedder(settings.appearance)
    except (AppearanceError, OSError, ImportError, RuntimeError) as exc:
        raise ConfigError(
            f"appearance_vectors: cannot load the appearance embedder: {exc}"
        ) from exc
    event(log, "appearance_embedder_loaded", backend=embedder.name)
    return AppearanceCore(core, embedder)


def build_loop(settings: DetectorSettings, stop: StopFlag | None = None) -> BatchLoop:
    """Load the model (ConfigError if it cannot be) and wire the handler into a batch loop."""
    core = load_service_core(settings)
    if settings.appearance_vectors:
        core = with_appearance(core, settings)
    metrics = ServiceMetrics(SERVICE)
    handler = DetectorHandler(core, settings.topics.name("detections"), DetectorMetrics(metrics))
    config = LoopConfig(
        service=SERVICE,
        group_id=settings.service_group,
        topics=(settings.topics.name("frames"),),
        dlq_topic=settings.topics.dlq(SERVICE),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        idle_exit_s=settings.idle_exit_s,
        topic_prefix=settings.topics.prefix,
        also_needs=(settings.topics.name("detections"),),
    )
    return BatchLoop(config, settings.kafka, handler, metrics=metrics, stop=stop)


def run_detector(settings: DetectorSettings) -> int:
    """Run the service until SIGTERM/SIGINT (or ``idle_exit_s``); the process exit code."""
    from vsa.runtime.service import serve

    loop = build_loop(settings)
    handler = loop.handler
    code = serve(loop, settings.metrics_host, settings.metrics_port)
    if isinstance(handler, DetectorHandler):
        event(
            log,
            "detector_finished",
            frames=handler.totals["frames"],
            boxes=handler.totals["boxes"],
            rejected=handler.totals["rejected"],
            partitions=",".join(str(p) for p in sorted(handler.partitions)),
            model=handler.core.model_id,
        )
    return code
