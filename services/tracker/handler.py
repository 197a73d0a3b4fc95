"""What the tracker does with a batch of detections records, without Kafka or Faust.

:meth:`TrackerHandler.handle` turns records into a :class:`BatchPlan`: the output messages
(tracks, alerts, counts, keyframes, in the order the offline replay yields them), the dead
letters, and the new state of every camera that moved. The runner (``service.py``) then
produces the outputs and dead letters, waits until Kafka acknowledged all of them, and only
then writes the states:

- a crash before the writes redelivers the batch; the table still holds the old states (the old
  ``last_frame_seq``), so the frames are applied again and give the same outputs with the same
  alert_ids (the core is deterministic): duplicates, never a lost or a different alert;
- a crash after the writes but before the offsets are committed redelivers frames the states
  already hold: they are skipped (``frame_seq`` not above the last applied one), no output.

A frame whose ``frame_seq`` went back although it was captured well after the camera's last
applied frame is no redelivery: the camera's numbering restarted (an ingest that found no
earlier frame of it). The camera starts over (``camera.process``), outcome ``restarted``, with a
``camera_sequence_restarted`` warning; a redelivery of that frame is skipped again as usual.

Within a batch a camera's state is carried from frame to frame in memory and written once, after
the batch: the table (and its changelog) then holds the state of the camera's last applied frame
of the batch, which is all a restart needs.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vsa.runtime.kafka import Headers, Output
from vsa.runtime.logs import event
from vsa.runtime.settings import TopicNames
from vsa.schemas import DeadLetter, Detections

from .camera import CameraState, FrameOutputs, process
from .config import SERVICE
from .core import DEFAULT_CONFIG, TrackerConfig
from .metrics import TrackerMetrics
from .rules import CameraRules

log = logging.getLogger("vsa.tracker")

#: camera_id -> the camera's compiled rules, or None (tracked without rules).
RulesLookup = Callable[[str], CameraRules | None]
#: A record -> the stored state bytes of its camera (key: camera_id as UTF-8), or None for a
#: camera without state yet. The runner reads the record's partition of its table.
StateLoader = Callable[["Record"], bytes | None]


@dataclass(frozen=True)
class Record:
    """One consumed detections record: what the handler needs of a Kafka message.

    ``source`` is the runner's own handle on the message (the Faust event), passed back with
    the state write so the write lands in the record's partition.
    """

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    headers: Headers = field(default_factory=list)
    source: Any = None


@dataclass(frozen=True)
class StateWrite:
    """A camera's new state, to write after the batch's outputs are acknowledged."""

    camera_id: str
    key: bytes
    data: bytes
    record: Record  # the camera's last applied record in the batch


@dataclass
class BatchPlan:
    """What one batch produces: outputs, dead letters, state writes and per-outcome counts."""

    outputs: list[Output] = field(default_factory=list)
    dead_letters: list[Output] = field(default_factory=list)
    writes: list[StateWrite] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


class KeyMismatchError(ValueError):
    """The record's key is not its camera_id: its state would live in the wrong partition."""


def decode(record: Record) -> Detections:
    """The detections message of a record; SchemaError or KeyMismatchError if it is not one."""
    message = Detections.from_bytes(record.value or b"")
    if record.key != message.camera_id.encode("utf-8"):
        raise KeyMismatchError(
            f"detections: camera {message.camera_id!r} frame_seq {message.frame_seq}: "
            f"record key {record.key!r} is not the camera_id (producers key by camera_id)"
        )
    return message


def dead_letter(topic: str, record: Record, exc: BaseException) -> Output:
    """The dead letter of a record: its key, bytes and headers, plus the error headers."""
    meta = DeadLetter.for_exception(
        SERVICE,
        exc,
        source_topic=record.topic,
        source_partition=max(record.partition, 0),
        source_offset=max(record.offset, 0),
        failed_ts=time.time(),
    )
    return Output(
        topic, record.key, record.value or b"", headers=record.headers + meta.to_headers()
    )


class TrackerHandler:
    """Applies batches of detections records to per-camera states.

    Args:
        topics: names of the output and dead-letter topics.
        rules_for: the camera's compiled rules (a :class:`~.rulebook.RuleBook` method).
        config: the tracking core's knobs.
        metrics: counters to update (None: none).
    """

    def __init__(
        self,
        topics: TopicNames,
        rules_for: RulesLookup,
        config: TrackerConfig = DEFAULT_CONFIG,
        metrics: TrackerMetrics | None = None,
    ) -> None:
        self.rules_for = rules_for
        self.config = config
        self.metrics = metrics
        self.tracks_topic = topics.name("tracks")
        self.alerts_topic = topics.name("alerts")
        self.keyframes_topic = topics.name("keyframes")
        self.counts_topic = topics.name("counts")
        self.dlq_topic = topics.dlq(SERVICE)

    def handle(self, records: Sequence[Record], load: StateLoader) -> BatchPlan:
        """Apply every record in order; the plan of what to produce and then write."""
        plan = BatchPlan()
        states: dict[str, tuple[CameraState, Record]] = {}
        for record in records:
            self._apply(record, load, states, plan)
        for camera_id, (state, record) in states.items():
            key = camera_id.encode("utf-8")
            plan.writes.append(StateWrite(camera_id, key, state.to_bytes(), record))
        self._account(plan)
        return plan

    def _apply(
        self,
        record: Record,
        load: StateLoader,
        states: dict[str, tuple[CameraState, Record]],
        plan: BatchPlan,
    ) -> None:
        """Apply one record: outputs into the plan, its camera's new state into ``states``."""
        try:
            message = decode(record)
            camera_id = message.camera_id
            state = states[camera_id][0] if camera_id in states else _load(load, record)
            rules = self.rules_for(camera_id)
            new_state, outputs = process(state, message, rules, self.config)
        except Exception as exc:  # bad input or a core bug: dead letter, keep going
            self._reject(record, exc, plan)
            return
        if outputs is None:
            disabled = rules is not None and not rules.enabled
            plan.outcomes["disabled" if disabled else "already_applied"] += 1
            return
        states[camera_id] = (new_state, record)
        if outputs.restarted_from is None:
            plan.outcomes["applied"] += 1
        else:
            plan.outcomes["restarted"] += 1
            _log_restart(message, state, outputs.restarted_from)
        plan.outputs.extend(self.encode(camera_id, outputs))

    def encode(self, camera_id: str, outputs: FrameOutputs) -> list[Output]:
        """The Kafka messages of one frame, keyed by camera_id: tracks, alerts, counts,
        keyframe."""
        key = camera_id.encode("utf-8")
        messages = [Output(self.tracks_topic, key, outputs.tracks_json())]
        for alert in outputs.alerts:
            messages.append(Output(self.alerts_topic, key, alert.to_bytes()))
            event(
                log,
                "alert",
                camera_id=camera_id,
                frame_seq=alert.frame_seq,
                rule_id=alert.rule_id,
                kind=alert.kind,
                alert_id=alert.alert_id,
                track_ids=",".join(map(str, alert.track_ids)),
            )
            if self.metrics is not None:
                self.metrics.alerts.labels(self.metrics.service, alert.kind).inc()
        for counts in outputs.counts:
            messages.append(Output(self.counts_topic, key, counts.to_bytes()))
        keyframe = outputs.keyframe_json()
        if keyframe is not None:
            messages.append(Output(self.keyframes_topic, key, keyframe))
        if self.metrics is not None:
            self.metrics.observe_frame_age(max(0.0, time.time() - outputs.message.capture_ts))
        return messages

    def _reject(self, record: Record, exc: Exception, plan: BatchPlan) -> None:
        plan.dead_letters.append(dead_letter(self.dlq_topic, record, exc))
        plan.outcomes["failed"] += 1
        event(
            log,
            "dead_letter",
            logging.WARNING,
            camera_id=(record.key or b"").decode("utf-8", "replace"),
            partition=record.partition,
            offset=record.offset,
            error_class=type(exc).__name__,
            error=str(exc)[:300],
        )

    def _account(self, plan: BatchPlan) -> None:
        if self.metrics is None:
            return
        for outcome, count in plan.outcomes.items():
            self.metrics.count_frames(outcome, count)
        for write in plan.writes:
            self.metrics.state_bytes.labels(self.metrics.service).observe(len(write.data))


def _log_restart(message: Detections, old: CameraState, last_frame_seq: int) -> None:
    """One warning line per restart of a camera's numbering, with what the state knew."""
    event(
        log,
        "camera_sequence_restarted",
        logging.WARNING,
        camera_id=message.camera_id,
        frame_seq=message.frame_seq,
        last_frame_seq=last_frame_seq,
        gap_s=round(message.capture_ts - old.tracker.last_ts, 3),
        next_track_id=old.tracker.next_track_id,
        note="frame_seq went back while capture time moved on: the camera's numbering "
        "restarted; it starts over, track ids continue",
    )


def _load(load: StateLoader, record: Record) -> CameraState:
    """The stored state of the record's camera, or a new one."""
    data = load(record)
    return CameraState() if data is None else CameraState.from_bytes(data)
